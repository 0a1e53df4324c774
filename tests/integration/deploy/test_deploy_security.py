"""What deploy/ defends, asserted on every rendered overlay (and on the trainer Job the
scheduler builds): least-privilege RBAC for the scheduler, Pod Security `restricted`
everywhere, default-deny NetworkPolicies with only the connections Whetstone needs, and
read-only object-store credentials for vLLM. No cluster runs here: the policies are evaluated
by `netpol` and `pod_security`, written from the Kubernetes documentation."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.integration.deploy.netpol import Address, Endpoint, Pod, allowed
from tests.integration.deploy.pod_security import restricted_violations
from tests.integration.deploy.test_deploy_manifests import (
    DEPLOY,
    Doc,
    _required_permissions,
    executor_settings,
    named,
    of_kind,
    pod_templates,
    render,
    sample_job,
)

OVERLAYS = ["minio-postgres", "external"]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, render(request.param)


def _pods(docs: list[Doc]) -> dict[str, Doc]:
    """Every pod spec of the install by component, the scheduler's trainer Job included."""
    component = "app.kubernetes.io/component"
    pods = {t["metadata"]["labels"][component]: t for _, t in pod_templates(docs)}
    pods["trainer"] = sample_job(executor_settings(docs))["spec"]["template"]
    return pods


# --- RBAC ---------------------------------------------------------------------------------------


