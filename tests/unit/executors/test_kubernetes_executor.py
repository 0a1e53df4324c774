"""The Kubernetes executor: the Job it builds and the API calls it makes.

No cluster can run on these machines. The manifests are checked against the Kubernetes 1.32
schemas offline (`kubernetes_validate`, strict), and the calls go through the official
client's `BatchV1Api`/`CoreV1Api` into an in-memory API server (`fake_kube.FakeCluster`)
that records them; nothing here shows how a real cluster schedules or runs the pods.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client as k8s

from service.executors.base import ExecutorError, Outcome
from service.executors.kubernetes_manifests import attempt_name, build_job, label_value
from service.executors.settings import ExecutorSettings
from tests.integration.deploy.pod_security import restricted_violations
from tests.unit.executors.conftest import KubeHarness, make_attempt
from tests.unit.executors.fake_kube import validate

NS = "whetstone"


def as_json(obj: Any) -> dict[str, Any]:
    """What the client sends over the wire (camelCase), as a dict."""
    data: dict[str, Any] = k8s.ApiClient().sanitize_for_serialization(obj)
    return data


def test_job_manifest_is_valid_and_carries_what_the_scheduler_relies_on(kube: KubeHarness) -> None:
    attempt = make_attempt("ftjob-AbC123", 2)
    job = as_json(build_job(kube.settings, attempt))
    validate(job)
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["backoffLimit"] == 0, "the scheduler owns retries"
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert "activeDeadlineSeconds" not in spec
    assert pod["restartPolicy"] == "Never"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert {"secretRef": {"name": "whetstone-s3"}} in container["envFrom"]
    assert job["metadata"]["labels"]["whetstone.dev/job-id"] == "ftjob-AbC123"
    assert job["metadata"]["labels"]["whetstone.dev/attempt"] == "2"
    assert spec["template"]["metadata"]["labels"] == job["metadata"]["labels"]
    assert container["command"] == ["python", "-m", "trainer"]
    assert container["args"] == ["run", "--spec", attempt.spec_url, "--report", attempt.report_url]
    token_var = next(e for e in container["env"] if e["name"] == "WHETSTONE_ATTEMPT_TOKEN")
    assert token_var["valueFrom"]["secretKeyRef"] == {"name": attempt_name(attempt), "key": "token"}
    assert attempt.token not in json.dumps(job), "the token lives only in its Secret"
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_optional_settings_reach_the_manifest() -> None:
    settings = ExecutorSettings(
        k8s_active_deadline_seconds=7200,
        k8s_gpu_per_job=4,
        k8s_memory_limit="200Gi",
        k8s_models_pvc=None,
        k8s_s3_secret=None,
        k8s_config_map=None,
    )
    job = as_json(build_job(settings, make_attempt()))
    validate(job)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    assert container["resources"]["limits"] == {"memory": "200Gi", "nvidia.com/gpu": "4"}
    assert "envFrom" not in container
    assert all(v["name"] != "models" for v in job["spec"]["template"]["spec"]["volumes"])


def test_cpu_only_jobs_request_no_gpu() -> None:
    job = as_json(build_job(ExecutorSettings(k8s_gpu_per_job=0), make_attempt()))
    validate(job)
    assert "nvidia.com/gpu" not in json.dumps(job["spec"]["template"]["spec"]["containers"])


def test_names_are_valid_and_unique_for_ids_that_differ_only_in_case() -> None:
    names = {attempt_name(make_attempt(job_id, 1)) for job_id in ("ftjob-abc", "ftjob-ABC")}
    assert len(names) == 2
    long = attempt_name(make_attempt("ftjob-" + "x" * 200, 99))
    for name in [*names, long]:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
    odd = label_value("org/Model Name:v2" + "!" * 80)
    assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", odd) and len(odd) <= 63


def test_launch_creates_a_suspended_job_then_its_owned_token_secret_then_resumes_it(
    kube: KubeHarness,
) -> None:
    """The Secret is created already owned by its Job: the scheduler never patches, reads or
    deletes a Secret (its Role grants Secrets `create` alone)."""
    attempt = make_attempt("ftjob-launch", sleep=60)
    handle = kube.executor.launch(attempt)
    name = attempt_name(attempt)
    assert handle == f"k8s:{NS}/{name}"
    calls = [c for c in kube.cluster.calls if c.method != "GET"]
    assert [(c.method, c.path) for c in calls] == [
        ("POST", f"/apis/batch/v1/namespaces/{NS}/jobs"),
        ("POST", f"/api/v1/namespaces/{NS}/secrets"),
        ("PATCH", f"/apis/batch/v1/namespaces/{NS}/jobs/{name}"),
    ]
    assert calls[0].body["spec"]["suspend"] is True, "no pod before its Secret exists"
    assert calls[2].body == [{"op": "replace", "path": "/spec/suspend", "value": False}]
    secret = kube.cluster.secrets[(NS, name)]
    assert secret["stringData"] == {"token": attempt.token}
    job_uid = kube.cluster.jobs[(NS, name)]["metadata"]["uid"]
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job_uid}
    ]
    assert kube.executor.poll(handle).outcome is Outcome.RUNNING


def test_refused_token_secret_leaves_no_job_behind(kube: KubeHarness) -> None:
    kube.cluster.failures.append(("POST", "/secrets", 403))
    with pytest.raises(ExecutorError, match="403"):
        kube.executor.launch(make_attempt("ftjob-no-secret"))
    assert kube.cluster.secrets == {} and kube.cluster.jobs == {} and kube.cluster.pods == {}


def test_the_trainer_pod_meets_pod_security_restricted(kube: KubeHarness) -> None:
    job = as_json(build_job(kube.settings, make_attempt("ftjob-psa")))
    assert restricted_violations(job["spec"]["template"]["spec"]) == []
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_secret_variables_go_into_the_attempts_secret_not_the_job(kube: KubeHarness) -> None:
    attempt = make_attempt("ftjob-wandb")
    attempt = dataclasses.replace(attempt, secret_env={"WANDB_API_KEY": "wandb-secret-key"})
    kube.executor.launch(attempt)
    name = attempt_name(attempt)
    secret = kube.cluster.secrets[(NS, name)]
    assert secret["stringData"] == {"token": attempt.token, "WANDB_API_KEY": "wandb-secret-key"}
    job = kube.cluster.jobs[(NS, name)]
    assert "wandb-secret-key" not in json.dumps(job)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["WANDB_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": name, "key": "WANDB_API_KEY",
    }  # fmt: skip
    validate(job)


def test_kill_deletes_the_job_in_the_background_and_its_secret(kube: KubeHarness) -> None:
    handle = kube.executor.launch(make_attempt("ftjob-kill", sleep=60))
    kube.executor.kill(handle)
    (delete,) = kube.cluster.calls_to("DELETE", "/jobs/")
    assert delete.query.get("propagationPolicy") == "Background"
    assert kube.cluster.jobs == {} and kube.cluster.secrets == {} and kube.cluster.pods == {}
    assert kube.executor.poll(handle).outcome is Outcome.LOST


def test_failed_pod_reports_the_trainer_exit_code_and_reason(kube: KubeHarness) -> None:
    attempt = make_attempt("ftjob-oom", sleep=60)
    handle = kube.executor.launch(attempt)
    kube.cluster.finish_pod(NS, attempt_name(attempt), 137, reason="OOMKilled")
    state = kube.executor.poll(handle)
    assert (state.outcome, state.exit_code, state.retryable) == (Outcome.FAILED, 137, True)
    assert "OOMKilled" in state.reason


def test_failed_job_without_a_pod_is_a_retryable_failure(kube: KubeHarness) -> None:
    attempt = make_attempt("ftjob-deadline", sleep=60)
    handle = kube.executor.launch(attempt)
    name = attempt_name(attempt)
    kube.cluster.delete_pods_of(NS, name)
    kube.cluster.jobs[(NS, name)]["status"] = {
        "failed": 1,
        "conditions": [
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "late"}
        ],
    }
    state = kube.executor.poll(handle)
    assert (state.outcome, state.exit_code, state.retryable) == (Outcome.FAILED, None, True)
    assert state.reason == "DeadlineExceeded: late"


def test_job_whose_pod_vanished_is_lost_after_the_start_timeout(kube: KubeHarness) -> None:
    attempt = make_attempt("ftjob-node-gone", sleep=60)
    handle = kube.executor.launch(attempt)
    kube.cluster.delete_pods(NS, attempt_name(attempt))
    assert kube.executor.poll(handle).outcome is Outcome.RUNNING  # may still be starting
    kube.cluster.now += timedelta(seconds=301)
    state = kube.executor.poll(handle)
    assert state.outcome is Outcome.LOST and state.retryable


def test_refused_job_creation_leaves_no_secret_behind(kube: KubeHarness) -> None:
    kube.cluster.failures.append(("POST", "/jobs", 403))
    with pytest.raises(ExecutorError, match="403"):
        kube.executor.launch(make_attempt("ftjob-forbidden"))
    assert kube.cluster.secrets == {} and kube.cluster.jobs == {}


def test_an_unreachable_api_is_an_error_not_a_lost_attempt(kube: KubeHarness) -> None:
    handle = kube.executor.launch(make_attempt("ftjob-blip", sleep=60))
    kube.cluster.failures.append(("GET", "/jobs/", 500))
    with pytest.raises(ExecutorError):
        kube.executor.poll(handle)
    assert kube.executor.poll(handle).outcome is Outcome.RUNNING


def test_running_lists_only_live_trainer_jobs_with_their_job_ids(kube: KubeHarness) -> None:
    live = kube.executor.launch(make_attempt("ftjob-Live", 3, sleep=60))
    kube.executor.launch(make_attempt("ftjob-done", 1, exit_code=0))
    listed = kube.executor.running()
    assert [(a.handle, a.job_id, a.number) for a in listed] == [(live, "ftjob-Live", 3)]
    (listing,) = kube.cluster.calls_to("GET", f"/namespaces/{NS}/jobs")[-1:]
    assert "app.kubernetes.io/managed-by=whetstone-scheduler" in listing.query["labelSelector"]
