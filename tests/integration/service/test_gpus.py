"""The GPU plan of `whetstone up`: detection through `nvidia-smi`, the split, and its wiring.

A fake `nvidia-smi` (a script on PATH printing CSV) stands in for the driver; the wiring is
checked on the environments the supervisor and the local executor build, without starting
vLLM or a trainer.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from service.executors import Attempt, build_executor
from service.executors.local import LocalExecutor
from service.gpus import (
    Gpu,
    detect_gpus,
    fit_warnings,
    parse_gpu_list,
    parse_nvidia_smi,
    plan_devices,
)
from service.settings import Settings
from service.up import apply_device_plan, make_supervisor
from serving.launcher import BaseModelEntry, ServingOptions

H100 = 81559


def gpus(n: int, total: int = H100) -> list[Gpu]:
    return [Gpu(str(i), total, 0, "NVIDIA H100 80GB HBM3", f"GPU-{i:04d}") for i in range(n)]


def fake_nvidia_smi(folder: Path, n: int, total: int = H100) -> Path:
    """A `nvidia-smi` printing `n` GPUs as `--query-gpu=... --format=csv,noheader,nounits` does."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{i}, GPU-{i:04d}, NVIDIA H100 80GB HBM3, {total}, 1" for i in range(n))
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{rows}\nEOF\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


# --- plan_devices ------------------------------------------------------------------------------


def test_no_gpu_changes_nothing() -> None:
    plan = plan_devices([], ["llama"], 1)
    assert plan.vllm == {} and plan.trainers is None and plan.shared == ()
    assert plan.trainer_gpus_setting == "auto"
    assert plan.vllm_env("llama") == {}
    assert "No GPU found" in plan.lines[0]


def test_one_gpu_is_shared_and_vllm_keeps_to_its_share() -> None:
    plan = plan_devices(gpus(1), ["llama"], 1, share_when_shared=0.35)
    assert plan.vllm == {"llama": "0"}
    assert plan.trainers == ("0",)
    assert plan.shared == ("0",)
    assert plan.vllm_memory == {"llama": 0.35}
    said = "\n".join(plan.lines)
    assert "GPU 0 is shared by vLLM and the trainers" in said
    assert "35% of its memory (27.9 GiB)" in said and "the trainers keep the rest (65%" in said


def test_one_gpu_two_models_split_the_share() -> None:
    plan = plan_devices(gpus(1), ["a", "b"], 1, share_when_shared=0.4)
    assert plan.vllm == {"a": "0", "b": "0"}
    assert plan.vllm_memory == {"a": 0.2, "b": 0.2}


def test_one_gpu_and_no_gpu_model_gives_the_trainers_the_gpu() -> None:
    plan = plan_devices(gpus(1), [], 2)
    assert plan.vllm == {} and plan.trainers == ("0",) and plan.shared == ()


def test_two_gpus_one_each() -> None:
    plan = plan_devices(gpus(2), ["llama"], 1)
    assert plan.vllm == {"llama": "0"}
    assert plan.trainers == ("1",)
    assert plan.shared == ()
    assert plan.vllm_memory == {"llama": 0.9}  # its own GPU: the registry's value stands
    assert plan.vllm_env("llama") == {
        "CUDA_VISIBLE_DEVICES": "0",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }


def test_two_gpus_three_models_share_the_first() -> None:
    plan = plan_devices(gpus(2), ["a", "b", "c"], 1, memory_utilization={"a": 0.9, "b": 0.6})
    assert plan.vllm == {"a": "0", "b": "0", "c": "0"}
    assert plan.trainers == ("1",)
    assert plan.vllm_memory == {"a": 0.3, "b": 0.2, "c": 0.3}


def test_four_gpus_one_model_three_trainer_slots() -> None:
    plan = plan_devices(gpus(4), ["llama"], 3)
    assert plan.vllm == {"llama": "0"}
    assert plan.trainers == ("1", "2", "3")
    assert "trainers: GPU 1,2,3, one per attempt" in plan.lines[-1]


