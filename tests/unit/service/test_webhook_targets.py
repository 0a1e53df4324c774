"""A webhook URL that points inside the deployment is refused at creation, in OpenAI's error
shape naming `url`; the operator's setting lets private receivers in; endpoints are capped."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from service.webhooks import targets

from .conftest import ApiClient, create_key

INSIDE = [
    "http://127.0.0.1:8001/v1/chat/completions",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0:8000/",
    "http://224.0.0.1/",
    "http://[::1]:8000/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fd12:3456::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0177.0.0.1/",  # 127.0.0.1 in octal
    "http://0x7f.1/",
    "http://localhost:8000/",  # a name that resolves to loopback
]


@pytest.mark.parametrize("url", INSIDE)
def test_a_webhook_pointing_inside_is_refused_at_creation(api: ApiClient, url: str) -> None:
    r = api.http.post("/v1/webhook_endpoints", json={"url": url}, headers=api.auth())
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (
        "url",
        "invalid_url",
        "invalid_request_error",
    )
    assert "public addresses only" in error["message"]
    assert api.http.get("/v1/webhook_endpoints", headers=api.auth()).json()["data"] == []


def test_a_public_address_is_accepted(api: ApiClient) -> None:
    r = api.http.post(
        "/v1/webhook_endpoints", json={"url": "https://93.184.215.14/hook"}, headers=api.auth()
    )
    assert r.status_code == 200, r.text


def test_the_operator_may_allow_private_receivers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", webhook_allow_private_urls=True)
    with TestClient(create_app(settings)) as http:
        key = create_key(http, "alpha")
        r = http.post(
            "/v1/webhook_endpoints",
            json={"url": "http://10.0.0.5/hook"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert r.status_code == 200, r.text


def test_endpoints_per_project_are_capped(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", webhook_max_endpoints_per_project=2)
    with TestClient(create_app(settings)) as http:
        a, b = create_key(http, "alpha"), create_key(http, "beta")

        def create(key: str) -> int:
            url = "https://93.184.215.14/hook"
            r = http.post(
                "/v1/webhook_endpoints",
                json={"url": url},
                headers={"Authorization": f"Bearer {key}"},
            )
            if r.status_code == 400:
                assert r.json()["error"]["code"] == "quota_exceeded"
            return r.status_code

        assert [create(a) for _ in range(3)] == [200, 200, 400]
        assert create(b) == 200  # another project's endpoints are its own


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("64:ff9b::a9fe:a9fe", "a link-local address"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "a loopback address"),  # 6to4 of 127.0.0.1
        ("fd00::1", "a unique-local address"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_addresses_are_judged_by_what_they_reach(address: str, why: str | None) -> None:
    assert targets.refusal(address) == why


def test_a_name_is_refused_when_any_of_its_addresses_is() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]

    with pytest.raises(targets.RefusedTarget, match="resolves to 10.0.0.7, a private address"):
        targets.check_host("hooks.example.test", 443, resolver)
