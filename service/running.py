"""`{data_dir}/server.json`: which `whetstone up` is running from a data folder.

`whetstone up` writes it once the API answers (pid, base URL, data folder, database URL with
any password hidden) and removes it when it stops; `whetstone keys create` reads it to warn
when the key goes to a database that the running server does not use. A file whose process
is gone (a server killed with SIGKILL) counts as no server. Only servers whose data folder
can be seen from here are found: this folder's, and the default `./.whetstone`; a server
elsewhere (another folder, another machine, Kubernetes) is not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from service.settings import Settings

SERVER_FILE = "server.json"
DEFAULT_DATA_DIR = Path(".whetstone")


@dataclass(frozen=True)
class RunningServer:
    pid: int
    base_url: str
    data_dir: Path
    database: str  # the database URL, password hidden


def describe_database(url: str) -> str:
    """The database URL with any password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def server_file(data_dir: Path) -> Path:
    return data_dir / SERVER_FILE


def write_server_file(settings: Settings, base_url: str) -> Path:
    """Say that this process serves `settings`' data folder (atomically: write, rename)."""
    path = server_file(settings.resolved_data_dir)
    info = {
        "pid": os.getpid(),
        "base_url": base_url,
        "data_dir": str(settings.resolved_data_dir),
        "database_url": describe_database(settings.resolved_database_url),
    }
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(info, indent=2) + "\n")
    partial.replace(path)
    return path


def remove_server_file(settings: Settings) -> None:
    """Remove the data folder's server.json if this process wrote it."""
    path = server_file(settings.resolved_data_dir)
    running = read_server_file(path, check_alive=False)
    if running is not None and running.pid == os.getpid():
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def read_server_file(path: Path, *, check_alive: bool = True) -> RunningServer | None:
    """The server that `path` describes; None when there is none, or its process is gone."""
    try:
        info = json.loads(path.read_text())
        running = RunningServer(
            pid=int(info["pid"]),
            base_url=str(info["base_url"]),
            data_dir=Path(info["data_dir"]),
            database=str(info["database_url"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive and not _alive(running.pid):
        return None
    return running


def visible_servers(settings: Settings, cwd: Path | None = None) -> list[RunningServer]:
    """Running servers of this data folder and of the default `./.whetstone`."""
    here = (cwd or Path.cwd()) / DEFAULT_DATA_DIR
    folders = [settings.resolved_data_dir, here.resolve()]
    found: list[RunningServer] = []
    for folder in dict.fromkeys(folders):
        running = read_server_file(server_file(folder))
        if running is not None and running not in found:
            found.append(running)
    return found


def key_database_report(settings: Settings, cwd: Path | None = None) -> list[tuple[str, str]]:
    """(kind, message) lines for someone who just wrote a key to `settings`' database:
    "ok" for a running server that uses it, "warning" for one that does not, "note" when no
    running server can be seen."""
    database = describe_database(settings.resolved_database_url)
    servers = visible_servers(settings, cwd)
    if not servers:
        here = (cwd or Path.cwd()) / DEFAULT_DATA_DIR
        looked = str(settings.resolved_data_dir)
        if here.resolve() != settings.resolved_data_dir:
            looked += f" or ./{DEFAULT_DATA_DIR}"
        return [(
            "note",
            f"no running `whetstone up` found in {looked}; a server using this database "
            "accepts the key",
        )]  # fmt: skip
    lines = []
    for running in servers:
        where = f"the running Whetstone server (pid {running.pid}, {running.base_url})"
        if running.database == database:
            lines.append(("ok", f"{where} uses this database: the key works now"))
            continue
        also = "" if running.database.startswith("sqlite") else " and its WHETSTONE_DATABASE_URL"
        lines.append((
            "warning",
            f"{where} uses another database: data folder {running.data_dir}, database "
            f"{running.database}. It will not accept this key. Create one there instead: "
            f"whetstone keys create --data-dir {running.data_dir}{also} --project ...",
        ))  # fmt: skip
    return lines
