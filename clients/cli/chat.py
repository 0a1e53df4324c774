"""`whetstone chat MODEL [PROMPT]`: stream one answer, or talk interactively."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from clients.sdk import Whetstone

from .state import JsonFlag, State, state

EXIT_WORDS = {"exit", "quit", "/exit", "/quit"}


def _stream(
    st: State, client: Whetstone, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> str:
    """Stream one answer to the terminal as it arrives; return it whole."""
    parts: list[str] = []
    stream = client.chat.completions.create(model=model, messages=messages, stream=True, **params)
    with stream:
        for chunk in stream:
            for choice in chunk.choices:
                piece = choice.delta.content or ""
                if not piece:
                    continue
                parts.append(piece)
                if st.json:
                    line = json.dumps(chunk.model_dump(mode="json"))
                    st.out.print(line, soft_wrap=True, highlight=False)
                else:
                    st.out.print(piece, end="", soft_wrap=True, highlight=False, markup=False)
    if not st.json:
        st.out.print()
    return "".join(parts)


def _interactive(
    st: State, client: Whetstone, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    st.err.print(f"[dim]chatting with {escape(model)}; an empty line, 'exit' or Ctrl-D ends[/dim]")
    while True:
        try:
            prompt = st.out.input("[bold green]you>[/bold green] ")
        except (EOFError, KeyboardInterrupt):
            st.out.print()
            return
        if not prompt.strip() or prompt.strip().lower() in EXIT_WORDS:
            return
        messages.append({"role": "user", "content": prompt})
        st.out.print("[bold cyan]model>[/bold cyan] ", end="")
        messages.append(
            {"role": "assistant", "content": _stream(st, client, model, messages, params)}
        )


def chat(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name, e.g. ft:whetstone-tiny:...")],
    prompt: Annotated[str | None, typer.Argument(help="The prompt; none: interactive.")] = None,
    system: Annotated[str | None, typer.Option(help="System message.", show_default="none")] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(help="Longest answer, in tokens.", show_default="the server's limit"),
    ] = None,
    temperature: Annotated[
        float,
        typer.Option(
            help="Sampling temperature. 0: greedy, the most likely answer, the same every time "
            "(a tuned model's learned answer word for word); higher: more varied."
        ),
    ] = 0.0,
    json_out: JsonFlag = False,
) -> None:
    """Chat with a model: stream the answer to PROMPT, or talk when no prompt is given.

    Greedy by default (--temperature 0); --temperature 0.7 or so for varied answers.
    """
    st = state(ctx, json_out)
    client = st.client()
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    params = {"max_tokens": max_tokens, "temperature": temperature}
    if prompt is None:
        _interactive(st, client, model, messages, params)
        return
    messages.append({"role": "user", "content": prompt})
    _stream(st, client, model, messages, params)
