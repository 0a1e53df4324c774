"""Every failure answers in OpenAI's error shape: auth, unknown routes, validation, crashes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service.app import create_app
from service.settings import Settings

from .conftest import ApiClient


def _error(response_json: dict[str, object]) -> dict[str, object]:
    assert set(response_json) == {"error"}
    error = response_json["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_missing_key_is_401(api: ApiClient) -> None:
    r = api.http.get("/v1/files")
    assert r.status_code == 401
    assert "API key" in str(_error(r.json())["message"])


def test_wrong_key_is_401_and_masks_the_key(api: ApiClient) -> None:
    r = api.http.get("/v1/files", headers=api.auth("sk-whet-notarealkey1234567890"))
    assert r.status_code == 401
    error = _error(r.json())
    assert error["code"] == "invalid_api_key"
    assert "notarealkey" not in str(error["message"])


def test_non_bearer_scheme_is_401(api: ApiClient) -> None:
    r = api.http.get("/v1/files", headers={"Authorization": f"Basic {api.key_a}"})
    assert r.status_code == 401


def test_unknown_url_is_404_in_openai_shape(api: ApiClient) -> None:
    r = api.http.get("/v1/nothing-here", headers=api.auth())
    assert r.status_code == 404
    assert _error(r.json())["type"] == "invalid_request_error"


def test_wrong_method_is_405_in_openai_shape(api: ApiClient) -> None:
    r = api.http.put("/v1/files", headers=api.auth())
    assert r.status_code == 405
    _error(r.json())


def test_query_validation_is_400_naming_the_param(api: ApiClient) -> None:
    r = api.http.get("/v1/files", params={"limit": 0}, headers=api.auth())
    assert r.status_code == 400
    error = _error(r.json())
    assert error["param"] == "limit"
    assert error["type"] == "invalid_request_error"


def test_unexpected_exception_is_500_without_traceback(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as http:
        r = http.get("/boom")
    assert r.status_code == 500
    error = _error(r.json())
    assert error["type"] == "server_error"
    assert "secret" not in r.text and "Traceback" not in r.text


class Inner(BaseModel):
    n_epochs: int


class Body(BaseModel):
    method: Inner


def test_body_validation_names_the_nested_field_and_bad_json_is_400(settings: Settings) -> None:
    app = create_app(settings)

    @app.post("/echo")
    def echo(body: Body) -> None:
        return None

    with TestClient(app, raise_server_exceptions=False) as http:
        r = http.post("/echo", json={"method": {"n_epochs": "many"}})
        assert r.status_code == 400 and _error(r.json())["param"] == "method.n_epochs"
        r = http.post("/echo", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and _error(r.json())["code"] == "invalid_json"


def test_405_allows_every_method_of_the_path(api: ApiClient) -> None:
    """`/v1/models/{model}` takes GET and DELETE: a POST is told both, not just the first."""
    r = api.http.post("/v1/models/whetstone-tiny", headers=api.auth())
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == {"DELETE", "GET", "HEAD"}
    r = api.http.put("/v1/files", headers=api.auth())
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/files",
        "/v1/fine_tuning/jobs",
        "/v1/webhook_endpoints",
    ],
)
def test_an_empty_after_is_the_first_page(api: ApiClient, path: str) -> None:
    first = api.http.get(path, headers=api.auth())
    empty = api.http.get(path + "?after=", headers=api.auth())
    assert empty.status_code == 200, empty.text
    assert empty.json()["data"] == first.json()["data"]


def test_a_jobs_filter_the_list_does_not_know_is_a_400_not_every_job(api: ApiClient) -> None:
    r = api.http.get("/v1/fine_tuning/jobs?metdata[team]=a", headers=api.auth())
    assert r.status_code == 400
    error = _error(r.json())
    assert (error["param"], error["code"]) == ("metdata[team]", "unknown_parameter")
    long_key = "k" * 65
    r = api.http.get(f"/v1/fine_tuning/jobs?metadata[{long_key}]=a", headers=api.auth())
    assert r.status_code == 400 and _error(r.json())["code"] == "invalid_value"
    ok = api.http.get("/v1/fine_tuning/jobs?metadata[team]=a&limit=5&after=", headers=api.auth())
    assert ok.status_code == 200 and ok.json()["data"] == []
