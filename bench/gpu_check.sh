#!/usr/bin/env bash
# Run bench/gpu_check.py on a CUDA machine, installing bitsandbytes and vLLM first if they
# are missing and a folder of wheels is given (no internet needed: pip --no-index).
#
#   bench/gpu_check.sh [WHEEL_DIR] [gpu_check.py options...]
#
# WHEEL_DIR holds bitsandbytes and vllm wheels and every dependency the machine lacks
# (`pip download bitsandbytes vllm -d WHEEL_DIR` on a machine with internet and the same
# Python and torch). vLLM pins one torch version: if the folder does not carry it and the
# machine has another, pip refuses and the check runs without vLLM (the table says so),
# rather than replacing the machine's torch. Without WHEEL_DIR nothing is installed.
# PYTHON picks the interpreter (default python3). Exit codes: those of gpu_check.py
# (0 passed, 1 a part failed, 77 skipped: no CUDA).
set -uo pipefail

PY="${PYTHON:-python3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
WHEELS=""
if [ $# -gt 0 ] && [ -d "$1" ]; then
    WHEELS="$1"
    shift
fi

have() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }

for pkg in bitsandbytes vllm; do
    if have "$pkg"; then
        continue
    fi
    if [ -n "$WHEELS" ]; then
        echo "gpu_check.sh: installing $pkg from $WHEELS"
        if ! "$PY" -m pip install --no-index --find-links "$WHEELS" "$pkg"; then
            echo "gpu_check.sh: could not install $pkg from $WHEELS"
        fi
    fi
    if ! have "$pkg"; then
        case "$pkg" in
            bitsandbytes) echo "gpu_check.sh: no bitsandbytes: training bf16 LoRA instead of QLoRA" ;;
            vllm) echo "gpu_check.sh: no vllm: the serving part is skipped" ;;
        esac
    fi
done

exec "$PY" "$HERE/gpu_check.py" "$@"
