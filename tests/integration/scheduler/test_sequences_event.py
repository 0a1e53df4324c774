"""A chat template that is not prefix-stable: validation counts the sequences the training file
becomes (one more per trained turn rendered otherwise later) and the job's events say so."""

from __future__ import annotations

import json
from pathlib import Path

from service.files.repository import file_key
from tests.integration.scheduler.test_no_stall import World, _set_template, world  # noqa: F401
from tests.unit.contracts.layout_templates import THINKING


def _reasoning_example(i: int) -> dict[str, object]:
    return {"messages": [
        {"role": "user", "content": f"{i}+{i}?"},
        {"role": "assistant", "reasoning_content": "Add them.", "content": f"{2 * i}."},
        {"role": "user", "content": f"{i}*{i}?"},
        {"role": "assistant", "reasoning_content": "Multiply.", "content": f"{i * i}."},
    ]}  # fmt: skip


def test_the_events_say_how_many_sequences_the_file_became(
    world: World,  # noqa: F811
    base_model_dir: Path,
) -> None:
    _set_template(world.add_model("thinking", base_model_dir), THINKING)
    job_id = world.create("thinking")
    lines = [_reasoning_example(i) for i in range(12)]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    world.store.put_bytes(file_key(world.job(job_id).training_file), data)
    world.scheduler.tick()
    assert world.job(job_id).status == "running", world.events(job_id)
    messages = [message for _level, message in world.events(job_id)]
    became = [m for m in messages if "became" in m]
    assert became == [
        "Training file: 12 examples became 24 sequences. The chat template of thinking renders "
        "earlier assistant turns differently once later ones follow (as templates that drop "
        "earlier turns' reasoning do), so each such trained turn is trained in a sequence of "
        "its own: the conversation up to it, as the model sees it"
    ]


def test_a_prefix_stable_template_adds_no_event(world: World) -> None:  # noqa: F811
    job_id = world.create()
    world.scheduler.tick()
    assert world.job(job_id).status == "running"
    assert not [m for _level, m in world.events(job_id) if "sequences" in m]
