"""Loading and unloading adapters in vLLM when models appear and disappear.

`AdapterControl.warm_start(model, base_model)` is called when a job succeeds: the vLLM of its
base model loads the adapter now, so the caller's first request is warm. Locally the
supervisor fetches the adapter into the resolver's cache and calls `/v1/load_lora_adapter`
with that folder. Where vLLM runs elsewhere (an address in `WHETSTONE_VLLM_URLS`), its files are
out of the service's reach, so a one-token completion for the model makes vLLM's resolver
fetch and load it. `unload(model, base_model)` is called after a model is deleted (its
pointer is gone first, so it cannot be resolved again) and calls `/v1/unload_lora_adapter`.

Both are best effort: a vLLM that is down has nothing loaded, and the API refuses deleted
or foreign models before any request reaches vLLM, so a failure is logged, never raised.
`warm_start_later` runs the warm start in a background thread; `service.models.lifecycle`
calls it once a job's final model is published and committed, and `unload` once a model is
deleted.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from contracts.names import base_model_of
from service.models.vllms import VllmRoutes
from serving.launcher import http_client
from serving.supervisor import ServingError

log = logging.getLogger(__name__)


class AdapterControl:
    """Warm start and unload of fine-tuned models in the vLLM of their base model."""

    def __init__(self, routes: VllmRoutes, timeout: float = 120.0) -> None:
        self.routes = routes
        self._timeout = httpx.Timeout(timeout, connect=2.0)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warm-start")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def warm_start(self, model: str, base_model: str) -> bool:
        """Load `model` into the vLLM of `base_model`; True when it is loaded now."""
        if not self.routes.serves(base_model):
            return False
        started = time.perf_counter()
        try:
            if self.routes.supervises(base_model):
                assert self.routes.supervisor is not None
                self.routes.supervisor.load_adapter(base_model, model)
            else:
                self._warm_remote(model, base_model)
        except (ServingError, httpx.HTTPError) as e:
            log.warning("warm start of %s failed (it loads on first request): %s", model, e)
            return False
        log.info("warm start of %s in %.0f ms", model, 1000 * (time.perf_counter() - started))
        return True

    def warm_start_later(self, model: str, base_model: str) -> Future[bool]:
        """`warm_start` in a background thread; the caller does not wait."""
        return self._pool.submit(self.warm_start, model, base_model)

    def unload(self, model: str, base_model: str) -> bool:
        """Unload `model` from the vLLM of `base_model`; True when it was loaded there."""
        if not self.routes.serves(base_model):
            return False
        try:
            if self.routes.supervises(base_model):
                assert self.routes.supervisor is not None
                return self.routes.supervisor.unload_adapter(base_model, model)
            with self._client(base_model) as http:
                answer = http.post("/v1/unload_lora_adapter", json={"lora_name": model})
        except (ServingError, httpx.HTTPError) as e:
            log.warning("unload of %s from %s failed: %s", model, base_model, e)
            return False
        return answer.status_code == 200

    def unload_deleted(self, model: str) -> bool:
        """`unload` for a deleted fine-tuned model: its base is the name's second segment
        (`ft:{base}:...`, docs/architecture.md "Model names")."""
        base_model = base_model_of(model)
        return base_model is not None and self.unload(model, base_model)

    def _client(self, base_model: str) -> httpx.Client:
        """A client for the configured vLLM of `base_model` (warm starts and unloads are
        rare: one connection each)."""
        headers = self.routes.auth_headers(base_model)
        return http_client(self.routes.address(base_model), timeout=self._timeout, headers=headers)

    def _warm_remote(self, model: str, base_model: str) -> None:
        body = {"model": model, "prompt": "hi", "max_tokens": 1}
        with self._client(base_model) as http:
            answer = http.post("/v1/completions", json=body)
        if answer.status_code != 200:
            raise ServingError(f"vLLM answered {answer.status_code}: {answer.text[:300]}")
