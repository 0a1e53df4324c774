"""Kubernetes executor: a `batch/v1` Job per attempt, built with the official client's models.

Per attempt, in the configured namespace, both named `wst-{job}-{n}-{hash}`:

- a Job with `backoffLimit: 0` (the scheduler owns retries), `ttlSecondsAfterFinished`, the GPU
  request, node selector and tolerations from the settings, S3 credentials from a Secret
  (`envFrom`), labels linking it to the job (`whetstone.dev/job-id`, `whetstone.dev/attempt`),
  and a pod that meets Pod Security `restricted` (non-root, no privilege escalation, no
  capabilities, RuntimeDefault seccomp, read-only root filesystem). It is created suspended;
- a Secret holding the attempt's token (`token`), created owned by that Job, so that the
  garbage collector removes it with the Job; then the Job is resumed (`suspend: false`).

This order is what lets the scheduler's Role grant Secrets `create` alone: it never reads,
patches or deletes a Secret (deploy/base/rbac.yaml), so it cannot read one it did not create.

The token reaches the trainer as the environment variable `WHETSTONE_ATTEMPT_TOKEN`, taken
from the Secret (`secretKeyRef`): it is never written into the Job object nor put on the
trainer's command line. The attempt's other secret variables (`Attempt.secret_env`, the W&B
API key) are keys of the same Secret, read the same way.
A handle is `k8s:{namespace}/{job name}`. `kill` deletes the Job (propagation `Background`):
the pod gets SIGTERM, saves a checkpoint and exits within the termination grace period; the
garbage collector deletes the token Secret with it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from contracts.messages import ATTEMPT_TOKEN_ENV, EXIT_OK
from service.executors.base import (
    Attempt,
    AttemptState,
    ExecutorError,
    ExecutorFull,
    LiveAttempt,
    Outcome,
)
from service.executors.settings import ExecutorSettings

TOKEN_ENV = ATTEMPT_TOKEN_ENV
CONTAINER = "trainer"
TRAINER_COMMAND = ["python", "-m", "trainer"]
MANAGED_LABELS = {
    "app.kubernetes.io/name": "whetstone",
    "app.kubernetes.io/component": "trainer",
    "app.kubernetes.io/managed-by": "whetstone-scheduler",
}
JOB_ID_LABEL = "whetstone.dev/job-id"
ATTEMPT_LABEL = "whetstone.dev/attempt"
ATTEMPT_NAME_LABEL = "whetstone.dev/attempt-name"
BASE_MODEL_LABEL = "whetstone.dev/base-model"
JOB_ID_ANNOTATION = "whetstone.dev/job-id"
_PREFIX = "k8s:"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def attempt_name(attempt: Attempt) -> str:
    """A DNS-1123 name unique per (job id, attempt): job ids are case-sensitive, names not."""
    slug = re.sub(r"[^a-z0-9-]+", "-", attempt.job_id.lower()).strip("-")[:40].strip("-")
    digest = hashlib.sha256(attempt.job_id.encode()).hexdigest()[:8]
    return f"wst-{slug or 'job'}-{attempt.number}-{digest}"


def label_value(value: str) -> str:
    """`value` if Kubernetes accepts it as a label value, else a readable safe form."""
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:54].strip("-_.")
    return f"{safe}-{hashlib.sha256(value.encode()).hexdigest()[:8]}".lstrip("-_.")


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

    # --- manifests ---------------------------------------------------------------------------

    def build_secret(self, attempt: Attempt, job_uid: str | None = None) -> k8s.V1Secret:
        """The attempt's token Secret, owned by its Job (uid `job_uid`) when given."""
        owner = None
        if job_uid:
            owner = [
                k8s.V1OwnerReference(
                    api_version="batch/v1", kind="Job", name=attempt_name(attempt), uid=job_uid
                )
            ]
        return k8s.V1Secret(
            api_version="v1",
            kind="Secret",
            type="Opaque",
            metadata=k8s.V1ObjectMeta(
                name=attempt_name(attempt),
                namespace=self.namespace,
                labels=self._labels(attempt),
                owner_references=owner,
            ),
            string_data={**attempt.secret_env, "token": attempt.token},
        )

    def build_job(self, attempt: Attempt) -> k8s.V1Job:
        s = self._settings
        name = attempt_name(attempt)
        labels = self._labels(attempt)
        pod = k8s.V1PodSpec(
            restart_policy="Never",
            containers=[self._container(attempt)],
            node_selector=dict(s.k8s_node_selector) or None,
            tolerations=[
                k8s.V1Toleration(
                    key=t.key,
                    operator=t.operator,
                    value=t.value,
                    effect=t.effect,
                    toleration_seconds=t.toleration_seconds,
                )
                for t in s.k8s_tolerations
            ]
            or None,
            service_account_name=s.k8s_service_account,
            automount_service_account_token=False,
            termination_grace_period_seconds=s.k8s_termination_grace_seconds,
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=10001,
                run_as_group=10001,
                fs_group=10001,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            ),
            volumes=self._volumes(),
        )
        return k8s.V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=k8s.V1ObjectMeta(
                name=name,
                namespace=self.namespace,
                labels=labels,
                annotations={JOB_ID_ANNOTATION: attempt.job_id},
            ),
            spec=k8s.V1JobSpec(
                suspend=True,  # until its token Secret exists (`launch`)
                backoff_limit=0,
                completions=1,
                parallelism=1,
                ttl_seconds_after_finished=s.k8s_job_ttl_seconds,
                active_deadline_seconds=s.k8s_active_deadline_seconds,
                template=k8s.V1PodTemplateSpec(
                    metadata=k8s.V1ObjectMeta(
                        labels=labels, annotations={JOB_ID_ANNOTATION: attempt.job_id}
                    ),
                    spec=pod,
                ),
            ),
        )

    def _labels(self, attempt: Attempt) -> dict[str, str]:
        return {
            **MANAGED_LABELS,
            JOB_ID_LABEL: label_value(attempt.job_id),
            ATTEMPT_LABEL: str(attempt.number),
            ATTEMPT_NAME_LABEL: attempt_name(attempt),
            BASE_MODEL_LABEL: label_value(attempt.base_model),
        }

    def _container(self, attempt: Attempt) -> k8s.V1Container:
        s = self._settings
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        if s.k8s_cpu_request:
            requests["cpu"] = s.k8s_cpu_request
        if s.k8s_memory_request:
            requests["memory"] = s.k8s_memory_request
        if s.k8s_memory_limit:
            limits["memory"] = s.k8s_memory_limit
        if s.k8s_gpu_per_job:
            requests[s.k8s_gpu_resource] = limits[s.k8s_gpu_resource] = str(s.k8s_gpu_per_job)
        env_from = []
        if s.k8s_s3_secret:
            env_from.append(
                k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=s.k8s_s3_secret))
            )
        if s.k8s_config_map:
            env_from.append(
                k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=s.k8s_config_map))
            )
        token = k8s.V1EnvVar(
            name=TOKEN_ENV,
            value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=attempt_name(attempt), key="token")
            ),
        )
        extra = {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", **attempt.env}
        secrets = [
            k8s.V1EnvVar(
                name=name,
                value_from=k8s.V1EnvVarSource(
                    secret_key_ref=k8s.V1SecretKeySelector(name=attempt_name(attempt), key=name)
                ),
            )
            for name in sorted(attempt.secret_env)
        ]
        mounts = [
            k8s.V1VolumeMount(name="scratch", mount_path="/tmp"),
            k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"),
        ]
        if s.k8s_models_pvc:
            mounts.append(
                k8s.V1VolumeMount(name="models", mount_path=s.k8s_models_mount_path, read_only=True)
            )
        return k8s.V1Container(
            name=CONTAINER,
            image=s.k8s_trainer_image,
            image_pull_policy=s.k8s_image_pull_policy,
            command=TRAINER_COMMAND,
            args=attempt.trainer_args(),
            env=[
                token,
                *secrets,
                *(k8s.V1EnvVar(name=k, value=v) for k, v in sorted(extra.items())),
            ],
            env_from=env_from or None,
            resources=k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None),
            volume_mounts=mounts,
            security_context=k8s.V1SecurityContext(
                allow_privilege_escalation=False,
                capabilities=k8s.V1Capabilities(drop=["ALL"]),
                read_only_root_filesystem=True,  # it writes to /tmp and /dev/shm (emptyDirs)
                run_as_non_root=True,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            ),
        )

    def _volumes(self) -> list[k8s.V1Volume]:
        volumes = [
            k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource()),
            k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory")),
        ]
        if self._settings.k8s_models_pvc:
            claim = k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name=self._settings.k8s_models_pvc, read_only=True
            )
            volumes.append(k8s.V1Volume(name="models", persistent_volume_claim=claim))
        return volumes

    # --- the port ----------------------------------------------------------------------------

    def launch(self, attempt: Attempt) -> str:
        if len(self.running()) >= self.capacity:
            raise ExecutorFull(f"{self.capacity} trainer Jobs already run in {self.namespace}")
        name = attempt_name(attempt)
        try:
            job = self._batch.create_namespaced_job(self.namespace, self.build_job(attempt))
        except ApiException as e:
            raise ExecutorError(f"cannot create Job {name}: {_why(e)}") from e
        uid = job.metadata.uid if job.metadata else None
        try:
            self._core.create_namespaced_secret(self.namespace, self.build_secret(attempt, uid))
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
