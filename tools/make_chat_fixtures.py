#!/usr/bin/env python3
"""Chat-template reference renderings for tests/test_chat.c.

Run from the repository root:
    /work/venv/bin/python tools/make_chat_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
    /work/venv/bin/python tools/make_chat_fixtures.py --bpe    (bpe_encodings.jsonl only)

Needs transformers, tokenizers and jinja2 (gguf too when a GGUF path is given:
its tokenizer.chat_template must equal SMOLLM2 below). Writes, in
tests/fixtures/chat/, templates.jsonl, one line per template:
    {"template": NAME, "jinja": TEXT, "bos": BOS, "eos": EOS}
and renderings.jsonl, one line per (template, conversation, add_generation_prompt):
    {"template": NAME, "messages": [{"role": ..., "content": ...}, ...],
     "add_generation_prompt": BOOL, "text": RENDERED}
or, where the template itself refuses the conversation (raise_exception),
"error": MESSAGE instead of "text". RENDERED is transformers'
apply_chat_template(messages, tokenize=False, add_generation_prompt=...) of a
PreTrainedTokenizerFast carrying the template and the model's bos/eos tokens.
And bpe_encodings.jsonl, one line per (tokenizer, template, conversation,
add_generation_prompt) of BPE_CASES:
    {"tokenizer": DIR, "template": NAME, "messages": [...], "add_generation_prompt": BOOL,
     "text": RENDERED, "ids": IDS, "loss": MASK}
IDS is apply_chat_template(..., tokenize=True) with the tokenizer.json of
tests/fixtures/tokenizers/DIR; MASK (one 0/1 per id) marks the tokens that
overlap an assistant content or the text from it to the end-of-turn marker
after it, found with the tokenizer's offsets (expected_mask).
The Jinja texts are the chat templates the models ship (tokenizer_config.json's
chat_template or chat_template.jinja); NAME is the name lisa.h gives each.
Deterministic: the same output on every run.
"""
import json
import os
import sys

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

DIR = os.path.join("tests", "fixtures", "chat")

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
           "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
           "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

QWEN2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
         "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
         "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
         "{{ '<|im_start|>assistant\n' }}{% endif %}")

# Qwen2.5-*-Instruct (tools are not used here: the text without them)
QWEN25 = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
          "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
          "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
          "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
          "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
          "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
          "{% endfor %}")

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
          "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
          "{% endif %}")

# Llama 3.1 and 3.3 Instruct (one text)
LLAMA31 = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# Zephyr 7B beta; TinyLlama 1.1B Chat v1.0 ships the same text
ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
          "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
          "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
          "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")

# Mistral 7B Instruct v0.2 and Mixtral 8x7B Instruct v0.1
MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
           "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
           "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
           "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}"
           "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")

# Mistral 7B Instruct v0.1 (its first template: a space after each answer's </s>)
MISTRAL01 = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
             "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
             "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
             "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}"
             "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")

# name, Jinja text, bos_token, eos_token
TEMPLATES = [
    ("chatml", CHATML, "<s>", "<|im_end|>"),
    ("smollm2", SMOLLM2, "<|im_start|>", "<|im_end|>"),
    ("qwen2", QWEN2, None, "<|im_end|>"),
    ("qwen2.5", QWEN25, None, "<|im_end|>"),
    ("llama2", LLAMA2, "<s>", "</s>"),
    ("llama3", LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    ("llama3.1", LLAMA31, "<|begin_of_text|>", "<|eot_id|>"),
    ("zephyr", ZEPHYR, "<s>", "</s>"),
    ("mistral", MISTRAL, "<s>", "</s>"),
    ("mistral-v0.1", MISTRAL01, "<s>", "</s>"),
]

S, U, A = "system", "user", "assistant"
CONVERSATIONS = [
    [(S, "You are a terse assistant."), (U, "Hello"), (A, "Hi there"), (U, "Who are you"),
     (A, "   I am an assistant   "), (U, "Another question")],
    [(S, "Be kind."), (U, "2+2?"), (A, "4"), (U, "And 3+3?"), (A, "6")],
    [(U, "Hello"), (A, "Hi!"), (U, "Bye"), (A, "Goodbye.")],
    [(U, "Only a question")],
    [(U, "h\u00e9llo \u4e16\u754c \U0001F642"), (A, "\u00e7a va \u2014 \u041f\u0440\u0438\u0432\u0435\u0442 \U0001F469\u200d\U0001F4BB")],
    [(U, ""), (A, "")],
    [(S, ""), (U, "x"), (A, "y")],
    [(U, "\u3000 spaced\t\n"), (A, "\n\u00a0answer \r\n")],
    [(S, "  sys with spaces  "), (U, "q"), (A, "a")],
    [(U, "line one\nline two"), (A, "multi\nline\nanswer")],
    [(U, "a"), (U, "b")],               # roles not alternating
    [(A, "starts with the assistant")],  # no user first
    [(S, "only a system message")],
]


def tokenizer_for(jinja, bos, eos):
    vocab = {"<unk>": 0}
    for t in (bos, eos):
        if t is not None and t not in vocab:
            vocab[t] = len(vocab)
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token="<unk>",
                                   chat_template=jinja)


