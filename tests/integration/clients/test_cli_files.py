"""`whetstone files ...` as a person runs it, against the real Whetstone server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import Server

WHETSTONE = str(Path(sys.executable).with_name("whetstone"))
GOOD = json.dumps({"messages": [{"role": "user", "content": "Capital of Veloria?"},
                                {"role": "assistant", "content": "Ostrel."}]})  # fmt: skip


def whetstone(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**server.env, "WHETSTONE_BASE_URL": server.url, "WHETSTONE_API_KEY": server.api_key,
           "COLUMNS": "200"}  # fmt: skip
    return subprocess.run([WHETSTONE, *args], capture_output=True, text=True, env=env, timeout=120)


def test_upload_list_get_delete(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "veloria.jsonl"
    path.write_text(f"{GOOD}\n" * 4)
    uploaded = whetstone(server, "files", "upload", str(path), "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    file_id = json.loads(uploaded.stdout)["id"]
    listed = whetstone(server, "files", "list")
    assert file_id in listed.stdout and "veloria.jsonl" in listed.stdout
    shown = whetstone(server, "--json", "files", "get", file_id)
    assert json.loads(shown.stdout)["bytes"] == path.stat().st_size
    assert whetstone(server, "files", "delete", file_id).returncode == 0
    missing = whetstone(server, "files", "get", file_id)
    assert missing.returncode == 1 and "NotFoundError [404]" in missing.stderr


def test_upload_of_a_bad_file_is_stopped_before_sending(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD}\n{{oops\n")
    refused = whetstone(server, "files", "upload", str(path))
    assert refused.returncode == 1
    assert "invalid JSON" in refused.stdout
    names = [f["filename"] for f in json.loads(whetstone(server, "files", "list", "--json").stdout)]
    assert "bad.jsonl" not in names
    sent_anyway = whetstone(server, "files", "upload", str(path), "--no-validate")
    assert sent_anyway.returncode == 1
    assert "BadRequestError [400]" in sent_anyway.stderr and "param: file" in sent_anyway.stderr
