"""Reinforcement fine-tuning jobs through the `openai` package against the app in-process:
the create request in OpenAI's `FineTuneReinforcementMethod` shape, each grader and
hyperparameter refused with a 400 naming its field, the job reporting the grader as given and
its resolved hyperparameters, and reward metrics in events and checkpoints.

The vLLM a model grader would reach is a stand-in on a loopback port (`test_chat.vllm`): no
model runs here."""

from __future__ import annotations

import io
import json
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from contracts.graders.schema import MAX_SUB_GRADERS
from contracts.messages import Checkpoint, Metrics, StepMetrics
from service.app import create_app
from service.db.tables import FineTuningJob
from service.fine_tuning import service as jobs
from service.fine_tuning.attempts import new_token
from service.fine_tuning.auto_hyperparameters import resolve_reinforcement
from service.fine_tuning.status import JobStatus
from service.hashing import cache_salt
from service.settings import Settings
from tests.integration.service.test_chat import BASE, StandIn, tuned_model, vllm  # noqa: F401
from tests.integration.service.test_graders_api import StandIn as Endpoint
from tests.integration.service.test_graders_api import stand_in  # noqa: F401 - the fixture
from tests.unit.service.conftest import ApiClient, create_key
from tests.unit.service.test_openai_schemas import assert_matches

CHECK = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}
HP = "method.reinforcement.hyperparameters"
GRADER = "method.reinforcement.grader"


def prompts(n: int = 10) -> bytes:
    lines = [
        {"messages": [{"role": "user", "content": f"What is {i} + {i}?"}], "answer": str(2 * i)}
        for i in range(n)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def rft(grader: dict[str, Any] = CHECK, **hyperparameters: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"grader": grader}
    if hyperparameters:
        block["hyperparameters"] = hyperparameters
    return {"type": "reinforcement", "reinforcement": block}


@pytest.fixture()
def settings(tmp_path: Any, vllm: StandIn) -> Settings:  # noqa: F811 - the fixture above
    return Settings(data_dir=tmp_path / "data", vllm_urls={BASE: vllm.url})


@pytest.fixture()
def api(settings: Settings) -> Any:
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield ApiClient(http, settings, create_key(http, "alpha"), create_key(http, "beta"))


def openai_client(api: ApiClient, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1",
        api_key=key or api.key_a,
        http_client=api.http,
        max_retries=0,
    )


@pytest.fixture()
def client(api: ApiClient) -> openai.OpenAI:
    return openai_client(api)


def upload(client: openai.OpenAI, data: bytes | None = None) -> str:
    file = client.files.create(
        file=("rft.jsonl", io.BytesIO(data or prompts())), purpose="fine-tune"
    )
    return file.id


def refused(client: openai.OpenAI, method: dict[str, Any], training_file: str) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model=BASE, training_file=training_file, method=method)  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict)
    return body


# --- create: the job as OpenAI reports it -----------------------------------------------------


def test_the_openai_package_creates_an_rft_job_and_reads_back_its_method(
    api: ApiClient, client: openai.OpenAI
) -> None:
    train, valid = upload(client), upload(client)
    job = client.fine_tuning.jobs.create(
        model=BASE,
        training_file=train,
        validation_file=valid,
        method=rft(eval_interval=2, compute_multiplier=1.5, reasoning_effort="low"),  # type: ignore[arg-type]
    )
    assert job.status == "validating_files" and job.method is not None
    assert job.method.type == "reinforcement" and job.method.reinforcement is not None
    assert job.method.reinforcement.grader.model_dump(exclude_none=True) == CHECK
    hp = job.method.reinforcement.hyperparameters
    assert hp is not None
    assert (hp.eval_interval, hp.compute_multiplier, hp.reasoning_effort) == (2, 1.5, "low")
    assert (hp.n_epochs, hp.batch_size, hp.eval_samples) == ("auto", "auto", "auto")
    raw = api.http.get(f"/v1/fine_tuning/jobs/{job.id}", headers=api.auth()).json()
    assert raw["method"]["reinforcement"]["grader"] == CHECK  # as given, nothing filled in
    assert_matches("FineTuningJob", raw)

    # The scheduler resolves `auto` once it has counted the prompts (10 here).
    services = api.http.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session, session.begin():
        row = session.get(FineTuningJob, job.id)
        given = raw["method"]["reinforcement"]["hyperparameters"]
        jobs.record_hyperparameters(row, resolve_reinforcement(given, 10))
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.method is not None and done.method.reinforcement is not None
    hp = done.method.reinforcement.hyperparameters
    assert hp is not None
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (3, 1, 0.25)
    assert (hp.eval_interval, hp.eval_samples, hp.compute_multiplier) == (2, 1, 1.5)
    assert hp.reasoning_effort == "low"
    assert done.method.reinforcement.grader.model_dump(exclude_none=True) == CHECK
    assert (done.hyperparameters.n_epochs, done.hyperparameters.batch_size) == (3, 1)


