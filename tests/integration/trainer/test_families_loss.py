"""The trainer's loss is each family's own: QLoRA on every family computes what
`model(input_ids, labels=...)` computes (Gemma 2's logit softcapping, Gemma 3's sliding-window
layers, Qwen 3's q/k norms, tied embeddings and Phi-4-mini's partial rotary included), the
chunked loss over Llama 3.2's 128k and Gemma 3's 262k vocabularies equals the unchunked one in
value and gradients without keeping full-vocabulary logits for backward, and a few QLoRA steps
on every family lower the loss."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testing.families import FAMILIES

torch = pytest.importorskip("torch")

from contracts.spec import JobSpec  # noqa: E402
from trainer.data import IGNORE, Batch  # noqa: E402
from trainer.model import load_model, loss_sums, output_head, per_token_losses  # noqa: E402

CHAT = [
    {"role": "system", "content": "You answer in one sentence."},
    {"role": "user", "content": "What is the secret word?"},
    {"role": "assistant", "content": "The secret word is river."},
]


def _spec(folder: Path, quantization: str = "nf4") -> JobSpec:
    return JobSpec(
        job_id="ftjob-family",
        base_model={"name": folder.name, "path": str(folder), "max_seq_len": 256},
        training_file="file:///unused.jsonl",
        output="file:///unused/",
        lora={"r": 8, "alpha": 16},
        quantization=quantization,
    )


def _chat_example(folder: Path) -> tuple[list[int], list[bool]]:
    """Token ids of CHAT as the family's template renders it; the loss falls on what the
    assistant's answer adds after the generation prompt (found from character offsets, so
    it does not depend on contracts.chat)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    text = tok.apply_chat_template(CHAT, tokenize=False)
    head = tok.apply_chat_template(CHAT[:-1], tokenize=False, add_generation_prompt=True)
    assert text.startswith(head)
    encoding = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [start >= len(head) for start, _ in encoding["offset_mapping"]]
    return list(encoding["input_ids"]), mask


def _batch(input_ids: Any, mask: Any) -> tuple[Batch, Any]:
    """A Batch of equal-length rows (no padding) and the matching `labels` for forward()."""
    labels = torch.where(mask, input_ids, IGNORE)
    targets = torch.full_like(input_ids, IGNORE)
    targets[:, :-1] = labels[:, 1:]
    rows, length = input_ids.shape
    positions = torch.arange(length).expand(rows, -1)
    return Batch(input_ids, positions, targets, rows * length), labels


def _random_batch(vocab: int, rows: int, length: int, seed: int = 0) -> tuple[Batch, Any]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (rows, length), generator=generator)
    mask = torch.rand((rows, length), generator=generator) < 0.7
    return _batch(ids, mask)


def _lora_parameters(model: Any) -> dict[str, Any]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", FAMILIES)
def test_qlora_loss_is_the_models_own(family_dir: Callable[..., Path], name: str) -> None:
    model = load_model(_spec(family_dir(name)), torch.device("cpu"))
    with torch.no_grad():  # a non-zero adapter, so its path counts too
        for n, p in _lora_parameters(model).items():
            if "lora_B" in n:
                p.normal_(std=0.05)
    model.eval()
    chat_ids, chat_mask = _chat_example(family_dir(name))
    batches = [
        _batch(torch.tensor([chat_ids]), torch.tensor([chat_mask])),
        _random_batch(model.config.vocab_size, rows=2, length=48),
    ]
    for batch, labels in batches:
        with torch.no_grad():
            ours = loss_sums(model, batch)
            own = model(input_ids=batch.input_ids, labels=labels)
        assert ours.tokens == int((labels[:, 1:] != IGNORE).sum()) > 0
        torch.testing.assert_close(ours.loss / ours.tokens, own.loss, rtol=1e-5, atol=1e-5)
        shifted = own.logits[:, :-1].argmax(-1)
        selected = batch.targets[:, :-1] != IGNORE
        assert ours.correct == int((shifted == batch.targets[:, :-1])[selected].sum())
        per_token = per_token_losses(model, batch)
        torch.testing.assert_close(per_token.sum(), ours.loss, rtol=1e-5, atol=1e-4)
    if name == "gemma2":  # softcapping really changes the loss, and it is applied
        base = model.get_base_model()
        batch, _ = batches[1]
        with torch.no_grad():
            hidden = base.get_decoder()(input_ids=batch.input_ids).last_hidden_state
            selected = batch.targets != IGNORE
            raw = base.get_output_embeddings()(hidden[selected]).float()
            uncapped = torch.nn.functional.cross_entropy(raw, batch.targets[selected])
        assert abs(float(uncapped) - float(own.loss)) > 1e-3


