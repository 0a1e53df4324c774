"""Model aliases (`/v1/models/aliases`): an OpenAI fine-tuned model's name answers as a model
of the project, in chat completions (against the vLLM stand-in of test_chat), `/v1/models`,
fine-tuning jobs and checkpoint permissions; and the ways it must not work."""

# ruff: noqa: F811  (test_chat's fixtures are imported, then named as arguments)

from __future__ import annotations

import json

import httpx

from service.keys import admin_key_repository as admin_keys
from service.keys import project_repository as projects
from tests.integration.service.test_chat import (  # noqa: F401  (its fixtures)
    ANSWER,
    BASE,
    StandIn,
    api,
    body,
    chat,
    reply,
    settings,
    tuned_model,
    vllm,
)
from tests.unit.service.conftest import ApiClient

OPENAI_NAME = "ft:gpt-4o-mini-2024-07-18:acme::AbC123"


def alias(api: ApiClient, name: str, model: str, key: str | None = None) -> httpx.Response:
    return api.http.post(
        "/v1/models/aliases", json={"name": name, "model": model}, headers=api.auth(key)
    )


def sent_models(vllm: StandIn) -> list[str]:
    chats = [seen for seen in vllm.seen if seen.path == "/v1/chat/completions"]
    return [json.loads(seen.body)["model"] for seen in chats]


def test_an_openai_name_answers_as_the_model_it_points_at(api: ApiClient, vllm: StandIn) -> None:
    vllm.answer = reply(200, ANSWER)
    first, retrained = tuned_model(api), tuned_model(api)
    made = alias(api, OPENAI_NAME, first)
    assert made.status_code == 200, made.text
    shown = made.json()
    assert shown["id"] == OPENAI_NAME and shown["object"] == "model.alias"
    assert shown["model"] == first and shown["created"] > 0

    sent = body(model=OPENAI_NAME, temperature=0)
    assert chat(api, sent).status_code == 200
    relayed = json.loads(vllm.seen[-1].body)
    assert relayed.pop("cache_salt")  # the project's own (service.hashing.cache_salt)
    assert relayed == {**sent, "model": first}  # nothing else changed

    listed = api.http.get("/v1/models", headers=api.auth()).json()["data"]
    entry = next(m for m in listed if m["id"] == OPENAI_NAME)
    assert entry["alias_for"] == first and entry["object"] == "model"
    assert all("alias_for" not in m for m in listed if m["id"] != OPENAI_NAME)
    one = api.http.get(f"/v1/models/{OPENAI_NAME}", headers=api.auth()).json()
    assert one["alias_for"] == first

    # Re-pointed after a retrain: the very next request goes to the new model.
    assert alias(api, OPENAI_NAME, retrained).json()["model"] == retrained
    assert chat(api, sent).status_code == 200
    assert sent_models(vllm) == [first, retrained]

    page = api.http.get("/v1/models/aliases", headers=api.auth()).json()
    assert [(a["id"], a["model"]) for a in page["data"]] == [(OPENAI_NAME, retrained)]
    assert page["has_more"] is False

    gone = api.http.delete(f"/v1/models/aliases/{OPENAI_NAME}", headers=api.auth())
    assert gone.json() == {"id": OPENAI_NAME, "object": "model.alias", "deleted": True}
    assert chat(api, sent).status_code == 404
    assert api.http.get(f"/v1/models/{OPENAI_NAME}", headers=api.auth()).status_code == 404
    assert api.http.get(f"/v1/models/{retrained}", headers=api.auth()).status_code == 200


def test_an_alias_of_a_base_model_and_a_deleted_target(api: ApiClient, vllm: StandIn) -> None:
    vllm.answer = reply(200, ANSWER)
    assert alias(api, "gpt-4o-mini-2024-07-18", BASE).status_code == 200
    assert chat(api, body(model="gpt-4o-mini-2024-07-18")).status_code == 200
    model = tuned_model(api)
    assert alias(api, OPENAI_NAME, model).status_code == 200
    refused = api.http.delete(f"/v1/models/{OPENAI_NAME}", headers=api.auth())
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "model_is_alias"
    assert api.http.delete(f"/v1/models/{model}", headers=api.auth()).status_code == 200
    gone = chat(api, body(model=OPENAI_NAME))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    assert sent_models(vllm) == [BASE]


