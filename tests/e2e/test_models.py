"""The models API through the official `openai` package against a running server."""

from __future__ import annotations

import openai
import pytest

from service.models.pointers import is_published

from . import jobdriver
from .conftest import Server
from .test_fine_tuning import BASE, upload


def _tuned_model(server: Server, suffix: str) -> tuple[str, str]:
    """A succeeded job's model and its step-10 checkpoint model, both published."""
    client = server.client()
    job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client), suffix=suffix)
    jobdriver.start(server, job.id)
    checkpoint = jobdriver.checkpoint(server, job.id, 10)
    return jobdriver.succeed(server, job.id), checkpoint


def test_list_and_retrieve_base_and_fine_tuned_models(server: Server) -> None:
    client = server.client()
    model, checkpoint = _tuned_model(server, "listing")
    listed = {m.id: m for m in client.models.list()}
    assert listed[BASE].owned_by == "whetstone" and listed[BASE].object == "model"
    project = client.fine_tuning.jobs.list(limit=1).data[0].organization_id
    assert listed[model].owned_by == project and listed[checkpoint].owned_by == project
    assert client.models.retrieve(BASE).id == BASE
    fetched = client.models.retrieve(model)  # colons in the path
    assert (fetched.id, fetched.owned_by) == (model, project) and fetched.created > 0
    assert client.models.retrieve(checkpoint).id == checkpoint
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("ft:whetstone-tiny:alpha::nosuch00")
    assert info.value.code == "model_not_found"


def test_delete_removes_the_model_and_its_pointer(server: Server) -> None:
    client, store = server.client(), jobdriver.server_store(server)
    model, checkpoint = _tuned_model(server, "deleting")
    assert is_published(store, model)
    deleted = client.models.delete(model)
    assert (deleted.id, deleted.deleted, deleted.object) == (model, True, "model")
    assert not is_published(store, model)  # vLLM's resolver can no longer find it
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(model)
    with pytest.raises(openai.NotFoundError):
        client.models.delete(model)
    assert model not in {m.id for m in client.models.list()}
    with pytest.raises(openai.BadRequestError) as info:  # nor can it be trained on
        client.fine_tuning.jobs.create(model=model, training_file=upload(client))
    assert info.value.param == "model"  # type: ignore[attr-defined]
    # Its checkpoint models go with it: nothing listed afterwards fails to answer.
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(checkpoint)
    assert checkpoint not in {m.id for m in client.models.list()}
    assert not is_published(store, checkpoint)


def test_base_models_cannot_be_deleted(client: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.models.delete(BASE)
    assert info.value.status_code == 403
    assert client.models.retrieve(BASE).id == BASE


def test_wrong_key_is_an_authentication_error(server: Server) -> None:
    with pytest.raises(openai.AuthenticationError):
        server.client("sk-whet-wrong").models.list()
    with pytest.raises(openai.AuthenticationError):
        server.client("sk-whet-wrong").models.retrieve(BASE)
