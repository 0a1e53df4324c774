"""An in-memory Kubernetes API server under the real `kubernetes` client.

No cluster can run on these machines, so the executor talks to the official client's
`BatchV1Api`/`CoreV1Api` whose HTTP transport is replaced by `FakeCluster.request`: every call
goes through the client's real argument checks, URL building and serialisation, and the fake
records it (method, path, query, JSON body). Bodies that create objects are validated against
the Kubernetes 1.32 schemas (`kubernetes_validate`, strict) and refused with 422 when invalid,
as an API server would.

The "kubelet" is a stand-in: a created Job gets one pod whose fate is read from the container's
environment: `STANDIN_SLEEP` > 0 keeps it running; otherwise it ends with `STANDIN_EXIT`
(default 0). The same variables drive the local executor's stand-in trainer, so one contract
suite runs against both executors.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
from kubernetes import client as k8s
from kubernetes.client import rest

K8S_VERSION = "1.32.0"


def validate(doc: dict[str, Any]) -> None:
    """Raise `kubernetes_validate.ValidationError` unless `doc` fits the 1.32 schema (strict)."""
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class FakeCluster:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path fragment, status): the next matching request fails with that status."""

    def apis(self) -> tuple[k8s.BatchV1Api, k8s.CoreV1Api]:
        configuration = k8s.Configuration(host="https://kubernetes.invalid")
        api_client = k8s.ApiClient(configuration)
        api_client.rest_client = SimpleNamespace(request=self.request)
        return k8s.BatchV1Api(api_client), k8s.CoreV1Api(api_client)

    def clock(self) -> float:
        return self.now.timestamp()

    # --- what tests use to act as the cluster ------------------------------------------------

    def calls_to(self, method: str, fragment: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and fragment in c.path]

    def finish_pod(self, namespace: str, job: str, exit_code: int, reason: str = "Error") -> None:
        pod = self._pod_of(namespace, job)
        assert pod is not None, f"no pod for {job}"
        self._end(self.jobs[(namespace, job)], pod, exit_code, reason)

    def delete_pods(self, namespace: str, job: str) -> None:
        """What a vanished node looks like from the API: the pod is just gone."""
        self.delete_pods_of(namespace, job)
        self.jobs[(namespace, job)]["status"] = {}

    # --- the transport ------------------------------------------------------------------------

    def request(
        self, method: str, url: str, headers: Any = None, body: Any = None, **_: Any
    ) -> Any:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.calls.append(Call(method, parts.path, query, copy.deepcopy(body)))
        segments = parts.path.strip("/").split("/")
        failure = next((f for f in self.failures if f[0] == method and f[1] in parts.path), None)
        try:
            if failure is not None:
                self.failures.remove(failure)
                status, payload = failure[2], _status(failure[2], "Injected", "injected failure")
            else:
                status, payload = self._route(method, segments, query, body)
        except kubernetes_validate.ValidationError as e:
            status, payload = 422, _status(422, "Invalid", str(e.message))
        data = json.dumps(payload).encode()
        response = SimpleNamespace(
            status=status,
            reason=_reason(status),
            data=data,
            headers={"content-type": "application/json"},
        )
        return rest.RESTResponse(response)

    def _route(
        self, method: str, seg: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if seg[:2] == ["api", "v1"] and seg[2] == "namespaces":
            namespace, kind, rest_ = seg[3], seg[4], seg[5:]
            if kind == "secrets":
                return self._secrets(method, namespace, rest_, body)
            if kind == "pods" and method == "GET" and not rest_:
                return 200, self._list("PodList", self.pods, namespace, query)
        if seg[:3] == ["apis", "batch", "v1"] and seg[3] == "namespaces" and seg[5] == "jobs":
            return self._jobs(method, seg[4], seg[6:], query, body)
        return 404, _status(404, "NotFound", "/".join(seg))

    def _secrets(self, method: str, ns: str, rest_: list[str], body: Any) -> tuple[int, Any]:
        if method == "POST" and not rest_:
            validate(body)
            return self._create(self.secrets, ns, body)
        key = (ns, rest_[0]) if rest_ else (ns, "")
        if key not in self.secrets:
            return 404, _status(404, "NotFound", f'secrets "{key[1]}" not found')
        if method == "PATCH":
            for op in body:
                assert op["op"] == "add" and op["path"] == "/metadata/ownerReferences", op
                self.secrets[key]["metadata"]["ownerReferences"] = op["value"]
            validate(self.secrets[key])
            return 200, self.secrets[key]
        if method == "DELETE":
            del self.secrets[key]
            return 200, _status(200, "Success", "deleted")
        return 405, _status(405, "MethodNotAllowed", method)

    def _jobs(
        self, method: str, ns: str, rest_: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if not rest_:
            if method == "POST":
                validate(body)
                status, job = self._create(self.jobs, ns, body)
                if status == 201 and not job["spec"].get("suspend"):
                    self._start_pod(job)
                return status, job
            return 200, self._list("JobList", self.jobs, ns, query)
        key = (ns, rest_[0])
        if key not in self.jobs:
            return 404, _status(404, "NotFound", f'jobs.batch "{rest_[0]}" not found')
        if method == "GET":
            return 200, self.jobs[key]
        if method == "PATCH":  # JSON patch; the executor only resumes a suspended Job
            job = self.jobs[key]
            for op in body:
                assert op["op"] == "replace" and op["path"] == "/spec/suspend", op
                was, job["spec"]["suspend"] = job["spec"].get("suspend"), op["value"]
                if was and not op["value"]:
                    self._start_pod(job)
            validate(job)
            return 200, job
        if method == "DELETE":
            del self.jobs[key]
            self.delete_pods_of(ns, rest_[0])
            self._collect_owned(ns, rest_[0])
            return 200, _status(200, "Success", "deleted")
        return 405, _status(405, "MethodNotAllowed", method)

    def delete_pods_of(self, ns: str, job: str) -> None:
        for key in [k for k, p in self.pods.items() if _owner(p) == job and k[0] == ns]:
            del self.pods[key]

    def _collect_owned(self, ns: str, job: str) -> None:
        """The garbage collector: objects owned by a deleted Job go with it."""
        for key, secret in list(self.secrets.items()):
            owners = secret["metadata"].get("ownerReferences", [])
            if key[0] == ns and any(o["kind"] == "Job" and o["name"] == job for o in owners):
                del self.secrets[key]

    def _create(
        self, store: dict[tuple[str, str], dict[str, Any]], ns: str, body: dict[str, Any]
    ) -> tuple[int, Any]:
        name = body["metadata"]["name"]
        if (ns, name) in store:
            return 409, _status(409, "AlreadyExists", f'"{name}" already exists')
        obj = copy.deepcopy(body)
        obj["metadata"].update(
            namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_iso(self.now)
        )
        obj.setdefault("status", {})
        if obj["kind"] == "Secret":
            obj.pop("status")
        store[(ns, name)] = obj
        return 201, obj

    def _list(
        self,
        kind: str,
        store: dict[tuple[str, str], dict[str, Any]],
        ns: str,
        query: dict[str, str],
    ) -> dict[str, Any]:
        wanted = dict(p.split("=", 1) for p in query.get("labelSelector", "").split(",") if p)
        items = [
            o
            for (n, _), o in store.items()
            if n == ns and all(_labels(o).get(k) == v for k, v in wanted.items())
        ]
        return {"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items}

    # --- the stand-in kubelet -------------------------------------------------------------------

    def _start_pod(self, job: dict[str, Any]) -> None:
        template = job["spec"]["template"]
        name = job["metadata"]["name"]
        ns = job["metadata"]["namespace"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-abcde",
                "namespace": ns,
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": job["metadata"]["uid"],
                    }
                ],
            },
            "spec": template["spec"],
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "trainer",
                        "ready": True,
                        "restartCount": 0,
                        "image": "x",
                        "imageID": "x",
                        "state": {"running": {"startedAt": _iso(self.now)}},
                    }
                ],
            },
        }
        self.pods[(ns, pod["metadata"]["name"])] = pod
        job["status"] = {"active": 1, "startTime": _iso(self.now)}
        env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0].get("env", [])}
        if float(env.get("STANDIN_SLEEP") or 0) <= 0:
            self._end(job, pod, int(env.get("STANDIN_EXIT") or 0), "Error")

    def _pod_of(self, ns: str, job: str) -> dict[str, Any] | None:
        return next((p for k, p in self.pods.items() if k[0] == ns and _owner(p) == job), None)

    def _end(self, job: dict[str, Any], pod: dict[str, Any], code: int, reason: str) -> None:
        ok = code == 0
        pod["status"]["phase"] = "Succeeded" if ok else "Failed"
        pod["status"]["containerStatuses"][0]["state"] = {
            "terminated": {"exitCode": code, "reason": "Completed" if ok else reason}
        }
        condition = {
            "type": "Complete" if ok else "Failed",
            "status": "True",
            "reason": "Completed" if ok else "BackoffLimitExceeded",
            "message": "" if ok else "Job has reached the specified backoff limit",
        }
        job["status"] = {"succeeded" if ok else "failed": 1, "conditions": [condition]}


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("labels") or {})


def _owner(pod: dict[str, Any]) -> str | None:
    owners = pod["metadata"].get("ownerReferences", [])
    return owners[0]["name"] if owners else None


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure" if code >= 400 else "Success",
        "code": code,
        "reason": reason,
        "message": message,
        "metadata": {},
    }


def _reason(code: int) -> str:
    return {
        200: "OK",
        201: "Created",
        404: "Not Found",
        405: "Method Not Allowed",
        403: "Forbidden",
        409: "Conflict",
        422: "Unprocessable Entity",
        500: "Internal Server Error",
    }.get(code, "")
