"""The Admin API with the official `openai` package: admin keys, projects and their keys,
checkpoint permissions, and revocation that holds from the very next request.

The server remembers chat answers for five minutes here (`WHETSTONE_CHAT_ACCESS_CACHE_SECONDS`),
so a revocation that only waited for the cache to expire would fail these tests. Chat goes
to a stand-in vLLM (a loopback HTTP server that answers every request with a completion
naming the model it was asked for): a real vLLM takes about 45 s to start and adds nothing to
what is checked here, which is whether a request gets past the access check to the relay.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from tests.conftest import free_port

from . import jobdriver
from .conftest import Server, start_server
from .test_fine_tuning import BASE, upload

REMEMBER_SECONDS = "300"
MESSAGES: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def vllm() -> Iterator[list[str]]:
    """A stand-in vLLM on a loopback port; yields the models it was asked for, in order."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            asked.append(body["model"])
            answer = json.dumps(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "hi"},
                        }
                    ],
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    asked.append(f"http://127.0.0.1:{port}")  # the first entry: where it listens
    yield asked
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vllm: list[str]
) -> Iterator[Server]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    env = {
        "WHETSTONE_VLLM_URLS": json.dumps({BASE: vllm[0]}),
        "WHETSTONE_CHAT_ACCESS_CACHE_SECONDS": REMEMBER_SECONDS,
    }
    data_dir = tmp_path_factory.mktemp(f"whetstone-admin-{request.param}")
    with start_server(data_dir, database_url, env) as running:
        yield running