def test_an_rft_job_needs_prompts_and_other_methods_refuse_them(client: openai.OpenAI) -> None:
    rl_file = upload(client)
    chat = (
        b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    chat_file = upload(client, chat * 10)
    error = refused(client, rft(), chat_file)
    assert (error["param"], error["code"]) == ("training_file", "invalid_file_format")
    assert "reinforcement-format" in error["message"]
    error = refused(client, {"type": "supervised"}, rl_file)
    assert (error["param"], error["code"]) == ("training_file", "invalid_file_format")


# --- create: each 400 names its field ---------------------------------------------------------

PYTHON_WITHOUT_GRADE = {
    "type": "python",
    "name": "code",
    "source": "def score(s, i):\n    return 1\n",
}
MULTI_BAD_FORMULA = {
    "type": "multi",
    "name": "both",
    "graders": {"exact": CHECK},
    "calculate_output": "exact +",
}
MULTI_UNKNOWN_NAME = {**MULTI_BAD_FORMULA, "calculate_output": "exact + other"}
SCORE = {
    "type": "score_model",
    "name": "judge",
    "model": "not-served-here",
    "input": [{"role": "user", "content": "Grade {{sample.output_text}}"}],
}


@pytest.mark.parametrize(
    ("grader", "param", "said"),
    [
        ({**CHECK, "operation": "equals"}, f"{GRADER}.operation", "operation"),
        ({**CHECK, "color": "red"}, f"{GRADER}.color", "color"),
        ({**CHECK, "reference": "{{itme.answer}}"}, f"{GRADER}.reference", "itme"),
        (PYTHON_WITHOUT_GRADE, f"{GRADER}.source", "grade"),
        (MULTI_BAD_FORMULA, f"{GRADER}.calculate_output", ""),
        (MULTI_UNKNOWN_NAME, f"{GRADER}.calculate_output", "other"),
        (
            {**MULTI_BAD_FORMULA, "graders": {f"g{i}": CHECK for i in range(MAX_SUB_GRADERS + 1)}},
            f"{GRADER}.graders",
            "at most",
        ),
        (SCORE, f"{GRADER}.model", "not-served-here"),
        (
            {"type": "label_model", "name": "tone", "model": "not-served-here",
             "input": [{"role": "user", "content": "{{sample.output_text}}"}],
             "labels": ["good", "bad"], "passing_labels": ["good"]},
            f"{GRADER}.model", "not-served-here",
        ),
        (
            {"type": "text_similarity", "name": "close", "evaluation_metric": "cosine",
             "input": "{{sample.output_text}}", "reference": "{{item.answer}}"},
            f"{GRADER}.evaluation_metric", "embedding model",
        ),
        (
            {**MULTI_BAD_FORMULA, "graders": {"judge": SCORE}, "calculate_output": "judge"},
            f"{GRADER}.graders.judge.model",
            "not served",
        ),
    ],
    ids=[
        "operation", "unknown_field", "template_variable", "python_without_grade",
        "formula_syntax", "formula_name", "too_many_graders", "unserved_model",
        "unserved_label_model", "cosine_without_embeddings", "unserved_model_in_multi",
    ],
)  # fmt: skip
def test_a_grader_that_cannot_run_is_a_400_naming_its_field(
    client: openai.OpenAI, grader: dict[str, Any], param: str, said: str
) -> None:
    error = refused(client, rft(grader), upload(client))
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error" and said in error["message"]
    assert not list(client.fine_tuning.jobs.list())  # nothing was made


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_epochs", 0), ("batch_size", 257), ("learning_rate_multiplier", 0),
        ("compute_multiplier", 0), ("compute_multiplier", 11), ("eval_interval", 0),
        ("eval_interval", 1.5), ("eval_samples", 0), ("eval_samples", "many"),
        ("reasoning_effort", "extreme"),
    ],
)  # fmt: skip
def test_a_bad_hyperparameter_is_a_400_naming_it(
    client: openai.OpenAI, field: str, value: Any
) -> None:
    error = refused(client, rft(**{field: value}), upload(client))
    assert error["param"] == f"{HP}.{field}", error


