"""The graders' settings (`WHETSTONE_GRADER_*`), a section of `service.settings.Settings`."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.graders.sandbox import Limits


class GraderSettings(BaseSettings):
    """Python graders' sandbox limits; the external grading endpoint of model graders."""

    model_config = SettingsConfigDict(env_prefix="WHETSTONE_", extra="ignore")

    # --- Graders: the Python sandbox, model graders, `cosine` ------------------------------
    grader_python_wall_seconds: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="Wall-clock seconds a Python grader may run on one sample before it is "
        "killed (OpenAI's limit is 2 minutes).",
    )
    grader_python_cpu_seconds: int = Field(
        default=30,
        ge=1,
        le=600,
        description="CPU seconds a Python grader may use on one sample (RLIMIT_CPU).",
    )
    grader_python_memory_mb: int = Field(
        default=1024,
        ge=64,
        description="Address space of a Python grader's process, in MiB (RLIMIT_AS).",
    )
    grader_python_disk_mb: int = Field(
        default=64,
        ge=1,
        description="Size of a Python grader's private writable folder (`/work`), in MiB; "
        "also the largest file it may write (RLIMIT_FSIZE).",
    )
    grader_python_output_kb: int = Field(
        default=1024,
        ge=1,
        description="What a Python grader may print (stdout and stderr together), in KiB, "
        "before it is killed; the first 8 KiB of each are reported.",
    )
    grader_python_concurrency: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Python graders one API process runs at once; others wait (up to their "
        "wall-clock limit). Each may use `WHETSTONE_GRADER_PYTHON_MEMORY_MB`.",
    )
    grader_models_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible endpoint (`https://host/v1`) for `score_model` and "
        "`label_model` graders whose model this server does not serve; its models are "
        "`WHETSTONE_GRADER_MODELS`.",
    )
    grader_models_api_key: SecretStr | None = Field(
        default=None,
        description="Bearer token for `WHETSTONE_GRADER_MODELS_URL`.",
    )
    grader_models: list[str] = Field(
        default_factory=list,
        description="Models of `WHETSTONE_GRADER_MODELS_URL` that graders may name, as JSON: "
        '`["gpt-4.1-mini"]`. A model grader naming another model must name a base or '
        "fine-tuned model of this server (its project's).",
    )
    grader_embedding_model: str | None = Field(
        default=None,
        description="The embedding model of `WHETSTONE_GRADER_MODELS_URL` (its `/embeddings`) "
        "that the `cosine` metric of `text_similarity` graders uses; unset, `cosine` is a 400.",
    )
    grader_models_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Seconds to wait for one answer of a grading model.",
    )

    def grader_limits(self) -> Limits:
        return Limits(
            wall_seconds=self.grader_python_wall_seconds,
            cpu_seconds=self.grader_python_cpu_seconds,
            memory_bytes=self.grader_python_memory_mb * 1024 * 1024,
            work_bytes=self.grader_python_disk_mb * 1024 * 1024,
            file_bytes=self.grader_python_disk_mb * 1024 * 1024,
            output_bytes=self.grader_python_output_kb * 1024,
        )
