"""Settings come from `WHETSTONE_*` variables; unset paths derive from the data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.registry import load_registry
from service.settings import Settings
from service.settings_doc import settings_markdown


def test_defaults_live_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHETSTONE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path}/whetstone.db"
    assert settings.resolved_object_store_url == (tmp_path / "objects").as_uri()
    registry = load_registry(settings)
    assert list(registry) == ["whetstone-tiny"]
    assert registry["whetstone-tiny"].path == str(tmp_path / "base-models" / "whetstone-tiny")
    assert registry["whetstone-tiny"].max_seq_len == 1024
    # The random-weight model's own `auto`: what the demo needs to learn its answers.
    auto = registry["whetstone-tiny"].auto
    assert (auto.n_epochs, auto.learning_rate_multiplier) == (25, 10)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHETSTONE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("WHETSTONE_OBJECT_STORE_URL", "s3://bucket/prefix")
    monkeypatch.setenv("WHETSTONE_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("WHETSTONE_PORT", "9123")
    settings = Settings()
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert settings.resolved_object_store_url == "s3://bucket/prefix"
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000" and settings.port == 9123


def test_registry_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - {name: llama-small, path: /models/llama, max_seq_len: 4096}\n"
        "  - {name: qwen-tiny, path: /models/qwen, serving: {gpu_memory_utilization: 0.5}}\n"
    )
    registry = load_registry(Settings(base_models_file=path))
    assert list(registry) == ["llama-small", "qwen-tiny"]
    assert registry["llama-small"].max_seq_len == 4096
    assert registry["qwen-tiny"].serving.gpu_memory_utilization == 0.5
    assert registry["qwen-tiny"].auto.learning_rate_multiplier is None


def test_registry_entries_set_their_own_auto(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n  - {name: gemma, path: /m, auto: {learning_rate_multiplier: 0.5, n_epochs: 2}}\n"
    )
    auto = load_registry(Settings(base_models_file=path))["gemma"].auto
    assert (auto.n_epochs, auto.learning_rate_multiplier) == (2, 0.5)
    path.write_text("models:\n  - {name: gemma, path: /m, auto: {learning_rate_multiplier: 50}}\n")
    with pytest.raises(ValueError, match=r"models\[0\] \(gemma\) auto.learning_rate_multiplier"):
        load_registry(Settings(base_models_file=path))


def test_registry_refuses_duplicate_names(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: a, path: /x}\n  - {name: a, path: /y}\n")
    with pytest.raises(ValueError, match="unique"):
        load_registry(Settings(base_models_file=path))


def test_configuration_doc_is_current() -> None:
    committed = (Path(__file__).resolve().parents[3] / "docs" / "configuration.md").read_text()
    assert committed == settings_markdown(), (
        "docs/configuration.md is stale: regenerate it with `make docs`"
    )


def test_every_setting_is_described() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not missing, f"settings without a description (docs/configuration.md): {missing}"
