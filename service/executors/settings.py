"""Executor settings: where trainer attempts run and how (`WHETSTONE_*` variables).

The service's `Settings` inherits these fields, so they read from the same environment with
the same prefix (`WHETSTONE_EXECUTOR=kubernetes`, `WHETSTONE_K8S_GPU_PER_JOB=2`, ...).
Mappings and lists are JSON: `WHETSTONE_K8S_NODE_SELECTOR='{"nvidia.com/gpu.present": "true"}'`,
`WHETSTONE_K8S_TOLERATIONS='[{"key": "nvidia.com/gpu", "operator": "Exists"}]'`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.gpus import GPU_LIST_PATTERN


class Toleration(BaseModel):
    """A Kubernetes toleration, written as in a pod spec (`tolerationSeconds` in camelCase)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, alias="tolerationSeconds")


class ExecutorSettings(BaseSettings):
    """Where and how trainer attempts run."""

    model_config = SettingsConfigDict(env_prefix="WHETSTONE_", extra="ignore")

    # --- Both executors ----------------------------------------------------------------------
    executor: Literal["local", "kubernetes"] = Field(
        default="local",
        description="`local`: a subprocess per attempt on this machine; `kubernetes`: a "
        "`batch/v1` Job per attempt.",
    )
    trainer_slots: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Attempts running at once: local processes, or Kubernetes Jobs in the "
        "namespace (shared by every scheduler replica).",
    )
    trainer_report_base_url: str | None = Field(
        default=None,
        description="Base URL at which trainers reach the service's internal endpoint, e.g. "
        "`http://whetstone-api:8000`; unset: `http://{host}:{port}`.",
    )
    trainer_kill_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Local: seconds between SIGTERM (checkpoint and exit) and SIGKILL.",
    )
    trainer_command: list[str] | None = Field(
        default=None,
        description="Local: the command before `run --spec ...`; default "
        "`[sys.executable, '-m', 'trainer']`.",
    )
    trainer_gpus: str = Field(
        default="auto",
        pattern=GPU_LIST_PATTERN,
        description="Local: GPUs trainer attempts may use, one each, in turn (each attempt's "
        "`CUDA_VISIBLE_DEVICES`): `0,1` (ids as `nvidia-smi` counts them), `none` (the CPU), "
        "or `auto`: `whetstone up` gives the trainers the GPUs vLLM does not take (see "
        "`WHETSTONE_VLLM_GPUS`); elsewhere `auto` leaves the environment as it is.",
    )

    # --- Kubernetes ----------------------------------------------------------------------------
    k8s_namespace: str = Field(default="whetstone", description="Namespace of trainer Jobs.")
    k8s_trainer_image: str = Field(
        default="whetstone/trainer:0.1.0", description="Image of trainer pods."
    )
    k8s_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="`imagePullPolicy` of trainer pods."
    )
    k8s_gpu_per_job: int = Field(
        default=1, ge=0, le=16, description="GPUs per attempt (`nvidia.com/gpu`); 0 for CPU."
    )
    k8s_gpu_resource: str = Field(
        default="nvidia.com/gpu", description="Extended resource name of the GPUs."
    )
    k8s_cpu_request: str | None = Field(default="4", description="e.g. `4` or `3500m`.")
    k8s_memory_request: str | None = Field(default="32Gi", description="e.g. `32Gi`.")
    k8s_memory_limit: str | None = Field(default=None, description="Unset: no limit.")
    k8s_node_selector: dict[str, str] = Field(
        default_factory=dict, description="`nodeSelector` of trainer pods (JSON object)."
    )
    k8s_tolerations: list[Toleration] = Field(
        default_factory=list, description="`tolerations` of trainer pods (JSON list)."
    )
    k8s_service_account: str | None = Field(
        default="whetstone-trainer",
        description="Service account of trainer pods; its API token is never mounted.",
    )
    k8s_s3_secret: str | None = Field(
        default="whetstone-s3",
        description="Secret whose keys become the trainer's environment "
        "(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).",
    )
    k8s_config_map: str | None = Field(
        default="whetstone-trainer",
        description="ConfigMap whose keys become the trainer's environment "
        "(`WHETSTONE_S3_ENDPOINT_URL`, ...).",
    )
    k8s_models_pvc: str | None = Field(
        default="whetstone-models",
        description="PersistentVolumeClaim holding the base models, mounted read-only.",
    )
    k8s_models_mount_path: str = Field(
        default="/models", description="Where base model folders are (their registry `path`)."
    )
    k8s_job_ttl_seconds: int = Field(
        default=3600, ge=0, description="`ttlSecondsAfterFinished` of each trainer Job."
    )
    k8s_active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Hard limit on one attempt's run time."
    )
    k8s_termination_grace_seconds: int = Field(
        default=120, ge=0, description="Time a pod gets after SIGTERM to save its checkpoint."
    )
    k8s_start_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A Job with no pod this long after creation is reported `lost`.",
    )