def test_four_gpus_four_models_leave_one_for_the_trainers() -> None:
    plan = plan_devices(gpus(4), ["a", "b", "c", "d"], 1)
    assert plan.vllm == {"a": "0", "b": "1", "c": "2", "d": "0"}
    assert plan.trainers == ("3",)
    assert plan.vllm_memory["a"] == 0.45 and plan.vllm_memory["b"] == 0.9


def test_eight_gpus_two_models_two_slots_say_that_some_stay_idle() -> None:
    plan = plan_devices(gpus(8), ["a", "b"], 2)
    assert plan.vllm == {"a": "0", "b": "1"}
    assert plan.trainers == ("2", "3", "4", "5", "6", "7")
    assert "2 at once (WHETSTONE_TRAINER_SLOTS), so some GPUs stay idle" in plan.lines[-1]


def test_more_slots_than_trainer_gpus_share_them() -> None:
    plan = plan_devices(gpus(2), ["a"], 3)
    assert plan.trainers == ("1",)
    assert "3 slots share them (up to 3 attempts on one GPU)" in plan.lines[-1]


def test_explicit_lists_are_used_as_given() -> None:
    plan = plan_devices(gpus(8), ["a", "b"], 2, vllm_gpus="6,7", trainer_gpus="0, 1")
    assert plan.vllm == {"a": "6", "b": "7"} and plan.trainers == ("0", "1")


def test_explicit_vllm_and_auto_trainers_take_the_rest() -> None:
    plan = plan_devices(gpus(4), ["a"], 1, vllm_gpus="3")
    assert plan.vllm == {"a": "3"} and plan.trainers == ("0", "1", "2")


def test_explicit_trainers_and_auto_vllm_take_the_rest_or_share() -> None:
    plan = plan_devices(gpus(4), ["a", "b"], 1, trainer_gpus="0,1")
    assert plan.vllm == {"a": "2", "b": "3"} and plan.trainers == ("0", "1")
    everything = plan_devices(gpus(2), ["a"], 1, trainer_gpus="0,1")
    assert everything.vllm == {"a": "0"} and everything.shared == ("0",)
    assert everything.vllm_memory == {"a": 0.35}


def test_overlapping_lists_share_the_common_gpu() -> None:
    plan = plan_devices(gpus(2), ["a"], 2, vllm_gpus="0", trainer_gpus="0,1", share_when_shared=0.5)
    assert plan.shared == ("0",) and plan.vllm_memory == {"a": 0.5}


def test_none_hides_the_gpus() -> None:
    cpu_trainers = plan_devices(gpus(2), ["a"], 1, trainer_gpus="none")
    assert cpu_trainers.trainers == () and cpu_trainers.trainer_gpus_setting == "none"
    assert cpu_trainers.vllm == {"a": "0"}
    no_vllm = plan_devices(gpus(2), ["a"], 1, vllm_gpus="none")
    assert no_vllm.vllm == {"a": ""} and no_vllm.trainers == ("0", "1")


def test_explicit_lists_without_detected_gpus_are_trusted() -> None:
    plan = plan_devices([], ["a"], 1, vllm_gpus="0", trainer_gpus="1")
    assert plan.vllm == {"a": "0"} and plan.trainers == ("1",)


def test_unknown_gpu_is_refused() -> None:
    with pytest.raises(ValueError, match="WHETSTONE_TRAINER_GPUS names 5, not a GPU here"):
        plan_devices(gpus(2), ["a"], 1, trainer_gpus="1,5")


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("auto", None), (" none ", []), ("", []), ("0", ["0"]), ("0, 2", ["0", "2"])],
)
def test_parse_gpu_list(value: str, parsed: list[str] | None) -> None:
    assert parse_gpu_list(value) == parsed


def test_parse_gpu_list_refuses_duplicates_and_junk() -> None:
    with pytest.raises(ValueError):
        parse_gpu_list("0,0")
    with pytest.raises(ValueError):
        parse_gpu_list("0;1")


