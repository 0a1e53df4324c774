"""What a new user meets first, run in-process with typer's CliRunner against the in-process
stand-in: `files download`, piped output, chat's default temperature, defaults in --help."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from clients.cli import state
from clients.cli.main import app
from clients.sdk import Whetstone

from .standin import Reply, Seen, StandIn

FILE = {"id": "file-abc", "object": "file", "bytes": 1234, "created_at": 1700000000,
        "filename": "step_metrics.csv", "purpose": "fine-tune-results",
        "status": "processed"}  # fmt: skip
CSV = b"step,train_loss\n1,2.5\n2,1.25\n" * 1000
BOX = set("│┃─━┏┓┗┛╭╮╰╯┡┩┼")


@pytest.fixture(autouse=True)
def _cli_reaches_the_standin(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's client, built from the environment as always, sends to the stand-in."""

    def client(**options: Any) -> Whetstone:
        return Whetstone(**options, http_client=standin.http())

    monkeypatch.setattr(state, "Whetstone", client)


def invoke(standin: StandIn, *args: str) -> Result:
    env = {"WHETSTONE_BASE_URL": standin.url, "WHETSTONE_API_KEY": "wh-k", "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


def serve_file(standin: StandIn, filename: str = "step_metrics.csv") -> None:
    standin.script("GET", "/files/file-abc", Reply(200, {**FILE, "filename": filename}))
    standin.script("GET", "/files/file-abc/content", Reply(200, CSV))


# --- files download ---


def test_download_writes_the_file_under_its_own_name(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_file(standin)
    monkeypatch.chdir(tmp_path)
    result = invoke(standin, "files", "download", "file-abc")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "step_metrics.csv").read_bytes() == CSV
    assert "step_metrics.csv" in result.stdout and f"{len(CSV):,} bytes" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["step_metrics.csv"]  # no partial file left


def test_download_refuses_to_overwrite_without_force(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_file(standin)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "step_metrics.csv").write_text("mine")
    refused = invoke(standin, "files", "download", "file-abc")
    assert refused.exit_code == 1
    assert "exists" in refused.stderr and "--force" in refused.stderr
    assert (tmp_path / "step_metrics.csv").read_text() == "mine"
    assert not any(s.path.endswith("/content") for s in standin.requests)  # nothing fetched
    forced = invoke(standin, "files", "download", "file-abc", "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "step_metrics.csv").read_bytes() == CSV


def test_download_to_a_path_or_a_folder_with_json(standin: StandIn, tmp_path: Path) -> None:
    serve_file(standin)
    target = tmp_path / "metrics.csv"
    to_path = invoke(standin, "files", "download", "file-abc", "-o", str(target), "--json")
    assert to_path.exit_code == 0, to_path.output
    assert json.loads(to_path.stdout) == {"id": "file-abc", "path": str(target), "bytes": len(CSV)}
    assert target.read_bytes() == CSV
    folder = tmp_path / "out"
    folder.mkdir()
    into = invoke(standin, "files", "download", "file-abc", "--output", str(folder))
    assert into.exit_code == 0, into.output
    assert (folder / "step_metrics.csv").read_bytes() == CSV


def test_download_keeps_only_the_file_name_of_the_server_s_filename(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_file(standin, filename="../../etc/evil.csv")
    monkeypatch.chdir(tmp_path)
    result = invoke(standin, "files", "download", "file-abc")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "evil.csv").read_bytes() == CSV


def test_a_failed_download_leaves_nothing(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.script("GET", "/files/file-abc", Reply(200, FILE))
    error = {"message": "No such file", "type": "invalid_request_error", "param": None,
             "code": None}  # fmt: skip
    standin.script("GET", "/files/file-abc/content", Reply(404, {"error": error}))
    monkeypatch.chdir(tmp_path)
    result = invoke(standin, "files", "download", "file-abc")
    assert result.exit_code != 0
    assert list(tmp_path.iterdir()) == []


# --- piped output: plain aligned text, no boxes ---


def test_piped_lists_are_plain_aligned_text_within_80_columns(standin: StandIn) -> None:
    other = {**FILE, "id": "file-" + "x" * 24, "filename": "veloria.jsonl", "bytes": 5,
             "purpose": "fine-tune"}  # fmt: skip
    first = {**FILE, "id": "file-" + "a" * 24, "filename": "train.jsonl", "purpose": "fine-tune"}
    page = {"object": "list", "data": [first, other], "has_more": False}
    standin.script("GET", "/files", Reply(200, page))
    result = invoke(standin, "files", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert not BOX & set(result.stdout)
    assert lines[0].split() == ["ID", "FILENAME", "PURPOSE", "BYTES", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == [first["id"], other["id"]]
    column = lines[0].index("FILENAME")
    assert lines[1][column:].startswith("train.jsonl") and lines[2][column:].startswith("veloria")
    assert max(len(line) for line in lines) <= 80


def test_piped_get_and_validation_report_are_plain(standin: StandIn, tmp_path: Path) -> None:
    standin.script("GET", "/files/file-abc", Reply(200, FILE))
    shown = invoke(standin, "files", "get", "file-abc")
    assert shown.exit_code == 0, shown.output
    assert not BOX & set(shown.stdout)
    assert shown.stdout.splitlines()[0].split() == ["id", "file-abc"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "wizard", "content": "x"}]}\n{oops\n')
    report = invoke(standin, "files", "validate", str(bad))
    assert report.exit_code == 1
    assert not BOX & set(report.stdout)
    lines = report.stdout.splitlines()
    assert lines[0] == f"{bad}: 2 problem(s)"
    assert lines[1].split() == ["LINE", "PROBLEM"]
    assert [line.split()[0] for line in lines[2:]] == ["1", "2"]


def test_every_table_has_json(standin: StandIn) -> None:
    """Each command that prints a table takes --json (its own or the root's)."""
    missing = [
        path
        for path in COMMANDS
        if path and not any("--json" in p.opts for p in _command(path).params)
    ]
    assert missing == []


# --- chat: greedy unless told ---


def _answer(_: Seen) -> Reply:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "Quillhaven."},
                          "finish_reason": None}]}  # fmt: skip
    return Reply(200, chunks=[f"data: {json.dumps(chunk)}\n\n".encode(), b"data: [DONE]\n\n"])


