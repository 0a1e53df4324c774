"""Checkpoint retention on the store (`trainer.checkpoints.prune`): the last epochs a job
keeps, the latest step checkpoint only while a resume needs it, and the kept steps reported."""

from __future__ import annotations

from pathlib import Path

from contracts import layout
from contracts.local_store import LocalStore
from trainer.checkpoints import prune


def _write(store: LocalStore, step: int, kind: str, complete: bool = True) -> None:
    folder = layout.checkpoint_dir(step)
    store.put_bytes(folder + layout.ADAPTER + "adapter_config.json", b"{}")
    if complete:
        info = layout.CheckpointInfo(step=step, epoch=1, kind=kind)  # type: ignore[arg-type]
        store.put_bytes(folder + layout.COMPLETE, info.to_json())


def _train(store: LocalStore, checkpoints: list[tuple[int, str]], keep: int) -> list[int]:
    """Write the checkpoints in order, pruning after each as the loop does; the last kept."""
    kept: list[int] = []
    for step, kind in checkpoints:
        _write(store, step, kind)
        kept = prune(store, keep_step=step, keep_epochs=keep)
        assert layout.checkpoint_steps_on_store(store) == set(kept)
    return kept


# 25 epochs of 16 steps, a step checkpoint every 50 steps: 400 steps, 32 checkpoints.
RUN = sorted([(16 * e, "epoch") for e in range(1, 26)] + [(50 * k, "step") for k in range(1, 8)])


def test_the_last_three_epochs_are_kept_by_default(tmp_path: Path) -> None:
    assert len(RUN) == 32
    assert _train(LocalStore(tmp_path), RUN, keep=3) == [368, 384, 400]


def test_a_job_may_keep_more_epochs(tmp_path: Path) -> None:
    assert _train(LocalStore(tmp_path), RUN, keep=5) == [336, 352, 368, 384, 400]


def test_the_latest_step_checkpoint_stays_while_it_is_the_newest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    # Mid-run: the step checkpoint at 350 is newer than every epoch one, so a resume needs it.
    assert _train(store, [c for c in RUN if c[0] <= 350], keep=3) == [304, 320, 336, 350]
    # The next epoch checkpoint supersedes it.
    assert prune_after(store, 352) == [320, 336, 352]


def prune_after(store: LocalStore, step: int) -> list[int]:
    _write(store, step, "epoch")
    return prune(store, keep_step=step)


def test_incomplete_leftovers_go_but_the_checkpoint_being_written_stays(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    _write(store, 16, "epoch")
    _write(store, 20, "step", complete=False)  # an attempt died while writing it
    _write(store, 32, "epoch", complete=False)  # being written now
    assert prune(store, keep_step=32) == [16, 32]
    assert layout.checkpoint_steps_on_store(store) == {16, 32}
