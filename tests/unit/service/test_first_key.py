"""`whetstone up`'s first key: shown once on the terminal, never in a log line."""

from __future__ import annotations

import io
import logging
import os
import pty
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.up import FIRST_KEY_FILE, show_first_key

KEY = "sk-whet-first0123456789abcdefghijklmnopqrstuvwxyzABCD"


@pytest.fixture()
def log_file(tmp_path: Path) -> Iterator[Path]:
    """Every log line of the process, as `whetstone up 2>up.log` or a log collector sees it."""
    path = tmp_path / "up.log"
    handler = logging.FileHandler(path)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield path
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()


def test_on_a_terminal_the_key_is_shown_there_and_not_logged(
    tmp_path: Path, log_file: Path
) -> None:
    controller, terminal_fd = pty.openpty()
    with os.fdopen(terminal_fd, "w") as terminal:
        show_first_key(KEY, tmp_path, terminal)
    shown = os.read(controller, 4096).decode()
    os.close(controller)
    assert KEY in shown and "shown once" in shown
    assert KEY not in log_file.read_text()
    assert not (tmp_path / FIRST_KEY_FILE).exists()


def test_without_a_terminal_the_key_goes_to_a_private_file_not_the_log(
    tmp_path: Path, log_file: Path
) -> None:
    piped = io.StringIO()  # stderr sent to a file or a pipe
    show_first_key(KEY, tmp_path, piped)
    logged = log_file.read_text()
    assert KEY not in logged and KEY not in piped.getvalue()
    path = tmp_path / FIRST_KEY_FILE
    assert str(path) in logged
    assert path.read_text().strip() == KEY
    assert path.stat().st_mode & 0o777 == 0o600
