"""The openai npm package (tests/node, pinned in its package-lock.json, installed by
`make node`) against a running server: files, an Upload in parts, a DPO job on its file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import require

from .conftest import Server

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def test_openai_npm_package_uploads_in_parts_and_creates_a_dpo_job(server: Server) -> None:
    node = shutil.which("node")
    require(node is not None, "node not installed (install Node.js 20+)")
    require((NODE_DIR / "node_modules" / "openai").is_dir(), "tests/node not installed: make node")
    assert node is not None
    env = {"PATH": "/usr/bin:/bin", "OPENAI_BASE_URL": server.base_url}
    result = subprocess.run(
        [node, str(NODE_DIR / "uploads.mjs")],
        env=env | {"OPENAI_API_KEY": server.key_a},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["chat_file"]["object"] == "file" and seen["chat_file"]["status"] == "processed"
    upload, completed = seen["upload"], seen["completed"]
    assert upload["status"] == "pending" and upload["expires_at"] == upload["created_at"] + 3600
    assert completed["id"] == upload["id"] and completed["status"] == "completed"
    assert completed["file"]["bytes"] == seen["bytes"] == upload["bytes"]
    created, retrieved = seen["created"], seen["retrieved"]
    assert created["training_file"] == completed["file"]["id"]
    assert retrieved["id"] == created["id"] and retrieved["status"] == "validating_files"
    assert retrieved["method"]["type"] == "dpo"
    assert retrieved["method"]["dpo"]["hyperparameters"]["beta"] == 0.1
    assert seen["refused"]["status"] == 400 and seen["refused"]["code"] == "invalid_upload_status"
    # what the npm package saw is what the server holds
    client = server.client()
    content = client.files.content(completed["file"]["id"]).read()
    assert len(content) == seen["bytes"] and content.count(b"\n") == 40
    assert client.fine_tuning.jobs.retrieve(created["id"]).method.type == "dpo"  # type: ignore[union-attr]
