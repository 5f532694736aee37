"""Chat templates stored in every processor we write: Vicuna v1, as the released Qilin-Med-VL used.

The Jinja template reproduces LLaVA's `conv_vicuna_v1` exactly: the system line, then
`USER: <message> ASSISTANT: <answer></s>` per turn, with `<image>` followed by a newline where a message
holds an image part. It accepts both plain-string contents and OpenAI/HF-style lists of
`{"type": "image"}` / `{"type": "text", "text": ...}` parts, so `processor.apply_chat_template` works
in plain transformers.
"""

from __future__ import annotations

from qilin_med_vl.llava_format import IMAGE_TOKEN

VICUNA_V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

# Role prefixes and turn ends, as in LLaVA's conv_vicuna_v1 (sep=" ", sep2=eos).
VICUNA_V1_TEMPLATE = (
    "{%- set ns = namespace(system='" + VICUNA_V1_SYSTEM.replace("'", "\\'") + "') -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set ns.system = messages[0]['content'] -%}"
    "{%- else -%}{%- set ns.system = messages[0]['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') -%}{%- endif -%}"
    "{%- set messages = messages[1:] -%}"
    "{%- endif -%}"
    "{{- ns.system + ' ' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- 'USER: ' -}}{%- else -%}{{- 'ASSISTANT: ' -}}{%- endif -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '" + IMAGE_TOKEN + "\\n' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- if message['role'] == 'user' -%}{{- ' ' -}}{%- else -%}{{- eos_token -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)

CHAT_TEMPLATES = {"vicuna_v1": VICUNA_V1_TEMPLATE}
