"""The manifests of a trainer attempt on Kubernetes, built with the official client's models.

Per attempt, in the configured namespace, both named `wst-{job}-{n}-{hash}` (`attempt_name`):

- a Job with `backoffLimit: 0` (the scheduler owns retries), `ttlSecondsAfterFinished`, the GPU
  request, node selector and tolerations from the settings, S3 credentials from a Secret
  (`envFrom`), labels linking it to the job (`whetstone.dev/job-id`, `whetstone.dev/attempt`),
  and a pod that meets Pod Security `restricted` (non-root, no privilege escalation, no
  capabilities, RuntimeDefault seccomp, read-only root filesystem). It is built suspended;
- a Secret holding the attempt's token (`token`) and its other secret variables
  (`Attempt.secret_env`, the W&B API key), owned by that Job when its uid is known.

The token reaches the trainer as the environment variable `WHETSTONE_ATTEMPT_TOKEN`, taken
from the Secret (`secretKeyRef`), as the other secret variables are: it is never written into
the Job object nor put on the trainer's command line. `service.executors.kubernetes` creates
them in the order that keeps the scheduler's rights small.
"""

from __future__ import annotations

import hashlib
import re

from kubernetes import client as k8s

from contracts.messages import ATTEMPT_TOKEN_ENV
from service.executors.base import Attempt
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


def build_secret(
    settings: ExecutorSettings, attempt: Attempt, job_uid: str | None = None
) -> k8s.V1Secret:
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
            namespace=settings.k8s_namespace,
            labels=_labels(attempt),
            owner_references=owner,
        ),
        string_data={**attempt.secret_env, "token": attempt.token},
    )


def build_job(settings: ExecutorSettings, attempt: Attempt) -> k8s.V1Job:
    """The attempt's Job, created suspended (`KubernetesExecutor.launch` resumes it)."""
    s = settings
    name = attempt_name(attempt)
    labels = _labels(attempt)
    pod = k8s.V1PodSpec(
        restart_policy="Never",
        containers=[_container(s, attempt)],
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
        volumes=_volumes(s),
    )
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=name,
            namespace=settings.k8s_namespace,
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


def _labels(attempt: Attempt) -> dict[str, str]:
    return {
        **MANAGED_LABELS,
        JOB_ID_LABEL: label_value(attempt.job_id),
        ATTEMPT_LABEL: str(attempt.number),
        ATTEMPT_NAME_LABEL: attempt_name(attempt),
        BASE_MODEL_LABEL: label_value(attempt.base_model),
    }


def _container(settings: ExecutorSettings, attempt: Attempt) -> k8s.V1Container:
    s = settings
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
        env_from.append(k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=s.k8s_s3_secret)))
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


def _volumes(settings: ExecutorSettings) -> list[k8s.V1Volume]:
    volumes = [
        k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource()),
        k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory")),
    ]
    if settings.k8s_models_pvc:
        claim = k8s.V1PersistentVolumeClaimVolumeSource(
            claim_name=settings.k8s_models_pvc, read_only=True
        )
        volumes.append(k8s.V1Volume(name="models", persistent_volume_claim=claim))
    return volumes
