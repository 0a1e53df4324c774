"""Who may chat with which model: the chat route's one database question, remembered briefly.

Every chat completion asks: is this API key known, which model does the name it sends stand
for in the key's project (a model alias's target, else itself), and which base model serves
it? Asking the database costs a query and a trip to a worker thread,
about a third of the API's own CPU per proxied request. `ChatAccess` keeps each yes for `ttl`
seconds (`WHETSTONE_CHAT_ACCESS_CACHE_SECONDS`; 0 asks every time). A no is never kept: a new
key or model works at once. Deleting a model in this process forgets it at once; another API
replica may still route it for up to `ttl` seconds, to a vLLM that has unloaded it and whose
resolver no longer finds it (404).

Taking access away (a key revoked, a checkpoint permission deleted, a project archived) is
recorded in `service.keys.revocations`; a remembered yes counts only while the revocation stamp it
was given under is still the latest, so a revocation holds from the very next request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Container
from typing import NamedTuple

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from service.errors import not_found
from service.hashing import secret_hash
from service.keys.checks import known_key, refused_key
from service.keys.revocations import Revocations
from service.models import repository as models_repo


class Target(NamedTuple):
    """Who asks (the key's project), which vLLM answers (its base model), and the model it is
    asked for (the name itself, or the target of the project's alias of that name)."""

    project_id: str
    base_model: str
    model: str


def find_target(
    connection: Connection,
    base_models: Container[str],
    model: str,
    *,
    key_hash: str | None = None,
    project_id: str | None = None,
) -> Target | None:
    """Which vLLM answers `model` for the project of the key with `key_hash` (or for the
    project `project_id`), and the model it is asked for, in one query: a registered base
    model serves itself (never shadowed by an alias); a name of the project's aliases stands
    for its target; a fine-tuned or checkpoint model must be live and the project's own or
    granted to it. None when there is no such key (a key of an archived project is none) or
    project; another project's model, a deleted one and an unknown one are the same 404."""
    project, name, base_model = models_repo.model_named(
        connection, model, key_hash=key_hash, project_id=project_id
    )
    if project is None:
        return None
    if model in base_models:
        name = model
    if name in base_models:
        base_model = name
    if base_model is None:
        raise not_found("model", model, param="model")
    return Target(project, base_model, name)


class ChatAccess:
    """The base model serving a model for an API key, from the database or a recent answer."""

    def __init__(
        self,
        engine: Engine,
        base_models: Container[str],
        ttl: float,
        max_entries: int = 10_000,
        *,
        revocations: Revocations | None = None,
    ) -> None:
        self.engine = engine
        self.base_models = base_models
        self.ttl = ttl
        self.max_entries = max_entries
        self.revocations = revocations
        # -> (target, until, the revocation stamp when it was asked)
        self._answers: dict[tuple[str, str], tuple[Target, float, int]] = {}
        self._known: dict[str, tuple[float, int]] = {}  # key hash -> (until, stamp)
        self._lock = threading.Lock()

    def knows(self, key: str) -> bool:
        """Whether `key` is a project's or an admin key: what `service.body_limits` asks
        before it lets a body be read (blocking: call it from a worker thread). A yes is
        kept as the chat answers are; the routes still check the key themselves."""
        key_hash = secret_hash(key)
        stamp = self._stamp()
        seen = self._known.get(key_hash)
        if seen is not None and seen[0] >= time.monotonic() and seen[1] == stamp:
            return True
        with Session(self.engine) as session:
            if not known_key(session, key):
                return False
        if self.ttl > 0:
            with self._lock:
                if len(self._known) >= self.max_entries:
                    del self._known[next(iter(self._known))]
                self._known[key_hash] = (time.monotonic() + self.ttl, stamp)
        return True

    def recent(self, key: str, model: str) -> Target | None:
        """The target of a yes given less than `ttl` seconds ago and since the latest
        revocation, else None."""
        answer = self._answers.get((secret_hash(key), model))
        if answer is None or answer[1] < time.monotonic() or answer[2] != self._stamp():
            return None
        return answer[0]

    def revoked(self) -> None:
        """Access was taken away (committed): no remembered answer counts any more, here or
        in any process sharing the data folder."""
        if self.revocations is not None:
            self.revocations.record()
        with self._lock:
            self._answers.clear()
            self._known.clear()

    def _stamp(self) -> int:
        return self.revocations.stamp() if self.revocations is not None else 0

    def base_model(self, key: str, model: str) -> str:
        """`target(key, model).base_model`."""
        return self.target(key, model).base_model

    def target(self, key: str, model: str) -> Target:
        """Ask the database (blocking: call it from a worker thread): `find_target` for the
        key's project. 401 for an unknown key, 404 for a model the project may not use."""
        key_hash = secret_hash(key)
        stamp = self._stamp()  # before the question: a revocation during it voids the answer
        with self.engine.connect() as connection:
            target = find_target(connection, self.base_models, model, key_hash=key_hash)
        if target is None:
            with Session(self.engine) as session:
                raise refused_key(session, key)
        if self.ttl > 0:
            self._remember((key_hash, model), target, stamp)
        return target

    def forget_model(self, model: str) -> None:
        """Drop every answer about `model` (it was deleted), also those through an alias."""
        with self._lock:
            gone = [e for e, a in self._answers.items() if model in (e[1], a[0].model)]
            for entry in gone:
                del self._answers[entry]

    def _remember(self, entry: tuple[str, str], target: Target, stamp: int) -> None:
        with self._lock:
            # A renewed answer moves to the end, so the first one is always the oldest,
            # and only a new entry can push the oldest out.
            if self._answers.pop(entry, None) is None and len(self._answers) >= self.max_entries:
                del self._answers[next(iter(self._answers))]
            self._answers[entry] = (target, time.monotonic() + self.ttl, stamp)
