"""The control plane never imports torch, transformers or vLLM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "vllm", "peft", "bitsandbytes", "accelerate")


def test_service_app_imports_no_ml_stack(tmp_path: Path) -> None:
    code = f"""
import sys
import service.app, service.cli, service.openapi
from service.settings import Settings
from fastapi.testclient import TestClient
app = service.app.create_app(Settings(data_dir={str(tmp_path)!r}))
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(",".join(heavy))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"service imported: {out.stdout.strip()}"
