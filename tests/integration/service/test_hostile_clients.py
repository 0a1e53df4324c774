"""Hostile clients against every route the API registers (read from the app, not a list kept
by hand): no key, a made-up key and another project's key get nothing of project alpha's and
change nothing of it; malformed and oversized bodies are 4xx in OpenAI's shape; webhooks
cannot be pointed inside. No answer is a 5xx. (vLLM's routes: tests/integration/serving/
test_vllm_reachability.py; memory under large bodies: tests/e2e/test_body_limits.py.)"""

# ruff: noqa: F811  (test_chat's fixtures are imported, then named as arguments)

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.integration.service.test_chat import (  # noqa: F401  (its fixtures)
    BASE,
    StandIn,
    api,
    file_and_job,
    settings,
    tuned_model,
    vllm,
)
from tests.unit.service.conftest import ApiClient

PUBLIC = {"/", "/healthz", "/metrics"}  # no tenant data: open by design (metrics on loopback)
MADE_UP_KEY = "sk-whet-" + "x" * 40
TRAINING_LINE = {
    "messages": [
        {"role": "user", "content": "the secret word?"},
        {"role": "assistant", "content": "alpha-secret-7731"},
    ]
}


@dataclass
class Alpha:
    """What project alpha owns; nothing of it may reach another caller."""

    file_id: str
    job_id: str
    model: str
    upload_id: str
    webhook_id: str
    alias: str
    content: bytes

    def secrets(self) -> list[str]:
        return [self.file_id, self.job_id, self.model, self.upload_id, self.webhook_id,
                self.alias, "alpha-secret-7731"]  # fmt: skip

    def path_values(self) -> dict[str, str]:
        return {
            "file_id": self.file_id,
            "fine_tuning_job_id": self.job_id,
            "model": self.model,
            "name": self.alias,
            "upload_id": self.upload_id,
            "webhook_endpoint_id": self.webhook_id,
            "fine_tuned_model_checkpoint": f"{self.model}:ckpt-step-1",
            "permission_id": "cp_000000000000000000000000",
            "project_id": "proj_alpha",
            "api_key_id": "key_alpha",
            "job_id": self.job_id,
        }


def _ok(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"


def _make_alpha(api: ApiClient) -> Alpha:
    model = tuned_model(api)
    content = (json.dumps(TRAINING_LINE) + "\n").encode() * 10
    file, job = file_and_job(api, content)
    upload = api.http.post(
        "/v1/uploads",
        json={"filename": "u.jsonl", "purpose": "fine-tune", "bytes": 100,
              "mime_type": "text/jsonl"},
        headers=api.auth(),
    ).json()  # fmt: skip
    hook = api.http.post(
        "/v1/webhook_endpoints", json={"url": "https://93.184.216.34/hook"}, headers=api.auth()
    )
    assert hook.status_code == 200, hook.text
    alias = api.http.post(
        "/v1/models/aliases", json={"name": "alpha-prod", "model": model}, headers=api.auth()
    )
    assert alias.status_code == 200, alias.text
    return Alpha(file["id"], job["id"], model, upload["id"], hook.json()["id"], "alpha-prod",
                 content)  # fmt: skip


def _routes(api: ApiClient) -> list[tuple[str, str]]:
    routes = [
        (method, route.path)
        for route in api.http.app.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute)
        for method in sorted(route.methods)
    ]
    assert len(routes) > 40 and ("POST", "/v1/chat/completions") in routes
    return routes


def _body(alpha: Alpha) -> dict[str, Any]:
    """A body that names alpha's things in every field a route reads them from."""
    return {
        "model": alpha.model,
        "training_file": alpha.file_id,
        "messages": [{"role": "user", "content": "hi"}],
        "name": "beta-alias",
        "part_ids": [],
        "project_ids": ["proj_beta"],
        "url": "https://93.184.216.34/other",
        "purpose": "fine-tune",
        "filename": "x.jsonl",
        "bytes": 10,
        "mime_type": "text/jsonl",
    }


def _call(api: ApiClient, method: str, path: str, alpha: Alpha, key: str | None) -> httpx.Response:
    values = alpha.path_values()
    url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    body = json.dumps(_body(alpha)).encode() if method == "POST" else None
    return api.http.request(method, url, content=body, headers=headers)


def _alpha_is_untouched(api: ApiClient, alpha: Alpha) -> None:
    content = api.http.get(f"/v1/files/{alpha.file_id}/content", headers=api.auth())
    assert content.status_code == 200 and content.content == alpha.content
    job = api.http.get(f"/v1/fine_tuning/jobs/{alpha.job_id}", headers=api.auth()).json()
    assert job["status"] == "validating_files"
    assert api.http.get(f"/v1/models/{alpha.model}", headers=api.auth()).status_code == 200
    alias = api.http.get(f"/v1/models/aliases/{alpha.alias}", headers=api.auth()).json()
    assert alias["model"] == alpha.model
    hook = api.http.get(f"/v1/webhook_endpoints/{alpha.webhook_id}", headers=api.auth())
    assert hook.status_code == 200
    parts = api.http.post(
        f"/v1/uploads/{alpha.upload_id}/complete", json={"part_ids": []}, headers=api.auth()
    )
    assert parts.json()["error"]["code"] != "upload_not_found", parts.text  # still alpha's