def test_fit_warnings_when_the_share_cannot_hold_the_weights() -> None:
    plan = plan_devices(gpus(1, total=24576), ["big"], 1, share_when_shared=0.35)
    (line,) = fit_warnings(plan, {"big": 16 * 2**30})
    assert "vLLM for big cannot start on GPU 0" in line
    assert "WHETSTONE_VLLM_GPU_SHARE_WHEN_SHARED" in line
    assert fit_warnings(plan, {"big": 2 * 2**30}) == []


# --- detection ---------------------------------------------------------------------------------


def test_parse_nvidia_smi_skips_what_it_cannot_read() -> None:
    text = (
        "0, GPU-a, NVIDIA H200, 143771, 0\nNo devices were found\n1, GPU-b, NVIDIA H200, [N/A], 3\n"
    )
    assert parse_nvidia_smi(text) == [
        Gpu("0", 143771, 0, "NVIDIA H200", "GPU-a"),
        Gpu("1", 0, 3, "NVIDIA H200", "GPU-b"),
    ]


def test_detect_with_a_fake_nvidia_smi(tmp_path: Path) -> None:
    bin_dir = fake_nvidia_smi(tmp_path / "bin", 4)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    found = detect_gpus(env)
    assert [g.id for g in found] == ["0", "1", "2", "3"]
    assert found[0].memory_total_mib == H100 and found[0].uuid == "GPU-0000"


def test_detect_keeps_to_cuda_visible_devices(tmp_path: Path) -> None:
    path = f"{fake_nvidia_smi(tmp_path / 'bin', 4)}:{os.environ['PATH']}"
    picked = detect_gpus({"PATH": path, "CUDA_VISIBLE_DEVICES": "2,GPU-0003"})
    assert [(g.id, g.memory_total_mib) for g in picked] == [("2", H100), ("GPU-0003", H100)]
    assert detect_gpus({"PATH": path, "CUDA_VISIBLE_DEVICES": ""}) == []
    assert [g.id for g in detect_gpus({"PATH": path, "CUDA_VISIBLE_DEVICES": "1,-1,2"})] == ["1"]


def test_no_nvidia_smi_means_no_gpu(tmp_path: Path) -> None:
    assert detect_gpus({"PATH": str(tmp_path)}) == []
    assert [g.id for g in detect_gpus({"PATH": str(tmp_path), "CUDA_VISIBLE_DEVICES": "0"})] == [
        "0"
    ]


# --- wiring: whetstone up -> supervisor and local executor ----------------------------------------


def entry(name: str, device: str = "gpu", **serving: object) -> BaseModelEntry:
    options = ServingOptions.model_validate({"device": device, **serving})
    return BaseModelEntry(name=name, path=f"/models/{name}", serving=options)


def attempt(job_id: str) -> Attempt:
    return Attempt(job_id, 1, "file:///spec.json", "http://x/report", "tok", "a")


