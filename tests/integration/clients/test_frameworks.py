"""The README's "From DSPy, LangChain and LiteLLM" snippets, run as they are written (each in
a fresh interpreter, as a user runs it) against a Whetstone: only the address and the key are
replaced. Whetstone runs in this process with its chat routed to a vLLM stand-in, and a job
is recorded as succeeded as soon as it is created, as the scheduler would after training (the
libraries' own paths are what is tested, not training)."""

# ruff: noqa: F811  (the fixtures imported below are then named as arguments)

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from service.db.tables import FineTuningJob
from tests.integration.service.test_chat import ANSWER, StandIn, reply, vllm  # noqa: F401

from .test_leave_openai import Whetstone, whetstone  # noqa: F401

ROOT = Path(__file__).resolve().parents[3]
SECTION = "## From DSPy, LangChain and LiteLLM"


def snippets() -> dict[str, str]:
    """The section's Python blocks, by the library each imports first (`BootstrapFinetune`
    for the one that uses it)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    section = readme[start : readme.index("\n## ", start + len(SECTION))]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    return {
        "BootstrapFinetune" if "BootstrapFinetune" in b
        else re.search(r"^(?:import|from) (\w+)", b, re.M).group(1): b  # type: ignore[union-attr]
        for b in blocks
    }  # fmt: skip


@pytest.fixture()
def trainer(whetstone: Whetstone) -> Iterator[list[str]]:
    """Marks each new job succeeded (as the scheduler would once trained); the ids it did."""
    done: list[str] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.2):
            with whetstone.services.sessions() as session:
                new = session.scalars(
                    select(FineTuningJob.id).where(FineTuningJob.status == "validating_files")
                ).all()
            for job_id in new:
                whetstone.succeed(job_id)
                done.append(job_id)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield done
    stop.set()
    thread.join(timeout=10)


def start_snippet(
    code: str, url: str, key: str, env: dict[str, str], home: Path, cwd: Path = ROOT
) -> subprocess.Popen[str]:
    """The snippet in a fresh interpreter, as written but for the address and the key (also
    run against `whetstone up` by tests/e2e/test_up.py); LiteLLM's cost map from its package,
    not the network."""
    code = code.replace("http://127.0.0.1:8000/v1", url).replace("sk-whet-...", key)
    env = {**env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DSPY_CACHEDIR": "", "HOME": str(home)}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)  # fmt: skip


def finish(snippet: subprocess.Popen[str], timeout: float = 300) -> str:
    """The snippet's output once it has ended well."""
    try:
        out, err = snippet.communicate(timeout=timeout)
    finally:
        snippet.kill()
    assert snippet.returncode == 0, err[-3000:]
    return out


def run_snippet(whetstone: Whetstone, code: str, key: str, home: Path) -> str:
    return finish(start_snippet(code, whetstone.url, key, whetstone.env, home))


def asked(vllm: StandIn) -> list[str]:
    chats = [seen for seen in vllm.seen if seen.path == "/v1/chat/completions"]
    return [json.loads(seen.body)["model"] for seen in chats]


def test_the_readme_has_the_three_snippets() -> None:
    assert set(snippets()) == {"langchain_openai", "time", "os", "BootstrapFinetune"}


def test_langchain_chat_openai(whetstone: Whetstone, vllm: StandIn, tmp_path: Path) -> None:
    code = snippets()["langchain_openai"]
    out = run_snippet(whetstone, code, whetstone.key("frameworks"), tmp_path)
    assert out.strip() == "hi" and asked(vllm) == ["whetstone-tiny"]


def test_litellm_files_fine_tuning_and_completion(
    whetstone: Whetstone, vllm: StandIn, trainer: list[str], tmp_path: Path
) -> None:
    out = run_snippet(whetstone, snippets()["time"], whetstone.key("frameworks"), tmp_path)
    # (LiteLLM also prints its provider list link where its cost lookup meets the name)
    assert out.strip().splitlines()[-1] == "hi" and len(trainer) == 1
    (model,) = asked(vllm)
    assert model.startswith("ft:whetstone-tiny:frameworks::")


def test_dspy_finetune_then_the_tuned_lm(
    whetstone: Whetstone, vllm: StandIn, trainer: list[str], tmp_path: Path
) -> None:
    out = run_snippet(whetstone, snippets()["os"], whetstone.key("frameworks"), tmp_path)
    assert out.strip().splitlines()[-1] == "['hi']" and len(trainer) == 1
    (model,) = asked(vllm)
    assert model.startswith("ft:whetstone-tiny:frameworks::")


def test_dspy_bootstrap_finetune_calls_the_tuned_model(
    whetstone: Whetstone, vllm: StandIn, trainer: list[str], tmp_path: Path
) -> None:
    """The program calls the base model for its traces, trains on them, then calls the tuned
    model it put in place of the base model (the user never holds that LM)."""
    formatted = "[[ ## answer ## ]]\nOstrel.\n\n[[ ## completed ## ]]"  # DSPy's chat adapter's
    message = {"role": "assistant", "content": formatted}
    vllm.answer = reply(200, {**ANSWER, "choices": [{"index": 0, "message": message}]})
    key = whetstone.key("frameworks")
    out = run_snippet(whetstone, snippets()["BootstrapFinetune"], key, tmp_path)
    assert out.strip().splitlines()[-1] == "Ostrel." and len(trainer) == 1
    *traces, last = asked(vllm)
    assert traces and set(traces) == {"whetstone-tiny"}
    assert last.startswith("ft:whetstone-tiny:frameworks::")
