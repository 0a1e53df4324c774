"""The families: each one's config (transformers' class and the tiny defaults), special
tokens, end-of-turn tokens and chat template; and real model shapes to build larger ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from testing.families.templates import (
    GEMMA2_TEMPLATE,
    LLAMA3_TEMPLATE,
    MISTRAL_TEMPLATE,
    PHI3_TEMPLATE,
    QWEN2_TEMPLATE,
)
from testing.families.templates_2026 import PHI4_MINI_TEMPLATE, QWEN3_TEMPLATE

MAX_POSITIONS = 4096
LM_HEAD_STD = 0.1  # as trainer.basemodel: lets a small adapter move the loss


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
    # The tokenizer's size, as the family's real one (128k, 262k): the trained BPE is padded
    # with tokens no text encodes to, so the embedding and the loss have the real width.
    vocab_size: int | None = None
    # The output embedding's init std. A narrow hidden state over a wide vocabulary, tied to
    # the input embedding, needs a larger one: the final norm fixes the hidden state's length,
    # and LoRA cannot move the tied head, so the std bounds how far a target logit can rise.
    lm_head_std: float = LM_HEAD_STD


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
        # --- the families of 2026 ---
        Family(
            name="qwen3",
            config_class="Qwen3Config",  # q and k RMS-normed per head before RoPE
            config={
                **_COMMON,
                "num_key_value_heads": 1,
                "head_dim": 64,
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
            template=QWEN3_TEMPLATE,
            add_bos=False,
            # As in Qwen 3: single tokens that survive skip_special_tokens, so vLLM's reasoning
            # and tool-call parsers see them.
            plain_added=[
                "<tool_call>",
                "</tool_call>",
                "<tool_response>",
                "</tool_response>",
                "<think>",
                "</think>",
            ],  # fmt: skip
        ),
        Family(
            name="gemma3",
            config_class="Gemma3TextConfig",
            config={
                **_COMMON,
                "hidden_size": 64,  # a narrow embedding: 262k rows of it
                "intermediate_size": 128,
                "num_key_value_heads": 1,
                "head_dim": 64,
                "query_pre_attn_scalar": 64,
                "rms_norm_eps": 1e-6,
                "hidden_activation": "gelu_pytorch_tanh",
                "tie_word_embeddings": True,
                "sliding_window": 64,
                # Local (sliding-window) and global layers interleaved, as Gemma 3's 5:1.
                "layer_types": ["sliding_attention", "full_attention"],
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
            template=GEMMA2_TEMPLATE,  # Gemma 3's renders as Gemma 2's (text only)
            add_bos=True,
            vocab_size=262144,
            lm_head_std=0.3,
        ),
        Family(
            name="llama3.2",
            config_class="LlamaConfig",
            config={
                **_COMMON,
                "hidden_size": 64,  # a narrow embedding: 128k rows of it
                "intermediate_size": 128,
                # Layers that move a residual stream the tied embedding dominates (Gemma's
                # sandwich norms do this for Gemma 3).
                "initializer_range": 0.2,
                "num_key_value_heads": 1,
                "head_dim": 64,
                "rms_norm_eps": 1e-5,
                "tie_word_embeddings": True,
                "rope_parameters": {
                    "rope_type": "llama3",
                    "rope_theta": 500000.0,
                    "factor": 32.0,
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
            template=LLAMA3_TEMPLATE,  # Llama 3.2's renders as Llama 3.1's
            add_bos=True,
            vocab_size=128256,
            lm_head_std=0.3,
        ),
        Family(
            name="phi4-mini",
            config_class="Phi3Config",  # as Phi-4-mini's config.json names it
            config={
                **_COMMON,
                "initializer_range": 0.2,  # as Llama 3.2's: tied, the layers must move it
                "num_key_value_heads": 1,
                "rms_norm_eps": 1e-5,
                "tie_word_embeddings": True,
                "original_max_position_embeddings": MAX_POSITIONS,
                # RoPE on three quarters of each head, the rest position-free.
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 10000.0,
                    "partial_rotary_factor": 0.75,
                },
                "sliding_window": None,
            },
            special_tokens=[
                "<|endoftext|>",
                "<|system|>",
                "<|user|>",
                "<|assistant|>",
                "<|end|>",
                "<|tool|>",
                "<|/tool|>",
                "<|tool_call|>",
                "<|/tool_call|>",
                "<|tool_response|>",
            ],
            bos="<|endoftext|>",
            eos="<|endoftext|>",
            pad="<|endoftext|>",
            unk="<|endoftext|>",
            stop=["<|end|>", "<|endoftext|>"],
            template=PHI4_MINI_TEMPLATE,
            add_bos=False,
            lm_head_std=0.3,
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