def launch_env(executor: LocalExecutor, job_id: str) -> dict[str, str]:
    """Launch an attempt of a stand-in that prints its CUDA variables, and read them back."""
    handle = executor.launch(attempt(job_id))
    log = executor.log_path(job_id, 1)
    deadline = time.monotonic() + 20
    while "END" not in (text := log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"the stand-in printed no END: {text!r}"
        executor.poll(handle)
        time.sleep(0.05)
    pairs = [line.split("=", 1) for line in text.splitlines() if "=" in line]
    return dict(pairs)  # type: ignore[arg-type]


PRINT_ENV = (
    "import os, sys, time\n"
    "for k in ('CUDA_VISIBLE_DEVICES', 'CUDA_DEVICE_ORDER'):\n"
    "    print(f'{k}={os.environ.get(k, \"<unset>\")}')\n"
    "print('END', flush=True)\n"
    "time.sleep(float(os.environ.get('HOLD', '5')))\n"
)


def test_up_on_four_gpus_gives_each_child_its_devices(tmp_path: Path) -> None:
    bin_dir = fake_nvidia_smi(tmp_path / "bin", 4)
    environ = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    settings = Settings(data_dir=tmp_path / "data", trainer_slots=2)
    models = [entry("a"), entry("b"), entry("tiny", device="cpu")]
    planned, entries = apply_device_plan(settings, models, environ)
    assert planned.trainer_gpus == "2,3"
    supervisor = make_supervisor(planned, entries)
    _, env_a = supervisor.command("a")
    argv_b, env_b = supervisor.command("b")
    _, env_tiny = supervisor.command("tiny")
    assert env_a["CUDA_VISIBLE_DEVICES"] == "0" and env_b["CUDA_VISIBLE_DEVICES"] == "1"
    assert env_a["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert argv_b[argv_b.index("--gpu-memory-utilization") + 1] == "0.9"
    assert "CUDA_VISIBLE_DEVICES" not in env_tiny  # a CPU vLLM is left alone

    executor = build_executor(
        planned.model_copy(update={"trainer_command": [sys.executable, "-c", PRINT_ENV]}),
        tmp_path / "data",
    )
    assert isinstance(executor, LocalExecutor)
    first = launch_env(executor, "ftjob-one")
    second = launch_env(executor, "ftjob-two")
    assert first == {"CUDA_VISIBLE_DEVICES": "2", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert second["CUDA_VISIBLE_DEVICES"] == "3"  # the first still runs: the other GPU


def test_up_on_one_gpu_shares_it_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {"PATH": f"{fake_nvidia_smi(tmp_path / 'bin', 1)}:{os.environ['PATH']}"}
    settings = Settings(data_dir=tmp_path / "data", vllm_gpu_share_when_shared=0.3)
    with caplog.at_level(logging.INFO, logger="whetstone"):
        planned, entries = apply_device_plan(settings, [entry("a")], environ)
    argv, env = make_supervisor(planned, entries).command("a")
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.3"
    assert planned.trainer_gpus == "0"
    assert "GPU 0 is shared by vLLM and the trainers: vLLM for a gets 30%" in caplog.text


def test_up_without_gpus_changes_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    models = [entry("a"), entry("tiny", device="cpu")]
    planned, entries = apply_device_plan(settings, models, {"PATH": str(tmp_path)})
    assert entries == models and planned.trainer_gpus == "auto"
    executor = build_executor(
        planned.model_copy(update={"trainer_command": [sys.executable, "-c", PRINT_ENV]}),
        tmp_path / "data",
    )
    assert isinstance(executor, LocalExecutor)
    env = executor.environment(attempt("ftjob-x"), None)
    assert env.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
    _, vllm_env = make_supervisor(planned, entries).command("a")
    assert "CUDA_VISIBLE_DEVICES" not in vllm_env


def test_up_keeps_a_gpu_pinned_in_the_registry(tmp_path: Path) -> None:
    environ = {"PATH": f"{fake_nvidia_smi(tmp_path / 'bin', 2)}:{os.environ['PATH']}"}
    settings = Settings(data_dir=tmp_path / "data")
    models = [entry("pinned", cuda_visible_devices="1"), entry("a")]
    planned, entries = apply_device_plan(settings, models, environ)
    assert entries[0] == models[0]
    assert entries[1].serving.cuda_visible_devices == "0" and planned.trainer_gpus == "1"


def test_up_refuses_an_unknown_gpu(tmp_path: Path) -> None:
    environ = {"PATH": f"{fake_nvidia_smi(tmp_path / 'bin', 2)}:{os.environ['PATH']}"}
    settings = Settings(data_dir=tmp_path / "data", vllm_gpus="7")
    with pytest.raises(SystemExit, match="WHETSTONE_VLLM_GPUS names 7"):
        apply_device_plan(settings, [entry("a")], environ)


def test_executor_with_no_gpu_hides_them(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path, command=[sys.executable, "-c", PRINT_ENV], gpus=[])
    assert launch_env(executor, "ftjob-cpu")["CUDA_VISIBLE_DEVICES"] == ""


def test_settings_refuse_a_bad_gpu_list() -> None:
    with pytest.raises(ValueError):
        Settings(trainer_gpus="0;1")
    with pytest.raises(ValueError):
        Settings(vllm_gpu_share_when_shared=1.0)
