"""Tiny random-weight models of real architectures ("families"), built in code.

Nothing can be downloaded here, yet the trainer and vLLM must cope with what real base models
do: grouped-query attention and Llama 3 RoPE scaling, Qwen's qkv bias, Mistral's sliding
window, Gemma 2's logit softcapping and tied embeddings, Phi-3's fused projections, Qwen 3's
q/k norms, Gemma 3's interleaved sliding-window layers and 262k vocabulary, Llama 3.2's tied
128k vocabulary, Phi-4-mini's partial rotary embedding, and each family's own special tokens,
end-of-turn tokens and chat-template quirks (a template that reads `messages[0]` unguarded,
inserts a default system prompt, refuses non-alternating roles, folds the system message into
a user turn, appends an end token, or drops earlier turns' reasoning). `make_family_model` writes a
normal Hugging Face folder for one family from transformers' own config classes, with random
weights from a fixed seed, a byte-level BPE trained on the built-in corpus with the family's
special tokens, and a chat template written here that behaves like the family's. The same call
gives the same bytes. `config_overrides` builds a larger model of the same family (e.g. Llama
3.2 1B or Llama 3 8B shapes for a GPU benchmark); pass `"dtype": "bfloat16"` there for those.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testing.families.table import (
    _FAMILIES,
    LLAMA_3_2_1B,
    LLAMA_3_8B,
    MAX_POSITIONS,
    Family,
)
from testing.families.templates import QWEN_DEFAULT_SYSTEM
from testing.families.templates_2026 import LLAMA3_INDENTED_TEMPLATE
from trainer.basemodel import train_bpe

__all__ = [
    "FAMILIES",
    "LLAMA3_INDENTED_TEMPLATE",
    "LLAMA_3_2_1B",
    "LLAMA_3_8B",
    "QWEN_DEFAULT_SYSTEM",
    "Family",
    "build_tokenizer",
    "get_family",
    "make_family_model",
]

FAMILIES = (
    "llama3",
    "qwen2",
    "mistral",
    "gemma2",
    "phi3",
    "qwen3",
    "gemma3",
    "llama3.2",
    "phi4-mini",
)
FAMILIES_2026 = FAMILIES[5:]

PADDING_TOKEN = "<|pad_{}|>"  # fills a tokenizer up to its family's vocab_size


def get_family(name: str) -> Family:
    """The family called `name`; a ValueError names the known ones."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}") from None


def build_tokenizer(fam: Family):  # type: ignore[no-untyped-def]
    """A byte-level BPE `tokenizers.Tokenizer` trained on the corpus, with the family's
    special tokens at ids 0.. and its plain added tokens after the merges."""
    from tokenizers import AddedToken

    specials = [
        AddedToken(t, special=True, normalized=False, rstrip=t in fam.rstrip)
        for t in fam.special_tokens
    ]
    tok = train_bpe(specials)
    if fam.vocab_size is not None:
        tok = _padded(tok, fam.vocab_size - len(fam.plain_added))
    if fam.plain_added:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in fam.plain_added])
    return tok


def make_family_model(
    family: str,
    path: Path,
    *,
    config_overrides: dict[str, Any] | None = None,
    chat_template: str | None = None,
    seed: int = 1234,
) -> Path:
    """Write the model folder of `family` at `path` (created if missing); return it.

    `config_overrides` replaces config fields (any field of the family's config class, e.g.
    `hidden_size`, `num_hidden_layers`, `vocab_size` at least the tokenizer's size, or
    `dtype` for the saved weights); `chat_template` replaces the family's template (e.g.
    `LLAMA3_INDENTED_TEMPLATE`); the folder is the same bytes for the same arguments.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast

    fam = get_family(family)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokens: dict[str, Any] = {
        f"{k}_token": v
        for k, v in (("bos", fam.bos), ("eos", fam.eos), ("pad", fam.pad), ("unk", fam.unk))
        if v is not None
    }
    named = set(tokens.values())
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(fam),
        additional_special_tokens=[t for t in fam.special_tokens if t not in named],
        add_bos_token=fam.add_bos,
        add_eos_token=False,
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
        **tokens,
    )
    fast.save_pretrained(path)
    _finish_tokenizer_config(path, fam, chat_template or fam.template)

    def token_id(token: str | None) -> int | None:
        return None if token is None else int(fast.convert_tokens_to_ids(token))

    stop_ids = [token_id(t) for t in fam.stop]
    settings: dict[str, Any] = {
        **fam.config,
        "vocab_size": len(fast),
        "bos_token_id": token_id(fam.bos),
        "eos_token_id": stop_ids if len(stop_ids) > 1 else stop_ids[0],
        "pad_token_id": token_id(fam.pad),
        **(config_overrides or {}),
    }
    if settings["vocab_size"] < len(fast):
        raise ValueError(f"vocab_size {settings['vocab_size']} < the tokenizer's {len(fast)}")
    config_class: Callable[..., Any] = getattr(transformers, fam.config_class)
    config = config_class(**settings)
    dtype = getattr(torch, str(settings["dtype"]).removeprefix("torch."))

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        torch.nn.init.normal_(model.get_output_embeddings().weight, std=fam.lm_head_std)
        if fam.vocab_size is not None:  # the padding: small rows, as a real model's unused
            first = token_id(PADDING_TOKEN.format(0))  # tokens have, so none is ever predicted
            end = fam.vocab_size - len(fam.plain_added)
            torch.nn.init.normal_(model.get_output_embeddings().weight[first:end], std=0.01)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = GenerationConfig(
        bos_token_id=token_id(fam.bos),
        eos_token_id=stop_ids,
        pad_token_id=token_id(fam.pad),
        do_sample=False,
    )
    model.save_pretrained(path)
    return path


def _padded(tok, size: int):  # type: ignore[no-untyped-def]
    """`tok` with BPE vocabulary entries added up to `size` tokens: no merge builds them, so
    no text encodes to them, as a real tokenizer's unused and reserved entries."""
    from tokenizers import Tokenizer

    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    start = len(vocab)
    vocab.update({PADDING_TOKEN.format(i - start): i for i in range(start, size)})
    return Tokenizer.from_str(json.dumps(data))


def _finish_tokenizer_config(path: Path, fam: Family, template: str) -> None:
    """Keep the chat template in tokenizer_config.json, where every reader looks for it."""
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = template
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["add_bos_token"] = fam.add_bos
    config["add_eos_token"] = False
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (path / "chat_template.jinja").unlink(missing_ok=True)
