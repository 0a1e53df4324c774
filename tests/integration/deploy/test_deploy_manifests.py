"""The Kubernetes manifests in deploy/: every overlay renders, validates, and is safe.

No cluster runs on these machines: each overlay is rendered with `kubectl kustomize` and
every document is validated offline against the Kubernetes 1.32 schemas
(`kubernetes_validate`, strict). What a cluster would do with them is not tested here.

`python -m tests.integration.deploy.test_deploy_manifests` rewrites deploy/trainer-job.example.yaml
from the executor (the test below fails when they drift apart).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from kubernetes import client as k8s

from service.executors.base import Attempt
from service.executors.kubernetes import KubernetesExecutor
from service.executors.kubernetes_manifests import build_job
from service.executors.settings import ExecutorSettings
from serving.launcher import BaseModelEntry, ResolverSettings, vllm_args, vllm_env
from tests.conftest import require
from tests.unit.executors.conftest import make_attempt
from tests.unit.executors.fake_kube import FakeCluster, validate

DEPLOY = Path(__file__).parents[3] / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
EXAMPLE = DEPLOY / "trainer-job.example.yaml"
Doc = dict[str, Any]


def render(overlay: str) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    require(kubectl is not None, "kubectl is not installed")
    assert kubectl is not None
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    return render(request.param)


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    return next(d for d in of_kind(docs, kind) if d["metadata"]["name"] == name)


def pod_templates(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod template) for every Deployment, StatefulSet and Job."""
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield d, d["spec"]["template"]


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def vllm_pods(docs: list[Doc]) -> list[tuple[Doc, Doc]]:
    return [
        (w, t)
        for w, t in pod_templates(docs)
        if t["metadata"]["labels"].get("app.kubernetes.io/component") == "vllm"
    ]


def test_overlays_exist() -> None:
    assert {"minio-postgres", "external"} <= set(OVERLAYS)


