"""Where the vLLM of each base model is: a configured address (`WHETSTONE_VLLM_URLS`: an
`http://host:port` URL, e.g. a Kubernetes ClusterIP Service per base model, or
`unix:/path/to.sock`) or the local supervisor's Unix socket (`whetstone up`). The chat proxy
(`service.chat.serving_client`), the warm start (`service.models.warm_start`), the evaluation and
the `whetstone_vllm_up` metric all ask `VllmRoutes`; `serving.launcher.http_client` speaks
to either kind of address."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from service.errors import Unavailable

if TYPE_CHECKING:
    from serving.supervisor import Supervisor


class VllmRoutes:
    """The vLLM of each base model: configured URLs first, then the local supervisor's."""

    def __init__(
        self,
        urls: Mapping[str, str],
        supervisor: Supervisor | None = None,
        api_key: str | None = None,
    ) -> None:
        self.urls = {name: url.rstrip("/") for name, url in urls.items()}
        self.supervisor = supervisor
        self.api_key = api_key
        """The API key of the vLLMs at `urls` (`WHETSTONE_VLLM_API_KEY`); the local
        supervisor's vLLMs have their own."""

    def auth_headers(self, base_model: str) -> dict[str, str]:
        """The `Authorization` header requests to the vLLM of `base_model` carry."""
        if self.supervises(base_model):
            assert self.supervisor is not None
            return self.supervisor.auth_headers
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def supervises(self, base_model: str) -> bool:
        """True when the local supervisor runs this base model's vLLM (and no URL overrides)."""
        sup = self.supervisor
        return base_model not in self.urls and sup is not None and base_model in sup.names

    def serves(self, base_model: str) -> bool:
        return base_model in self.urls or self.supervises(base_model)

    def address(self, base_model: str) -> str:
        """`http://host:port` or `unix:/path.sock` of the vLLM of `base_model`; 503 when it
        cannot take requests."""
        if base_model in self.urls:
            return self.urls[base_model]
        sup = self.supervisor
        if sup is None or base_model not in sup.names:
            raise Unavailable(
                f"The model {base_model} is registered but not served by this deployment "
                "(no vLLM configured for it: see WHETSTONE_VLLM_URLS).",
                param="model",
                code="model_not_served",
            )
        if not sup.is_ready(base_model):
            raise not_ready(base_model)
        return sup.address(base_model)


def not_ready(base_model: str) -> Unavailable:
    return Unavailable(
        f"The model server for {base_model} is not ready (starting or restarting). "
        "Please retry in a few seconds.",
        code="model_not_ready",
    )