def test_the_method_needs_its_grader_and_no_other_block(client: openai.OpenAI) -> None:
    train = upload(client)
    error = refused(client, {"type": "reinforcement"}, train)
    assert (error["param"], error["code"]) == (GRADER, "missing_required_parameter")
    error = refused(client, {"type": "reinforcement", "reinforcement": {}}, train)
    assert error["param"] == GRADER
    error = refused(client, {**rft(), "supervised": {}}, train)
    assert error["param"] == "method.supervised"


def test_a_model_grader_may_use_the_projects_models_only(api: ApiClient) -> None:
    """A base model and alpha's own `ft:` model grade alpha's jobs; beta's job naming alpha's
    model is refused exactly as an unknown model is."""
    alpha, beta = openai_client(api), openai_client(api, api.key_b)
    own = tuned_model(api)
    for model in (BASE, own):
        job = alpha.fine_tuning.jobs.create(
            model=BASE,
            training_file=upload(alpha),
            method=rft({**SCORE, "model": model}),  # type: ignore[arg-type]
        )
        assert job.status == "validating_files"
    error = refused(beta, rft({**SCORE, "model": own}), upload(beta))
    unknown = refused(beta, rft(SCORE), upload(beta))
    assert error["param"] == unknown["param"] == f"{GRADER}.model"
    assert error["message"].replace(own, "X") == unknown["message"].replace("not-served-here", "X")


# --- the trainer's grader relay ---------------------------------------------------------------


def running_rft_job(api: ApiClient, key: str) -> tuple[str, str]:
    """An RFT job of `key`'s project with a live attempt: (job id, the attempt's token)."""
    client = openai_client(api, key)
    job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client), method=rft())  # type: ignore[arg-type]
    services = api.http.app.state.services  # type: ignore[attr-defined]
    token, token_hash = new_token()
    with services.sessions() as session, session.begin():
        row = session.get(FineTuningJob, job.id)
        jobs.transition(session, row, JobStatus.QUEUED)
        jobs.transition(session, row, JobStatus.RUNNING)
        row.attempt, row.attempt_token_hash = 1, token_hash
    return job.id, token


def relay(api: ApiClient, job_id: str, token: str | None, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api.http.post(f"/internal/v1/jobs/{job_id}/grader/chat", json=body, headers=headers)


def grading_request(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Score: 4"}]}


ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": BASE,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": '{"result": 1}'}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}


