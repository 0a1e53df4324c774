"""`whetstone keys create --project NAME` makes a project and a key that the API accepts."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.app import create_app
from service.cli import register
from service.db.tables import ApiKey
from service.settings import Settings


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_keys_create_prints_a_key_the_api_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHETSTONE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    first = runner.invoke(_cli(), ["keys", "create", "--project", "alpha"])
    second = runner.invoke(_cli(), ["keys", "create", "--project", "alpha"])
    assert first.exit_code == 0, first.output
    key1, key2 = first.stdout.strip(), second.stdout.strip()
    assert key1.startswith("sk-whet-") and key1 != key2

    with TestClient(create_app(Settings())) as http:
        for key in (key1, key2):
            r = http.get("/v1/files", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200
        services = http.app.state.services  # type: ignore[attr-defined]
        with services.sessions() as session:
            stored = [row.key_hash for row in session.query(ApiKey)]
    assert len(stored) == 2
    assert key1 not in stored and all(len(h) == 64 for h in stored)


# --- which data folder a key goes to (service/running.py, written by `whetstone up`) ---


def _pretend_up(data_dir: Path, pid: int | None = None) -> None:
    """A server.json as `whetstone up` writes it, for a server with this pid (default: us)."""
    from service.running import write_server_file

    data_dir.mkdir(parents=True, exist_ok=True)
    path = write_server_file(Settings(data_dir=data_dir), "http://127.0.0.1:8123/v1")
    if pid is not None:
        path.write_text(path.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {pid}'))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_keys_create_says_where_the_key_went_and_warns_of_another_running_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHETSTONE_DATABASE_URL", raising=False)
    _pretend_up(tmp_path / ".whetstone")  # `whetstone up` running from ./.whetstone
    other = tmp_path / "elsewhere"
    result = CliRunner().invoke(
        _cli(), ["keys", "create", "--project", "p", "--data-dir", str(other)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("sk-whet-")
    err = " ".join(result.stderr.split())
    assert f"database sqlite:///{other.resolve()}/whetstone.db" in err
    assert f"(data folder {other.resolve()})" in err
    assert "warning:" in err and f"data folder {(tmp_path / '.whetstone').resolve()}" in err
    assert "will not accept this key" in err and "http://127.0.0.1:8123/v1" in err


def test_keys_create_for_the_running_server_s_folder_says_it_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHETSTONE_DATABASE_URL", raising=False)
    monkeypatch.delenv("WHETSTONE_DATA_DIR", raising=False)
    _pretend_up(tmp_path / ".whetstone")
    result = CliRunner().invoke(_cli(), ["keys", "create", "--project", "p"])
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    assert "warning" not in err
    assert f"pid {os.getpid()}" in err and "uses this database: the key works now" in err


def test_a_stopped_server_s_file_does_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHETSTONE_DATABASE_URL", raising=False)
    _pretend_up(tmp_path / ".whetstone", pid=_dead_pid())  # killed: its file was left behind
    result = CliRunner().invoke(
        _cli(), ["keys", "create", "--project", "p", "--data-dir", str(tmp_path / "b")]
    )
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    assert "warning" not in err and "note: no running `whetstone up` found" in err


def test_server_file_hides_the_password_and_is_removed_only_by_its_writer(tmp_path: Path) -> None:
    from service.running import (
        read_server_file,
        remove_server_file,
        server_file,
        write_server_file,
    )

    settings = Settings(
        data_dir=tmp_path, database_url="postgresql+psycopg://u:secret@db:5432/whet"
    )
    _pretend_up(tmp_path, pid=_dead_pid())
    path = server_file(tmp_path)
    remove_server_file(settings)
    assert path.exists()  # another process's file: left alone
    write_server_file(settings, "http://h:1/v1")
    assert "secret" not in path.read_text()
    running = read_server_file(path)
    assert running is not None and running.database == "postgresql+psycopg://u:***@db:5432/whet"
    remove_server_file(settings)
    assert not path.exists()


def test_server_commands_without_the_server_extra_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("fastapi", "sqlalchemy") else real(name, *a),
    )
    for args in (["up"], ["keys", "create", "--project", "p"], ["models", "pull", "--all"]):
        result = CliRunner().invoke(_cli(), args)
        assert result.exit_code == 1, (args, result.output)
        assert "pip install 'whetstone[server]'" in result.stderr
        assert "no fastapi, sqlalchemy" in result.stderr


def test_help_defaults_are_the_settings_defaults() -> None:
    result = CliRunner().invoke(_cli(), ["up", "--help"], env={"COLUMNS": "200"})
    shown = result.stdout
    fields = Settings.model_fields
    assert f"[default: ({fields['host'].default})]" in shown
    assert f"[default: ({fields['port'].default})]" in shown
    assert f"[default: ({fields['trainer_slots'].default})]" in shown
    assert f"[default: (./{Path(str(fields['data_dir'].default))})]" in shown
