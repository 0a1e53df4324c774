"""The chat templates of the first five families (Llama 3.1, Qwen 2.5, Mistral v0.3, Gemma 2,
Phi-3), written here to behave like each family's own; `testing.families` puts them in the
model folders it builds."""

from __future__ import annotations

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