def test_the_relay_answers_the_attempts_token_only(api: ApiClient, vllm: StandIn) -> None:  # noqa: F811
    from tests.integration.service.test_chat import reply

    vllm.answer = reply(200, ANSWER)
    job_id, token = running_rft_job(api, api.key_a)
    other_id, other_token = running_rft_job(api, api.key_a)
    for bad in (None, other_token, api.key_a, "not-a-token"):
        answer = relay(api, job_id, bad, grading_request(BASE))
        assert answer.status_code == 401, bad
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert relay(api, "ftjob-nosuch", token, grading_request(BASE)).status_code == 401
    assert not vllm.seen

    answer = relay(api, job_id, token, grading_request(BASE))
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == '{"result": 1}'
    (seen,) = vllm.seen
    assert seen.path == "/v1/chat/completions"
    assert json.loads(seen.body)["messages"] == grading_request(BASE)["messages"]


def test_the_relay_reaches_the_jobs_projects_models_only(api: ApiClient, vllm: StandIn) -> None:  # noqa: F811
    from tests.integration.service.test_chat import reply

    vllm.answer = reply(200, ANSWER)
    own = tuned_model(api)  # alpha's
    alpha_job, alpha_token = running_rft_job(api, api.key_a)
    beta_job, beta_token = running_rft_job(api, api.key_b)
    assert relay(api, alpha_job, alpha_token, grading_request(own)).status_code == 200
    asked = json.loads(vllm.seen[-1].body)
    assert asked["model"] == own
    alpha_id = api.http.get(f"/v1/fine_tuning/jobs/{alpha_job}", headers=api.auth()).json()[
        "organization_id"
    ]
    assert asked["cache_salt"] == cache_salt(alpha_id)  # alpha's prefix cache, as its chats
    sent = len(vllm.seen)
    for model in (own, "no-such-model"):
        answer = relay(api, beta_job, beta_token, grading_request(model))
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["param"] == "model"
    assert len(vllm.seen) == sent  # nothing reached vLLM for beta


def test_the_relay_takes_a_model_name_as_the_projects_chats_do(
    api: ApiClient,
    vllm: StandIn,  # noqa: F811
) -> None:
    """The project's alias stands for its target (a fine-tuned or a base model), as in
    `/v1/chat/completions`; another project's alias of that name is nothing to the job."""
    from tests.integration.service.test_chat import reply

    vllm.answer = reply(200, ANSWER)
    own = tuned_model(api)  # alpha's
    for name, model in (("grader-tuned", own), ("grader-base", BASE)):
        made = api.http.post(
            "/v1/models/aliases", json={"name": name, "model": model}, headers=api.auth()
        )
        assert made.status_code == 200, made.text
    alpha_job, alpha_token = running_rft_job(api, api.key_a)
    beta_job, beta_token = running_rft_job(api, api.key_b)
    for name, model in (("grader-tuned", own), ("grader-base", BASE)):
        assert relay(api, alpha_job, alpha_token, grading_request(name)).status_code == 200
        assert json.loads(vllm.seen[-1].body)["model"] == model
        assert relay(api, beta_job, beta_token, grading_request(name)).status_code == 404


