"""The training benchmark runs end to end at its smallest size and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_smallest_run_prints_the_three_rows_and_the_floor(tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--model-size", "tiny",
        "--examples", "12", "--eval-examples", "2", "--max-seq-len", "128",
        "--batch-size", "4", "--repeats", "1", "--sections", "lora", "--workdir", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = {}
    for line in done.stdout.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] in ("Whetstone", "TRL default", "TRL packing=True"):
            rows[cells[0]] = [float(c) for c in cells[1:]]
    assert set(rows) == {"Whetstone", "TRL default", "TRL packing=True"}, done.stdout
    for name, numbers in rows.items():
        assert all(n > 0 for n in numbers), (name, numbers)
    assert re.search(r"\| Whetstone / TRL default \| \**\d+\.\d+x", done.stdout)
    assert re.search(r"\| Whetstone / TRL packing=True \| \**\d+\.\d+x", done.stdout)
    # The floor is a lower bound of every run: only the matmuls any trainer of the work makes.
    floor = re.search(r"fp32 matmul floor of this work .*\*\*([\d.e+-]+) s\*\*", done.stdout)
    assert floor, done.stdout
    assert 0 < float(floor.group(1)) < min(numbers[1] for numbers in rows.values())
