"""What every command shares: connection options, the output mode, the consoles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console

from clients.sdk import Whetstone


@dataclass
class State:
    """Built once by the root callback from `--base-url`, `--api-key` and `--json`."""

    base_url: str | None = None
    api_key: str | None = None
    json: bool = False
    out: Console = field(default_factory=lambda: Console(emoji=False, highlight=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, emoji=False, highlight=False))
    _client: Whetstone | None = None

    def client(self) -> Whetstone:
        if self._client is None:
            self._client = Whetstone(base_url=self.base_url, api_key=self.api_key)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def state(ctx: typer.Context, json_flag: bool = False) -> State:
    """The shared state; a command's own `--json` switches JSON output on too."""
    root = ctx.find_root().obj
    if not isinstance(root, State):
        root = State()
        ctx.find_root().obj = root
    if json_flag:
        root.json = True
    return root


JSON_HELP = "Print JSON (for scripts) instead of tables."


def flag(*names: str, help: str) -> Any:
    """An on/off option that is off unless given: says so in --help, and shows no `<bool>`
    value (a flag takes none)."""
    return typer.Option(*names, help=help, show_default="off", metavar="")


JsonFlag = Annotated[bool, flag("--json", help=JSON_HELP)]
