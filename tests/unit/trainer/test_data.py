"""Batches and packing: deterministic order, rows within the limit, no leakage between examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.chat import ChatTokenizer
from trainer.data import DataError, epoch_batches, load_numbered_examples, micro_batches, pack


def test_epoch_order_is_fixed_by_seed_and_epoch() -> None:
    first = epoch_batches(10, 4, seed=3, epoch=0)
    assert first == epoch_batches(10, 4, seed=3, epoch=0)
    assert [len(b) for b in first] == [4, 4, 2]
    assert sorted(i for b in first for i in b) == list(range(10))
    assert first != epoch_batches(10, 4, seed=3, epoch=1)
    assert first != epoch_batches(10, 4, seed=4, epoch=0)


def test_pack_keeps_rows_within_the_limit() -> None:
    lengths = {0: 60, 1: 50, 2: 30, 3: 20, 4: 10, 5: 64}
    rows = pack(lengths, max_seq_len=64)
    assert sorted(i for row in rows for i in row) == list(range(6))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    assert len(rows) == 4  # 234 tokens cannot fit in 3 rows of 64


def _examples(chat: ChatTokenizer) -> list:
    texts = [
        ("Hi", "Hello! How are you today?"),
        ("Where is the key?", "Under the blue pot."),
        ("Name a colour", "Blue, like the sea on a summer day."),
        ("Count", "1 2 3 4 5"),
    ]
    return [
        chat.check(
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}, 128
        )
        for q, a in texts
    ]


def test_an_example_has_the_same_loss_packed_or_alone(base_model_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    from contracts.spec import JobSpec
    from trainer.model import load_model, per_token_losses

    spec = JobSpec(job_id="x", base_model={"name": "t", "path": str(base_model_dir)},
                   training_file="file:///x", output="file:///x", quantization="none")  # fmt: skip
    torch.manual_seed(0)
    model = load_model(spec, torch.device("cpu"))
    with torch.no_grad():  # a non-zero adapter, so the adapter path is exercised too
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    examples = _examples(ChatTokenizer.from_folder(base_model_dir))
    (order,) = pack({i: len(e) for i, e in enumerate(examples)}, 128)  # all four in one row
    (packed,) = micro_batches(examples, [0, 1, 2, 3], 128, 2, 10**6)
    assert packed.input_ids.shape[0] == 1
    with torch.no_grad():
        packed_losses = per_token_losses(model, packed)[0]
        at = 0
        for index in order:
            n = len(examples[index])
            (alone,) = micro_batches(examples, [index], 128, 2, 10**6)
            alone_losses = per_token_losses(model, alone)[0, :n]
            assert alone_losses.sum() > 0
            torch.testing.assert_close(
                packed_losses[at : at + n], alone_losses, atol=1e-5, rtol=1e-4
            )
            at += n
        # Without the position restarts, later examples would see earlier ones: losses change.
        packed.position_ids = torch.arange(packed.input_ids.shape[1]).unsqueeze(0)
        leaky = per_token_losses(model, packed)[0]
        last = len(examples[order[-1]])
        assert not torch.allclose(leaky[at - last : at], packed_losses[at - last : at], atol=1e-3)


def test_unpacked_micro_batches_have_no_padding_and_the_same_loss(base_model_dir: Path) -> None:
    """The CPU's layout (one example per micro-batch) trains on exactly what packing does."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    from contracts.spec import JobSpec
    from trainer.model import load_model, loss_sums

    spec = JobSpec(job_id="x", base_model={"name": "t", "path": str(base_model_dir)},
                   training_file="file:///x", output="file:///x", quantization="none")  # fmt: skip
    model = load_model(spec, torch.device("cpu"))
    examples = _examples(ChatTokenizer.from_folder(base_model_dir))
    unpacked = micro_batches(examples, [0, 1, 2, 3], 128, 2, 10**6, packed=False)
    assert [b.input_ids.shape for b in unpacked] == [(1, len(e)) for e in examples]
    assert all(bool((b.position_ids == torch.arange(b.tokens)).all()) for b in unpacked)
    (packed,) = micro_batches(examples, [0, 1, 2, 3], 128, 2, 10**6)
    with torch.no_grad():
        whole = loss_sums(model, packed)
        parts = [loss_sums(model, b) for b in unpacked]
    assert sum(p.tokens for p in parts) == whole.tokens
    assert sum(p.correct for p in parts) == whole.correct
    torch.testing.assert_close(sum(p.loss for p in parts), whole.loss, atol=1e-4, rtol=1e-5)


def test_bad_lines_are_reported_with_their_number(base_model_dir: Path, tmp_path: Path) -> None:
    chat = ChatTokenizer.from_folder(base_model_dir)
    good = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}'
    long = good.replace('"a"', '"' + "word " * 200 + '"')
    cases = {
        "json": (f"{good}\n\n{{oops\n", "line 3: invalid JSON"),
        "long": (f"{good}\n{long}\n", "line 2: example is"),
        "special": (good.replace('"q"', '"<|user|>"') + "\n", "line 1: special token '<|user|>'"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(text)
        with pytest.raises(DataError) as info:
            load_numbered_examples(path.as_uri(), chat, 128, "training_file")
        assert info.value.message.startswith(expected), info.value.message
        assert info.value.code == "invalid_training_file" and info.value.param == "training_file"
    with pytest.raises(DataError, match="training_file not found"):
        load_numbered_examples((tmp_path / "missing.jsonl").as_uri(), chat, 128, "training_file")
