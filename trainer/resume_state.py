"""The resume state on disk, in formats that cannot run code when read: tensors in safetensors,
everything else in JSON. Nothing of it is ever unpickled.

`write(state, folder)` takes a nested structure of dicts, lists, tuples, JSON scalars (str, int,
float, bool, None), torch tensors and numpy arrays, and `read(folder)` gives the same structure
back (tuples stay tuples, integer dict keys stay integers, every tensor bit for bit, on the CPU).
The JSON (`training_state.json`) holds the plain values; a tensor in it is `{"$tensor": name}`,
a name in `training_state.safetensors`. Anything else is a `TypeError` when written, so a new
field of an unsupported type fails the first test that saves a checkpoint, never a resume.

To add a field to the resume state, pass it in `save_checkpoint(..., extra={...})` (a tensor, or
plain values, or a dict of both) and read it back from `Restored.training_state[...]`.

A checkpoint written before this format (`training_state.pt`, a torch pickle) is read only with
`torch.load(weights_only=True)`, which builds tensors and plain containers and calls no other
code (numpy's arrays allowed, for the RNG state). One it cannot read that way is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

VALUES = "training_state.json"
TENSORS = "training_state.safetensors"
LEGACY = "training_state.pt"
"""The torch pickle older checkpoints hold instead of the two files above."""

_NUMERIC_KINDS = "biuf"  # numpy dtypes a buffer may hold: bool, signed, unsigned, float


class UnreadableState(Exception):
    """The resume state is missing, corrupt, or not safe to read."""


def write(state: Any, folder: Path) -> None:
    """Write `state` as `VALUES` and `TENSORS` into `folder`."""
    tensors: dict[str, torch.Tensor] = {}
    values = _encode(state, "", tensors)
    save_file(tensors, str(folder / TENSORS))
    (folder / VALUES).write_text(json.dumps(values, allow_nan=True))


def read(folder: Path) -> Any:
    """The state `write` wrote into `folder`; an older checkpoint's `LEGACY` pickle only when
    torch's weights-only loader reads it. Anything else: `UnreadableState`."""
    if (folder / VALUES).is_file():
        try:
            tensors = load_file(str(folder / TENSORS))
            return _decode(json.loads((folder / VALUES).read_text()), tensors)
        except (OSError, ValueError, KeyError, TypeError, RecursionError, SafetensorError) as e:
            raise UnreadableState(f"corrupt resume state: {e}") from e
    if (folder / LEGACY).is_file():
        return _read_legacy(folder / LEGACY)
    raise UnreadableState(f"no resume state ({VALUES})")


def _read_legacy(path: Path) -> Any:
    # numpy's stubs leave out its private `_core`, where pickles of arrays point.
    reconstruct = np._core.multiarray._reconstruct  # type: ignore[attr-defined]
    numpy_arrays = [np.ndarray, np.dtype, np.dtypes.UInt32DType, reconstruct]
    try:
        with torch.serialization.safe_globals(numpy_arrays):
            return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - whatever the loader refuses, the answer is the same
        raise UnreadableState(f"old resume state ({LEGACY}) {_why_unsafe(path)}") from e


def _why_unsafe(path: Path) -> str:
    """What the pickle at `path` would call, read from its opcodes without running any."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not even a readable torch file
        names = []
    allowed = {"numpy.ndarray", "numpy.dtype", "numpy._core.multiarray._reconstruct"}
    names = [n for n in names if n not in allowed and not n.startswith("numpy.dtypes.")]
    if names:
        return f"that cannot be read without running code in it (it calls {', '.join(names)})"
    return "that cannot be read safely"


def _name(path: str, tensors: dict[str, torch.Tensor]) -> str:
    name, n = path or "tensor", 1
    while name in tensors:
        name, n = f"{path}#{n}", n + 1
    return name


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, torch.Tensor):
        name = _name(path, tensors)
        tensors[name] = value.detach().to("cpu").contiguous().clone()
        return {"$tensor": name}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"resume state {path}: a numpy array of {value.dtype}")
        name = _name(path, tensors)
        raw = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
        tensors[name] = torch.from_numpy(raw.copy())
        return {"$ndarray": name, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, f"{path}/{k}", tensors) for k, v in value.items()}
        for k in value:
            if not (k is None or isinstance(k, str | bool | int | float)):
                raise TypeError(f"resume state {path}: a dict key of {type(k).__name__}")
        return {"$dict": [[k, _encode(v, f"{path}/{k}", tensors)] for k, v in value.items()]}
    raise TypeError(f"resume state {path}: {type(value).__name__} is not a tensor or plain value")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        return tensors[value["$tensor"]]
    if "$ndarray" in value:
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"a numpy array of {dtype}")
        raw = tensors[value["$ndarray"]].numpy().tobytes()
        return np.frombuffer(raw, dtype=dtype).reshape(value["shape"]).copy()
    if "$tuple" in value:
        return tuple(_decode(v, tensors) for v in value["$tuple"])
    if "$dict" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["$dict"]}
    return {k: _decode(v, tensors) for k, v in value.items()}
