"""The GPUs of this machine, and how `whetstone up` splits them between vLLM and the trainers.

No torch here: GPUs are read from `nvidia-smi` (index, UUID, name, memory), restricted to the
service's own `CUDA_VISIBLE_DEVICES` when that is set. `plan_devices` is a pure function of
the GPUs, the base models vLLM serves on a GPU, the trainer slots and three settings
(`WHETSTONE_TRAINER_GPUS`, `WHETSTONE_VLLM_GPUS`: `auto`, `none` or a comma list of GPU
ids; `WHETSTONE_VLLM_GPU_SHARE_WHEN_SHARED`):

- No GPU: nothing changes (children inherit the environment as it is).
- One GPU: vLLM and the trainers share it; each vLLM on it gets `share / k` of its memory
  (`--gpu-memory-utilization`, k vLLMs on it), the trainers keep the rest.
- Two or more: vLLM gets the first ones, one per base model while at least one GPU is left
  for the trainers (more models than that share them in turn), the trainers the rest, one
  GPU per attempt (more slots than GPUs share them in turn). Several vLLMs on one GPU that
  no trainer uses split their registry `gpu_memory_utilization` between them.
- An explicit list is used as given; `auto` on the other side takes what is left (or shares
  the explicit side's GPUs when nothing is left). A GPU in both lists is shared.

Ids are what `CUDA_VISIBLE_DEVICES` takes: the `nvidia-smi` index (children also get
`CUDA_DEVICE_ORDER=PCI_BUS_ID`, so CUDA counts as `nvidia-smi` does), or the entries of the
service's own `CUDA_VISIBLE_DEVICES` (UUIDs included) when it is set.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

QUERY = "index,uuid,name,memory.total,memory.used"
GPU_LIST_PATTERN = r"^\s*(auto|none|[\w.:-]+(\s*,\s*[\w.:-]+)*)\s*$"
DEFAULT_MEMORY_UTILIZATION = 0.9
_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt")


@dataclass(frozen=True)
class Gpu:
    """One GPU; `id` is what `CUDA_VISIBLE_DEVICES` names it by. Memory in MiB (0: unknown)."""

    id: str
    memory_total_mib: int = 0
    memory_used_mib: int = 0
    name: str = ""
    uuid: str = ""


@dataclass(frozen=True)
class DevicePlan:
    """Which GPUs each vLLM and the trainers see, and vLLM's memory share on each.

    `vllm`: served name -> `CUDA_VISIBLE_DEVICES` of its vLLM (models not listed: unchanged).
    `vllm_memory`: served name -> its `--gpu-memory-utilization`, for every planned model.
    `trainers`: the GPUs trainer attempts take, one each, in turn; None: the environment is
    left as it is; empty: trainers see no GPU.
    """

    gpus: tuple[Gpu, ...] = ()
    vllm: Mapping[str, str] = field(default_factory=dict)
    vllm_memory: Mapping[str, float] = field(default_factory=dict)
    trainers: tuple[str, ...] | None = None
    shared: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()

    def vllm_env(self, name: str) -> dict[str, str]:
        """Variables the vLLM of `name` gets (empty when the plan leaves it alone)."""
        if name not in self.vllm:
            return {}
        return cuda_env(self.vllm[name])

    @property
    def trainer_gpus_setting(self) -> str:
        """The plan's trainer side as a `WHETSTONE_TRAINER_GPUS` value."""
        if self.trainers is None:
            return "auto"
        return ",".join(self.trainers) or "none"


