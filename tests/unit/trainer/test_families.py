"""The family models: normal HF folders with each real architecture's feature, its special
tokens as single added tokens, and a chat template that behaves like the family's."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from testing.families import (
    FAMILIES,
    LLAMA3_INDENTED_TEMPLATE,
    QWEN_DEFAULT_SYSTEM,
    get_family,
    make_family_model,
)

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
TOOL_CHAT = [
    {"role": "user", "content": "Weather in Oslo?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    {"role": "assistant", "content": "Sunny."},
]
LLAMA_HEADER = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 02 Dec 2026\n\n"
)
RENDERED = {
    "llama3": LLAMA_HEADER + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
    "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>",
    "qwen2": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    "<|im_start|>assistant\nHello!<|im_end|>\n",
    "mistral": "<s>[INST] Be brief.\n\nHi[/INST] Hello!</s>",
    "gemma2": "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
    "<start_of_turn>model\nHello!<end_of_turn>\n",
    "phi3": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
    "<|endoftext|>",
    # The last assistant turn of Qwen 3 carries a think block, empty when it has no reasoning.
    "qwen3": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n",
    "gemma3": "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
    "<start_of_turn>model\nHello!<end_of_turn>\n",
    "llama3.2": LLAMA_HEADER + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
    "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>",
    "phi4-mini": "<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>Hello!<|end|>"
    "<|endoftext|>",
}
GENERATION_PROMPT = {
    "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "qwen2": "<|im_start|>assistant\n",
    "mistral": "[/INST]",  # empty prompt: the model answers right after the user turn
    "gemma2": "<start_of_turn>model\n",
    "phi3": "<|assistant|>\n",
    "qwen3": "<|im_start|>assistant\n",
    "gemma3": "<start_of_turn>model\n",
    "llama3.2": "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "phi4-mini": "<|assistant|>",
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: make_family_model(name, root / name) for name in FAMILIES}


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _render(folder: Path, messages: list[dict[str, Any]], **kw: Any) -> str:
    return str(_tokenizer(folder).apply_chat_template(messages, tokenize=False, **kw))


def test_the_families() -> None:
    assert FAMILIES == (
        "llama3", "qwen2", "mistral", "gemma2", "phi3", "qwen3", "gemma3", "llama3.2", "phi4-mini"
    )  # fmt: skip
    with pytest.raises(ValueError, match="unknown family 'gpt9'"):
        get_family("gpt9")


@pytest.mark.parametrize("name", FAMILIES)
def test_a_normal_folder_that_loads_and_runs(folders: dict[str, Path], name: str) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    folder = folders[name]
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    assert "generation_config.json" in files
    assert "chat_template" in json.loads((folder / "tokenizer_config.json").read_text())
    tok = _tokenizer(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    assert head_dim == 64  # a head size vLLM's CPU attention supports
    assert model.config.vocab_size == len(tok)
    ids = torch.tensor([tok.encode("The cat sat.", add_special_tokens=False)])
    with torch.no_grad():
        assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tok))


@pytest.mark.parametrize("name", FAMILIES)
def test_special_tokens_are_single_added_special_tokens(
    folders: dict[str, Path], name: str
) -> None:
    fam = get_family(name)
    tok = _tokenizer(folders[name])
    added = {
        t["content"]: t
        for t in json.loads((folders[name] / "tokenizer.json").read_text())["added_tokens"]
    }
    for token in fam.special_tokens + fam.plain_added:
        ids = tok.encode(f"a {token} b", add_special_tokens=False)
        assert tok.convert_tokens_to_ids(token) in ids, token
        assert added[token]["special"] is (token not in fam.plain_added), token
        assert len(tok.encode(token, add_special_tokens=False)) == 1, token
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (fam.bos, fam.eos, fam.pad)
    stop = json.loads((folders[name] / "generation_config.json").read_text())["eos_token_id"]
    assert stop == [tok.convert_tokens_to_ids(t) for t in fam.stop]


def test_each_familys_tokens_and_stops(folders: dict[str, Path]) -> None:
    def stops(name: str) -> list[str]:
        tok = _tokenizer(folders[name])
        ids = json.loads((folders[name] / "generation_config.json").read_text())["eos_token_id"]
        return list(tok.convert_ids_to_tokens(ids))

    assert "<|eot_id|>" in stops("llama3") and _tokenizer(folders["llama3"]).pad_token is None
    assert "<|im_end|>" in stops("qwen2")
    assert "<end_of_turn>" in stops("gemma2") and "<|end|>" in stops("phi3")
    # Qwen's tool tags are single tokens but not special: they survive skip_special_tokens.
    qwen = _tokenizer(folders["qwen2"])
    ids = qwen.encode("<tool_call>\n{}\n</tool_call><|im_end|>", add_special_tokens=False)
    assert qwen.decode(ids, skip_special_tokens=True) == "<tool_call>\n{}\n</tool_call>"
    # Llama 3, Mistral and Gemma tokenizers add their bos when asked for special tokens.
    for name, bos in [("llama3", "<|begin_of_text|>"), ("mistral", "<s>"), ("gemma2", "<bos>")]:
        tok = _tokenizer(folders[name])
        assert tok.convert_ids_to_tokens(tok.encode("Hi")[0]) == bos
    assert _tokenizer(folders["qwen2"]).encode("Hi") == qwen.encode("Hi", add_special_tokens=False)
    # Phi-3's role markers swallow the newline after them.
    phi = _tokenizer(folders["phi3"])
    assert phi.convert_ids_to_tokens(phi.encode("<|user|>\nHi", add_special_tokens=False))[1] != "Ċ"


def test_each_family_has_its_architecture(folders: dict[str, Path]) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    llama = AutoConfig.from_pretrained(folders["llama3"])
    assert type(llama).__name__ == "LlamaConfig"
    assert llama.num_key_value_heads < llama.num_attention_heads
    assert llama.rope_scaling["rope_type"] == "llama3"
    qwen = AutoModelForCausalLM.from_pretrained(folders["qwen2"])
    attention = qwen.model.layers[0].self_attn
    assert type(qwen.config).__name__ == "Qwen2Config"
    assert attention.q_proj.bias is not None and attention.o_proj.bias is None
    mistral = AutoConfig.from_pretrained(folders["mistral"])
    assert type(mistral).__name__ == "MistralConfig" and mistral.sliding_window == 64
    gemma = AutoModelForCausalLM.from_pretrained(folders["gemma2"])
    assert type(gemma.config).__name__ == "Gemma2Config"
    assert gemma.config.final_logit_softcapping and gemma.config.attn_logit_softcapping
    assert gemma.config.tie_word_embeddings
    assert gemma.lm_head.weight.data_ptr() == gemma.model.embed_tokens.weight.data_ptr()
    phi = AutoModelForCausalLM.from_pretrained(folders["phi3"])
    names = {n.rsplit(".", 1)[-1] for n, _ in phi.named_modules()}
    assert type(phi.config).__name__ == "Phi3Config"
    assert {"qkv_proj", "gate_up_proj"} <= names and not {"q_proj", "up_proj"} & names


def test_same_bytes_every_time_and_overrides(folders: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoConfig

    def digests(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    for name in FAMILIES:
        assert digests(make_family_model(name, tmp_path / name)) == digests(folders[name]), name
    big = make_family_model(
        "llama3",
        tmp_path / "wider",
        config_overrides={"num_hidden_layers": 1, "vocab_size": 4096, "dtype": "bfloat16"},
    )
    config = AutoConfig.from_pretrained(big)
    assert (config.num_hidden_layers, config.vocab_size) == (1, 4096)
    assert str(config.dtype).endswith("bfloat16")
    with pytest.raises(ValueError, match="vocab_size 100"):
        make_family_model("qwen2", tmp_path / "small", config_overrides={"vocab_size": 100})


@pytest.mark.parametrize("name", FAMILIES)
def test_templates_render_like_the_family(folders: dict[str, Path], name: str) -> None:
    folder = folders[name]
    assert _render(folder, CHAT, date_string="02 Dec 2026") == RENDERED[name]
    parts = [{**m, "content": [{"type": "text", "text": m["content"]}]} for m in CHAT]
    assert _render(folder, parts, date_string="02 Dec 2026") == RENDERED[name]
    prompt = _render(folder, CHAT[:2], add_generation_prompt=True, date_string="02 Dec 2026")
    assert prompt.endswith(GENERATION_PROMPT[name])
    assert RENDERED[name].startswith(prompt)  # the answer follows its generation prompt


def test_llama3_dates_its_system_header_and_calls_tools_as_json(folders: dict[str, Path]) -> None:
    today = datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {today}\n" in _render(folders["llama3"], CHAT[1:])
    text = _render(folders["llama3"], TOOL_CHAT, tools=TOOLS, date_string="02 Dec 2026")
    assert "Environment: ipython\n" in text and '"name": "get_weather"' in text
    assert '{"name": "get_weather", "parameters": {"city": "Oslo"}}<|eot_id|>' in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\nsunny<|eot_id|>" in text
    from jinja2 import TemplateError

    two_calls = {**TOOL_CHAT[1], "tool_calls": TOOL_CHAT[1]["tool_calls"] * 2}
    with pytest.raises(TemplateError, match="one tool at a time"):
        _render(folders["llama3"], [TOOL_CHAT[0], two_calls])


def test_qwen2_default_system_prompt_and_tools(folders: dict[str, Path]) -> None:
    assert _render(folders["qwen2"], CHAT[1:]).startswith(
        f"<|im_start|>system\n{QWEN_DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nHi"
    )
    text = _render(folders["qwen2"], TOOL_CHAT, tools=TOOLS)
    assert "<tools>\n" + json.dumps(TOOLS[0]) + "\n</tools>" in text
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Oslo"}}\n</tool_call><|im_end|>\n' in text
    )
    assert "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n" in text


def test_mistral_and_gemma2_refuse_what_the_family_refuses(folders: dict[str, Path]) -> None:
    from jinja2 import TemplateError

    twice = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    late_system = [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]
    for name in ("mistral", "gemma2"):
        with pytest.raises(TemplateError, match="alternate"):
            _render(folders[name], twice)
        with pytest.raises(TemplateError, match="system message|roles are supported"):
            _render(folders[name], late_system)
    # Mistral folds the system message into the last user turn, where the tools go too.
    chat = CHAT + [{"role": "user", "content": "Again"}]
    text = _render(folders["mistral"], chat, tools=TOOLS)
    assert text.startswith("<s>[INST] Hi[/INST] Hello!</s>[AVAILABLE_TOOLS] [")
    assert text.endswith("[/AVAILABLE_TOOLS][INST] Be brief.\n\nAgain[/INST]")
    calls = _render(folders["mistral"], TOOL_CHAT, tools=TOOLS)
    assert (
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_1"}]'
        in calls
    )
    assert (
        '[TOOL_RESULTS] {"content": "sunny", "call_id": "call_1"}[/TOOL_RESULTS] Sunny.</s>'
        in calls
    )


def test_the_2026_families_have_their_architecture(folders: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM

    qwen = AutoModelForCausalLM.from_pretrained(folders["qwen3"])
    assert type(qwen.config).__name__ == "Qwen3Config"
    attention = qwen.model.layers[0].self_attn
    assert attention.q_norm.weight.shape == attention.k_norm.weight.shape == (64,)
    gemma = AutoModelForCausalLM.from_pretrained(folders["gemma3"])
    assert type(gemma.config).__name__ == "Gemma3TextConfig"
    assert gemma.config.layer_types == ["sliding_attention", "full_attention"]
    assert gemma.config.sliding_window == 64 and gemma.config.vocab_size == 262144
    llama = AutoModelForCausalLM.from_pretrained(folders["llama3.2"])
    assert llama.config.vocab_size == 128256 and llama.config.rope_scaling["factor"] == 32.0
    for model in (gemma, llama):
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    phi = AutoModelForCausalLM.from_pretrained(folders["phi4-mini"])
    assert type(phi.config).__name__ == "Phi3Config" and phi.config.tie_word_embeddings
    assert phi.config.rope_parameters["partial_rotary_factor"] == 0.75
    # RoPE turns 48 of each head's 64 dimensions: 24 frequencies.
    assert phi.model.rotary_emb.inv_freq.shape == (24,)


@pytest.mark.parametrize(("name", "size"), [("gemma3", 262144), ("llama3.2", 128256)])
def test_large_vocabularies_are_real_tokenizers_no_text_reaches_the_padding(
    folders: dict[str, Path], name: str, size: int
) -> None:
    from trainer.basemodel import CORPUS

    tok = _tokenizer(folders[name])
    assert len(tok) == size
    padding = [i for i in range(size) if tok.convert_ids_to_tokens(i).startswith("<|pad_")]
    assert len(padding) > size - 2000
    text = CORPUS.read_text(encoding="utf-8")[:20000] + " <|pad_5000|> <|pad_9|>"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert max(ids) < min(padding)  # the padding is never produced


def test_qwen3_thinks_in_its_last_turn_only(folders: dict[str, Path]) -> None:
    folder = folders["qwen3"]
    chat = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "A greeting."},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "<think>\nStill a greeting.\n</think>\n\nHi again"},
    ]
    text = _render(folder, chat)
    # Earlier turns lose their reasoning; the last keeps it, from either field.
    assert "A greeting." not in text and "<|im_start|>assistant\nHello!<|im_end|>\n" in text
    assert text.endswith(
        "<|im_start|>assistant\n<think>\nStill a greeting.\n</think>\n\nHi again<|im_end|>\n"
    )
    assert _render(folder, chat[:2]).endswith(
        "<|im_start|>assistant\n<think>\nA greeting.\n</think>\n\nHello!<|im_end|>\n"
    )
    # So the file's first turn renders one way in history and another as the last turn.
    assert not text.startswith(_render(folder, chat[:2]))
    on = _render(folder, chat[:3], add_generation_prompt=True)
    off = _render(folder, chat[:3], add_generation_prompt=True, enable_thinking=False)
    assert on.endswith("<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n")
    assert off == on + "<think>\n\n</think>\n\n"
    # <think> and </think> are single tokens that survive skip_special_tokens, as in Qwen 3.
    tok = _tokenizer(folder)
    ids = tok.encode("<think>\nx\n</think>\n\nA<|im_end|>", add_special_tokens=False)
    assert tok.convert_tokens_to_ids("<think>") == ids[0]
    assert tok.decode(ids, skip_special_tokens=True) == "<think>\nx\n</think>\n\nA"


def test_phi4_mini_takes_tools_on_the_system_message(folders: dict[str, Path]) -> None:
    tools = json.dumps([TOOLS[0]["function"]])
    system = {"role": "system", "content": "Be brief.", "tools": tools}
    text = _render(folders["phi4-mini"], [system, CHAT[1]], add_generation_prompt=True)
    assert (
        text == f"<|system|>Be brief.<|tool|>{tools}<|/tool|><|end|><|user|>Hi<|end|><|assistant|>"
    )


def test_the_indented_llama3_template_puts_whitespace_around_its_headers(tmp_path: Path) -> None:
    folder = make_family_model("llama3", tmp_path / "m", chat_template=LLAMA3_INDENTED_TEMPLATE)
    text = _render(folder, CHAT)
    assert "    <|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>\n" in text
    prompt = _render(folder, CHAT[:2], add_generation_prompt=True)
    # The generation prompt ends with one more newline than the rendered assistant turn.
    assert prompt.endswith("\n    <|start_header_id|>assistant<|end_header_id|>\n\n\n")
    assert not text.startswith(prompt) and text.startswith(prompt[:-1])