def test_aliases_are_per_project(api: ApiClient, vllm: StandIn) -> None:
    vllm.answer = reply(200, ANSWER)
    mine = tuned_model(api)
    assert alias(api, OPENAI_NAME, mine).status_code == 200
    # Beta's key: alpha's alias is no name of beta's, and alpha's model is no target.
    assert chat(api, body(model=OPENAI_NAME), key=api.key_b).status_code == 404
    assert api.http.get(f"/v1/models/{OPENAI_NAME}", headers=api.auth(api.key_b)).status_code == 404
    theirs = alias(api, OPENAI_NAME, mine, key=api.key_b)
    assert theirs.status_code == 404 and theirs.json()["error"]["param"] == "model"
    # Beta may have its own alias of the same name, of a model it may use.
    assert alias(api, OPENAI_NAME, BASE, key=api.key_b).status_code == 200
    assert chat(api, body(model=OPENAI_NAME), key=api.key_b).status_code == 200
    assert chat(api, body(model=OPENAI_NAME)).status_code == 200
    assert sent_models(vllm) == [BASE, mine]
    listed = api.http.get("/v1/models/aliases", headers=api.auth(api.key_b)).json()["data"]
    assert [(a["id"], a["model"]) for a in listed] == [(OPENAI_NAME, BASE)]
    deleted = api.http.delete(f"/v1/models/aliases/{OPENAI_NAME}", headers=api.auth(api.key_b))
    assert deleted.status_code == 200
    assert chat(api, body(model=OPENAI_NAME)).status_code == 200  # alpha's is still there


def test_hostile_names_and_callers(api: ApiClient, vllm: StandIn) -> None:
    model = tuned_model(api)
    no_key = api.http.post("/v1/models/aliases", json={"name": "x", "model": model})
    assert no_key.status_code == 401
    assert api.http.get("/v1/models/aliases").status_code == 401
    for name in ("../etc/passwd", "a/b", "a..b", "x" * 300, "", " gpt", ":x"):
        refused = alias(api, name, model)
        assert refused.status_code == 400, name
        assert refused.json()["error"]["param"] == "name", name
    for taken in (BASE, model):  # a base model, a fine-tuned model: never shadowed
        refused = alias(api, taken, model)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "model_name_taken"
    beta_model_shadow = alias(api, model, BASE, key=api.key_b)  # another project's model
    assert beta_model_shadow.status_code == 409
    assert alias(api, "x", "ft:whetstone-tiny:alpha::nosuch00").status_code == 404
    assert alias(api, "a", model).status_code == 200
    chained = alias(api, "b", "a")
    assert chained.status_code == 400 and chained.json()["error"]["param"] == "model"
    missing = api.http.delete("/v1/models/aliases/nosuch", headers=api.auth())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "alias_not_found"
    assert vllm.seen == []


def test_a_job_and_a_permission_take_the_alias(api: ApiClient) -> None:
    model = tuned_model(api)
    assert alias(api, OPENAI_NAME, model).status_code == 200
    file_id = api.http.get("/v1/files", headers=api.auth()).json()["data"][0]["id"]
    job = api.http.post(
        "/v1/fine_tuning/jobs",
        json={"model": OPENAI_NAME, "training_file": file_id},
        headers=api.auth(),
    )
    assert job.status_code == 200, job.text
    assert job.json()["model"] == model  # continued training of the model, not of a name
    services = api.http.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session, session.begin():
        admin = {"Authorization": f"Bearer {admin_keys.create_admin_key(session)}"}
        beta_project = projects.find_project(session, "beta")
        assert beta_project is not None
        beta = beta_project.id
    path = f"/v1/fine_tuning/checkpoints/{OPENAI_NAME}/permissions"
    granted = api.http.post(path, json={"project_ids": [beta]}, headers=admin)
    assert granted.status_code == 200, granted.text
    assert api.http.get(f"/v1/models/{model}", headers=api.auth(api.key_b)).status_code == 200