def cuda_env(devices: str) -> dict[str, str]:
    """`CUDA_VISIBLE_DEVICES=devices`, counted in `nvidia-smi`'s order."""
    return {"CUDA_VISIBLE_DEVICES": devices, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def parse_gpu_list(value: str) -> list[str] | None:
    """`auto` -> None, `none` or empty -> [], `0, 2` -> ["0", "2"]."""
    text = value.strip()
    if text == "auto":
        return None
    if text in ("", "none"):
        return []
    if not re.match(GPU_LIST_PATTERN, text):
        raise ValueError(f"not a GPU list: {value!r} (auto, none, or ids like 0,1)")
    ids = [part.strip() for part in text.split(",")]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a GPU is listed twice in {value!r}")
    return ids


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Rows of `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used
    --format=csv,noheader,nounits`; rows it cannot read are skipped."""
    gpus = []
    for row in text.splitlines():
        parts = [p.strip() for p in row.split(",")]
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        index, uuid, name, total, used = parts
        gpus.append(Gpu(index, _mib(total), _mib(used), name, uuid))
    return gpus


def detect_gpus(
    environ: Mapping[str, str], *, nvidia_smi: str = "nvidia-smi", timeout: float = 15.0
) -> list[Gpu]:
    """This machine's GPUs from `nvidia-smi`, as far as `CUDA_VISIBLE_DEVICES` lets us see.

    `nvidia-smi` missing or failing: no GPU, unless `CUDA_VISIBLE_DEVICES` lists some (then
    those, memory unknown).
    """
    try:
        done = subprocess.run(
            [nvidia_smi, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(environ),
            check=False,
        )
        found = parse_nvidia_smi(done.stdout) if done.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        found = []
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return found
    wanted = [v.strip() for v in visible.split(",") if v.strip()]
    if any(v.startswith("-") for v in wanted):  # CUDA stops at the first invalid id
        wanted = wanted[: next(i for i, v in enumerate(wanted) if v.startswith("-"))]
    gpus = []
    for ident in wanted:
        match = next((g for g in found if ident in (g.id, g.uuid)), None)
        gpu = Gpu(ident) if match is None else Gpu(ident, *_rest(match))
        gpus.append(gpu)
    return gpus


def plan_devices(
    gpus: Sequence[Gpu],
    models: Sequence[str],
    trainer_slots: int,
    *,
    trainer_gpus: str = "auto",
    vllm_gpus: str = "auto",
    share_when_shared: float = 0.35,
    memory_utilization: Mapping[str, float] | None = None,
) -> DevicePlan:
    """The split of `gpus` between the vLLMs of `models` (served on a GPU) and the trainers.

    `memory_utilization`: each model's registry `gpu_memory_utilization` (default 0.9).
    Raises ValueError for a list naming a GPU that is not among `gpus` (when any were found).
    """
    ids = [g.id for g in gpus]
    wanted_vllm, wanted_trainers = parse_gpu_list(vllm_gpus), parse_gpu_list(trainer_gpus)
    for setting, listed in (("VLLM", wanted_vllm), ("TRAINER", wanted_trainers)):
        unknown = [d for d in listed or [] if ids and d not in ids]
        if unknown:
            raise ValueError(
                f"WHETSTONE_{setting}_GPUS names {','.join(unknown)}, not a GPU here "
                f"(found: {','.join(ids)})"
            )
    if not ids and wanted_vllm is None and wanted_trainers is None:
        note = "No GPU found: vLLM and the trainers run as configured, without a GPU plan"
        if models:
            note += f" (registry says {', '.join(models)} is served on a GPU)"
        return DevicePlan(lines=(note,))

    vllm_devices = _vllm_devices(ids, len(models), wanted_vllm, wanted_trainers)
    if wanted_trainers is not None:
        trainers = wanted_trainers
    else:
        rest = [d for d in ids if d not in vllm_devices]
        trainers = rest or list(vllm_devices)
    vllm = {m: vllm_devices[i % len(vllm_devices)] for i, m in enumerate(models) if vllm_devices}
    if wanted_vllm == []:
        vllm = {m: "" for m in models}
    shared = tuple(d for d in vllm_devices if d in trainers and d in vllm.values())

    utilization = memory_utilization or {}
    memory: dict[str, float] = {}
    for model, device in vllm.items():
        on_device = sum(1 for d in vllm.values() if d == device)
        own = utilization.get(model, DEFAULT_MEMORY_UTILIZATION)
        if device in shared:
            memory[model] = round(share_when_shared / on_device, 3)
        elif device:
            memory[model] = round(own / on_device, 3)
        else:
            memory[model] = own
    plan = DevicePlan(tuple(gpus), vllm, memory, tuple(trainers), shared)
    return DevicePlan(
        plan.gpus, plan.vllm, plan.vllm_memory, plan.trainers, plan.shared,
        tuple(_describe(plan, trainer_slots, share_when_shared)),
    )  # fmt: skip


def weights_bytes(model_dir: Path) -> int:
    """Bytes of the weight files in a Hugging Face folder (0 when there are none)."""
    files = {p for pattern in _WEIGHT_FILES for p in Path(model_dir).glob(pattern)}
    return sum(p.stat().st_size for p in files if p.is_file())


def fit_warnings(plan: DevicePlan, weights: Mapping[str, int]) -> list[str]:
    """A line for each vLLM whose memory share cannot hold its weights (when both are known);
    the KV cache needs room on top of them."""
    lines = []
    by_id = {g.id: g for g in plan.gpus}
    for model, device in plan.vllm.items():
        gpu = by_id.get(device)
        size = weights.get(model, 0)
        if gpu is None or not gpu.memory_total_mib or not size:
            continue
        budget = plan.vllm_memory.get(model, DEFAULT_MEMORY_UTILIZATION) * gpu.memory_total_mib
        if size / 2**20 >= budget:
            hint = (
                "raise WHETSTONE_VLLM_GPU_SHARE_WHEN_SHARED or give vLLM a GPU of its own"
                if device in plan.shared
                else "raise its gpu_memory_utilization or serve fewer models on that GPU"
            )
            lines.append(
                f"vLLM for {model} cannot start on GPU {device}: its weights take about "
                f"{_gib(size / 2**20)}, its share of the GPU is {_gib(budget)} ({hint})"
            )
    return lines


# --- internals -------------------------------------------------------------------------------


def _vllm_devices(
    ids: list[str], models: int, wanted: list[str] | None, trainers: list[str] | None
) -> list[str]:
    if wanted is not None:
        return wanted
    if not models or not ids:
        return []
    if trainers is not None:
        free = [d for d in ids if d not in trainers]
        return free[:models] if free else ids[:1]
    if len(ids) == 1:
        return ids[:1]
    return ids[: min(models, len(ids) - 1)]


def _describe(plan: DevicePlan, slots: int, share: float) -> list[str]:
    by_id = {g.id: g for g in plan.gpus}
    lines = [f"GPUs: {', '.join(_gpu_text(g) for g in plan.gpus) or 'none found'}"]
    for device in dict.fromkeys(plan.vllm.values()):
        names = [m for m, d in plan.vllm.items() if d == device]
        if not device:
            lines.append(f"vLLM for {', '.join(names)}: no GPU (WHETSTONE_VLLM_GPUS=none)")
            continue
        each = plan.vllm_memory[names[0]]
        what = f"{each:.0%} of its memory" + (" each" if len(names) > 1 else "")
        total = by_id[device].memory_total_mib if device in by_id else 0
        if total:
            what += f" ({_gib(each * total)}{' each' if len(names) > 1 else ''})"
        if device in plan.shared:
            rest = f", the trainers keep the rest ({1 - share:.0%}"
            rest += f", {_gib((1 - share) * total)})" if total else ")"
            lines.append(
                f"GPU {device} is shared by vLLM and the trainers: vLLM for "
                f"{', '.join(names)} gets {what}{rest} (WHETSTONE_VLLM_GPU_SHARE_WHEN_SHARED)"
            )
        else:
            lines.append(f"vLLM for {', '.join(names)}: GPU {device}, {what}")
    trainers = plan.trainers or ()
    if plan.trainers is not None and not trainers:
        lines.append("trainers: no GPU (WHETSTONE_TRAINER_GPUS=none): they train on the CPU")
    elif trainers:
        text = f"trainers: GPU {','.join(trainers)}, one per attempt"
        if slots < len(trainers):
            text += f"; {slots} at once (WHETSTONE_TRAINER_SLOTS), so some GPUs stay idle"
        elif slots > len(trainers):
            per = -(-slots // len(trainers))
            text += f"; {slots} slots share them (up to {per} attempts on one GPU)"
        lines.append(text)
    return lines


def _gpu_text(gpu: Gpu) -> str:
    if not gpu.memory_total_mib:
        return f"{gpu.id} (memory unknown)"
    used = f", {_gib(gpu.memory_used_mib)} in use" if gpu.memory_used_mib > 512 else ""
    name = f"{gpu.name}, " if gpu.name else ""
    return f"{gpu.id} ({name}{_gib(gpu.memory_total_mib)}{used})"


def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB"


def _mib(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


def _rest(gpu: Gpu) -> tuple[int, int, str, str]:
    return gpu.memory_total_mib, gpu.memory_used_mib, gpu.name, gpu.uuid
