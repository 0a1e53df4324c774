"""The resume state is stored as safetensors + JSON and read back exactly, without unpickling:
a checkpoint crafted to run code when unpickled is refused and runs nothing; an older
checkpoint's plain torch pickle is read with the weights-only loader."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from contracts import layout
from contracts.local_store import LocalStore
from trainer import checkpoints, resume_state
from trainer.checkpoints import Position, fetch_checkpoint, rng_state, set_rng_state
from trainer.loop import make_scheduler


def _trained(seed: int = 0) -> tuple[list[torch.nn.Parameter], Any, Any]:
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(5))]
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01)
    scheduler = make_scheduler(optimizer, total_steps=20)
    for _ in range(3):
        _step(params, optimizer, scheduler)
    return params, optimizer, scheduler


def _step(params: list[torch.nn.Parameter], optimizer: Any, scheduler: Any) -> None:
    loss = sum((p * torch.randn_like(p)).sum() ** 2 for p in params)
    optimizer.zero_grad()
    loss.backward()  # type: ignore[union-attr]
    optimizer.step()
    scheduler.step()


def _state(optimizer: Any, scheduler: Any) -> dict[str, Any]:
    reference = torch.randn(6, 2, dtype=torch.float64)  # drawn before the RNG is captured
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "reference_train": reference,
        "plain": {"$odd key": [1, 2.5, None, True, "x", (3, 4)], "inf": float("inf")},
    }


def _assert_equal(a: Any, b: Any) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.cpu(), b)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_equal(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_equal(x, y)
    else:
        assert a == b


def test_the_state_comes_back_exactly_from_safetensors_and_json(tmp_path: Path) -> None:
    _, optimizer, scheduler = _trained()
    state = _state(optimizer, scheduler)
    resume_state.write(state, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [resume_state.VALUES, resume_state.TENSORS]
    json.loads((tmp_path / resume_state.VALUES).read_text())  # plain JSON, no pickle anywhere
    _assert_equal(state, resume_state.read(tmp_path))


def test_a_run_resumed_from_the_stored_state_continues_exactly(tmp_path: Path) -> None:
    """Three steps, saved; three more: the same weights and random draws as six in a row."""
    params, optimizer, scheduler = _trained()
    saved_weights = [p.detach().clone() for p in params]
    resume_state.write(_state(optimizer, scheduler), tmp_path)
    for _ in range(3):
        _step(params, optimizer, scheduler)
    after = [p.detach().clone() for p in params], random.random(), np.random.rand()

    restored = resume_state.read(tmp_path)
    params2, optimizer2, scheduler2 = _trained(seed=1)  # a different start, all overwritten
    with torch.no_grad():
        for p, w in zip(params2, saved_weights, strict=True):
            p.copy_(w)
    optimizer2.load_state_dict(restored["optimizer"])
    scheduler2.load_state_dict(restored["scheduler"])
    set_rng_state(restored["rng"])
    for _ in range(3):
        _step(params2, optimizer2, scheduler2)
    for p, w in zip(params2, after[0], strict=True):
        assert torch.equal(p.detach(), w)
    assert (random.random(), np.random.rand()) == after[1:]


def test_a_field_of_an_unsupported_type_fails_when_written(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="resume state /extra: object"):
        resume_state.write({"extra": object()}, tmp_path)


def _checkpoint(root: Path, training_state: bytes) -> str:
    """A complete checkpoint at step 3 whose resume state is the pickle `training_state`."""
    store, folder = LocalStore(root), layout.checkpoint_dir(3)
    store.put_bytes(folder + layout.ADAPTER + "adapter_config.json", b"{}")
    store.put_bytes(folder + layout.STATE + resume_state.LEGACY, training_state)
    store.put_bytes(folder + layout.STATE + checkpoints.POSITION, b'{"step": 3, "batch": 3}')
    store.put_bytes(folder + layout.COMPLETE, b'{"step": 3, "epoch": 1, "kind": "step"}')
    return store.key_url(folder)


class _WritesAFile:
    """Unpickled, this writes `path`: what a hostile resume state would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.path, "ran"))


def crafted_resume_state(marker: Path, tmp: Path) -> bytes:
    """A torch pickle of the old resume state's shape with a `__reduce__` that writes `marker`."""
    torch.save({"optimizer": _WritesAFile(marker), "rng": {}}, tmp / "crafted.pt")
    return (tmp / "crafted.pt").read_bytes()


def test_a_resume_state_crafted_to_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    url = _checkpoint(tmp_path / "objects", crafted_resume_state(marker, tmp_path))
    with pytest.raises(checkpoints.UnsafeCheckpoint) as refused:
        fetch_checkpoint(url, tmp_path / "resume")
    assert not marker.exists()
    message = str(refused.value)
    assert url in message and "step 3" in message
    assert "cannot be read without running code in it (it calls " in message
    assert "pathlib.PosixPath" in message
    assert "start over from it" in message and "ckpt-step-3" in message


def test_an_older_checkpoint_is_read_with_the_weights_only_loader(tmp_path: Path) -> None:
    _, optimizer, scheduler = _trained()
    old = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    old["rng"] = {"torch": torch.random.get_rng_state(), "numpy": np.random.get_state()}
    old["rng"]["python"] = random.getstate()
    torch.save(old, tmp_path / "old.pt")
    url = _checkpoint(tmp_path / "objects", (tmp_path / "old.pt").read_bytes())
    restored = fetch_checkpoint(url, tmp_path / "resume")
    _assert_equal(old, restored.training_state)
    assert restored.position == Position(step=3, batch=3)


def test_a_corrupt_resume_state_is_refused_with_the_checkpoint_named(tmp_path: Path) -> None:
    store, folder = LocalStore(tmp_path / "objects"), layout.checkpoint_dir(3)
    _checkpoint(tmp_path / "objects", b"")
    store.delete(folder + layout.STATE + resume_state.LEGACY)
    store.put_bytes(folder + layout.STATE + resume_state.VALUES, b'{"x": {"$tensor": "x"}}')
    store.put_bytes(folder + layout.STATE + resume_state.TENSORS, b"not safetensors")
    with pytest.raises(checkpoints.UnsafeCheckpoint, match="corrupt resume state"):
        fetch_checkpoint(store.key_url(folder), tmp_path / "resume")
