"""`whetstone migrate` as a person runs it: one real Whetstone server plays both accounts,
a source project (through a small proxy, `source_proxy`) and a destination project."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.corpus.malformed import GOOD, GOOD_FILES, PREF_GOOD
from tests.e2e.conftest import Server, create_key, start_server

from .source_proxy import Source, source_proxy

ROOT = Path(__file__).resolve().parents[3]
MAPPED, UNMAPPED = "gpt-4o-mini-2024-07-18", "gpt-3.5-turbo-0125"
# Bytes the server accepts that a careless copy would change: a BOM, CRLF, no last newline.
TRAIN = dict(GOOD_FILES)["chat_crlf_and_bom"]
VALID = dict(GOOD_FILES)["chat_no_trailing_newline"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("migrate")
    registry = data_dir / "models.yaml"
    registry.write_text("models:\n" + "".join(
        f"  - name: {name}\n    path: {data_dir / name}\n    max_seq_len: 1024\n"
        for name in (MAPPED, UNMAPPED, "whetstone-tiny")
    ))  # fmt: skip
    with start_server(data_dir, extra_env={"WHETSTONE_BASE_MODELS_FILE": str(registry)}) as s:
        yield s


def accounts(server: Server, name: str) -> tuple[str, str]:
    """Keys of a fresh source project and a fresh destination project."""
    return create_key(server.env, f"{name}-source"), create_key(server.env, f"{name}-dest")


def whetstone_migrate(
    server: Server, dest_key: str, source: Source, source_key: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return migrate_cli(server.env, server.url, dest_key, source, source_key, *args)


def migrate_cli(
    env: dict[str, str], url: str, dest_key: str, source: Source, source_key: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`whetstone migrate` (this checkout's code) with the destination `url` and `dest_key`."""
    env = {**env, "WHETSTONE_BASE_URL": url, "WHETSTONE_API_KEY": dest_key,
           "COLUMNS": "250", "PYTHONPATH": str(ROOT)}  # fmt: skip
    command = [sys.executable, "-m", "clients.cli.main", "migrate",
               "--source-base-url", source.url, "--source-api-key", source_key,
               "--model-map", f"{MAPPED}=whetstone-tiny", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def rows(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {row["job"]: row for row in json.loads(result.stdout)}


def upload(client: openai.OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune").id


def test_jobs_move_with_their_files_byte_for_byte_and_a_rerun_adds_nothing(
    server: Server,
) -> None:
    source_key, dest_key = accounts(server, "move")
    src, dest = server.client(source_key), server.client(dest_key)
    train, valid = upload(src, "train.jsonl", TRAIN), upload(src, "valid.jsonl", VALID)
    prefs = upload(src, "prefs.jsonl", PREF_GOOD * 3)
    sft = src.fine_tuning.jobs.create(
        model=MAPPED, training_file=train, validation_file=valid, seed=7,
        metadata={"team": "support", "ticket": "T-12"},
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 0.5}}},
    )  # fmt: skip
    dpo = src.fine_tuning.jobs.create(
        model=MAPPED, training_file=prefs, seed=3,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}},
    )  # fmt: skip
    # More jobs than one page of the source's list (20), none of them mapped.
    unmapped = [src.fine_tuning.jobs.create(model=UNMAPPED, training_file=train).id
                for _ in range(20)]  # fmt: skip

    with source_proxy(Source(server.url)) as source:
        first = whetstone_migrate(server, dest_key, source, source_key, "--json")
    assert first.returncode == 0, first.stderr
    done = rows(first)
    assert set(done) == {sft.id, dpo.id, *unmapped}
    assert {done[j]["status"] for j in unmapped} == {"skipped (no mapping)"}
    assert done[sft.id]["status"] == "created" and done[dpo.id]["status"] == "created"
    assert not any(done[j]["files"] for j in unmapped)

    copies = {f.filename: f for f in dest.files.list()}
    assert set(copies) == {f"{train}__train.jsonl", f"{valid}__valid.jsonl",
                           f"{prefs}__prefs.jsonl"}  # fmt: skip
    assert dest.files.content(copies[f"{train}__train.jsonl"].id).content == TRAIN
    assert dest.files.content(copies[f"{valid}__valid.jsonl"].id).content == VALID

    moved = dest.fine_tuning.jobs.retrieve(done[sft.id]["new_job"])
    assert moved.model == "whetstone-tiny" and moved.seed == 7
    assert moved.training_file == copies[f"{train}__train.jsonl"].id
    assert moved.validation_file == copies[f"{valid}__valid.jsonl"].id
    assert moved.metadata == {"migrated_from": sft.id, "team": "support", "ticket": "T-12"}
    hp = moved.method.supervised.hyperparameters  # type: ignore[union-attr]
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (2, 1, 0.5)  # type: ignore[union-attr]
    moved_dpo = dest.fine_tuning.jobs.retrieve(done[dpo.id]["new_job"])
    assert moved_dpo.method.type == "dpo" and moved_dpo.seed == 3  # type: ignore[union-attr]
    assert moved_dpo.method.dpo.hyperparameters.beta == 0.2  # type: ignore[union-attr]

    with source_proxy(Source(server.url)) as source:
        again = whetstone_migrate(server, dest_key, source, source_key)
    assert again.returncode == 0, again.stderr
    lines = {line.split()[0]: line for line in again.stdout.splitlines()[2:]}
    assert f"{MAPPED} -> whetstone-tiny" in lines[sft.id] and "exists" in lines[sft.id]
    assert done[sft.id]["new_job"] in lines[sft.id] and "(reused)" not in lines[sft.id]
    assert "skipped (no mapping)" in lines[unmapped[0]]
    assert len(list(dest.files.list())) == 3 and len(list(dest.fine_tuning.jobs.list())) == 2


def test_a_dry_run_shows_the_plan_and_changes_nothing(server: Server) -> None:
    source_key, dest_key = accounts(server, "dry")
    src, dest = server.client(source_key), server.client(dest_key)
    train = upload(src, "train.jsonl", GOOD * 4)
    job = src.fine_tuning.jobs.create(model=MAPPED, training_file=train)
    with source_proxy(Source(server.url)) as source:
        planned = whetstone_migrate(server, dest_key, source, source_key, "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    row = rows(planned)[job.id]
    assert row["status"] == "would create"
    assert row["files"] == [f"training {train} -> copy, {len(GOOD) * 4:,} bytes"]
    assert list(dest.files.list()) == [] and list(dest.fine_tuning.jobs.list()) == []


def test_a_source_failing_midway_is_reported_and_a_rerun_finishes_without_duplicates(
    server: Server,
) -> None:
    source_key, dest_key = accounts(server, "midway")
    src, dest = server.client(source_key), server.client(dest_key)
    first_file, second_file = upload(src, "a.jsonl", GOOD * 3), upload(src, "b.jsonl", GOOD * 5)
    older = src.fine_tuning.jobs.create(model=MAPPED, training_file=second_file)
    newer = src.fine_tuning.jobs.create(model=MAPPED, training_file=first_file)
    # Azure OpenAI's shape: /openai/v1 paths, the key in `api-key`.
    failing = Source(server.url, azure=True, fail_content_of={second_file})
    with source_proxy(failing) as source:
        first = whetstone_migrate(server, dest_key, source, source_key, "--source-auth",
                                  "api-key", "--json")  # fmt: skip
    assert first.returncode == 1, first.stderr
    done = rows(first)
    assert done[newer.id]["status"] == "created"
    assert done[older.id]["status"].startswith("failed: InternalServerError [500]")
    assert len(list(dest.fine_tuning.jobs.list())) == 1

    with source_proxy(Source(server.url, azure=True)) as source:
        rerun = whetstone_migrate(server, dest_key, source, source_key, "--source-auth",
                                  "api-key", "--json")  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    again = rows(rerun)
    assert again[newer.id] == {**done[newer.id], "status": "exists", "files": []}
    assert again[older.id]["status"] == "created"
    names = sorted(f.filename for f in dest.files.list())
    assert names == sorted([f"{first_file}__a.jsonl", f"{second_file}__b.jsonl"])
    migrated = [j.metadata["migrated_from"] for j in dest.fine_tuning.jobs.list()]  # type: ignore[index]
    assert sorted(migrated) == sorted([older.id, newer.id])
    copy = next(f for f in dest.files.list() if f.filename.startswith(second_file))
    assert dest.files.content(copy.id).content == GOOD * 5


def test_a_download_cut_halfway_stores_no_short_copy_and_a_rerun_copies_it_whole(
    server: Server,
) -> None:
    source_key, dest_key = accounts(server, "cut")
    src, dest = server.client(source_key), server.client(dest_key)
    data = GOOD * 400  # large enough to be sent in several chunks
    file_id = upload(src, "big.jsonl", data)
    job = src.fine_tuning.jobs.create(model=MAPPED, training_file=file_id)
    with source_proxy(Source(server.url, cut_content_of={file_id})) as source:
        cut = whetstone_migrate(server, dest_key, source, source_key, "--json")
    assert cut.returncode == 1, cut.stdout + cut.stderr
    assert rows(cut)[job.id]["status"].endswith(f"{len(data) // 2} bytes arrived of {len(data)}")
    assert list(dest.files.list()) == [] and list(dest.fine_tuning.jobs.list()) == []

    with source_proxy(Source(server.url)) as source:
        rerun = whetstone_migrate(server, dest_key, source, source_key, "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert rows(rerun)[job.id]["status"] == "created"
    (copy,) = dest.files.list()
    assert dest.files.content(copy.id).content == data


def test_a_bad_model_map_is_refused_before_anything_is_read(server: Server) -> None:
    source_key, dest_key = accounts(server, "badmap")
    with source_proxy(Source(server.url)) as source:
        refused = whetstone_migrate(server, dest_key, source, source_key, "--model-map", "oops")
        assert source.served == []
    assert refused.returncode == 2 and "SOURCE_MODEL=DESTINATION_MODEL" in refused.stderr


def test_jobs_named_with_jobs_move_alone_and_a_cancelled_one_only_when_named(
    server: Server,
) -> None:
    source_key, dest_key = accounts(server, "named")
    src, dest = server.client(source_key), server.client(dest_key)
    train = upload(src, "train.jsonl", GOOD * 4)
    wanted, other, stopped = (
        src.fine_tuning.jobs.create(model=MAPPED, training_file=train) for _ in range(3)
    )
    src.fine_tuning.jobs.cancel(stopped.id)
    with source_proxy(Source(server.url)) as source:
        named = whetstone_migrate(
            server, dest_key, source, source_key, "--jobs", wanted.id, "--json"
        )
        everything = whetstone_migrate(server, dest_key, source, source_key, "--json")
        cancelled = whetstone_migrate(
            server, dest_key, source, source_key, "--jobs", stopped.id, "--json"
        )
    assert named.returncode == 0, named.stderr
    assert {j: r["status"] for j, r in rows(named).items()} == {wanted.id: "created"}
    assert {j: r["status"] for j, r in rows(everything).items()} == {
        wanted.id: "exists",
        other.id: "created",
        stopped.id: "skipped (source job cancelled; name it with --jobs to move it anyway)",
    }
    assert rows(cancelled)[stopped.id]["status"] == "created"
    migrated = sorted(j.metadata["migrated_from"] for j in dest.fine_tuning.jobs.list())  # type: ignore[index]
    assert migrated == sorted([wanted.id, other.id, stopped.id])
