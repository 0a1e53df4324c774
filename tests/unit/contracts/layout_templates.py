"""Chat templates written for these tests, each reproducing a behaviour of the templates users
bring (from public collections, pretty-printed) and of the reasoning families (none is a copy
of one), and for each, by hand, the text its assistant message must train when it is the last
message: `answer(message, thinking)`.

- `indented`: a Llama-3-shaped template written over indented lines; with `trim_blocks` and
  `lstrip_blocks` the `{{ ... }}` lines keep their indentation (spaces before headers) and
  their newline, so the generation prompt, indented less, ends with one more newline than the
  rendered assistant header.
- `spaced`: a Zephyr/Phi-3-shaped one, headers on lines of their own after a space, the
  prompt's header with an extra newline.
- `thinking`: a Qwen-3-shaped one: reasoning (`reasoning_content`) in `<think>` blocks only for
  the turns after the last user message (dropped from history: not prefix-stable), an empty
  block for the last turn without reasoning, and `enable_thinking=false` writing the empty
  block into the generation prompt.
- `opens_think`: a DeepSeek-R1-shaped one: the generation prompt opens `<think>\\n`, history
  turns lose their reasoning.
- `no_content`: renders every assistant turn without its content (refused).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_TEXT = (
    "{% set text = message['content'] if message['content'] is string else "
    "(message['content'] | map(attribute='text') | join('') if message['content'] else '') %}\n"
)
_CALLS = (
    "{% set ns = namespace(calls='') %}\n"
    "{% for c in message['tool_calls'] or [] %}\n"
    "    {% set ns.calls = ns.calls + '<tool_call>' + ({'name': c['function']['name'], "
    "'arguments': c['function']['arguments']} | tojson) + '</tool_call>' %}\n"
    "{% endfor %}\n"
)

INDENTED = (
    """{{ '<|begin_of_text|>' }}
{% if messages[0]['role'] == 'system' %}
    {% set system = messages[0]['content'] %}
    {% set rest = messages[1:] %}
{% else %}
    {% set system = '' %}
    {% set rest = messages %}
{% endif %}
{% if system or tools %}
    {% set listed = 'Tools: ' + (tools | tojson) if tools else '' %}
    {{ '<|start_header_id|>system<|end_header_id|>\\n\\n' + system + listed + '<|eot_id|>' }}
{% endif %}
{% for message in rest %}
    """
    + _TEXT
    + _CALLS
    + """    {% if message['role'] == 'assistant' %}
        {{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' + text + ns.calls + '<|eot_id|>' }}
    {% elif message['role'] == 'tool' %}
        {{ '<|start_header_id|>ipython<|end_header_id|>\\n\\n' + text + '<|eot_id|>' }}
    {% else %}
        {% set header = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' %}
        {{ header + text + '<|eot_id|>' }}
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}
    {{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{% endif %}
"""
)

SPACED = (
    """{% for message in messages %}
"""
    + _TEXT
    + _CALLS
    + """{% if message['role'] == 'assistant' %}
 {{ '<|assistant|>' }}
{{ text + ns.calls + '</s>' }}
{% else %}
 {{ '<|' + ('user' if message['role'] == 'tool' else message['role']) + '|>' }}
{{ text + '</s>' }}
{% endif %}
{% endfor %}
{% if add_generation_prompt %}
 {{ '<|assistant|>\\n' }}
{% endif %}
"""
)

THINKING = (
    "{%- set ns = namespace(last_user=-1) -%}"
    "{%- for message in messages -%}{%- if message['role'] == 'user' -%}"
    "{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}"
    "{%- if tools -%}{{- '<|im_start|>system\\nTools: ' + (tools | tojson) + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    + _TEXT.replace("{% set", "{%- set").replace("%}\n", "-%}")
    + "{%- set calls = namespace(text='') -%}"
    "{%- for c in message['tool_calls'] or [] -%}"
    "{%- set calls.text = calls.text + '<tool_call>' + ({'name': c['function']['name'], "
    "'arguments': c['function']['arguments']} | tojson) + '</tool_call>' -%}"
    "{%- endfor -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- set reasoning = message['reasoning_content'] or '' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if loop.index0 > ns.last_user and (loop.last or reasoning) -%}"
    "{{- '<think>\\n' + reasoning + '\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{{- text + calls.text + '<|im_end|>\\n' -}}"
    "{%- elif message['role'] == 'tool' -%}"
    "{{- '<|im_start|>user\\n<tool_response>' + text + '</tool_response><|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>' + message['role'] + '\\n' + text + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}{%- endif -%}"
)

OPENS_THINK = (
    "{%- set ns = namespace(last_user=-1) -%}"
    "{%- for message in messages -%}{%- if message['role'] == 'user' -%}"
    "{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}"
    "{{- '<s>' -}}"
    "{%- for message in messages -%}"
    + _TEXT.replace("{% set", "{%- set").replace("%}\n", "-%}")
    + "{%- if message['role'] == 'assistant' -%}{{- '<|assistant|>' -}}"
    "{%- if loop.index0 > ns.last_user -%}"
    "{{- '<think>\\n' + (message['reasoning_content'] or '') + '\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{{- text + '</s>' -}}"
    "{%- else -%}{{- '<|user|>' + text -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|><think>\\n' -}}{%- endif -%}"
)

NO_CONTENT = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}{{- '<|assistant|>(answer)<|end|>' -}}"
    "{%- else -%}{{- '<|user|>' + message['content'] + '<|end|>' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)


def text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part["text"] for part in content)
    return content or ""


def calls(message: dict[str, Any]) -> str:
    return "".join(
        "<tool_call>"
        + json.dumps(
            {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
            ensure_ascii=False,
        )
        + "</tool_call>"
        for c in message.get("tool_calls") or []
    )


def _think(message: dict[str, Any]) -> str:
    return message.get("reasoning_content") or ""


@dataclass(frozen=True)
class Behaviour:
    """A template, what a trained message trains, and what conversations it accepts."""

    template: str
    answer: Callable[[dict[str, Any], bool], str]  # (message, thinking on) -> trained text
    system: bool = True
    tools: bool = True  # tool calls and tool results
    reasoning: bool = False  # renders reasoning_content
    alternating: bool = False  # user/assistant strictly in turn
    thinking_switch: bool = False  # reads enable_thinking
    needs_reasoning: bool = False  # every assistant message reasons (see `opens_think`)
    prompt_differs: bool = False  # the generation prompt is not a prefix of the rendered turn


def _thinking_answer(m: dict[str, Any], thinking: bool) -> str:
    if thinking:
        return f"<think>\n{_think(m)}\n</think>\n\n{text(m)}{calls(m)}<|im_end|>"
    return f"{text(m)}{calls(m)}<|im_end|>"


BEHAVIOURS = {
    "indented": Behaviour(
        INDENTED, lambda m, _: text(m) + calls(m) + "<|eot_id|>", prompt_differs=True
    ),
    "spaced": Behaviour(SPACED, lambda m, _: text(m) + calls(m) + "</s>", prompt_differs=True),
    "thinking": Behaviour(THINKING, _thinking_answer, reasoning=True, thinking_switch=True),
    "opens_think": Behaviour(
        OPENS_THINK,
        lambda m, _: f"{_think(m)}\n</think>\n\n{text(m)}</s>",
        reasoning=True,
        tools=False,
        system=False,
        needs_reasoning=True,
    ),  # fmt: skip
}
