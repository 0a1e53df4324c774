"""Kubernetes executor: a `batch/v1` Job per attempt (`service.executors.kubernetes_manifests`
builds it and its token Secret), launched, watched and deleted through the Kubernetes API.

The Job is created suspended; then the Secret holding the attempt's token, created owned by
that Job, so that the garbage collector removes it with the Job; then the Job is resumed
(`suspend: false`). This order is what lets the scheduler's Role grant Secrets `create`
alone: it never reads, patches or deletes a Secret (deploy/base/rbac.yaml), so it cannot
read one it did not create.

A handle is `k8s:{namespace}/{job name}`. `kill` deletes the Job (propagation `Background`):
the pod gets SIGTERM, saves a checkpoint and exits within the termination grace period; the
garbage collector deletes the token Secret with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from contracts.messages import EXIT_OK
from service.executors.base import (
    Attempt,
    AttemptState,
    ExecutorError,
    ExecutorFull,
    LiveAttempt,
    Outcome,
)
from service.executors.kubernetes_manifests import (
    ATTEMPT_LABEL,
    ATTEMPT_NAME_LABEL,
    CONTAINER,
    JOB_ID_ANNOTATION,
    JOB_ID_LABEL,
    MANAGED_LABELS,
    attempt_name,
    build_job,
    build_secret,
)
from service.executors.settings import ExecutorSettings

_PREFIX = "k8s:"


class KubernetesExecutor:
    """Launches, watches and deletes trainer Jobs through the Kubernetes API."""

    def __init__(
        self,
        settings: ExecutorSettings,
        batch: k8s.BatchV1Api,
        core: k8s.CoreV1Api,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._batch = batch
        self._core = core
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: ExecutorSettings) -> KubernetesExecutor:
        """In a pod: the service account's credentials; elsewhere: the kubeconfig."""
        from kubernetes import config

        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        api = k8s.ApiClient()
        return cls(settings, k8s.BatchV1Api(api), k8s.CoreV1Api(api))

    @property
    def capacity(self) -> int:
        return self._settings.trainer_slots

    @property
    def namespace(self) -> str:
        return self._settings.k8s_namespace

    # --- the port ----------------------------------------------------------------------------

    def launch(self, attempt: Attempt) -> str:
        if len(self.running()) >= self.capacity:
            raise ExecutorFull(f"{self.capacity} trainer Jobs already run in {self.namespace}")
        name = attempt_name(attempt)
        try:
            job = self._batch.create_namespaced_job(
                self.namespace, build_job(self._settings, attempt)
            )
        except ApiException as e:
            raise ExecutorError(f"cannot create Job {name}: {_why(e)}") from e
        uid = job.metadata.uid if job.metadata else None
        try:
            self._core.create_namespaced_secret(
                self.namespace, build_secret(self._settings, attempt, uid)
            )
            resume = [{"op": "replace", "path": "/spec/suspend", "value": False}]  # JSON patch
            self._batch.patch_namespaced_job(name, self.namespace, resume)
        except ApiException as e:
            self._delete_job(name, self.namespace)  # its Secret, if any, goes with it
            raise ExecutorError(f"cannot start Job {name}: {_why(e)}") from e
        return f"{_PREFIX}{self.namespace}/{name}"

    def poll(self, handle: str) -> AttemptState:
        parsed = _parse(handle)
        if parsed is None:
            return AttemptState.lost(f"not a Kubernetes executor handle: {handle!r}")
        namespace, name = parsed
        try:
            job = self._batch.read_namespaced_job_status(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return AttemptState.lost(f"Job {name} is gone")
            raise ExecutorError(f"cannot read Job {name}: {_why(e)}") from e
        status = job.status or k8s.V1JobStatus()
        true = {c.type: c for c in status.conditions or [] if c.status == "True"}
        if "Complete" in true or (status.succeeded or 0) > 0:
            return AttemptState.from_exit_code(EXIT_OK)
        if "Failed" in true or (status.failed or 0) > 0:
            return self._failed(namespace, name, true.get("Failed"))
        if (status.active or 0) > 0:
            return AttemptState.running()
        if self._pods(namespace, name):
            return AttemptState.running()
        created = job.metadata.creation_timestamp if job.metadata else None
        age = self._clock() - created.timestamp() if created is not None else 0.0
        if age > self._settings.k8s_start_timeout_seconds:
            return AttemptState.lost(f"Job {name} has had no pod for {age:.0f} s")
        return AttemptState.running()

    def kill(self, handle: str) -> None:
        parsed = _parse(handle)
        if parsed is None:
            return
        self._delete_job(parsed[1], parsed[0])

    def running(self) -> list[LiveAttempt]:
        selector = ",".join(f"{k}={v}" for k, v in MANAGED_LABELS.items())
        try:
            jobs = self._batch.list_namespaced_job(self.namespace, label_selector=selector)
        except ApiException as e:
            raise ExecutorError(f"cannot list Jobs in {self.namespace}: {_why(e)}") from e
        live = []
        for job in jobs.items:
            meta = job.metadata
            if meta is None or meta.name is None or meta.deletion_timestamp is not None:
                continue
            status = job.status or k8s.V1JobStatus()
            finished = {c.type for c in status.conditions or [] if c.status == "True"}
            if finished & {"Complete", "Failed"} or status.succeeded or status.failed:
                continue
            labels = meta.labels or {}
            job_id = (meta.annotations or {}).get(JOB_ID_ANNOTATION) or labels.get(JOB_ID_LABEL, "")
            number = int(labels.get(ATTEMPT_LABEL, "0") or 0)
            live.append(LiveAttempt(f"{_PREFIX}{self.namespace}/{meta.name}", job_id, number))
        return live

    # --- internals ---------------------------------------------------------------------------

    def _failed(self, namespace: str, name: str, condition: Any) -> AttemptState:
        """The trainer's exit code from its pod; without one (evicted, deadline) retryable."""
        why = ""
        if condition is not None:
            why = f"{condition.reason or 'Failed'}: {condition.message or ''}".strip(": ")
        for pod in self._pods(namespace, name):
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                term = cs.state.terminated if cs.state else None
                if cs.name == CONTAINER and term is not None:
                    reason = f"exit code {term.exit_code}"
                    if term.reason and term.reason not in ("Error", "Completed"):
                        reason += f" ({term.reason})"
                    return AttemptState.from_exit_code(term.exit_code, reason)
            if pod.status and pod.status.reason:
                why = why or f"{pod.status.reason}: {pod.status.message or ''}".strip(": ")
        return AttemptState(Outcome.FAILED, None, why or f"Job {name} failed", retryable=True)

    def _pods(self, namespace: str, name: str) -> list[k8s.V1Pod]:
        try:
            pods = self._core.list_namespaced_pod(
                namespace, label_selector=f"{ATTEMPT_NAME_LABEL}={name}"
            )
        except ApiException as e:
            raise ExecutorError(f"cannot list pods of Job {name}: {_why(e)}") from e
        return list(pods.items)

    def _delete_job(self, name: str, namespace: str) -> None:
        """Delete the Job; its pod and its token Secret (owned by it) go with it."""
        try:
            self._batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                raise ExecutorError(f"cannot delete Job {name}: {_why(e)}") from e


def _parse(handle: str) -> tuple[str, str] | None:
    if not handle.startswith(_PREFIX) or handle.count("/") != 1:
        return None
    namespace, name = handle[len(_PREFIX) :].split("/")
    return (namespace, name) if namespace and name else None


def _why(e: ApiException) -> str:
    return f"{e.status} {e.reason}".strip()