def keys_cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m service.cli keys ARGS` with the server's settings."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def admin_key(server: Server) -> str:
    made = keys_cli(server, "create", "--admin")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def admin_client(server: Server, key: str) -> openai.OpenAI:
    # The permissions calls send `api_key`, the organization calls `admin_api_key`.
    return openai.OpenAI(base_url=server.base_url, api_key=key, admin_api_key=key, max_retries=0)


def project_id(admin: openai.OpenAI, name: str) -> str:
    return next(p.id for p in admin.admin.organization.projects.list() if p.name == name)


def chat(client: openai.OpenAI, model: str) -> str | None:
    return client.chat.completions.create(model=model, messages=MESSAGES).model


def test_admin_grants_project_b_a_checkpoint_of_project_a(
    server: Server, admin_key: str, vllm: list[str]
) -> None:
    a, b = server.client(server.key_a), server.client(server.key_b)
    admin = admin_client(server, admin_key)
    file_a = upload(a)
    job_a = a.fine_tuning.jobs.create(model=BASE, training_file=file_a)
    jobdriver.start(server, job_a.id)
    checkpoint = jobdriver.checkpoint(server, job_a.id, 10)
    alpha, beta = project_id(admin, "alpha"), project_id(admin, "beta")

    # Before: B cannot see, chat with, or train on A's checkpoint.
    assert checkpoint not in {m.id for m in b.models.list()}
    with pytest.raises(openai.NotFoundError):
        chat(b, checkpoint)
    with pytest.raises(openai.BadRequestError, match="not available for fine-tuning"):
        b.fine_tuning.jobs.create(model=checkpoint, training_file=upload(b))

    permissions = admin.fine_tuning.checkpoints.permissions
    granted = permissions.create(checkpoint, project_ids=[beta]).data
    assert [(p.object, p.project_id) for p in granted] == [("checkpoint.permission", beta)]
    assert granted[0].id.startswith("cp-")
    assert [p.id for p in permissions.create(checkpoint, project_ids=[beta]).data] == [
        granted[0].id
    ]  # granting twice changes nothing

    # After: B sees it (owned by A), chats with it through the relay, trains on it.
    listed = {m.id: m.owned_by for m in b.models.list()}
    assert listed[checkpoint] == alpha and b.models.retrieve(checkpoint).owned_by == alpha
    assert chat(b, checkpoint) == checkpoint and vllm[-1] == checkpoint
    job_b = b.fine_tuning.jobs.create(model=checkpoint, training_file=upload(b))
    assert job_b.model == checkpoint and job_b.status == "validating_files"
    with pytest.raises(openai.NotFoundError):  # granted is not owned: B cannot delete it
        b.models.delete(checkpoint)

    # Listing: the filter by project, the order, and the deprecated `retrieve` spelling.
    other = admin.admin.organization.projects.create(name="gamma")
    permissions.create(checkpoint, project_ids=[other.id])
    newest_first = [p.id for p in permissions.list(checkpoint)]
    oldest_first = list(permissions.list(checkpoint, order="ascending"))
    assert newest_first == [p.id for p in reversed(oldest_first)]
    assert {p.project_id for p in oldest_first} == {beta, other.id}
    assert [p.project_id for p in permissions.list(checkpoint, project_id=beta)] == [beta]
    first = permissions.list(checkpoint, order="ascending", limit=1)
    assert [p.id for p in first.data] == [oldest_first[0].id] and first.has_more
    assert [p.id for p in first.get_next_page().data] == [oldest_first[1].id]
    with pytest.warns(DeprecationWarning):
        assert len(permissions.retrieve(checkpoint).data) == 2

    # Deleting the permission: B is refused on its very next request (answers are remembered
    # for five minutes here), and the checkpoint leaves B's list.
    deleted = permissions.delete(granted[0].id, fine_tuned_model_checkpoint=checkpoint)
    assert deleted.deleted and deleted.id == granted[0].id
    with pytest.raises(openai.NotFoundError):
        chat(b, checkpoint)
    assert checkpoint not in {m.id for m in b.models.list()}
    assert chat(a, checkpoint) == checkpoint  # the owner still chats with it


def test_bad_permission_requests_are_clear_4xx(server: Server, admin_key: str) -> None:
    permissions = admin_client(server, admin_key).fine_tuning.checkpoints.permissions
    with pytest.raises(openai.NotFoundError) as missing:
        permissions.create("ft:whetstone-tiny:alpha::nosuch00", project_ids=["proj-x"])
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    a = server.client(server.key_a)
    job = a.fine_tuning.jobs.create(model=BASE, training_file=upload(a))
    jobdriver.start(server, job.id)
    checkpoint = jobdriver.checkpoint(server, job.id, 5)
    with pytest.raises(openai.BadRequestError) as unknown:
        permissions.create(checkpoint, project_ids=["proj-nosuch"])
    assert unknown.value.body["param"] == "project_ids[0]"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        permissions.delete("cp-nosuch", fine_tuned_model_checkpoint=checkpoint)


def test_project_keys_are_refused_on_admin_routes(server: Server, admin_key: str) -> None:
    project = admin_client(server, server.key_b)
    calls: list[Callable[[], object]] = [
        lambda: project.admin.organization.projects.list(),
        lambda: project.admin.organization.projects.retrieve("proj-x"),
        lambda: project.fine_tuning.checkpoints.permissions.create("ft:x", project_ids=["p"]),
        lambda: project.fine_tuning.checkpoints.permissions.list("ft:x").data,
        lambda: project.fine_tuning.checkpoints.permissions.delete(
            "cp-x", fine_tuned_model_checkpoint="ft:x"
        ),
    ]
    for call in calls:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            call()
        assert refused.value.status_code == 403
        assert "You have insufficient permissions for this operation" in refused.value.message
        assert "admin API key" in refused.value.message
    with pytest.raises(openai.AuthenticationError):  # an unknown key is a 401 as anywhere
        admin_client(server, "sk-admin-nosuch").admin.organization.projects.list()
    # And the other way round: an admin key is no project key.
    with pytest.raises(openai.PermissionDeniedError, match="Admin API keys can only"):
        server.client(admin_key).models.list()
    with pytest.raises(openai.PermissionDeniedError, match="Admin API keys can only"):
        chat(server.client(admin_key), BASE)


def test_projects_and_their_keys(server: Server, admin_key: str) -> None:
    projects = admin_client(server, admin_key).admin.organization.projects
    made = projects.create(name="delta")
    assert (made.object, made.name, made.status, made.archived_at) == (
        "organization.project",
        "delta",
        "active",
        None,
    )
    assert projects.retrieve(made.id).name == "delta"
    with pytest.raises(openai.NotFoundError):
        projects.retrieve("proj-nosuch")
    with pytest.raises(openai.ConflictError):
        projects.create(name="delta")

    alpha = project_id(admin_client(server, admin_key), "alpha")
    keys = list(projects.api_keys.list(alpha))
    assert keys and all(k.object == "organization.project.api_key" for k in keys)
    shown = {k.redacted_value for k in keys}
    assert any(server.key_a.startswith(v.removesuffix("****")) for v in shown)
    assert all(server.key_a not in v for v in shown)  # never the key itself
    one = projects.api_keys.retrieve(keys[0].id, project_id=alpha)
    assert one.id == keys[0].id and one.owner.type == "service_account"
    with pytest.raises(openai.NotFoundError):  # a key of alpha is not delta's
        projects.api_keys.retrieve(keys[0].id, project_id=made.id)

    # Archive: the project's keys are refused from the next request on.
    key = keys_cli(server, "create", "--project", "delta").stdout.strip()
    assert chat(server.client(key), BASE) == BASE
    archived = projects.archive(made.id)
    assert archived.status == "archived" and archived.archived_at is not None
    with pytest.raises(openai.AuthenticationError, match="archived"):
        server.client(key).models.list()
    with pytest.raises(openai.AuthenticationError):
        chat(server.client(key), BASE)
    assert made.id not in {p.id for p in projects.list()}
    assert made.id in {p.id for p in projects.list(include_archived=True)}


def test_revoked_key_is_refused_at_once(server: Server, admin_key: str) -> None:
    by_api = keys_cli(server, "create", "--project", "epsilon").stdout.strip()
    by_cli = keys_cli(server, "create", "--project", "epsilon").stdout.strip()
    for key in (by_api, by_cli):
        assert chat(server.client(key), BASE) == BASE  # remembered for five minutes
        assert server.client(key).models.list().data

    listed = keys_cli(server, "list", "--project", "epsilon")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert len(rows) == 2 and all("epsilon" in row for row in rows)
    assert by_api not in listed.stdout and by_cli not in listed.stdout
    ids = {row[1].removesuffix("****"): row[0] for row in rows}
    api_id = next(i for start, i in ids.items() if by_api.startswith(start))
    cli_id = next(i for start, i in ids.items() if by_cli.startswith(start) and i != api_id)

    # Through the Admin API, in the server's own process.
    admin = admin_client(server, admin_key)
    epsilon = project_id(admin, "epsilon")
    gone = admin.admin.organization.projects.api_keys.delete(api_id, project_id=epsilon)
    assert (gone.id, gone.deleted) == (api_id, True)
    with pytest.raises(openai.AuthenticationError):
        chat(server.client(by_api), BASE)

    # Through `whetstone keys revoke`, another process.
    assert chat(server.client(by_cli), BASE) == BASE  # remembered again
    revoked = keys_cli(server, "revoke", cli_id)
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(openai.AuthenticationError):
        chat(server.client(by_cli), BASE)
    with pytest.raises(openai.AuthenticationError):
        server.client(by_cli).models.list()
    assert "epsilon" not in keys_cli(server, "list").stdout
    missing = keys_cli(server, "revoke", cli_id)
    assert missing.returncode == 1 and "no key" in missing.stderr

    # Admin keys are listed and revoked the same way.
    extra = keys_cli(server, "create", "--admin").stdout.strip()
    row = next(r for r in keys_cli(server, "list").stdout.splitlines() if "admin" in r)
    assert extra not in row
    extra_id = next(
        line.split()[0]
        for line in keys_cli(server, "list").stdout.splitlines()
        if extra.startswith(line.split()[1].removesuffix("****"))
    )
    assert admin_client(server, extra).admin.organization.projects.list().data
    assert keys_cli(server, "revoke", extra_id).returncode == 0
    with pytest.raises(openai.AuthenticationError):
        admin_client(server, extra).admin.organization.projects.list()


def test_keys_create_wants_a_project_or_admin(server: Server) -> None:
    for args in ((), ("--admin", "--project", "x")):
        made = keys_cli(server, "create", *args)
        assert made.returncode == 2 and "--project NAME or --admin" in made.stderr
