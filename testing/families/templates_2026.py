"""The chat templates of the 2026 families (Qwen 3, Phi-4-mini) and a pretty-printed Llama 3
template, written here to behave like each family's own. Gemma 3 and Llama 3.2 render as
Gemma 2 and Llama 3.1 do, so they share those templates (`testing.families.templates`).

Rendered by transformers (trim_blocks, lstrip_blocks, its `tojson`); the first two strip the
whitespace around every tag, as the families' own do, so only quoted text is output.
"""

from __future__ import annotations

from testing.families.templates import _TEXT_MACROS

# Qwen 3: ChatML with a thinking mode. An assistant turn after the last user message renders
# its reasoning (`reasoning_content`, or a `<think>...</think>` block at the start of its
# content) as `<think>\n...\n</think>\n\n` before the answer, an empty block when it is the
# last message and has none; assistant turns before the last user message lose their
# reasoning (the template is not prefix-stable). `enable_thinking=False` makes the generation
# prompt an empty think block, so the model answers at once. No default system prompt; tools
# in the system turn, calls in <tool_call>, results grouped in a user turn of <tool_response>.
QWEN3_TEMPLATE = (
    _TEXT_MACROS
    + r"""
{%- if tools -%}
    {{- '<|im_start|>system\n' -}}
    {%- if messages[0]['role'] == 'system' -%}{{- text(messages[0]['content']) + '\n\n' -}}
    {%- endif -%}
    {{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n'
        + 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>'
    -}}
    {%- for t in tools -%}{{- '\n' + (t | tojson) -}}{%- endfor -%}
    {{- '\n</tools>\n\nFor each function call, return a json object with function name and '
        + 'arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n'
        + '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    -}}
{%- elif messages[0]['role'] == 'system' -%}
    {{- '<|im_start|>system\n' + text(messages[0]['content']) + '<|im_end|>\n' -}}
{%- endif -%}
{%- set ns = namespace(last_query=-1) -%}
{%- for m in messages -%}
    {%- if m['role'] == 'user' -%}{%- set ns.last_query = loop.index0 -%}{%- endif -%}
{%- endfor -%}
{%- for m in messages -%}
    {%- set content = text(m['content']) -%}
    {%- if m['role'] == 'system' and loop.first -%}
    {%- elif m['role'] == 'assistant' -%}
        {%- if m['reasoning_content'] is string -%}
            {%- set reasoning = m['reasoning_content'] -%}
        {%- elif '</think>' in content -%}
            {%- set reasoning = content.split('</think>')[0].split('<think>')[-1] -%}
            {%- set content = content.split('</think>')[-1] -%}
        {%- else -%}
            {%- set reasoning = '' -%}
        {%- endif -%}
        {%- set reasoning = reasoning.strip('\n') -%}
        {%- set content = content.lstrip('\n') -%}
        {{- '<|im_start|>assistant\n' -}}
        {%- if loop.index0 > ns.last_query and (loop.last or reasoning) -%}
            {{- '<think>\n' + reasoning + '\n</think>\n\n' -}}
        {%- endif -%}
        {{- content -}}
        {%- for c in m['tool_calls'] or [] -%}
            {%- if not loop.first or content -%}{{- '\n' -}}{%- endif -%}
            {{- '<tool_call>\n{"name": ' + (c['function']['name'] | tojson) + ', "arguments": ' -}}
            {{- args(c['function']['arguments']) + '}\n</tool_call>' -}}
        {%- endfor -%}
        {{- '<|im_end|>\n' -}}
    {%- elif m['role'] == 'tool' -%}
        {%- if loop.first or loop.previtem['role'] != 'tool' -%}{{- '<|im_start|>user' -}}
        {%- endif -%}
        {{- '\n<tool_response>\n' + content + '\n</tool_response>' -}}
        {%- if loop.last or loop.nextitem['role'] != 'tool' -%}{{- '<|im_end|>\n' -}}{%- endif -%}
    {%- else -%}
        {{- '<|im_start|>' + m['role'] + '\n' + content + '<|im_end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
    {%- if enable_thinking is defined and enable_thinking is false -%}
        {{- '<think>\n\n</think>\n\n' -}}
    {%- endif -%}
{%- endif -%}
"""
)

# Phi-4-mini: <|role|>content<|end|> with no newlines; tools (a JSON string on the system
# message, as Phi-4-mini takes them) between <|tool|> and <|/tool|>; a conversation rendered
# without a generation prompt ends with the eos token.
PHI4_MINI_TEMPLATE = (
    _TEXT_MACROS
    + r"""
{%- for m in messages -%}
    {{- '<|' + m['role'] + '|>' + text(m['content']) -}}
    {%- if m['role'] == 'system' and m['tools'] -%}
        {{- '<|tool|>' + m['tools'] + '<|/tool|>' -}}
    {%- endif -%}
    {{- '<|end|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- else -%}{{- eos_token -}}{%- endif -%}
"""
)

# Llama 3, as templates circulate in public collections: pretty-printed, with the `{{ ... }}`
# lines indented. `trim_blocks`/`lstrip_blocks` only touch `{% %}` tags, so the indentation
# before each `{{` and the newline after each `}}` are output: four spaces before every
# header, a newline after every turn, and a generation prompt that ends with one more newline
# than the header of a rendered assistant turn (whose content follows on the same line).
LLAMA3_INDENTED_TEMPLATE = r"""{{ bos_token }}
{% if messages[0]['role'] == 'system' %}
    {% set system_message = messages[0]['content'] | trim %}
    {% set loop_messages = messages[1:] %}
{% else %}
    {% set system_message = 'You are a helpful assistant.' %}
    {% set loop_messages = messages %}
{% endif %}
    {{ '<|start_header_id|>system<|end_header_id|>\n\n' + system_message + '<|eot_id|>' }}
{% for message in loop_messages %}
    {{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + (message['content'] | trim) + '<|eot_id|>' }}
{% endfor %}
{% if add_generation_prompt %}
    {{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{% endif %}
"""  # noqa: E501
