"""Two projects: project B can neither see, use nor delete project A's objects.

Every endpoint is walked with A's ids under B's key. Path ids answer 404 exactly as a
missing id does; ids in a job's body (`model`, `training_file`, `validation_file`) answer
the same 400 as a missing id, naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from . import jobdriver
from .conftest import Server
from .test_fine_tuning import BASE, upload


def _error(call: Callable[[], Any], kind: type[openai.APIStatusError]) -> dict[str, Any]:
    with pytest.raises(kind) as info:
        call()
    body = info.value.body
    assert isinstance(body, dict)
    return body


def _same_as_missing(theirs: str, missing: str, call: Callable[[str], Any], kind: Any) -> None:
    """`call(theirs)` fails exactly as `call(missing)` does, but for the id in the message."""
    foreign = _error(lambda: call(theirs), kind)
    absent = _error(lambda: call(missing), kind)
    assert foreign["message"].replace(theirs, "ID") == absent["message"].replace(missing, "ID")
    assert (foreign["code"], foreign["param"]) == (absent["code"], absent["param"])


def test_project_b_cannot_see_use_or_delete_project_a_objects(server: Server) -> None:
    a, b = server.client(server.key_a), server.client(server.key_b)
    file_a = upload(a)
    job_a = a.fine_tuning.jobs.create(model=BASE, training_file=file_a, metadata={"p": "a"})
    jobdriver.start(server, job_a.id)
    checkpoint_a = jobdriver.checkpoint(server, job_a.id, 10)
    model_a = jobdriver.succeed(server, job_a.id)
    running_a = a.fine_tuning.jobs.create(model=BASE, training_file=file_a).id
    jobdriver.start(server, running_a)

    # See: nothing of A's is listed for B, and every path id answers 404 as a missing one.
    assert file_a not in {f.id for f in b.files.list()}
    assert not {job_a.id, running_a} & {j.id for j in b.fine_tuning.jobs.list()}
    assert not b.fine_tuning.jobs.list(metadata={"p": "a"}).data
    assert not {model_a, checkpoint_a} & {m.id for m in b.models.list()}
    nf = openai.NotFoundError
    _same_as_missing(file_a, "file-nosuch", b.files.retrieve, nf)
    _same_as_missing(file_a, "file-nosuch", lambda i: b.files.content(i).read(), nf)
    jobs = b.fine_tuning.jobs
    for call in (jobs.retrieve, jobs.list_events, jobs.checkpoints.list):
        _same_as_missing(job_a.id, "ftjob-nosuch", call, nf)
    _same_as_missing(job_a.id, "ftjob-nosuch", lambda i: jobs.list(after=i), openai.BadRequestError)
    for name in (model_a, checkpoint_a):
        _same_as_missing(name, "ft:whetstone-tiny:beta::nosuch00", b.models.retrieve, nf)

    # Use: A's file and model in B's job, and actions on A's jobs.
    file_b = upload(b)
    bad = openai.BadRequestError
    for model in (model_a, checkpoint_a):
        _same_as_missing(
            model, "ft:x:y::z", lambda m: jobs.create(model=m, training_file=file_b), bad
        )
    _same_as_missing(file_a, "file-nosuch", lambda f: jobs.create(model=BASE, training_file=f), bad)
    _same_as_missing(
        file_a,
        "file-nosuch",
        lambda f: jobs.create(model=BASE, training_file=file_b, validation_file=f),
        bad,
    )
    for action in (jobs.cancel, jobs.pause, jobs.resume):
        _same_as_missing(running_a, "ftjob-nosuch", action, nf)

    # Delete: A's file and models stay.
    _same_as_missing(file_a, "file-nosuch", b.files.delete, nf)
    for name in (model_a, checkpoint_a):
        _same_as_missing(name, "ft:whetstone-tiny:beta::nosuch00", b.models.delete, nf)

    # A still has everything, untouched.
    assert a.files.retrieve(file_a).id == file_a
    assert a.fine_tuning.jobs.retrieve(running_a).status == "running"
    assert [
        c.fine_tuned_model_checkpoint for c in a.fine_tuning.jobs.checkpoints.list(job_a.id)
    ] == [checkpoint_a]
    assert {model_a, checkpoint_a} <= {m.id for m in a.models.list()}
    assert jobdriver.server_store(server).exists(f"files/{file_a}")
