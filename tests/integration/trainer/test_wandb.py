"""A job with a `wandb` integration logs to a W&B run named and tagged as OpenAI's, with the
real `wandb` library: offline (the run folder read back through wandb's own record schema),
and against a W&B server that cannot be reached (a `warn` event, and the job succeeds)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.spec import JobSpec
from tests.conftest import free_port, require
from tests.integration.trainer.test_train import Recorder
from trainer.loop import train
from trainer.progress import Progress

try:
    import wandb
    from wandb.proto import wandb_internal_pb2 as wandb_proto
except ImportError:  # the `wandb` extra (`make install` has it); required in CI
    wandb = wandb_proto = None


@pytest.fixture(autouse=True)
def _wandb_installed() -> None:
    require(wandb is not None, "the wandb package (pip install 'whetstone[wandb]')")


BLOCK = 32768  # a .wandb file is LevelDB's log format: 32 KiB blocks of framed records
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> Iterator[Any]:
    """The `wandb.proto` `Record`s of a run's `.wandb` file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a .wandb file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or kind == 0:  # the block's padding
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (FULL, LAST):
            yield wandb_proto.Record.FromString(pending + chunk)
            pending = b""
        elif kind in (FIRST, MIDDLE):
            pending += chunk


def _items(items: Any) -> dict[str, Any]:
    return {item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in items}


def read_run(folder: Path) -> dict[str, Any]:
    """The run record, its config, the history rows and the final summary of a run folder."""
    # wandb's service process writes the file on its own time; at the trainer's exit it
    # flushes everything (`teardown`, from an exit hook): do here what the exit does.
    wandb.teardown()
    (path,) = folder.glob("*.wandb")
    run: Any = None
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            history.append(_items(record.history.item))
        elif kind == "summary":
            summary.update(_items(record.summary.update))
    assert run is not None
    return {"run": run, "config": _items(run.config.update), "history": history,
            "summary": summary}  # fmt: skip


def _spec(make_spec: Callable[..., dict[str, Any]], files: dict[str, str], **wandb: Any) -> JobSpec:
    hp = {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 1}
    return JobSpec.model_validate(
        make_spec(
            job_id="ftjob-wandb1",
            **files,
            method={"type": "supervised", "supervised": hp},
            quantization="none",
            wandb={"project": "whetstone-tests", **wandb},
        )
    )


def test_an_offline_run_holds_the_jobs_metrics_config_name_and_tags(
    qa_files: dict[str, str],
    make_spec: Callable[..., dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    spec = _spec(make_spec, qa_files, tags=["my-tag"], entity="team")
    recorder = Recorder()
    result = train(spec, Progress(recorder, heartbeat_seconds=0))
    assert result.status == "succeeded"
    assert not [m for m in recorder.of_type("log") if m["level"] == "warn"], recorder.messages

    (folder,) = (tmp_path / "wandb").glob("offline-run-*-ftjob-wandb1")
    logged = read_run(folder)
    run = logged["run"]
    assert run.run_id == "ftjob-wandb1" and run.display_name == "ftjob-wandb1"
    assert run.project == "whetstone-tests" and run.entity == "team"
    assert list(run.tags) == [
        "openai/finetune", "openai/whetstone-tiny", "openai/ftjob-wandb1", "my-tag",
    ]  # fmt: skip
    config = logged["config"]
    assert config["job_id"] == "ftjob-wandb1" and config["base_model"] == "whetstone-tiny"
    assert config["method"] == "supervised"
    assert config["hyperparameters"]["n_epochs"] == 1
    assert config["hyperparameters"]["batch_size"] == 4
    assert config["hyperparameters"]["learning_rate"] == pytest.approx(2e-4)

    sent = recorder.of_type("metrics")
    rows = [row for row in logged["history"] if "train_loss" in row]
    assert [row["_step"] for row in rows] == [m["step"] for m in sent] == [1, 2, 3, 4]
    for row, message in zip(rows, sent, strict=True):
        assert row["train_loss"] == pytest.approx(message["train_loss"])
        assert row["train_mean_token_accuracy"] == pytest.approx(
            message["train_mean_token_accuracy"]
        )
        assert row["learning_rate"] == pytest.approx(message["learning_rate"])
        assert row["tokens_per_second"] == pytest.approx(message["tokens_per_second"])
    assert rows[-1]["valid_loss"] == pytest.approx(sent[-1]["valid_loss"])  # eval at step 4
    summary = logged["summary"]
    assert summary["train_loss"] == pytest.approx(result.train_loss)
    assert summary["full_valid_loss"] == pytest.approx(result.full_valid_loss)
    assert summary["trained_tokens"] == result.trained_tokens


def test_the_integrations_name_names_the_run(
    qa_files: dict[str, str],
    make_spec: Callable[..., dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    spec = _spec(make_spec, qa_files, name="my run")
    assert train(spec, Progress(Recorder(), heartbeat_seconds=0)).status == "succeeded"
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    run = read_run(folder)["run"]
    assert run.display_name == "my run" and run.run_id == "ftjob-wandb1"


def test_an_unreachable_wandb_is_a_warn_event_and_the_job_succeeds(
    qa_files: dict[str, str],
    make_spec: Callable[..., dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")
    recorder = Recorder()
    result = train(_spec(make_spec, qa_files), Progress(recorder, heartbeat_seconds=0))
    assert result.status == "succeeded"
    warnings = [m["message"] for m in recorder.of_type("log") if m["level"] == "warn"]
    assert len(warnings) == 1 and warnings[0].startswith("W&B logging disabled: "), warnings
    assert len(recorder.of_type("metrics")) == 4 and recorder.of_type("finished")


def test_no_api_key_is_a_warn_event_and_the_job_succeeds(
    qa_files: dict[str, str],
    make_spec: Callable[..., dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # no key saved by `wandb login` either
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    recorder = Recorder()
    result = train(_spec(make_spec, qa_files), Progress(recorder, heartbeat_seconds=0))
    assert result.status == "succeeded"
    warnings = [m["message"] for m in recorder.of_type("log") if m["level"] == "warn"]
    assert warnings == [
        "W&B logging disabled: no W&B API key on this server (the operator sets "
        "WHETSTONE_WANDB_API_KEY)"
    ]
