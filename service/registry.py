"""The base-model registry: which base models jobs may train and vLLM may serve.

A YAML file (`WHETSTONE_BASE_MODELS_FILE`)::

    models:
      - name: whetstone-tiny
        path: /data/base-models/whetstone-tiny
        max_seq_len: 1024
        serving: {}          # serving.launcher.ServingOptions
        auto: {n_epochs: 25, learning_rate_multiplier: 10}   # what `auto` gives its jobs
      - name: qwen2.5-7b-instruct
        source: hf://Qwen/Qwen2.5-7B-Instruct@main   # revision optional, default main
        # no path: {models_dir}/qwen2.5-7b-instruct (WHETSTONE_MODELS_DIR)

An entry gives `path` (a local Hugging Face folder), `source` (a Hugging Face repository that
`whetstone models pull` downloads into `path`, see `service.hub`), or both. Unset, the
registry holds the built-in tiny model under the data folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from service.settings import TINY_MODEL_MAX_SEQ_LEN, TINY_MODEL_NAME, Settings
from serving.launcher import AutoHyperparameters, BaseModelEntry

__all__ = ["BaseModelEntry", "RegistryError", "load_registry"]

TINY_MODEL_AUTO = AutoHyperparameters(n_epochs=25, learning_rate_multiplier=10)
"""The built-in random-weight model learns its answers from nothing: 25 epochs at 2e-3 (the
demo's sixteen examples are then answered as trained), not a pretrained model's 2e-4."""


class RegistryError(ValueError):
    """The registry file cannot be used; the message names the file and the entry."""


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[BaseModelEntry]

    @field_validator("models")
    @classmethod
    def _unique(cls, models: list[BaseModelEntry]) -> list[BaseModelEntry]:
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"base model names must be unique, got {names}")
        return models


def load_registry(settings: Settings) -> dict[str, BaseModelEntry]:
    """Name -> entry, from the registry file or the built-in default.

    An entry with a `source` and no `path` gets `{models_dir}/{name}`.
    """
    if settings.base_models_file is None:
        tiny = BaseModelEntry(
            name=TINY_MODEL_NAME,
            path=str(settings.tiny_model_dir),
            max_seq_len=TINY_MODEL_MAX_SEQ_LEN,
            auto=TINY_MODEL_AUTO,
        )
        return {tiny.name: tiny}
    path = Path(settings.base_models_file)
    raw = yaml.safe_load(path.read_text()) or {"models": []}
    if isinstance(raw, dict) and isinstance(raw.get("models"), list):
        raw = {**raw, "models": [_with_path(m, settings) for m in raw["models"]]}
    try:
        parsed = RegistryFile.model_validate(raw)
    except ValidationError as e:
        raise RegistryError(f"{path}: {_explain(e, raw)}") from e
    return {m.name: m for m in parsed.models}


def _with_path(item: Any, settings: Settings) -> Any:
    """`item` with `path` filled in when it names only a `source`."""
    if isinstance(item, dict) and item.get("path") is None and "name" in item:
        if item.get("source") is None:
            return item  # validation says that `path` is missing
        return {**item, "path": str(settings.resolved_models_dir / str(item["name"]))}
    return item


def _explain(error: ValidationError, raw: Any) -> str:
    """One line per problem, naming the entry (`models[1] (qwen)`) rather than an index path."""
    lines = []
    for problem in error.errors(include_url=False):
        loc = list(problem["loc"])
        where = ".".join(str(p) for p in loc) or "file"
        if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
            item = raw["models"][loc[1]]
            name = item.get("name") if isinstance(item, dict) else None
            field = ".".join(str(p) for p in loc[2:])
            where = (
                f"models[{loc[1]}]"
                + (f" ({name})" if name else "")
                + (f" {field}" if field else "")
            )
            if field == "path" and problem["type"] == "missing":
                problem = {
                    **problem,
                    "msg": "give `path` (a local folder), `source` (hf://...), or both",
                }
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
