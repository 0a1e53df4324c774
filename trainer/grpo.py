"""GRPO: reinforcement prompts, sampling from the policy, group advantages and the loss.

`trainer.reinforce` runs a reinforcement job's steps inside `trainer.loop` (checkpoints,
resume, stop requests, heartbeats) and `trainer.grading` grades the samples; this module is
what the policy optimisation itself changes.

- Data: each reinforcement line (`contracts.formats`: `messages` ending with a user or
  developer message, plus the fields its grader reads) becomes a `Prompt`: the chat template
  of its messages (and `tools`) with the generation prompt, as the model sees it at inference,
  and the whole line as the grader's `item`.
- Reasoning: the job's `reasoning_effort` goes to the template's own switch where it has
  one: a template that reads `reasoning_effort` gets it as is (`low`, `medium`, `high`); one
  that reads `enable_thinking` gets `false` for `low` and `true` for `medium` and `high`; any
  other template, and `default`, renders as it would without it. A line's own
  `chat_template_kwargs` win over the job's.
- Sampling: `samples_per_prompt` completions of one prompt at a time, as one batch (the same
  prompt, so no padding), token by token with the model's KV cache, in eval mode (no LoRA
  dropout), at `temperature`, drawn by `torch.multinomial` from a `torch.Generator` of the
  run's own (seeded from the job's seed, its state kept in every checkpoint), stopping at the
  tokenizer's end-of-sequence token or the model's `generation_config` end-of-turn tokens,
  or after `max_completion_tokens` (and never past `max_seq_len`). The stop token is part of
  the completion and is trained with it, as supervised training trains the end of a turn.
- Advantages: per prompt, `(reward - mean) / (std + EPS)` over its group of samples (the
  sample standard deviation); a group whose samples all scored the same has none.
- Loss, per completion token `t` of sample `i`: `-advantage_i x log p(t)` plus
  `kl_beta x KL_t`, `KL_t = exp(ref - pol) - (ref - pol) - 1` (an unbiased, always positive
  estimate of KL(policy || reference) from the sampled token's log-probabilities), the mean
  over every completion token of the step. One optimiser step per batch, on the samples just
  drawn (on-policy, so no importance ratio). With `kl_beta` 0 no reference is evaluated.
- Reference (`Reference`): with a fresh adapter, the base with the adapter disabled (peft
  `disable_adapter()`); when continuing from a fine-tuned model (`init_adapter`), that model:
  the parent adapter's weights as loaded, kept aside (a LoRA's size) and swapped in for the
  reference's forward. Both evaluated in eval mode, without gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contracts.chat import ChatTokenizer, Encoded, ExampleError
from contracts.spec import JobSpec
from contracts.template import load_template
from trainer.data import IGNORE, Batch, collate, load_lines
from trainer.dpo import _evaluating
from trainer.model import _chunk, _decode, chunked_losses, output_head

EPS = 1e-4
WRONG_FORMAT = (
    "only reinforcement examples (`messages` ending with a user or developer message) can be "
    "used for reinforcement fine-tuning"
)


@dataclass(frozen=True)
class Prompt:
    """One reinforcement line: the prompt's tokens and the line itself (the grader's item)."""

    input_ids: tuple[int, ...]
    item: dict[str, Any]

    def __len__(self) -> int:
        return len(self.input_ids)


def reasoning_kwargs(template: str, effort: str) -> dict[str, Any]:
    """The template variables that carry `reasoning_effort` (see the module's docstring)."""
    if effort == "default":
        return {}
    if "reasoning_effort" in template:
        return {"reasoning_effort": effort}
    if "enable_thinking" in template:
        return {"enable_thinking": effort != "low"}
    return {}


def encode_prompt(
    chat: ChatTokenizer, example: dict[str, Any], max_seq_len: int, kwargs: dict[str, Any]
) -> Prompt:
    """The prompt of a reinforcement line, or the `ExampleError` saying why it cannot be one."""
    hits = chat.special_token_hits(example)
    if hits:
        raise ExampleError(f"{hits[0]}: special tokens are not allowed in message text")
    variables = {**kwargs, **(example.get("chat_template_kwargs") or {})}
    text = chat.render(
        example["messages"], example.get("tools"), add_generation_prompt=True,
        template_kwargs=variables,
    )  # fmt: skip
    ids = chat.tokenizer.encode(text, add_special_tokens=False).ids
    if len(ids) >= max_seq_len:
        raise ExampleError(
            f"the prompt is {len(ids)} tokens long, over the model's limit of {max_seq_len} "
            "with room for an answer; shorten it"
        )
    return Prompt(tuple(ids), example)


def prompt_loader(spec: JobSpec) -> Callable[..., list[tuple[int, Prompt]]]:
    """A loader of `(line number, Prompt)` with `load_numbered_examples`'s signature."""
    hp = spec.method.reinforcement
    assert hp is not None
    kwargs = reasoning_kwargs(load_template(Path(spec.base_model.path)), hp.reasoning_effort)

    def load(
        url: str, chat: ChatTokenizer, max_seq_len: int, param: str,
        endpoint_url: str | None = None, skip_lines: frozenset[int] = frozenset(),
    ) -> list[tuple[int, Prompt]]:  # fmt: skip
        return load_lines(
            url, param, endpoint_url, "reinforcement", WRONG_FORMAT,
            lambda example: encode_prompt(chat, example, max_seq_len, kwargs), skip_lines,
        )  # fmt: skip

    return load


def stop_ids(chat: ChatTokenizer, model: Any) -> list[int]:
    """Token ids that end a completion: the tokenizer's end-of-sequence token and the
    model's `generation_config` end-of-turn tokens."""
    ids: set[int] = set()
    eos = chat.tokenizer.token_to_id(chat.special.get("eos_token", ""))
    if eos is not None:
        ids.add(eos)
    config = getattr(model.get_base_model(), "generation_config", None)
    configured = getattr(config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(i for i in configured if isinstance(i, int))
    return sorted(ids)


@torch.no_grad()
def sample(
    model: Any,
    prompt: Prompt,
    n: int,
    generator: torch.Generator,
    temperature: float,
    max_new: int,
    stops: list[int],
    pad_id: int,
    device: torch.device,
) -> list[list[int]]:
    """`n` completions of `prompt` (token ids, the stop token included where one came)."""
    was_training = model.training
    model.eval()
    try:
        ids = torch.tensor([list(prompt.input_ids)] * n, dtype=torch.long, device=device)
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        stop = torch.tensor(stops, dtype=torch.long, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        drawn: list[torch.Tensor] = []
        for _ in range(max_new):
            probs = torch.softmax(out.logits[:, -1].float() / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            token = torch.where(done, torch.full_like(token, pad_id), token)
            drawn.append(token)
            done |= torch.isin(token, stop)
            if bool(done.all()):
                break
            out = model(
                input_ids=token[:, None], past_key_values=out.past_key_values, use_cache=True
            )
    finally:
        model.train(was_training)
    rows = torch.stack(drawn, dim=1).tolist() if drawn else [[] for _ in range(n)]
    completions = []
    for row in rows:
        end = next((k + 1 for k, t in enumerate(row) if t in stops), len(row))
        completions.append(row[:end])
    return completions


def completion_text(chat: ChatTokenizer, completion: list[int]) -> str:
    """What the grader reads as `output_text`: the completion decoded without special tokens,
    after the reasoning (`...</think>`) where the model wrote one."""
    text: str = chat.tokenizer.decode(completion, skip_special_tokens=True)
    if "</think>" in text:
        text = text.split("</think>", 1)[1]
    return text.strip()


def advantages(rewards: list[float]) -> list[float]:
    """A group's group-normalised advantages: `(r - mean) / (std + EPS)`."""
    values = torch.tensor(rewards, dtype=torch.float64)
    std = float(values.std()) if len(rewards) > 1 else 0.0
    return [float(a) for a in (values - values.mean()) / (std + EPS)]


class Reference:
    """The reference policy of the KL term: the base (adapter disabled), or the parent."""

    def __init__(self, parent: dict[str, torch.Tensor] | None) -> None:
        self.parent = parent

    @classmethod
    def of(cls, model: Any, continued: bool) -> Reference:
        """A fresh run's reference: the parent's weights as loaded when `continued`."""
        if not continued:
            return cls(None)
        return cls({n: p.detach().clone() for n, p in _adapter_params(model)})

    @contextmanager
    def active(self, model: Any) -> Iterator[None]:
        """The model evaluates as the reference inside (eval mode, no gradients)."""
        with _evaluating(model):
            if self.parent is None:
                with model.disable_adapter():
                    yield
                return
            params = dict(_adapter_params(model))
            current = {name: params[name].data for name in self.parent}
            for name, weights in self.parent.items():
                params[name].data = weights
            try:
                yield
            finally:
                for name, weights in current.items():
                    params[name].data = weights

    def state(self) -> dict[str, Any]:
        return {"parent": self.parent or {}, "continued": self.parent is not None}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Reference:
        return cls(dict(state["parent"]) if state["continued"] else None)


def _adapter_params(model: Any) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


@dataclass
class Sampled:
    """One graded sample of a step: its prompt's tokens, its completion and its advantage."""

    prompt: Prompt
    completion: list[int]
    advantage: float


def sample_batches(samples: list[Sampled], pad_id: int, max_tokens: int) -> list[Batch]:
    """Rows `prompt + completion`, the completion's tokens the targets, grouped so that
    rows x width stay within `max_tokens` (a sample alone is always a batch of its own).
    Rows are padded at the end, which a causal model never reads from a real token."""
    groups: list[list[Sampled]] = []
    width = 0
    for s in samples:
        length = len(s.prompt) + len(s.completion)
        if groups and (len(groups[-1]) + 1) * max(width, length) <= max_tokens:
            groups[-1].append(s)
            width = max(width, length)
        else:
            groups.append([s])
            width = length
    return [collate([[_encoded(s)] for s in group], pad_id) for group in groups]


def _encoded(s: Sampled) -> Encoded:
    ids = [*s.prompt.input_ids, *s.completion]
    return Encoded(ids, [False] * len(s.prompt) + [True] * len(s.completion))


def token_logps(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each completion token (row-major) `[tokens]`, and its row."""
    hidden = _decode(model, batch)
    selected = batch.targets != IGNORE
    head = output_head(model.get_base_model())
    losses, _ = chunked_losses(head, hidden[selected], batch.targets[selected], _chunk(model, None))
    return -losses, selected.nonzero()[:, 0]


@dataclass
class LossSums:
    """Summed over completion tokens, so micro-batches add up exactly."""

    loss: float = 0.0
    kl: float = 0.0
    tokens: int = 0  # every token of the rows (prompt and completion)


def policy_gradients(
    model: Any,
    samples: list[Sampled],
    reference: Reference | None,
    kl_beta: float,
    pad_id: int,
    max_tokens: int,
    device: torch.device,
) -> LossSums:
    """Forward and backward of the step's loss (the gradient of its token mean)."""
    completion_tokens = max(1, sum(len(s.completion) for s in samples))
    total = LossSums()
    start = 0
    for batch in sample_batches(samples, pad_id, max_tokens):
        batch = batch.to(device)
        rows = batch.input_ids.shape[0]
        adv = torch.tensor(
            [s.advantage for s in samples[start : start + rows]], dtype=torch.float32,
            device=device,
        )  # fmt: skip
        start += rows
        ref = None
        if reference is not None and kl_beta > 0:
            with reference.active(model):
                ref, _ = token_logps(model, batch)
        logps, row_of = token_logps(model, batch)
        per_token = -adv[row_of] * logps
        if ref is not None:
            delta = ref - logps
            kl = torch.exp(delta) - delta - 1
            per_token = per_token + kl_beta * kl
            total.kl += float(kl.detach().sum())
        loss = per_token.sum()
        (loss / completion_tokens).backward()  # type: ignore[no-untyped-call]
        total.loss += float(loss.detach())
        total.tokens += batch.tokens
    total.loss /= completion_tokens
    total.kl /= completion_tokens
    return total