@pytest.mark.parametrize("who", ["no key", "a made-up key"])
def test_without_a_valid_key_every_tenant_route_is_401_and_changes_nothing(
    api: ApiClient, vllm: StandIn, who: str
) -> None:
    alpha = _make_alpha(api)
    key = None if who == "no key" else MADE_UP_KEY
    for method, path in _routes(api):
        response = _call(api, method, path, alpha, key)
        _ok(response, f"{method} {path}")
        if path in PUBLIC:
            continue
        assert response.status_code in (401, 403), f"{method} {path}: {response.status_code}"
        assert response.json()["error"]["type"] in {"invalid_request_error", "authentication_error",
                                                     "permission_error"}  # fmt: skip
        for secret in alpha.secrets():
            assert secret not in response.text, f"{method} {path} shows {secret}"
    assert not [s for s in vllm.seen if b"alpha" in s.body or alpha.model.encode() in s.body]
    _alpha_is_untouched(api, alpha)


def test_another_projects_key_gets_nothing_of_alphas_and_changes_nothing(
    api: ApiClient, vllm: StandIn
) -> None:
    alpha = _make_alpha(api)
    for method, path in _routes(api):
        response = _call(api, method, path, alpha, api.key_b)
        what = f"{method} {path}: {response.status_code}"
        _ok(response, what)
        if "{" in path or path == "/v1/chat/completions":  # names one of alpha's things
            assert response.status_code >= 400, what
        for secret in alpha.secrets():
            assert secret not in response.text or response.status_code >= 400, what
        if response.status_code >= 400:
            assert set(response.json()["error"]) >= {"message", "type", "param", "code"}, what
    assert vllm.seen == []  # no chat of alpha's model reached vLLM for beta
    _alpha_is_untouched(api, alpha)


MALFORMED = [b"{", b"[]", b'"text"', b"null", b'{"model": 7, "messages": "no"}', b"\xff\xfe"]


def test_malformed_bodies_are_4xx_in_openais_shape_on_every_route(
    api: ApiClient, vllm: StandIn
) -> None:
    alpha = _make_alpha(api)
    values = alpha.path_values()
    paths = api.http.app.openapi()["paths"]  # type: ignore[attr-defined]
    tried: list[str] = []
    for method, path in _routes(api):
        operation = paths.get(path, {}).get(method.lower(), {})
        if "requestBody" not in operation or path.startswith("/internal/"):
            continue  # a route that reads no body (cancel, pause) ignores one, as OpenAI's do
        url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
        tried.append(path)
        for body in MALFORMED:
            response = api.http.post(
                url, content=body, headers={**api.auth(), "content-type": "application/json"}
            )
            what = f"POST {path} {body!r}: {response.status_code} {response.text[:200]}"
            assert 400 <= response.status_code < 500, what
            assert set(response.json()["error"]) >= {"message", "type", "param", "code"}, what
    assert len(tried) >= 12 and "/v1/chat/completions" in tried and "/v1/files" in tried
    _alpha_is_untouched(api, alpha)


def test_oversized_json_bodies_are_413_on_every_json_route(api: ApiClient, vllm: StandIn) -> None:
    """Each JSON route's cap (`WHETSTONE_MAX_JSON_BODY_BYTES`, chat's own) refuses one byte
    more, in OpenAI's shape; the multipart routes have theirs (test_body_limits)."""
    alpha = _make_alpha(api)
    values = alpha.path_values()
    multipart = {"/v1/files", "/v1/uploads/{upload_id}/parts"}
    tried: list[str] = []
    for method, path in _routes(api):
        if method != "POST" or path in multipart or path.startswith("/internal/"):
            continue
        cap = (
            api.settings.max_chat_body_bytes
            if path == "/v1/chat/completions"
            else api.settings.max_json_body_bytes
        )
        url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
        body = b'{"pad": "' + b"x" * cap + b'"}'
        response = api.http.post(
            url, content=body, headers={**api.auth(), "content-type": "application/json"}
        )
        assert response.status_code == 413, f"POST {path}: {response.status_code}"
        assert response.json()["error"]["code"] == "request_too_large"
        tried.append(path)
    assert len(tried) >= 15 and "/v1/chat/completions" in tried
    _alpha_is_untouched(api, alpha)


INSIDE = [
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://2130706433/hook",
    "http://0x7f.1/hook",
    "file:///etc/passwd",
]


def test_webhooks_cannot_be_pointed_inside(api: ApiClient, vllm: StandIn) -> None:
    for url in INSIDE:
        response = api.http.post("/v1/webhook_endpoints", json={"url": url}, headers=api.auth())
        assert response.status_code == 400, f"{url}: {response.status_code} {response.text}"
        assert response.json()["error"]["param"] == "url", url
    listed = api.http.get("/v1/webhook_endpoints", headers=api.auth()).json()
    assert listed["data"] == []