def test_every_document_is_valid_for_kubernetes_1_32(docs: list[Doc]) -> None:
    assert len(docs) > 10
    for doc in docs:
        validate(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "whetstone", doc["metadata"]["name"]


def test_vllm_is_reachable_only_inside_the_cluster(docs: list[Doc]) -> None:
    assert vllm_pods(docs)
    for _, template in vllm_pods(docs):
        services = [
            s
            for s in of_kind(docs, "Service")
            if selects({"matchLabels": s["spec"]["selector"]}, template["metadata"]["labels"])
        ]
        assert services, "each vLLM has a Service"
        for service in services:
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
            assert all("nodePort" not in p for p in service["spec"]["ports"])
        backends = {
            path["backend"]["service"]["name"]
            for ing in of_kind(docs, "Ingress")
            for rule in ing["spec"]["rules"]
            for path in rule["http"]["paths"]
        }
        assert not backends & {s["metadata"]["name"] for s in services}


def test_network_policy_admits_only_the_api_and_scheduler_pods_to_vllm(docs: list[Doc]) -> None:
    workloads = list(pod_templates(docs))
    for _, vllm in vllm_pods(docs):
        labels = vllm["metadata"]["labels"]
        policies = [
            p
            for p in of_kind(docs, "NetworkPolicy")
            if selects(p["spec"]["podSelector"], labels) and "Ingress" in p["spec"]["policyTypes"]
        ]
        assert policies, "a NetworkPolicy selects the vLLM pods"
        admitted = set()
        for policy in policies:
            for rule in policy["spec"].get("ingress", []):
                assert rule.get("from"), "a rule without `from` admits everyone"
                for peer in rule["from"]:
                    assert set(peer) == {"podSelector"}, "no other namespaces or IP blocks"
                    admitted |= {
                        w["metadata"]["name"]
                        for w, t in workloads
                        if selects(peer["podSelector"], t["metadata"]["labels"])
                    }
        assert admitted == {"whetstone-api", "whetstone-scheduler"}


def test_vllm_runs_with_the_resolver_as_the_launcher_says(docs: list[Doc]) -> None:
    registry = yaml.safe_load(
        named(docs, "ConfigMap", "whetstone-base-models")["data"]["base-models.yaml"]
    )
    entries = {m["name"]: BaseModelEntry.model_validate(m) for m in registry["models"]}
    config = named(docs, "ConfigMap", "whetstone-config")["data"]
    served = set()
    for workload, template in vllm_pods(docs):
        (container,) = template["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        entry = entries[env["WHETSTONE_BASE_MODEL"]]
        served.add(entry.name)
        assert container["args"] == vllm_args(entry, port=8000, host="0.0.0.0")
        resolver = ResolverSettings(
            object_store_url=config["WHETSTONE_OBJECT_STORE_URL"],
            lora_cache_dir=env["WHETSTONE_LORA_CACHE_DIR"],
            s3_endpoint_url=config.get("WHETSTONE_S3_ENDPOINT_URL"),
        )
        assert vllm_env(entry, resolver).items() <= env.items(), workload["metadata"]["name"]
        assert env["VLLM_PLUGINS"] == "whetstone_lora_resolver"
        assert "--enable-lora" in container["args"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert served == set(entries), "one vLLM Deployment per registered base model"


def _secret_refs(container: Doc) -> dict[str, tuple[str, str]]:
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_every_vllm_wants_the_api_key_the_api_holds(docs: list[Doc]) -> None:
    (api,) = named(docs, "Deployment", "whetstone-api")["spec"]["template"]["spec"]["containers"]
    held = _secret_refs(api)["WHETSTONE_VLLM_API_KEY"]
    secret = named(docs, "Secret", held[0])
    assert held[1] in secret["stringData"]
    pods = list(vllm_pods(docs))
    assert pods
    for _, template in pods:
        (container,) = template["spec"]["containers"]
        assert _secret_refs(container)["VLLM_API_KEY"] == held
        assert "--api-key" not in container["args"]  # a command line is readable by all


def executor_settings(docs: list[Doc]) -> ExecutorSettings:
    """The scheduler's executor settings as its Deployment gives them."""
    data = dict(named(docs, "ConfigMap", "whetstone-config")["data"])
    data["WHETSTONE_K8S_NAMESPACE"] = named(docs, "Deployment", "whetstone-scheduler")["metadata"][
        "namespace"
    ]
    with mock.patch.dict(os.environ, data, clear=True):  # read exactly as the process would
        return ExecutorSettings()


def sample_job(settings: ExecutorSettings) -> Doc:
    attempt = Attempt(
        job_id="ftjob-Example1234567890abcdEF",
        number=1,
        spec_url="s3://whetstone/objects/jobs/ftjob-Example1234567890abcdEF/spec.json",
        report_url="http://whetstone-api:8000/internal/v1/jobs/ftjob-Example1234567890abcdEF/report",
        token="not-a-real-token",
        base_model="llama-3.1-8b-instruct",
    )
    job: Doc = k8s.ApiClient().sanitize_for_serialization(build_job(settings, attempt))
    return job


def test_trainer_jobs_of_each_install_are_valid_and_use_what_it_provides(docs: list[Doc]) -> None:
    job = sample_job(executor_settings(docs))
    validate(job)
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["backoffLimit"] == 0
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["serviceAccountName"] in {
        d["metadata"]["name"] for d in of_kind(docs, "ServiceAccount")
    }
    for source in container["envFrom"]:
        kind, ref = (
            ("Secret", source["secretRef"])
            if "secretRef" in source
            else ("ConfigMap", source["configMapRef"])
        )
        assert named(docs, kind, ref["name"])
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims and all(named(docs, "PersistentVolumeClaim", c) for c in claims)
    assert (
        container["image"]
        == named(docs, "ConfigMap", "whetstone-config")["data"]["WHETSTONE_K8S_TRAINER_IMAGE"]
    )


def test_trainer_job_example_is_what_the_executor_builds() -> None:
    expected = sample_job(executor_settings(render("minio-postgres")))
    assert yaml.safe_load(EXAMPLE.read_text()) == expected, (
        "deploy/trainer-job.example.yaml is stale: run "
        "`python -m tests.integration.deploy.test_deploy_manifests`"
    )


def test_no_secret_holds_real_credentials(docs: list[Doc]) -> None:
    not_secret = {"POSTGRES_USER", "POSTGRES_DB"}
    secrets = of_kind(docs, "Secret")
    assert {s["metadata"]["name"] for s in secrets} >= {"whetstone-s3", "whetstone-database"}
    for secret in secrets:
        values = dict(secret.get("stringData") or {})
        values |= {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        for key, value in values.items():
            if key not in not_secret:
                assert "CHANGE-ME" in value, (
                    f"{secret['metadata']['name']}.{key} is not a placeholder"
                )
    text = yaml.safe_dump_all(docs)
    assert not re.search(r"AKIA[0-9A-Z]{16}|BEGIN [A-Z ]*PRIVATE KEY", text)


def _required_permissions() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) for every call the executor makes, from a recorded run."""
    cluster = FakeCluster()
    ex = KubernetesExecutor(ExecutorSettings(), *cluster.apis(), clock=cluster.clock)
    handle = ex.launch(make_attempt(sleep=60))
    ex.poll(handle)
    ex.running()
    cluster.delete_pods(*handle.removeprefix("k8s:").split("/"))
    ex.poll(handle)
    ex.kill(handle)
    verbs = {"POST": "create", "PATCH": "patch", "DELETE": "delete"}
    needed = set()
    for call in cluster.calls:
        parts = call.path.strip("/").split("/")
        group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
        resource = rest[2] + ("/" + rest[4] if len(rest) > 4 else "")
        verb = verbs.get(call.method) or ("get" if len(rest) > 3 else "list")
        needed.add((group, resource, verb))
    return needed


def test_scheduler_may_make_every_call_of_the_executor_in_its_namespace_only(
    docs: list[Doc],
) -> None:
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    binding = named(docs, "RoleBinding", "whetstone-scheduler")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "whetstone-scheduler", "namespace": "whetstone"}
    ]
    role = named(docs, "Role", binding["roleRef"]["name"])
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = _required_permissions()
    assert ("batch", "jobs", "create") in needed
    assert needed <= granted, f"missing: {sorted(needed - granted)}"
    scheduler = named(docs, "Deployment", "whetstone-scheduler")["spec"]["template"]["spec"]
    assert scheduler["serviceAccountName"] == "whetstone-scheduler"


def test_only_the_scheduler_gets_a_kubernetes_api_token(docs: list[Doc]) -> None:
    for workload, template in pod_templates(docs):
        spec = template["spec"]
        if workload["metadata"]["name"] == "whetstone-scheduler":
            continue
        account = spec.get("serviceAccountName")
        account_doc = named(docs, "ServiceAccount", account) if account else {}
        assert spec.get("automountServiceAccountToken") is False or (
            account_doc.get("automountServiceAccountToken") is False
        ), workload["metadata"]["name"]


if __name__ == "__main__":
    job = sample_job(executor_settings(render("minio-postgres")))
    header = (
        "# One trainer attempt as the scheduler creates it (service/executors/kubernetes.py),\n"
        "# with the settings of overlays/minio-postgres. Generated, for reading: do not apply.\n"
        "# Created suspended; the scheduler resumes it once the token Secret it reads exists.\n"
        "# Regenerate: python -m tests.integration.deploy.test_deploy_manifests\n"
    )
    EXAMPLE.write_text(header + yaml.safe_dump(job, sort_keys=False))


def test_the_monitoring_example_scrapes_the_named_metrics_ports(docs: list[Doc]) -> None:
    """The example ServiceMonitor's `metrics` port is the api Service's, which reaches the
    API container's `metrics` port, the port WHETSTONE_METRICS_PORT moves /metrics to; the
    PodMonitor finds the scheduler pods' port of that name."""
    monitors = list(yaml.safe_load_all((DEPLOY / "monitoring.example.yaml").read_text()))
    service_monitor = next(d for d in monitors if d["kind"] == "ServiceMonitor")
    pod_monitor = next(d for d in monitors if d["kind"] == "PodMonitor")
    service = named(docs, "Service", "whetstone-api")
    assert selects(service_monitor["spec"]["selector"], service["metadata"]["labels"])
    port = next(p for p in service["spec"]["ports"] if p["name"] == "metrics")
    assert [e["port"] for e in service_monitor["spec"]["endpoints"]] == ["metrics"]
    config = named(docs, "ConfigMap", "whetstone-config")["data"]
    for name, monitor_selector in (
        ("whetstone-api", service["spec"]["selector"]),
        ("whetstone-scheduler", pod_monitor["spec"]["selector"]["matchLabels"]),
    ):
        template = named(docs, "Deployment", name)["spec"]["template"]
        assert all(template["metadata"]["labels"].get(k) == v for k, v in monitor_selector.items())
        ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        assert ports["metrics"] == int(config["WHETSTONE_METRICS_PORT"]) == port["port"]
    assert [e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
