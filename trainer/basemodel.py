"""The small deterministic base model that tests and the demo train and serve.

Nothing can be downloaded here, so Whetstone builds its own base model in code: a
Llama-shaped `LlamaForCausalLM` (head_dim 64, which vLLM's CPU attention accepts) with random
weights from a fixed seed, a byte-level BPE tokenizer trained on a built-in English corpus,
and a chat template for system/developer/user/assistant/tool messages and tool calls. The
folder is a normal Hugging Face model folder; the same call gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

BEGIN = "<|begin|>"
END = "<|end|>"
PAD = "<|pad|>"
SYSTEM = "<|system|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
TOOL = "<|tool|>"
TOOL_CALL = "<|tool_call|>"
SPECIAL_TOKENS = [BEGIN, END, PAD, SYSTEM, USER, ASSISTANT, TOOL, TOOL_CALL]

VOCAB_SIZE = 2048
SEED = 1234
LM_HEAD_STD = 0.1
CORPUS = Path(__file__).with_name("corpus.txt")

# Rendered by transformers (trim_blocks, lstrip_blocks, its own `tojson`) and by contracts.chat.
CHAT_TEMPLATE = (
    "{{- '<|begin|>' -}}"
    "{%- if tools -%}"
    "{{- '<|system|>Available tools:' -}}"
    "{%- for t in tools -%}{{- '\\n' + (t | tojson) -}}{%- endfor -%}"
    "{{- '<|end|>' -}}"
    "{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m['content'] is string -%}{%- set text = m['content'] -%}"
    "{%- elif m['content'] -%}{%- set text = m['content'] | map(attribute='text') | join('') -%}"
    "{%- else -%}{%- set text = '' -%}{%- endif -%}"
    "{%- if m['role'] == 'system' or m['role'] == 'developer' -%}"
    "{{- '<|system|>' + text + '<|end|>' -}}"
    "{%- elif m['role'] == 'user' -%}"
    "{{- '<|user|>' + text + '<|end|>' -}}"
    "{%- elif m['role'] == 'assistant' -%}"
    "{{- '<|assistant|>' + text -}}"
    "{%- for c in m['tool_calls'] or [] -%}"
    "{%- set f = c['function'] -%}"
    "{{- '<|tool_call|>{\"name\": ' + (f['name'] | tojson) + ', \"arguments\": ' -}}"
    "{%- if f['arguments'] is string -%}{{- f['arguments'] -}}"
    "{%- else -%}{{- f['arguments'] | tojson -}}{%- endif -%}"
    "{{- '}' -}}"
    "{%- endfor -%}"
    "{{- '<|end|>' -}}"
    "{%- elif m['role'] == 'tool' -%}"
    "{{- '<|tool|>' + text + '<|end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)


def build_tokenizer() -> Tokenizer:
    """A byte-level BPE `tokenizers.Tokenizer` trained on the built-in corpus."""
    return train_bpe(SPECIAL_TOKENS)


def train_bpe(special_tokens: list[Any]) -> Tokenizer:
    """Byte-level BPE trained on the built-in corpus, `special_tokens` (strings or
    `tokenizers.AddedToken`) at ids 0..; the same call gives the same tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = CORPUS.read_text(encoding="utf-8").splitlines(keepends=True)
    tok.train_from_iterator(lines, trainer)
    return tok


def make_base_model(path: Path) -> Path:
    """Write the base model folder at `path` (created if missing) and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=build_tokenizer(),
        bos_token=BEGIN,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=[SYSTEM, USER, ASSISTANT, TOOL, TOOL_CALL],
        model_max_length=1024,
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(path)
    _put_template_in_config(path)

    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=352,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        initializer_range=0.02,
        bos_token_id=_token_id(fast, BEGIN),
        eos_token_id=_token_id(fast, END),
        pad_token_id=_token_id(fast, PAD),
        tie_word_embeddings=False,
        dtype="float32",
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]
        # A wider output layer lets a small adapter move the loss, not just the argmax.
        torch.nn.init.normal_(model.lm_head.weight, std=LM_HEAD_STD)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.do_sample = False
    model.save_pretrained(path)
    return path


def _token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """The id of one token (transformers types the answer for one token and for a list alike)."""
    return cast(int, tokenizer.convert_tokens_to_ids(token))


def _put_template_in_config(path: Path) -> None:
    """Keep the chat template in tokenizer_config.json, where every reader looks for it."""
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (path / "chat_template.jinja").unlink(missing_ok=True)