def _granted(docs: list[Doc]) -> set[tuple[str, str, str]]:
    role = named(docs, "Role", "whetstone-scheduler")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_scheduler_is_granted_exactly_the_calls_it_makes(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    granted = _granted(docs)
    assert granted == _required_permissions()
    assert {v for g, r, v in granted if r == "secrets"} == {"create"}, (
        "no get/list/watch (reading), no patch/delete (both answer with the whole Secret)"
    )
    assert not {r for _, r, _ in granted} & {"pods/log", "pods/exec", "pods/attach", "*"}
    assert "*" not in {v for _, _, v in granted}
    bound = [b["roleRef"]["name"] for b in of_kind(docs, "RoleBinding")]
    assert bound == ["whetstone-scheduler"] and not of_kind(docs, "ClusterRoleBinding")


# --- Pod Security -------------------------------------------------------------------------------


def test_the_namespace_enforces_audits_and_warns_pod_security_restricted(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    (namespace,) = of_kind(docs, "Namespace")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_every_pod_meets_pod_security_restricted(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    pods = _pods(docs)
    assert {"api", "scheduler", "vllm", "trainer"} <= set(pods)
    pull = yaml.safe_load((DEPLOY / "models-pull-job.example.yaml").read_text())
    pods["models-pull"] = pull["spec"]["template"]
    for component, template in pods.items():
        assert restricted_violations(template["spec"]) == [], component


def test_vllm_runs_unprivileged_on_a_read_only_root(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    spec = _pods(docs)["vllm"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    tmp = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["HOME"] == "/tmp" and "/tmp" in tmp, "caches need a writable home"


# --- Object-store credentials -------------------------------------------------------------------


def _secrets_used(container: Doc) -> set[str]:
    names = {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            names.add(ref["name"])
    return names


def test_the_scheduler_holds_vllms_key_for_the_evaluation(overlay: tuple[str, list[Doc]]) -> None:
    """The evaluation runs in the scheduler and asks vLLM, whose /v1 routes want the key."""
    _name, docs = overlay
    (container,) = _pods(docs)["scheduler"]["spec"]["containers"]
    keys = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}
    assert keys["WHETSTONE_VLLM_API_KEY"] == {"name": "whetstone-vllm", "key": "api-key"}


def test_vllm_holds_only_read_only_object_store_credentials(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    (container,) = _pods(docs)["vllm"]["spec"]["containers"]
    assert _secrets_used(container) == {"whetstone-s3-readonly", "whetstone-vllm"}
    readonly = named(docs, "Secret", "whetstone-s3-readonly")["stringData"]
    assert set(readonly) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for component in ("api", "scheduler", "trainer"):
        (c,) = _pods(docs)[component]["spec"]["containers"]
        assert "whetstone-s3-readonly" not in _secrets_used(c), component


def test_minio_gives_the_read_only_user_a_policy_that_can_write_nothing() -> None:
    docs = render("minio-postgres")
    policy = json.loads(
        named(docs, "ConfigMap", "minio-readonly-policy")["data"]["whetstone-readonly.json"]
    )
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:GetObject", "s3:ListBucket"}
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    store = named(docs, "ConfigMap", "whetstone-config")["data"]["WHETSTONE_OBJECT_STORE_URL"]
    bucket, prefix = store.removeprefix("s3://").split("/", 1)
    reads = {r for s in policy["Statement"] if "s3:GetObject" in s["Action"] for r in s["Resource"]}
    arn = f"arn:aws:s3:::{bucket}/{prefix}"
    assert reads == {f"{arn}/models/*", f"{arn}/jobs/*"}, "pointers and adapters, no files"
    setup = named(docs, "Job", "minio-setup")["spec"]["template"]["spec"]
    (mc,) = setup["containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in mc["env"]}
    readonly_user = {"name": "whetstone-s3-readonly", "key": "AWS_ACCESS_KEY_ID"}
    assert env["READONLY_ACCESS_KEY_ID"] == readonly_user
    script = " ".join(" ".join(mc["args"]).split())
    policy_file = "/policy/whetstone-readonly.json"
    assert f"admin policy create whetstone whetstone-readonly {policy_file}" in script
    assert 'policy attach whetstone whetstone-readonly --user "$READONLY_ACCESS_KEY_ID"' in script
    volumes = {v["name"]: v for v in setup["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "minio-readonly-policy"


# --- NetworkPolicy ------------------------------------------------------------------------------

DNS = Pod({"k8s-app": "kube-dns"}, namespace="kube-system", ip="10.96.0.10")
KUBE_API = Address("10.0.0.1")
METADATA = Address("169.254.169.254")
PUBLIC = Address("203.0.113.10")
PRIVATE = Address("10.20.30.40")
ELSEWHERE = Pod({"app": "curious"}, namespace="other", ip="10.244.9.9")
INGRESS_CONTROLLER = Pod({"app": "ingress-nginx"}, namespace="ingress-nginx", ip="10.244.8.8")
NEIGHBOUR = Pod({"app": "neighbour"}, ip="10.244.7.7")  # another workload in the namespace


def _endpoints(name: str, docs: list[Doc]) -> dict[str, Any]:
    """Each part as an endpoint, with the database and object store of overlay `name`."""
    at = {c: Pod(t["metadata"]["labels"]) for c, t in _pods(docs).items()}
    if name == "minio-postgres":
        at["database"], at["s3"] = (at["postgres"], 5432), (at["minio"], 9000)
    else:
        at["database"], at["s3"] = (Address("10.20.0.5"), 5432), (Address("52.216.0.1"), 443)
    return at


def test_everything_is_denied_unless_allowed(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    deny = [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "a default-deny policy for ingress and egress"
    assert not allowed(docs, NEIGHBOUR, PUBLIC, 443) and not allowed(docs, ELSEWHERE, NEIGHBOUR, 80)


def test_the_connections_whetstone_needs_are_allowed(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    at = _endpoints(name, docs)
    (database, db_port), (s3, s3_port) = at["database"], at["s3"]
    api, scheduler, trainer, vllm = at["api"], at["scheduler"], at["trainer"], at["vllm"]
    needed: list[tuple[str, Endpoint, Endpoint, int]] = [
        ("the Ingress controller -> API", INGRESS_CONTROLLER, api, 8000),
        ("API -> database", api, database, db_port),
        ("API -> object store", api, s3, s3_port),
        ("API -> vLLM", api, vllm, 8000),
        ("scheduler -> Kubernetes API", scheduler, KUBE_API, 443),
        ("scheduler -> database", scheduler, database, db_port),
        ("scheduler -> object store", scheduler, s3, s3_port),
        ("scheduler -> vLLM (the evaluation's answers)", scheduler, vllm, 8000),
        ("scheduler -> a public webhook receiver", scheduler, PUBLIC, 443),
        ("trainer -> object store", trainer, s3, s3_port),
        ("trainer -> API (progress reports)", trainer, api, 8000),
        ("vLLM -> object store", vllm, s3, s3_port),
    ]
    for what, src, dst, port in needed:
        assert allowed(docs, src, dst, port), what
    for part in (api, scheduler, trainer, vllm):
        assert allowed(docs, part, DNS, 53, "UDP") and allowed(docs, part, DNS, 53, "TCP")


def test_everything_else_is_denied(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    at = _endpoints(name, docs)
    (database, db_port), (s3, s3_port) = at["database"], at["s3"]
    api, scheduler, trainer, vllm = at["api"], at["scheduler"], at["trainer"], at["vllm"]
    denied: list[tuple[str, Endpoint, Endpoint, int]] = [
        ("another namespace -> vLLM", ELSEWHERE, vllm, 8000),
        ("a neighbour -> vLLM", NEIGHBOUR, vllm, 8000),
        ("trainer -> vLLM", trainer, vllm, 8000),
        ("vLLM -> API", vllm, api, 8000),
        ("vLLM -> database", vllm, database, db_port),
        ("vLLM -> Kubernetes API", vllm, KUBE_API, 443),
        ("vLLM -> cloud metadata", vllm, METADATA, 80),
        ("vLLM -> another vLLM", vllm, vllm, 8000),
        ("trainer -> database", trainer, database, db_port),
        ("trainer -> Kubernetes API", trainer, KUBE_API, 6443),
        ("trainer -> cloud metadata", trainer, METADATA, 80),
        ("API -> Kubernetes API", api, KUBE_API, 6443),
        ("API -> cloud metadata", api, METADATA, 80),
        ("scheduler -> cloud metadata (webhook)", scheduler, METADATA, 80),
        ("scheduler -> a private address (webhook)", scheduler, PRIVATE, 80),
        ("another namespace -> trainer", ELSEWHERE, trainer, 8000),
        ("another namespace -> scheduler", ELSEWHERE, scheduler, 8000),
    ]
    if name == "minio-postgres":  # in-cluster: nothing needs the internet but webhooks
        denied += [
            ("vLLM -> the internet", vllm, PUBLIC, 443),
            ("trainer -> the internet", trainer, PUBLIC, 443),
            ("API -> the internet", api, PUBLIC, 443),
            ("another namespace -> database", ELSEWHERE, database, db_port),
            ("another namespace -> object store", ELSEWHERE, s3, s3_port),
        ]
    else:
        denied += [("vLLM -> cloud metadata over HTTPS", vllm, METADATA, 443)]
    for what, src, dst, port in denied:
        assert not allowed(docs, src, dst, port), what


def test_the_deploy_docs_say_network_policies_need_an_enforcing_plugin() -> None:
    text = " ".join((DEPLOY / "README.md").read_text().split())
    assert "network plugin must enforce NetworkPolicies" in text