def test_chat_is_greedy_by_default_and_temperature_overrides(standin: StandIn) -> None:
    standin.route("POST", "/chat/completions", _answer)
    default = invoke(standin, "chat", "ft:m:p::abc", "Capital?")
    assert default.exit_code == 0, default.output
    assert default.stdout.strip() == "Quillhaven."
    warmer = invoke(standin, "chat", "ft:m:p::abc", "Capital?", "--temperature", "0.7")
    assert warmer.exit_code == 0, warmer.output
    assert [r.json()["temperature"] for r in standin.requests] == [0, 0.7]
    shown = invoke(standin, "chat", "--help").stdout
    assert "greedy" in shown.lower() and "[default: 0.0]" in shown


# --- --help shows every option's default ---


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's path (a group's `commands`; typer's own click is vendored)."""
    if hasattr(command, "commands"):
        return [p for n, c in command.commands.items() for p in _leaves(c, (*path, n))]
    return [path]


def _command(path: str) -> Any:
    command = typer.main.get_command(app)
    for name in path.split():
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def _option_block(lines: list[str], long: str) -> list[str]:
    """The option's row of the rich help panel and its wrapped continuation lines."""

    def starts(line: str) -> bool:
        inner = line.strip().strip("│").strip()
        return line.strip().startswith("│") and inner.startswith(("-", "*"))

    at = next(i for i, line in enumerate(lines) if starts(line) and f" {long} " in line)
    block = [lines[at]]
    for line in lines[at + 1 :]:
        inner = line.strip().strip("│").strip()
        if not line.strip().startswith("│") or inner.startswith(("-", "*")):
            break
        block.append(line)
    return block


COMMANDS = ["", *(" ".join(p) for p in _leaves(typer.main.get_command(app)))]
TYPERS_OWN = {"help", "install_completion", "show_completion"}


@pytest.mark.parametrize("path", COMMANDS)
def test_help_shows_a_default_for_every_option(standin: StandIn, path: str) -> None:
    command = _command(path)
    result = invoke(standin, *path.split(), "--help")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    options = [
        p for p in command.params
        if p.param_type_name == "option" and p.name not in TYPERS_OWN and not p.required
    ]  # fmt: skip
    for param in options:
        long = next(o for o in param.opts if o.startswith("--"))
        block = _option_block(lines, long)
        assert any("[default:" in line for line in block), f"{path} {long}: {block}"
