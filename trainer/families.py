"""Tiny random-weight models of real architectures ("families"), built in code.

Nothing can be downloaded here, yet the trainer and vLLM must cope with what real base models
do: grouped-query attention and Llama 3 RoPE scaling, Qwen's qkv bias, Mistral's sliding
window, Gemma 2's logit softcapping and tied embeddings, Phi-3's fused projections, and each
family's own special tokens, end-of-turn tokens and chat-template quirks (a template that reads
`messages[0]` unguarded, inserts a default system prompt, refuses non-alternating roles, folds
the system message into a user turn, or appends an end token). `make_family_model` writes a
normal Hugging Face folder for one family from transformers' own config classes, with random
weights from a fixed seed, a byte-level BPE trained on the built-in corpus with the family's
special tokens, and a chat template written here that behaves like the family's. The same call
gives the same bytes. `config_overrides` builds a larger model of the same family (e.g. Llama
3.2 1B or Llama 3 8B shapes for a GPU benchmark); pass `"dtype": "bfloat16"` there for those.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.basemodel import train_bpe

FAMILIES = ("llama3", "qwen2", "mistral", "gemma2", "phi3")

LM_HEAD_STD = 0.1  # as trainer.basemodel: lets a small adapter move the loss
MAX_POSITIONS = 4096

# --- chat templates -----------------------------------------------------------------------
# Rendered by transformers (trim_blocks, lstrip_blocks, its `tojson`, `raise_exception` and
# `strftime_now`); every tag strips the whitespace around it, so only quoted text is output.

_TEXT_MACROS = r"""
{%- macro text(content) -%}
    {%- if content is string -%}{{- content -}}
    {%- elif content is iterable and content is not mapping -%}
        {%- for part in content -%}
            {%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- macro args(arguments) -%}
    {%- if arguments is string -%}{{- arguments -}}
    {%- else -%}{{- arguments | tojson -}}{%- endif -%}
{%- endmacro -%}
"""

# Llama 3.1: a system header always (knowledge cutoff, today's date, tools), one tool call per
# assistant turn as JSON with "parameters", tool results under the `ipython` role.
LLAMA3_TEMPLATE = (
    _TEXT_MACROS
    + r"""
{{- bos_token -}}
{%- if date_string is not defined -%}
    {%- if strftime_now is defined -%}{%- set date_string = strftime_now('%d %b %Y') -%}
    {%- else -%}{%- set date_string = '26 Jul 2024' -%}{%- endif -%}
{%- endif -%}
{%- if messages[0]['role'] == 'system' -%}
    {%- set system_message = text(messages[0]['content']) | trim -%}
    {%- set messages = messages[1:] -%}
{%- else -%}
    {%- set system_message = '' -%}
{%- endif -%}
{{- '<|start_header_id|>system<|end_header_id|>\n\n' -}}
{%- if tools -%}{{- 'Environment: ipython\n' -}}{%- endif -%}
{{- 'Cutting Knowledge Date: December 2023\nToday Date: ' + date_string + '\n\n' -}}
{%- if tools -%}
    {{- 'You can call the functions below. To call one, answer with only a JSON object '
        + '{"name": function name, "parameters": object of argument names and values}, '
        + 'one call at a time.\n\n' -}}
    {%- for t in tools -%}{{- (t | tojson(indent=4)) + '\n\n' -}}{%- endfor -%}
{%- endif -%}
{{- system_message + '<|eot_id|>' -}}
{%- for m in messages -%}
    {%- if m['role'] == 'assistant' and m['tool_calls'] -%}
        {%- if m['tool_calls'] | length != 1 -%}
            {{- raise_exception('This model can only call one tool at a time.') -}}
        {%- endif -%}
        {%- set f = m['tool_calls'][0]['function'] -%}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": ' + (f['name'] | tojson) + ', "parameters": ' + args(f['arguments']) -}}
        {{- '}<|eot_id|>' -}}
    {%- elif m['role'] == 'tool' or m['role'] == 'ipython' -%}
        {{- '<|start_header_id|>ipython<|end_header_id|>\n\n' -}}
        {%- if m['content'] is mapping -%}{{- m['content'] | tojson -}}
        {%- else -%}{{- text(m['content']) -}}{%- endif -%}
        {{- '<|eot_id|>' -}}
    {%- else -%}
        {{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' -}}
        {{- (text(m['content']) | trim) + '<|eot_id|>' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
{%- endif -%}
"""
)

QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

# Qwen 2.5: ChatML; a default system prompt when messages[0] is not one; tools listed in
# <tools> in the system turn; calls in <tool_call>; consecutive tool results grouped into one
# user turn of <tool_response> blocks.
QWEN2_TEMPLATE = (
    _TEXT_MACROS
    + r"""
{%- if tools -%}
    {{- '<|im_start|>system\n' -}}
    {%- if messages[0]['role'] == 'system' -%}{{- text(messages[0]['content']) -}}
    {%- else -%}{{- '"""
    + QWEN_DEFAULT_SYSTEM
    + r"""' -}}{%- endif -%}
    {{- '\n\n# Tools\n\nYou may call one or more functions to help with the user query.\n\n'
        + 'The function signatures are inside <tools></tools> XML tags:\n<tools>' -}}
    {%- for t in tools -%}{{- '\n' + (t | tojson) -}}{%- endfor -%}
    {{- '\n</tools>\n\nFor each call, return a JSON object with the function name and '
        + 'arguments inside <tool_call></tool_call> XML tags:\n<tool_call>\n'
        + '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- elif messages[0]['role'] == 'system' -%}
    {{- '<|im_start|>system\n' + text(messages[0]['content']) + '<|im_end|>\n' -}}
{%- else -%}
    {{- '<|im_start|>system\n"""
    + QWEN_DEFAULT_SYSTEM
    + r"""<|im_end|>\n' -}}
{%- endif -%}
{%- for m in messages -%}
    {%- if m['role'] == 'system' and loop.first -%}
    {%- elif m['role'] == 'assistant' -%}
        {{- '<|im_start|>assistant\n' + text(m['content']) -}}
        {%- for c in m['tool_calls'] or [] -%}
            {%- if not loop.first or m['content'] -%}{{- '\n' -}}{%- endif -%}
            {{- '<tool_call>\n{"name": ' + (c['function']['name'] | tojson) + ', "arguments": ' -}}
            {{- args(c['function']['arguments']) + '}\n</tool_call>' -}}
        {%- endfor -%}
        {{- '<|im_end|>\n' -}}
    {%- elif m['role'] == 'tool' -%}
        {%- if loop.first or loop.previtem['role'] != 'tool' -%}{{- '<|im_start|>user' -}}
        {%- endif -%}
        {{- '\n<tool_response>\n' + text(m['content']) + '\n</tool_response>' -}}
        {%- if loop.last or loop.nextitem['role'] != 'tool' -%}{{- '<|im_end|>\n' -}}{%- endif -%}
    {%- else -%}
        {{- '<|im_start|>' + m['role'] + '\n' + text(m['content']) + '<|im_end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""
)

# Mistral (v0.3 instruct): [INST] turns; user/assistant must alternate after an optional
# system message, which is folded into the last user turn, where the tool list goes too. The
# generation prompt is empty: the model answers right after [/INST].
MISTRAL_TEMPLATE = (
    _TEXT_MACROS
    + r"""
{{- bos_token -}}
{%- if messages[0]['role'] == 'system' -%}
    {%- set system_message = text(messages[0]['content']) -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set system_message = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- set ns = namespace(turn=0, last_user=-1) -%}
{%- for m in loop_messages -%}
    {%- if m['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}
    {%- if m['role'] == 'user' or (m['role'] == 'assistant' and not m['tool_calls']) -%}
        {%- if (m['role'] == 'user') != (ns.turn % 2 == 0) -%}
            {{- raise_exception('After the optional system message, conversation roles must '
                + 'alternate user/assistant/user/assistant/...') -}}
        {%- endif -%}
        {%- set ns.turn = ns.turn + 1 -%}
    {%- elif m['role'] not in ['assistant', 'tool'] -%}
        {{- raise_exception('Only user, assistant and tool roles are supported, after an '
            + 'optional first system message.') -}}
    {%- endif -%}
{%- endfor -%}
{%- for m in loop_messages -%}
    {%- set is_last_user = loop.index0 == ns.last_user -%}
    {%- if m['role'] == 'user' -%}
        {%- if tools and is_last_user -%}
            {{- '[AVAILABLE_TOOLS] [' -}}
            {%- for t in tools -%}
                {{- t | tojson -}}{%- if not loop.last -%}{{- ', ' -}}{%- endif -%}
            {%- endfor -%}
            {{- '][/AVAILABLE_TOOLS]' -}}
        {%- endif -%}
        {%- if system_message and is_last_user -%}
            {{- '[INST] ' + system_message + '\n\n' + text(m['content']) + '[/INST]' -}}
        {%- else -%}
            {{- '[INST] ' + text(m['content']) + '[/INST]' -}}
        {%- endif -%}
    {%- elif m['role'] == 'assistant' and m['tool_calls'] -%}
        {{- '[TOOL_CALLS] [' -}}
        {%- for c in m['tool_calls'] -%}
            {{- '{"name": ' + (c['function']['name'] | tojson) + ', "arguments": ' -}}
            {{- args(c['function']['arguments']) -}}
            {%- if c['id'] -%}{{- ', "id": ' + (c['id'] | tojson) -}}{%- endif -%}
            {{- '}' -}}{%- if not loop.last -%}{{- ', ' -}}{%- endif -%}
        {%- endfor -%}
        {{- ']' + eos_token -}}
    {%- elif m['role'] == 'assistant' -%}
        {{- ' ' + (text(m['content']) | trim) + eos_token -}}
    {%- elif m['role'] == 'tool' -%}
        {{- '[TOOL_RESULTS] {"content": ' + (text(m['content']) | tojson) -}}
        {%- if m['tool_call_id'] -%}{{- ', "call_id": ' + (m['tool_call_id'] | tojson) -}}
        {%- endif -%}
        {{- '}[/TOOL_RESULTS]' -}}
    {%- endif -%}
{%- endfor -%}
"""
)

# Gemma 2: turns are `user` and `model`, strictly alternating; a first system message is
# folded into the first user turn, a system message anywhere else is refused; no tools.
GEMMA2_TEMPLATE = (
    _TEXT_MACROS
    + r"""
{{- bos_token -}}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = text(messages[0]['content']) + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for m in loop_messages -%}
    {%- if m['role'] == 'system' -%}
        {{- raise_exception('A system message is only supported as the first message.') -}}
    {%- endif -%}
    {%- if m['role'] not in ['user', 'assistant'] -%}
        {{- raise_exception('Only user and assistant roles are supported.') -}}
    {%- endif -%}
    {%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...')
        -}}
    {%- endif -%}
    {%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}
    {{- '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') -}}
    {{- (text(m['content']) | trim) + '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}
"""
)

# Phi-3 (mini instruct): <|role|>\n ... <|end|>\n turns, other roles ignored; a conversation
# rendered without a generation prompt ends with the eos token.
PHI3_TEMPLATE = (
    _TEXT_MACROS
    + r"""
{%- for m in messages -%}
    {%- if m['role'] in ['system', 'user', 'assistant'] -%}
        {{- '<|' + m['role'] + '|>\n' + text(m['content']) + '<|end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant|>\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%}
"""
)


# --- the families -------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """What makes one family's folder: its config, tokens and template."""

    name: str
    config_class: str  # in transformers
    config: dict[str, Any]  # the tiny defaults, before `config_overrides`
    special_tokens: list[str]  # special added tokens, in id order (ids 0, 1, ...)
    bos: str | None
    eos: str  # tokenizer_config.json's eos_token
    pad: str | None
    unk: str | None
    stop: list[str]  # generation_config.json eos_token_id, in this order
    template: str
    add_bos: bool  # the tokenizer adds bos when asked for special tokens
    plain_added: list[str] = field(default_factory=list)  # added tokens that are not special
    rstrip: list[str] = field(default_factory=list)  # added tokens that eat whitespace after


_COMMON: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": MAX_POSITIONS,
    "initializer_range": 0.02,
    "dtype": "float32",
}

_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            name="llama3",
            config_class="LlamaConfig",
            config={
                **_COMMON,
                "num_key_value_heads": 1,
                "head_dim": 64,
                "rms_norm_eps": 1e-5,
                "tie_word_embeddings": False,
                "rope_parameters": {
                    "rope_type": "llama3",
                    "rope_theta": 500000.0,
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 512,
                },
            },
            special_tokens=[
                "<|begin_of_text|>",
                "<|end_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
                "<|eom_id|>",
                "<|python_tag|>",
                "<|finetune_right_pad_id|>",
            ],
            bos="<|begin_of_text|>",
            eos="<|eot_id|>",
            pad=None,
            unk=None,
            stop=["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
            template=LLAMA3_TEMPLATE,
            add_bos=True,
        ),
        Family(
            name="qwen2",
            config_class="Qwen2Config",
            config={
                **_COMMON,
                "num_key_value_heads": 1,
                "rms_norm_eps": 1e-6,
                "tie_word_embeddings": False,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
                "use_sliding_window": False,
            },
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            bos=None,
            eos="<|im_end|>",
            pad="<|endoftext|>",
            unk=None,
            stop=["<|im_end|>", "<|endoftext|>"],
            template=QWEN2_TEMPLATE,
            add_bos=False,
            # As in Qwen 2.5: single tokens, but not special, so a tool-call parser still sees
            # them in text decoded with skip_special_tokens.
            plain_added=["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"],
        ),
        Family(
            name="mistral",
            config_class="MistralConfig",
            config={
                **_COMMON,
                "num_key_value_heads": 1,
                "head_dim": 64,
                "rms_norm_eps": 1e-5,
                "tie_word_embeddings": False,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
                "sliding_window": 64,
            },
            special_tokens=[
                "<unk>",
                "<s>",
                "</s>",
                "[INST]",
                "[/INST]",
                "[TOOL_CALLS]",
                "[AVAILABLE_TOOLS]",
                "[/AVAILABLE_TOOLS]",
                "[TOOL_RESULTS]",
                "[/TOOL_RESULTS]",
            ],
            bos="<s>",
            eos="</s>",
            pad=None,
            unk="<unk>",
            stop=["</s>"],
            template=MISTRAL_TEMPLATE,
            add_bos=True,
        ),
        Family(
            name="gemma2",
            config_class="Gemma2Config",
            config={
                **_COMMON,
                "num_key_value_heads": 1,
                "head_dim": 64,
                "query_pre_attn_scalar": 64,
                "rms_norm_eps": 1e-6,
                "hidden_activation": "gelu_pytorch_tanh",
                "tie_word_embeddings": True,
                "sliding_window": 64,
                "final_logit_softcapping": 30.0,
                "attn_logit_softcapping": 50.0,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            },
            special_tokens=[
                "<pad>",
                "<eos>",
                "<bos>",
                "<unk>",
                "<start_of_turn>",
                "<end_of_turn>",
            ],
            bos="<bos>",
            eos="<eos>",
            pad="<pad>",
            unk="<unk>",
            stop=["<eos>", "<end_of_turn>"],
            template=GEMMA2_TEMPLATE,
            add_bos=True,
        ),
        Family(
            name="phi3",
            config_class="Phi3Config",
            config={
                **_COMMON,
                "num_key_value_heads": 2,
                "rms_norm_eps": 1e-5,
                "tie_word_embeddings": False,
                "original_max_position_embeddings": MAX_POSITIONS,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
                "sliding_window": None,
            },
            special_tokens=[
                "<unk>",
                "<s>",
                "</s>",
                "<|endoftext|>",
                "<|assistant|>",
                "<|system|>",
                "<|end|>",
                "<|user|>",
            ],
            bos="<s>",
            eos="<|endoftext|>",
            pad="<|endoftext|>",
            unk="<unk>",
            stop=["<|endoftext|>", "<|assistant|>", "<|end|>"],
            template=PHI3_TEMPLATE,
            add_bos=False,
            # As in Phi-3: the role and end markers swallow the newline that follows them.
            rstrip=["<|assistant|>", "<|system|>", "<|end|>", "<|user|>"],
        ),
    ]
}


# `config_overrides` for real model shapes of a family (random weights, the family's small
# tokenizer), e.g. for a GPU benchmark: make_family_model("llama3", p, config_overrides=...).
LLAMA_3_2_1B: dict[str, Any] = {
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "tie_word_embeddings": True,
    "max_position_embeddings": 131072,
    "rope_parameters": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    "dtype": "bfloat16",
}
LLAMA_3_8B: dict[str, Any] = {
    **LLAMA_3_2_1B,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "tie_word_embeddings": False,
    "rope_parameters": {**LLAMA_3_2_1B["rope_parameters"], "factor": 8.0},
}


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
    if fam.plain_added:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in fam.plain_added])
    return tok


def make_family_model(
    family: str,
    path: Path,
    *,
    config_overrides: dict[str, Any] | None = None,
    seed: int = 1234,
) -> Path:
    """Write the model folder of `family` at `path` (created if missing); return it.

    `config_overrides` replaces config fields (any field of the family's config class, e.g.
    `hidden_size`, `num_hidden_layers`, `vocab_size` at least the tokenizer's size, or
    `dtype` for the saved weights); the folder is the same bytes for the same arguments.
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
    _finish_tokenizer_config(path, fam)

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
        torch.nn.init.normal_(model.get_output_embeddings().weight, std=LM_HEAD_STD)
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


def _finish_tokenizer_config(path: Path, fam: Family) -> None:
    """Keep the chat template in tokenizer_config.json, where every reader looks for it."""
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = fam.template
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["add_bos_token"] = fam.add_bos
    config["add_eos_token"] = False
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (path / "chat_template.jinja").unlink(missing_ok=True)
