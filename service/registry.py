"""The base-model registry: which base models jobs may train and vLLM may serve.

A YAML file (`WHETSTONE_BASE_MODELS_FILE`)::

    models:
      - name: whetstone-tiny
        path: /data/base-models/whetstone-tiny
        max_seq_len: 1024
        serving: {}          # serving.launcher.ServingOptions

Unset, the registry holds the built-in tiny model under the data folder.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from service.settings import TINY_MODEL_MAX_SEQ_LEN, TINY_MODEL_NAME, Settings
from serving.launcher import BaseModelEntry

__all__ = ["BaseModelEntry", "load_registry"]


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[BaseModelEntry]


def load_registry(settings: Settings) -> dict[str, BaseModelEntry]:
    """Name -> entry, from the registry file or the built-in default."""
    if settings.base_models_file is None:
        tiny = BaseModelEntry(
            name=TINY_MODEL_NAME,
            path=str(settings.tiny_model_dir),
            max_seq_len=TINY_MODEL_MAX_SEQ_LEN,
        )
        return {tiny.name: tiny}
    path = Path(settings.base_models_file)
    raw = yaml.safe_load(path.read_text()) or {"models": []}
    parsed = RegistryFile.model_validate(raw)
    names = [m.name for m in parsed.models]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: base model names must be unique, got {names}")
    return {m.name: m for m in parsed.models}