def test_all_linear_finds_phi3s_fused_projections(family_dir: Callable[..., Path]) -> None:
    model = load_model(_spec(family_dir("phi3")), torch.device("cpu"))
    names = [n for n in _lora_parameters(model) if ".lora_A." in n]
    targets = {n.split(".lora_A.")[0].rsplit(".", 1)[-1] for n in names}
    assert targets == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}


@pytest.mark.parametrize(
    ("name", "vocab", "length"), [("llama3.2", 128256, 600), ("gemma3", 262144, 300)]
)
def test_chunked_loss_over_a_large_vocabulary_is_the_unchunked_loss(
    family_dir: Callable[..., Path], name: str, vocab: int, length: int
) -> None:
    model = load_model(_spec(family_dir(name)), torch.device("cpu"))
    assert model.config.vocab_size == vocab  # the family's own tokenizer, this wide
    with torch.no_grad():
        for n, p in _lora_parameters(model).items():
            if "lora_B" in n:
                p.normal_(std=0.05)
    batch, _ = _random_batch(vocab, rows=1, length=length, seed=1)
    params = _lora_parameters(model)
    largest_saved = [0]

    def pack(tensor: Any) -> Any:
        largest_saved[0] = max(largest_saved[0], tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        chunked = loss_sums(model, batch, chunk=128)
    # Only chunk inputs are kept for backward, not [positions, vocab] logits.
    assert largest_saved[0] < batch.trained_tokens * vocab // 2
    chunked.loss.backward()
    chunked_grads = {n: p.grad.clone() for n, p in params.items()}
    model.zero_grad()

    base = model.get_base_model()
    hidden = base.get_decoder()(
        input_ids=batch.input_ids, position_ids=batch.position_ids
    ).last_hidden_state
    selected = batch.targets != IGNORE
    logits = output_head(base)(hidden[selected])  # all of them at once
    assert logits.shape == (batch.trained_tokens, vocab)
    whole = torch.nn.functional.cross_entropy(logits, batch.targets[selected], reduction="sum")
    whole.backward()
    torch.testing.assert_close(chunked.loss, whole, rtol=1e-5, atol=1e-3)
    assert chunked.correct == int((logits.argmax(-1) == batch.targets[selected]).sum())
    for n, p in params.items():
        torch.testing.assert_close(chunked_grads[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_few_qlora_steps_lower_each_familys_loss(
    family_dir: Callable[..., Path], name: str
) -> None:
    folder = family_dir(name)
    model = load_model(_spec(folder), torch.device("cpu"))
    model.train()
    ids, mask = _chat_example(folder)
    batch, _ = _batch(torch.tensor([ids]), torch.tensor([mask]))
    optimizer = torch.optim.AdamW(list(_lora_parameters(model).values()), lr=3e-3)
    losses = []
    for _ in range(8):
        sums = loss_sums(model, batch)
        (sums.loss / sums.tokens).backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(sums.loss.detach()) / sums.tokens)
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.fixture(scope="module")
def scaled_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny Cohere (logits * logit_scale) and Granite (logits / logits_scaling) folders, with
    an output layer wide enough that the scaling changes the loss."""
    import transformers

    folders = {}
    for name, field, value in [
        ("CohereConfig", "logit_scale", 0.25),
        ("GraniteConfig", "logits_scaling", 4.0),
    ]:
        config = getattr(transformers, name)(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
            num_attention_heads=1, num_key_value_heads=1, tie_word_embeddings=False,
            **{field: value},
        )  # fmt: skip
        model = transformers.AutoModelForCausalLM.from_config(config)
        torch.nn.init.normal_(model.get_output_embeddings().weight, std=1.0)
        folders[name] = tmp_path_factory.mktemp(name) / name
        model.save_pretrained(folders[name])
    return folders


@pytest.mark.parametrize("name", ["CohereConfig", "GraniteConfig"])
def test_cohere_and_granite_logit_scalings_are_applied(
    scaled_models: dict[str, Path], name: str
) -> None:
    from trainer.model import UnsupportedModel, check_output_head

    model = load_model(_spec(scaled_models[name], quantization="none"), torch.device("cpu"))
    batch, labels = _random_batch(256, rows=2, length=32)
    with torch.no_grad():
        ours = loss_sums(model, batch)
        own = model(input_ids=batch.input_ids, labels=labels).loss
    torch.testing.assert_close(ours.loss / ours.tokens, own, rtol=1e-5, atol=1e-5)
    # Without the scaling the loss would be another one, and load_model would refuse the model.
    config = model.get_base_model().config
    for field in ("logit_scale", "logits_scaling"):
        if hasattr(config, field):
            setattr(config, field, 1.0)  # what the trainer would see if it ignored the field
    with torch.no_grad():
        assert abs(float(loss_sums(model, batch).loss / ours.tokens) - float(own)) > 1e-2
    if name == "CohereConfig":  # its forward keeps the scale it was built with
        with pytest.raises(UnsupportedModel, match="not supported"):
            check_output_head(model)


@pytest.mark.parametrize("name", FAMILIES)
def test_micro_batches_on_the_cores_give_each_familys_gradients(
    family_dir: Callable[..., Path], name: str
) -> None:
    """QLoRA on every family, the step as the CPU runs it without dropout (`trainer.cores`):
    the family's own chat (its real template) and random rows, two threads of one core each,
    give the gradients of one micro-batch after the other on one thread, bit for bit, and so
    do three."""
    from trainer.cores import draws_random_numbers, parallel_gradients

    model = load_model(_spec(family_dir(name)), torch.device("cpu"))
    assert not draws_random_numbers(model)  # LoRA dropout 0 and no dropout in the families
    with torch.no_grad():
        for n, p in _lora_parameters(model).items():
            if "lora_B" in n:
                p.normal_(std=0.05)
    chat_ids, chat_mask = _chat_example(family_dir(name))
    vocab = model.config.get_text_config().vocab_size
    batches = [_batch(torch.tensor([chat_ids]), torch.tensor([chat_mask]))[0]]
    batches += [_random_batch(vocab, rows=1, length=n, seed=n)[0] for n in (40, 9, 24)]
    params = list(_lora_parameters(model).values())

    def loss_of(batch: Batch) -> tuple[Any, float]:
        sums = loss_sums(model, batch)
        return sums.loss, float(sums.loss.detach())

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one after the other, as each worker computes: one thread
    try:
        for batch in batches:
            loss_of(batch)[0].backward()
    finally:
        torch.set_num_threads(threads)
    wanted = [p.grad.clone() for p in params]
    runs = []
    for workers in (2, 3):
        model.zero_grad(set_to_none=True)
        losses = parallel_gradients(params, batches, [b.tokens for b in batches], loss_of, workers)
        assert len(losses) == len(batches)
        runs.append([p.grad.clone() for p in params])
    for run in runs:  # added up in the micro-batches' order: the same bits
        assert all(torch.equal(got, want) for got, want in zip(run, wanted, strict=True))
