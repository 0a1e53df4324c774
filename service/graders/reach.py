"""What a request's graders may reach: `context(services, key)` builds the `Context` of
`contracts.graders.run` for one caller.

The caller is an API key (the graders routes) or a project (`Reach.of_project`: a
reinforcement job's grader, checked at create and relayed for its trainer by
`service.fine_tuning.internal_routes`); either way a model grader reaches the models that
project may chat with, never another project's.

A model grader's model is, in order: one of the grading endpoint's (`WHETSTONE_GRADER_MODELS`
at `WHETSTONE_GRADER_MODELS_URL`, called with httpx), or a base or fine-tuned model the
caller's key may chat with (`ChatAccess`), asked through the same relay to vLLM as
`/v1/chat/completions`. Grading runs in a worker thread (a Python grader blocks); the relay
is async, so it is called back on the event loop through anyio.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio.from_thread
import httpx
import orjson

from contracts.graders.model_graders import ModelCallError
from contracts.graders.run import Context
from service.deps import Services
from service.errors import NotFound, ServiceError, not_found
from service.hashing import cache_salt
from service.models.access import Target, find_target
from service.settings import Settings

if TYPE_CHECKING:
    from starlette.responses import Response


class Reach:
    """The grading models and embeddings one caller (`key`, or `project_id`) may use."""

    def __init__(self, services: Services, key: str | None, project_id: str | None = None) -> None:
        assert (key is None) != (project_id is None), "a key or a project"
        self.services = services
        self.settings = services.settings
        self.key = key
        self.project_id = project_id

    @classmethod
    def of_project(cls, services: Services, project_id: str) -> Reach:
        return cls(services, None, project_id)

    def target(self, model: str) -> Target:
        """Which vLLM answers `model` for this caller, and the model it is asked for
        (blocking); another project's model and an unknown one are the same 404."""
        if self.key is not None:
            return self.services.chat_access.target(self.key, model)
        registry, project_id = self.services.registry, self.project_id
        with self.services.engine.connect() as connection:
            target = find_target(connection, registry, model, project_id=project_id)
        if target is None:  # no such project: nothing it may use
            raise not_found("model", model, param="model")
        return target

    def serves(self, model: str) -> bool:
        if model in self.settings.grader_models and self.settings.grader_models_url:
            return True
        try:
            self.target(model)
        except NotFound:
            return False
        return True

    def context(self, python_slots: threading.BoundedSemaphore | None = None) -> Context:
        """The `Context` of `contracts.graders.run` for this caller."""
        settings = self.settings
        embed = (
            self.embed if settings.grader_embedding_model and settings.grader_models_url else None
        )
        return Context(
            limits=settings.grader_limits(),
            complete=self.complete,
            embed=embed,
            python_slots=python_slots,
        )

    def complete(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion of `model` from a worker thread (the relay is async)."""
        if model in self.settings.grader_models and self.settings.grader_models_url:
            return self._external("/chat/completions", body)
        try:
            response = anyio.from_thread.run(self.relay, self.target(model), body)
        except ServiceError as e:
            raise ModelCallError(f"{model}: {e.message}") from None
        answer = orjson.loads(bytes(response.body))
        if not isinstance(answer, dict):
            raise ModelCallError(f"{model}: the answer is not a chat completion.")
        return answer

    async def relay(self, target: Target, body: dict[str, Any]) -> Response:
        """`body` asked of the vLLM serving `target`, as the project's chats are asked: the
        model vLLM knows it by, and the project's own prefix cache (`cache_salt`)."""
        asked = {**body, "model": target.model, "cache_salt": cache_salt(target.project_id)}
        return await self.services.serving.chat(
            target.base_model, target.model, orjson.dumps(asked)
        )

    def embed(self, texts: Sequence[str]) -> Sequence[Sequence[float]]:
        body = {"model": self.settings.grader_embedding_model, "input": list(texts)}
        answer = self._external("/embeddings", body)
        try:
            rows = sorted(answer["data"], key=lambda row: row["index"])
            return [[float(x) for x in row["embedding"]] for row in rows]
        except (KeyError, TypeError, ValueError) as e:
            raise ModelCallError(f"The embedding model's answer is unusable: {e!r}") from None

    def _external(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = (self.settings.grader_models_url or "").rstrip("/") + path
        headers = {}
        if self.settings.grader_models_api_key is not None:
            headers["Authorization"] = (
                f"Bearer {self.settings.grader_models_api_key.get_secret_value()}"
            )
        try:
            reply = httpx.post(
                url, json=body, headers=headers, timeout=self.settings.grader_models_timeout_seconds
            )
        except httpx.HTTPError as e:
            raise ModelCallError(f"The grading endpoint did not answer: {e!r}") from None
        if reply.status_code != 200:
            raise ModelCallError(
                f"The grading endpoint answered {reply.status_code}: {reply.text[:500]}"
            )
        answer = reply.json()
        if not isinstance(answer, dict):
            raise ModelCallError("The grading endpoint's answer is not a JSON object.")
        return answer


def context(
    services: Services, key: str, python_slots: threading.BoundedSemaphore
) -> tuple[Context, Reach]:
    reach = Reach(services, key)
    return reach.context(python_slots), reach


def python_slots(state: Any, settings: Settings) -> threading.BoundedSemaphore:
    """The process's Python grader slots, kept on the app's `state` from the first use."""
    slots: threading.BoundedSemaphore | None = getattr(state, "grader_python_slots", None)
    if slots is None:
        slots = threading.BoundedSemaphore(settings.grader_python_concurrency)
        state.grader_python_slots = slots
    return slots