# Conversations encoded with real tokenizer.json files (tests/fixtures/tokenizers/<dir>/);
# LATE_SYSTEM: a system message after the first turn, which llama3 and llama3.1 render in place.
# (directory, template name in lisa.h, the Jinja text, whether the template strips contents, conversations)
LATE_SYSTEM = [(S, "First rules."), (U, "Q1"), (A, "A1"), (S, "New rules."), (U, "Q2"), (A, "A2")]
BPE_CONVERSATIONS = [CONVERSATIONS[i] for i in (0, 1, 2, 4, 8, 9)]
BPE_CASES = [
    ("smollm2", "smollm2", SMOLLM2, False, BPE_CONVERSATIONS),
    ("spm-bpe", "llama2", LLAMA2, True, BPE_CONVERSATIONS),
    ("llama3-split", "llama3", LLAMA3, True, BPE_CONVERSATIONS + [LATE_SYSTEM]),
    ("llama3-split", "llama3.1", LLAMA31, True, [CONVERSATIONS[1], LATE_SYSTEM]),
]
END_OF_TURN = {"smollm2": "<|im_end|>", "llama2": "</s>", "llama3": "<|eot_id|>", "llama3.1": "<|eot_id|>"}


def expected_mask(tok, text, messages, strips, eot):
    """1 for a token with a character in an assistant content or in the text
    from there up to and including the end-of-turn marker after it. Each
    content is found after the rendering of the conversation before it (with
    the generation prompt, where the template has one), and the tokens are
    mapped to the text by the tokenizer's own offsets."""
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        assert text.startswith(prefix), "the rendering before an answer is not a prefix of the whole"
        content = m["content"].strip() if strips else m["content"]
        cs = text.index(content, len(prefix))
        ce = cs + len(content)
        es = text.index(eot, ce)
        spans.append((cs, es + len(eot)))
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = []
    for a, b in enc["offset_mapping"]:
        mask.append(1 if any(a < e and b > s for s, e in spans) else 0)
    return enc["input_ids"], mask


def bpe_encodings():
    rows = []
    for d, name, jinja, strips, conversations in BPE_CASES:
        path = os.path.join("tests", "fixtures", "tokenizers", d)
        tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"))
        cfg = json.load(open(os.path.join(path, "tokenizer_config.json"), encoding="utf-8"))
        for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
            if isinstance(cfg.get(key), str):
                setattr(tok, key, cfg[key])
        tok.chat_template = jinja
        for conv in conversations:
            messages = [{"role": r, "content": x} for r, x in conv]
            gens = (False, True) if messages[-1]["role"] == "user" else (False,)
            for gen in gens:
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
                ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen)
                if isinstance(ids, dict) or hasattr(ids, "keys"):
                    ids = ids["input_ids"]
                ids = list(ids)
                ids2, mask = expected_mask(tok, text, messages, strips, END_OF_TURN[name])
                assert ids == ids2, "tokenize=True differs from tokenizing the text"
                rows.append(json.dumps({"tokenizer": d, "template": name, "messages": messages,
                                        "add_generation_prompt": gen, "text": text, "ids": ids, "loss": mask},
                                       ensure_ascii=False))
    return rows


def main():
    if sys.argv[1:2] == ["--bpe"]:  # only bpe_encodings.jsonl
        rows = bpe_encodings()
        with open(os.path.join(DIR, "bpe_encodings.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(rows) + "\n")
        print("%s: %d lines" % (os.path.join(DIR, "bpe_encodings.jsonl"), len(rows)))
        return
    if len(sys.argv) > 1:
        import gguf
        r = gguf.GGUFReader(sys.argv[1])
        f = r.fields["tokenizer.chat_template"]
        assert bytes(f.parts[f.data[0]]).decode("utf-8") == SMOLLM2, "SmolLM2's template differs from SMOLLM2"
    os.makedirs(DIR, exist_ok=True)
    lines, templates = [], []
    for name, jinja, bos, eos in TEMPLATES:
        tok = tokenizer_for(jinja, bos, eos)
        templates.append(json.dumps({"template": name, "jinja": jinja, "bos": bos or "", "eos": eos or ""},
                                    ensure_ascii=False))
        for conv in CONVERSATIONS:
            messages = [{"role": r, "content": c} for r, c in conv]
            for gen in (False, True):
                rec = {"template": name, "messages": messages, "add_generation_prompt": gen}
                try:
                    rec["text"] = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
                except Exception as e:  # the template's raise_exception
                    rec["error"] = str(e)
                lines.append(json.dumps(rec, ensure_ascii=False))
    for file, rows in (("templates.jsonl", templates), ("renderings.jsonl", lines),
                       ("bpe_encodings.jsonl", bpe_encodings())):
        with open(os.path.join(DIR, file), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(rows) + "\n")
        print("%s: %d lines" % (os.path.join(DIR, file), len(rows)))


if __name__ == "__main__":
    main()