def test_the_relay_answers_openai_errors(api: ApiClient, vllm: StandIn) -> None:  # noqa: F811
    """A grading model that is down is a 502; a bad body a 400; never a 500."""
    from tests.integration.service.test_chat import hang_up

    vllm.answer = hang_up
    job_id, token = running_rft_job(api, api.key_a)
    down = relay(api, job_id, token, grading_request(BASE))
    assert down.status_code == 502, down.text
    assert (
        down.json()["error"]["type"] == "server_error" and BASE in down.json()["error"]["message"]
    )
    for body, param in (
        ({"messages": []}, "model"),
        ({"model": BASE}, "messages"),
        ({**grading_request(BASE), "stream": True}, "stream"),
    ):
        answer = relay(api, job_id, token, body)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param
    bad_json = api.http.post(
        f"/internal/v1/jobs/{job_id}/grader/chat",
        content=b"{not json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"


# --- reward metrics: events and checkpoints ---------------------------------------------------


def report(api: ApiClient, job_id: str, token: str, message: Any) -> None:
    answer = api.http.post(
        f"/internal/v1/jobs/{job_id}/report",
        content=message.model_dump_json(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text


def test_reward_metrics_become_events_and_checkpoint_metrics(
    api: ApiClient, client: openai.OpenAI
) -> None:
    job_id, token = running_rft_job(api, api.key_a)
    subs = {"train_reward/exact": 0.5, "train_reward/close": 0.75}
    report(api, job_id, token, Metrics(
        step=1, total_steps=4, train_loss=0.1, train_reward_mean=0.625, sub_rewards=subs,
    ))  # fmt: skip
    report(api, job_id, token, Metrics(
        step=2, total_steps=4, train_loss=0.05, train_reward_mean=0.8, valid_reward_mean=0.7,
    ))  # fmt: skip
    key = f"jobs/{job_id}/checkpoints/step-00000002/"
    report(api, job_id, token, Checkpoint(
        step=2, epoch=1, kind="epoch", key=key, url=f"file:///x/{key}",
        metrics=StepMetrics(train_loss=0.05, train_reward_mean=0.8, valid_reward_mean=0.7,
                            sub_rewards=subs),
    ))  # fmt: skip

    metrics = [e for e in client.fine_tuning.jobs.list_events(job_id) if e.type == "metrics"]
    second, first = metrics  # newest first
    measured = {k: v for k, v in (first.data or {}).items() if v is not None}
    assert measured == {
        "step": 1, "total_steps": 4, "train_loss": 0.1, "train_reward_mean": 0.625, **subs,
    }  # fmt: skip
    assert "valid_reward_mean" not in (first.data or {})  # not measured at step 1: left out
    assert "train reward mean=0.6250" in first.message
    assert "validation reward mean=0.7000" in second.message
    assert second.data is not None and second.data["valid_reward_mean"] == 0.7

    raw = api.http.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints", headers=api.auth()).json()
    (checkpoint,) = raw["data"]
    assert checkpoint["metrics"] == {
        "step": 2, "train_loss": 0.05, "train_reward_mean": 0.8, "valid_reward_mean": 0.7, **subs,
    }  # fmt: skip
    assert_matches("FineTuningJobCheckpoint", checkpoint)
    (listed,) = client.fine_tuning.jobs.checkpoints.list(job_id)
    assert listed.metrics.step == 2 and listed.metrics.train_loss == 0.05


def test_the_relay_reaches_the_operators_grading_endpoint(tmp_path: Any, stand_in: str) -> None:  # noqa: F811
    """`WHETSTONE_GRADER_MODELS` at `WHETSTONE_GRADER_MODELS_URL` (a stand-in endpoint that
    records what it is asked): a grader may name them, and the relay asks the endpoint with the
    operator's key, never the trainer's token."""
    settings = Settings(
        data_dir=tmp_path / "data", grader_models_url=stand_in,
        grader_models_api_key="sk-grading", grader_models=["judge"],
    )  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        api = ApiClient(http, settings, create_key(http, "alpha"), create_key(http, "beta"))
        client = openai_client(api)
        judged = client.fine_tuning.jobs.create(
            model=BASE,
            training_file=upload(client),
            method=rft({**SCORE, "model": "judge"}),  # type: ignore[arg-type]
        )
        assert judged.status == "validating_files"
        job_id, token = running_rft_job(api, api.key_a)
        schema = {"type": "object", "properties": {"result": {"type": "number"}}}
        wanted = {"type": "json_schema", "json_schema": {"name": "score", "schema": schema}}
        body = {**grading_request("judge"), "response_format": wanted}
        answer = relay(api, job_id, token, body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == '{"result": 0.8}'
        (seen,) = Endpoint.bodies
        assert seen["auth"] == "Bearer sk-grading" and seen["model"] == "judge"


def test_a_grader_of_the_wrong_shape_is_named_as_openai_names_it(client: openai.OpenAI) -> None:
    """The field, not pydantic's union member (`grader.string_check.operation`)."""
    bad = {**CHECK, "operation": "equals"}
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.alpha.graders.validate(grader=bad)  # type: ignore[arg-type]
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "grader.operation"
