"""Greedy answers (temperature 0) of one served model to the examples' prompts, from the
vLLM of its base model, a few requests in flight at once (vLLM batches them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from service.evaluation.examples import Example
from serving.launcher import http_client

CHAT_PATH = "/v1/chat/completions"


class ModelServerDown(Exception):
    """The vLLM could not be reached (not started, restarting, gone)."""


class AnswerFailed(Exception):
    """vLLM refused the model as a whole (unknown model, adapter that does not load)."""


def answer_all(
    address: str,
    model: str,
    examples: Sequence[Example],
    *,
    max_tokens: int,
    concurrency: int,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    on_answer: Callable[[], None] = lambda: None,
    cache_salt: str | None = None,
) -> list[str]:
    """`model`'s answer to each example, in order. A prompt vLLM refuses on its own (too
    long for the context) answers ""; `on_answer` runs after each answer (lease renewal).
    `address`: the vLLM's `http://host:port` or `unix:/path.sock`; `cache_salt`: the job's
    project's (`service.models.access.cache_salt`), as its chat requests carry."""
    with http_client(address, timeout=timeout, headers=headers) as http:

        def one(example: Example) -> str:
            text = _answer(http, model, example.prompt, max_tokens, cache_salt)
            on_answer()
            return text

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval") as pool:
            return list(pool.map(one, examples))


def _answer(
    http: httpx.Client,
    model: str,
    prompt: list[dict[str, Any]],
    max_tokens: int,
    cache_salt: str | None = None,
) -> str:
    body: dict[str, Any] = {
        "model": model, "messages": prompt, "temperature": 0, "max_tokens": max_tokens,
    }  # fmt: skip
    if cache_salt is not None:
        body["cache_salt"] = cache_salt
    try:
        response = http.post(CHAT_PATH, json=body)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as e:
        raise ModelServerDown(f"the model server at {http.base_url} is unreachable ({e})") from e
    except httpx.TimeoutException as e:
        raise ModelServerDown(f"the model server at {http.base_url} did not answer ({e})") from e
    if response.status_code == 400:
        return ""  # this prompt alone (e.g. longer than the served context)
    if response.status_code >= 500 and response.status_code != 501:
        raise ModelServerDown(f"the model server answered {response.status_code}")
    if response.status_code != 200:
        raise AnswerFailed(f"the model server answered {response.status_code} for {model}: "
                           f"{response.text[:300]}")  # fmt: skip
    choices = response.json().get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content") or "")
