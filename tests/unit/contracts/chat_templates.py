"""Chat templates written for these tests, each reproducing one behaviour of the templates the
common model families ship (none is a copy of one). Each marks its assistant output with
`{% generation %}`: `plain()` removes the marks, so the same template serves both as the
template under test and, through transformers' `return_assistant_tokens_mask`, as the
reference for its loss mask.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>",
    "[INST]", "[/INST]", "<s>", "</s>", "<start_of_turn>", "<end_of_turn>", "<think>", "</think>",
]  # fmt: skip

_TEXT = (
    "{%- macro text(m) -%}"
    "{%- if m['content'] is string -%}{{- m['content'] -}}"
    "{%- elif m['content'] -%}{{- m['content'] | map(attribute='text') | join('') -}}"
    "{%- endif -%}"
    "{%- endmacro -%}"
)
_CALLS = (
    "{%- for c in m['tool_calls'] or [] -%}"
    "{{- '<tool_call>' + ({'name': c['function']['name'],"
    " 'arguments': c['function']['arguments']} | tojson) + '</tool_call>' -}}"
    "{%- endfor -%}"
)

# Reads messages[0] unguarded for its system message (rendering [] raises UndefinedError).
READS_FIRST = (
    _TEXT + "{{- '<|begin_of_text|>' -}}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system = text(messages[0]) -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set rest = messages -%}{%- endif -%}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system -}}"
    "{%- if tools -%}{{- '\\nTools: ' + (tools | tojson) -}}{%- endif -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- for m in rest -%}"
    "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' -}}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- generation -%}{{- text(m) -}}" + _CALLS + "{{- '<|eot_id|>' -}}{%- endgeneration -%}"
    "{%- else -%}{{- text(m) + '<|eot_id|>' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"
)

# A system header with today's date (strftime_now), as Llama 3.1 and 3.2 write it.
DATED = READS_FIRST.replace(
    "'<|start_header_id|>system<|end_header_id|>\\n\\n' + system",
    "'<|start_header_id|>system<|end_header_id|>\\n\\nToday Date: ' + strftime_now('%d %b %Y')"
    " + '\\n\\n' + system",
)

# A default system prompt when the conversation has none (Qwen 2.5).
DEFAULT_SYSTEM = (
    _TEXT + "{%- if messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- text(m) -}}" + _CALLS + "{{- '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- elif m['role'] == 'tool' -%}"
    "{{- '<|im_start|>user\\n<tool_response>' + text(m) + '</tool_response><|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>' + m['role'] + '\\n' + text(m) + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# Roles must alternate user/assistant after an optional system message, which is folded into
# the first user turn; anything else is refused with raise_exception (Mistral).
ALTERNATING = (
    _TEXT + "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system = text(messages[0]) + '\\n\\n' -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set rest = messages -%}{%- endif -%}"
    "{{- '<s>' -}}"
    "{%- for m in rest -%}"
    "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}"
    "{%- endif -%}"
    "{%- if m['role'] == 'user' -%}"
    "{{- '[INST] ' + (system if loop.first else '') + text(m) + ' [/INST]' -}}"
    "{%- else -%}{%- generation -%}{{- ' ' + text(m) + '</s>' -}}{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# A system role is refused outright (Gemma).
REFUSES_SYSTEM = (
    _TEXT + "{{- '<s>' -}}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{{- raise_exception('System role not supported') -}}"
    "{%- endif -%}"
    "{%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}"
    "{{- '<start_of_turn>' + role + '\\n' -}}"
    "{%- if role == 'model' -%}"
    "{%- generation -%}{{- text(m) + '<end_of_turn>' -}}{%- endgeneration -%}{{- '\\n' -}}"
    "{%- else -%}{{- text(m) + '<end_of_turn>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)

# The system message is folded into the first user turn (Gemma 3).
FOLDS_SYSTEM = (
    _TEXT + "{{- '<s>' -}}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set prefix = text(messages[0]) + '\\n\\n' -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set rest = messages -%}{%- endif -%}"
    "{%- for m in rest -%}"
    "{%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}"
    "{{- '<start_of_turn>' + role + '\\n' -}}"
    "{%- if role == 'model' -%}"
    "{%- generation -%}{{- text(m) + '<end_of_turn>' -}}{%- endgeneration -%}{{- '\\n' -}}"
    "{%- else -%}{{- (prefix if loop.first else '') + text(m) + '<end_of_turn>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)

# Earlier assistant turns lose their reasoning once a later user turn follows: not
# prefix-stable (reasoning models' templates).
DROPS_REASONING = (
    _TEXT + "{%- set ns = namespace(last_user=-1) -%}"
    "{%- for m in messages -%}{%- if m['role'] == 'user' -%}"
    "{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}"
    "{%- if loop.index0 > ns.last_user and m['reasoning_content'] -%}"
    "{{- '<think>' + m['reasoning_content'] + '</think>' -}}{%- endif -%}"
    "{{- text(m) + '<|im_end|>' -}}"
    "{%- endgeneration -%}{{- '\\n' -}}"
    "{%- else -%}{{- '<|im_start|>' + m['role'] + '\\n' + text(m) + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

TEMPLATES = {
    "reads_first": READS_FIRST,
    "dated": DATED,
    "default_system": DEFAULT_SYSTEM,
    "alternating": ALTERNATING,
    "refuses_system": REFUSES_SYSTEM,
    "folds_system": FOLDS_SYSTEM,
    "drops_reasoning": DROPS_REASONING,
}


def plain(template: str) -> str:
    """The template without its `{% generation %}` marks."""
    return re.sub(r"\{%-? *(end)?generation *-?%\}", "", template)


def make_folder(root: Path, base_model_dir: Path, name: str, template: str) -> Path:
    """A model folder: the tiny model's tokenizer with the families' special tokens added."""
    from tokenizers import AddedToken, Tokenizer

    folder = root / name
    folder.mkdir()
    tokenizer = Tokenizer.from_file(str(base_model_dir / "tokenizer.json"))
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL_TOKENS])
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": template,
        "bos_token": "<s>", "eos_token": "</s>", "clean_up_tokenization_spaces": False,
    }  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder
