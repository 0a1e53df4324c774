"""The control plane's settings: one object per process, read from `WHETSTONE_*` variables.

Build it once (`Settings()`), pass it to `create_app(settings)`; nothing else reads
`os.environ`. Paths left unset derive from `data_dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from service.executors.settings import ExecutorSettings
from service.gpus import GPU_LIST_PATTERN
from service.graders.settings import GraderSettings
from service.webhooks.settings import WebhookSettings

TINY_MODEL_NAME = "whetstone-tiny"
TINY_MODEL_MAX_SEQ_LEN = 1024


class Settings(ExecutorSettings, GraderSettings, WebhookSettings):
    """Every setting of the control plane, one flat class, one section per area (the
    executor's section, `WHETSTONE_EXECUTOR`, `WHETSTONE_TRAINER_*`, `WHETSTONE_K8S_*`, is
    inherited from `service.executors.settings.ExecutorSettings`; the graders',
    `WHETSTONE_GRADER_*`, from `service.graders.settings.GraderSettings`; the webhooks',
    `WHETSTONE_WEBHOOK_*`, from `service.webhooks.settings.WebhookSettings`)."""

    model_config = SettingsConfigDict(env_prefix="WHETSTONE_", extra="ignore")

    # --- Storage: data folder, database, object store -----------------------------------
    data_dir: Path = Field(
        default=Path(".whetstone"),
        description="Folder for the embedded defaults: SQLite database, objects, base models.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default `sqlite:///{data_dir}/whetstone.db`. "
        "Postgres: `postgresql+psycopg://user@host/db`.",
    )
    object_store_url: str | None = Field(
        default=None,
        description="`file:///abs/path` or `s3://bucket/prefix`; default `file://{data_dir}/objects`.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint for MinIO or moto; unset means AWS."
    )

    # --- Files ---------------------------------------------------------------------------
    max_file_bytes: int = Field(
        default=16 * 1024**3, ge=1, description="Largest accepted upload, in bytes."
    )
    max_json_body_bytes: int = Field(
        default=1024**2,
        ge=1024,
        description="Most bytes of a request body on every route but the three below (job "
        "creation, Uploads, webhooks, the Admin API, trainer reports); more answers 413 before "
        "it is read (`Content-Length`) or as it arrives (chunked). docs/security.md.",
    )
    max_chat_body_bytes: int = Field(
        default=16 * 1024**2,
        ge=1024,
        description="Most bytes of a `POST /v1/chat/completions` body; more answers 413. "
        "`POST /v1/files` takes `WHETSTONE_MAX_FILE_BYTES` plus 128 KiB for the form, an "
        "Upload's part 64 MiB plus the same.",
    )

    # --- Base models ---------------------------------------------------------------------
    base_models_file: Path | None = Field(
        default=None,
        description="Registry YAML of base models; unset: the built-in `whetstone-tiny` at "
        "`{data_dir}/base-models/whetstone-tiny`.",
    )
    models_dir: Path | None = Field(
        default=None,
        description="Folder of the base models that the registry names only by `source` "
        "(`hf://ORG/NAME[@REVISION]`): each is downloaded to `{models_dir}/{name}` by "
        "`whetstone models pull`; default `{data_dir}/models`. On Kubernetes, the models "
        "volume's mount path (`WHETSTONE_K8S_MODELS_MOUNT_PATH`).",
    )

    # --- Serving: where chat completions go ----------------------------------------------
    vllm_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Base model name -> URL of its vLLM (`http://host:port`, no `/v1`), as JSON: "
        '`{"whetstone-tiny": "http://vllm-whetstone-tiny:8000"}`. On Kubernetes, the ClusterIP '
        "Service of each base model's vLLM. A base model not listed here is served by the "
        "local supervisor (`whetstone up`), if any; otherwise chat answers 503.",
    )
    vllm_api_key: SecretStr | None = Field(
        default=None,
        description="The API key of the vLLMs at `WHETSTONE_VLLM_URLS` (their `VLLM_API_KEY`): "
        "sent as a bearer token with every request the service makes to them. The local "
        "supervisor's vLLMs get a fresh random key each start instead.",
    )
    vllm_connect_timeout: float = Field(
        default=2.0,
        gt=0,
        description="Seconds to connect to a vLLM before answering 503 (vLLM down or starting).",
    )
    vllm_read_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds to wait for a vLLM's next bytes (a whole non-streamed answer, or "
        "the next chunk of a stream) before answering 504.",
    )
    chat_access_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Seconds a chat request's check (the API key is known, the model is its "
        "project's) is remembered, so that a stream of requests skips the database. Only "
        "successes are kept; a model deleted through another API replica can still be "
        "routed (to a vLLM that no longer finds it) for this long. A revoked key, a deleted "
        "checkpoint permission or an archived project is refused from the next request on by "
        "every API process of the data folder. 0 checks every request.",
    )
    vllm_gpus: str = Field(
        default="auto",
        pattern=GPU_LIST_PATTERN,
        description="`whetstone up`: GPUs the local vLLMs of `device: gpu` base models use, in "
        "turn (`CUDA_VISIBLE_DEVICES` of each): `0,1` (ids as `nvidia-smi` counts them), "
        "`none`, or `auto`: with one GPU, vLLM and the trainers share it; with more, vLLM "
        "gets the first ones (one per base model while one is left for the trainers), the "
        "trainers the rest (`WHETSTONE_TRAINER_GPUS`). No GPU: nothing changes.",
    )
    vllm_gpu_share_when_shared: float = Field(
        default=0.35,
        gt=0,
        lt=1,
        description="`whetstone up`: share of a GPU's memory the vLLMs on it get together "
        "(`--gpu-memory-utilization`) when trainers use that GPU too; the trainers keep "
        "the rest.",
    )

    # --- Scheduler: validation, claiming, leases -------------------------------------------
    scheduler_poll_seconds: float = Field(
        default=1.0, gt=0, description="Seconds between two scheduler rounds."
    )
    scheduler_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="An attempt with no message from its trainer (heartbeats included) for "
        "this long is declared lost, killed, and the job resumes from its last checkpoint.",
    )
    scheduler_start_seconds: float = Field(
        default=300.0,
        gt=0,
        description="The lease of a new attempt: time for the trainer to start (pull an image, "
        "load the model) and send its first message.",
    )
    scheduler_max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts per job before it fails for good."
    )
    scheduler_checkpoint_every_steps: int | None = Field(
        default=None,
        ge=1,
        description="Steps between two step checkpoints; unset: the JobSpec's default.",
    )
    trainer_micro_batch_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Most tokens (padding included) per forward/backward pass of a trainer; "
        "a step's examples are split into micro-batches of at most this many. Lower it when "
        "a large base model runs out of GPU memory. Unset: the JobSpec's default (8192).",
    )
    trainer_report_max_wait_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a trainer keeps trying to deliver one progress report while "
        "the API is unreachable (it waits, then stops; the lease requeues the job).",
    )

    # --- Weights & Biases: jobs with a `wandb` integration ---------------------------------
    wandb_api_key: SecretStr | None = Field(
        default=None,
        description="W&B API key the trainers of jobs with a `wandb` integration log with "
        "(their `WANDB_API_KEY`; never taken from a job). Unset: a local trainer inherits "
        "the service's own `WANDB_API_KEY`, if any; without a key the job says so in a "
        "`warn` event and trains on.",
    )
    wandb_base_url: str | None = Field(
        default=None,
        description="W&B server of those runs (their `WANDB_BASE_URL`), e.g. a dedicated "
        "or self-hosted one; unset: W&B's cloud.",
    )

    # --- Evaluation report of a succeeded job --------------------------------------------
    eval_enabled: bool = Field(
        default=True,
        description="Evaluate every succeeded job (base, fine-tuned and checkpoint models, "
        "greedy answers through vLLM) into its `eval_report.json` result file.",
    )
    eval_max_examples: int = Field(
        default=50, ge=1, le=10000, description="Most examples an evaluation answers per model."
    )
    eval_max_tokens: int = Field(
        default=128, ge=1, le=8192, description="Most tokens of each evaluation answer."
    )
    eval_max_checkpoints: int = Field(
        default=3, ge=0, le=100, description="Most checkpoints (the latest) an evaluation scores."
    )
    eval_concurrency: int = Field(
        default=8, ge=1, le=256, description="Evaluation requests in flight to a vLLM at once."
    )
    eval_holdout_fraction: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="A job without a validation file: share of its training lines set aside "
        "(not trained on) for its evaluation, at most `eval_max_examples`; 0 sets none aside. "
        "A job whose `metadata.source_answers_file` answers training lines (`whetstone migrate "
        "--evaluate` of a job without a validation file) holds out those lines instead.",
    )
    eval_holdout_min_examples: int = Field(
        default=50,
        ge=2,
        description="Training files with fewer lines than this keep them all for training "
        "(no held-out evaluation without a validation file).",
    )
    eval_wait_seconds: float = Field(
        default=600.0,
        ge=0,
        description="How long after a job succeeds its evaluation waits for the base model's "
        "vLLM to be reachable (starting, restarting) before it gives up with a warning.",
    )
    eval_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="An evaluation whose scheduler has not renewed it for this long (the "
        "process died) is run again by the next scheduler round.",
    )

    # --- HTTP server ---------------------------------------------------------------------
    host: str = Field(
        default="127.0.0.1", description="Address the API binds to; `0.0.0.0` for every one."
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the API.")
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=4096,
        description="Most bytes of a request's line and headers; more answers 431 and closes "
        "the connection.",
    )

    # --- Operations: logs, metrics, limits -------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per log line (`ts`, `level`, `logger`, `message`, "
        "and `request_id`, `job_id`, `project` on the lines that have them), for a log "
        "collector; `text`: lines for people.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve `/metrics` on this port (same host) instead of the API's port; "
        "`python -m service.scheduler` serves its own metrics (queue wait, run seconds) "
        "only when this is set. Unset: the API answers `/metrics` itself.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="When set, `/metrics` needs `Authorization: Bearer <this token>` (a "
        "Prometheus `authorization` credential); project API keys are never asked there. "
        "Unset, `/metrics` answers only while `WHETSTONE_HOST` is a loopback address (403 "
        "`metrics_token_required` otherwise).",
    )
    rate_limit_requests_per_minute: int = Field(
        default=1000,
        ge=0,
        description="Requests per minute each API key may make to `/v1/...` (a token bucket, "
        "in this API process: with several replicas each one counts its own); over it, 429 "
        "`rate_limit_exceeded` with `retry-after`. Requests whose key this process has not "
        "seen accepted (none, an unknown one, a key's first request) also share one bucket "
        "per client address, so random keys are limited too. 0: no limit.",
    )
    rate_limit_burst: int | None = Field(
        default=None,
        ge=1,
        description="Requests a key may make at once before the per-minute rate applies "
        "(the bucket's size); unset: the per-minute number.",
    )
    quota_running_jobs: int = Field(
        default=8,
        ge=0,
        description="Jobs of one project training at once; more wait `queued` for a slot. "
        "0: no limit.",
    )
    quota_queued_jobs: int = Field(
        default=100,
        ge=0,
        description="Jobs of one project waiting to train (`validating_files` or `queued`); "
        "creating one more answers 400 `quota_exceeded`. 0: no limit.",
    )
    quota_storage_bytes: int = Field(
        default=100 * 1024**3,
        ge=0,
        description="Bytes of uploaded files one project may keep, counting the `bytes` its "
        "pending uploads (Uploads API) declared; a file or an upload that would pass it "
        "answers 400 `quota_exceeded` and stores nothing. 0: no limit.",
    )

    # --- Security: quotas and fairness (defaults on) --------------------------------------
    uploads_sweep_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Seconds between two sweeps, by the scheduler, of uploads (Uploads API) "
        "that expired (an hour after creation) or ended: their parts are removed from the "
        "store and their declared bytes stop counting against the storage quota.",
    )

    eval_source_answers_max_bytes: int = Field(
        default=256 * 1024**2,
        ge=1,
        description="Most bytes of a job's `metadata.source_answers_file` its evaluation reads "
        "(streamed, a line at most 1 MiB, only the answers of the examples evaluated kept); "
        "a larger file scores no source model and says so in the report.",
    )

    # --- Derived values --------------------------------------------------------------------
    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'whetstone.db'}"

    @property
    def resolved_object_store_url(self) -> str:
        if self.object_store_url:
            return self.object_store_url
        return (self.resolved_data_dir / "objects").as_uri()

    @property
    def resolved_report_base_url(self) -> str:
        """Where trainers reach `/internal/v1/...` (`trainer_report_base_url`, else host:port)."""
        if self.trainer_report_base_url:
            return self.trainer_report_base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def resolved_models_dir(self) -> Path:
        """Where registry entries with only a `source` live: `{models_dir}/{name}`."""
        if self.models_dir is not None:
            return self.models_dir.expanduser().resolve()
        return self.resolved_data_dir / "models"

    @property
    def tiny_model_dir(self) -> Path:
        """Where the built-in tiny base model lives when no registry file is given."""
        return self.resolved_data_dir / "base-models" / TINY_MODEL_NAME
