"""Multipart forms (`POST /v1/files`, an Upload's parts): the fields beside the file are
capped in number and in bytes (part headers included), so a form cannot fill the API's
memory with fields it never stores."""

from __future__ import annotations

import pytest

from service.files.multipart import FORM_MAX_FIELDS, FORM_MAX_FIELDS_BYTES
from tests.corpus.malformed import GOOD

from .conftest import ApiClient

BOUNDARY = "f0rm"


def form(*parts: tuple[str, bytes], extra_header: str = "") -> bytes:
    body = b""
    for name, value in parts:
        filename = '; filename="train.jsonl"' if name in ("file", "data") else ""
        body += (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n'
                f"{extra_header}\r\n"
            ).encode()
            + value
            + b"\r\n"
        )
    return body + f"--{BOUNDARY}--\r\n".encode()


def post(api: ApiClient, path: str, body: bytes):  # type: ignore[no-untyped-def]
    headers = {**api.auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return api.http.post(path, content=body, headers=headers)


def stored(api: ApiClient) -> list[str]:
    return api.http.app.state.services.store.list("files/")  # type: ignore[attr-defined,no-any-return]


def test_a_form_with_its_fields_under_the_caps_uploads(api: ApiClient) -> None:
    extra = [(f"x{i}", b"v") for i in range(FORM_MAX_FIELDS - 1)]
    answer = post(api, "/v1/files", form(("purpose", b"fine-tune"), *extra, ("file", GOOD)))
    assert answer.status_code == 200, answer.text


def test_too_many_fields_beside_the_file_are_400(api: ApiClient) -> None:
    extra = [(f"x{i}", b"v") for i in range(FORM_MAX_FIELDS)]
    answer = post(api, "/v1/files", form(("purpose", b"fine-tune"), *extra, ("file", GOOD)))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "too_many_form_fields"
    assert stored(api) == []


def test_fields_larger_than_the_cap_together_are_400(api: ApiClient) -> None:
    """Each under the one-field limit, together over the form's."""
    size = FORM_MAX_FIELDS_BYTES // 3 + 1
    extra = [(f"x{i}", b"v" * size) for i in range(3)]
    answer = post(api, "/v1/files", form(("purpose", b"fine-tune"), *extra, ("file", GOOD)))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "form_too_large"
    assert stored(api) == []


def test_part_headers_count_toward_the_cap(api: ApiClient) -> None:
    """Each part's headers within the multipart parser's own limits, all of them over the
    form's cap."""
    header = ("X-Padding: " + "p" * 4000 + "\r\n") * 2
    extra = [(f"x{i}", b"v") for i in range(FORM_MAX_FIELDS - 1)]
    body = form(("purpose", b"fine-tune"), *extra, ("file", GOOD), extra_header=header)
    answer = post(api, "/v1/files", body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "form_too_large"


@pytest.mark.parametrize("fields", [FORM_MAX_FIELDS + 1, 1000])
def test_an_upload_part_with_too_many_fields_is_400(api: ApiClient, fields: int) -> None:
    created = api.http.post(
        "/v1/uploads",
        headers=api.auth(),
        json={"purpose": "fine-tune", "filename": "a.jsonl", "bytes": len(GOOD),
              "mime_type": "text/jsonl"},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    extra = [(f"x{i}", b"v") for i in range(fields)]
    answer = post(api, f"/v1/uploads/{created.json()['id']}/parts", form(*extra, ("data", GOOD)))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "too_many_form_fields"
