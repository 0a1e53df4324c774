"""The registry's `source` field: `hf://ORG/NAME[@REVISION]`, and the path it implies."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.registry import RegistryError, load_registry
from service.settings import Settings
from serving.launcher import BaseModelEntry, HubSource, parse_hub_source


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("hf://Qwen/Qwen2.5-7B-Instruct@main", HubSource("Qwen/Qwen2.5-7B-Instruct", "main")),
        ("hf://Qwen/Qwen2.5-7B-Instruct", HubSource("Qwen/Qwen2.5-7B-Instruct", "main")),
        (
            "hf://meta-llama/Llama-3.1-8B-Instruct@v1.0",
            HubSource("meta-llama/Llama-3.1-8B-Instruct", "v1.0"),
        ),
        ("hf://gpt2", HubSource("gpt2", "main")),
        ("hf://org/tiny@refs/pr/3", HubSource("org/tiny", "refs/pr/3")),
        ("hf://org/tiny@" + "a" * 40, HubSource("org/tiny", "a" * 40)),
    ],
)
def test_valid_sources(text: str, parsed: HubSource) -> None:
    assert parse_hub_source(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "Qwen/Qwen2.5-7B-Instruct",
        "s3://bucket/model",
        "hf://",
        "hf://org/name/extra",
        "hf://org/na--me",
        "hf://org/../name",
        "hf://org/name@",
        "hf://org/name@a..b",
        "hf://org/name@x y",
        "hf:///name",
        "hf://org/-name",
        "hf://org/" + "n" * 100,
    ],
)
def test_invalid_sources_name_the_grammar(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected hf://ORG/NAME\[@REVISION\]"):
        parse_hub_source(text)


def test_an_entry_with_source_and_path_keeps_both() -> None:
    entry = BaseModelEntry(name="q", path="/models/q", source="hf://Qwen/Qwen2.5-0.5B")
    assert entry.hub_source == HubSource("Qwen/Qwen2.5-0.5B", "main")
    assert BaseModelEntry(name="q", path="/models/q").hub_source is None


def test_an_entry_with_only_source_lives_in_the_models_folder(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - {name: qwen, source: 'hf://Qwen/Qwen2.5-0.5B@main'}\n"
        "  - {name: local, path: /srv/local, source: 'hf://org/local'}\n"
    )
    registry = load_registry(Settings(data_dir=tmp_path / "data", base_models_file=path))
    assert registry["qwen"].path == str((tmp_path / "data" / "models" / "qwen").resolve())
    assert registry["local"].path == "/srv/local"
    elsewhere = Settings(base_models_file=path, models_dir=tmp_path / "shared")
    assert load_registry(elsewhere)["qwen"].path == str((tmp_path / "shared" / "qwen").resolve())


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{name: a}", r"models\[0\] \(a\) path: give `path` \(a local folder\), `source`"),
        ("{name: a, source: 'Qwen/x'}", r"models\[0\] \(a\) source: .*only Hugging Face"),
        ("{name: a, source: 'hf://o/n@'}", r"models\[0\] \(a\) source: .*expected hf://ORG/NAME"),
    ],
)
def test_registry_errors_name_the_file_and_the_entry(
    tmp_path: Path, entry: str, expected: str
) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(f"models:\n  - {entry}\n")
    with pytest.raises(RegistryError, match=expected) as raised:
        load_registry(Settings(data_dir=tmp_path, base_models_file=path))
    assert str(raised.value).startswith(f"{path}: ")
