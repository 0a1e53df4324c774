"""`whetstone migrate`'s rules that need no server: what a new job is made of, the
metadata limits, the source's authentication header, a streamed upload that cannot rewind."""

from __future__ import annotations

from typing import Any

import pytest

from clients.cli.migration import Skip, metadata_for, method_of, parse_model_map, suffix_of
from clients.cli.replay import prompt_of
from clients.cli.source import ChunkReader, RewindError, lines, source_client
from clients.sdk.types import FineTuningJob


def job(**fields: Any) -> FineTuningJob:
    base = {"id": "ftjob-abc", "created_at": 1, "model": "gpt-4o-mini-2024-07-18",
            "status": "succeeded", "training_file": "file-t"}  # fmt: skip
    return FineTuningJob.model_validate({**base, **fields})


def test_the_suffix_is_read_back_from_the_fine_tuned_models_name() -> None:
    assert suffix_of(job(fine_tuned_model="ft:gpt-4o-mini-2024-07-18:acme:support:AbC123")) == (
        "support"
    )
    assert suffix_of(job(fine_tuned_model="ft:gpt-4o-mini-2024-07-18:acme::AbC123")) is None
    assert suffix_of(job(fine_tuned_model=None)) is None


def test_old_jobs_without_method_keep_their_top_level_hyperparameters() -> None:
    old = job(hyperparameters={"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.8})
    assert method_of(old) == {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.8}}}  # fmt: skip
    with pytest.raises(Skip, match="no grader"):
        method_of(job(method={"type": "reinforcement", "reinforcement": {}}))


def test_reinforcement_jobs_move_with_their_grader_and_hyperparameters() -> None:
    grader = {"type": "string_check", "name": "exact", "operation": "eq",
              "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}  # fmt: skip
    hyper = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 1.0,
             "compute_multiplier": 2.0, "eval_interval": 5, "eval_samples": 3,
             "reasoning_effort": "low"}  # fmt: skip
    rft = job(method={"type": "reinforcement",
                      "reinforcement": {"grader": grader, "hyperparameters": hyper}})  # fmt: skip
    assert method_of(rft) == {
        "type": "reinforcement",
        "reinforcement": {"grader": grader, "hyperparameters": hyper},
    }


def test_metadata_keeps_the_migration_keys_within_the_limits() -> None:
    own = {f"k{i:02d}": "v" for i in range(16)} | {"long": "x" * 600}
    metadata, notes = metadata_for(job(metadata=own), {"migrated_from": "ftjob-abc"})
    assert len(metadata) == 16 and metadata["migrated_from"] == "ftjob-abc"
    assert "metadata k15 dropped" in notes and "metadata long dropped" in notes
    cut, notes = metadata_for(job(metadata={"long": "x" * 600}), {"migrated_from": "j"})
    assert cut["long"] == "x" * 512 and notes == ["metadata long cut to 512 characters"]
    _, notes = metadata_for(job(metadata={"migrated_from": "older"}), {"migrated_from": "j"})
    assert notes == ["metadata migrated_from replaced"]


def test_a_model_map_pair_needs_both_sides() -> None:
    assert parse_model_map(["a=b", " c = d "]) == {"a": "b", "c": "d"}
    for bad in ("a", "=b", "a="):
        with pytest.raises(ValueError, match="SOURCE_MODEL=DESTINATION_MODEL"):
            parse_model_map([bad])


def test_azure_gets_its_api_key_header_and_path_others_bearer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHETSTONE_API_KEY", "destination-key")
    with source_client("https://acme.openai.azure.com", "az-key") as azure:
        assert azure.base_url == "https://acme.openai.azure.com/openai/v1/"
        headers = azure._api.options.headers
        assert headers["api-key"] == "az-key" and "Authorization" not in headers
    with source_client("https://api.openai.com/v1", "sk-1") as openai_source:
        assert openai_source._api.options.headers["Authorization"] == "Bearer sk-1"


def test_a_streamed_upload_reads_in_order_and_refuses_to_rewind_once_started() -> None:
    reader = ChunkReader(iter([b"ab", b"cde", b"f"]))
    assert reader.seek(0) == 0  # before the first byte: nothing to resend
    assert reader.read(4) == b"abcd" and reader.read(4) == b"ef" and reader.read(4) == b""
    with pytest.raises(RewindError):
        reader.seek(0)
    assert list(lines(iter([b"one\ntw", b"o\n", b"three"]))) == [b"one", b"two", b"three"]


def test_the_prompt_is_everything_before_the_last_assistant_message() -> None:
    user = {"role": "user", "content": "q"}
    said = {"role": "assistant", "content": "a"}
    assert prompt_of({"messages": [user, said, user, said]}) == ([user, said, user], {})
    assert prompt_of({"messages": [user]}) is None
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert prompt_of({"input": {"messages": [user]}, "tools": tools}) == ([user], {"tools": tools})
