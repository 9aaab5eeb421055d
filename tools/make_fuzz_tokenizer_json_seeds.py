"""Writes the seed corpus of tests/fuzz/fuzz_tokenizer_json.c into
tests/fuzz/corpus/tokenizer_json/: the tokenizer fixtures (ByteLevel, Split
regex + ByteLevel, Metaspace, Prepend/Replace normalizers) cut down to their
first N vocabulary entries, the merges among those, and their added tokens
renumbered to follow, each followed by a NUL and a small tokenizer_config.json
(the harness's input layout), plus a few near misses.

    /work/venv/bin/python tools/make_fuzz_tokenizer_json_seeds.py
"""
import json
import os

FIX = "tests/fixtures/tokenizers/"
OUT = "tests/fuzz/corpus/tokenizer_json/"


def merge_parts(m):
    return m.split(" ") if isinstance(m, str) else m


def trim(d, n_keep, n_added=4):
    j = json.load(open(FIX + d + "/tokenizer.json", encoding="utf-8"))
    cfg = json.load(open(FIX + d + "/tokenizer_config.json", encoding="utf-8"))
    m = j["model"]
    vocab = {k: v for k, v in m["vocab"].items() if v < n_keep}
    m["vocab"] = vocab
    m["merges"] = [x for x in m["merges"]
                   if all(p in vocab for p in merge_parts(x)) and "".join(merge_parts(x)) in vocab]
    added, new_id = [], n_keep
    for a in j["added_tokens"]:
        if a["id"] < n_keep:
            added.append(a)
        elif len(added) < n_added + 3:
            a["id"] = new_id
            new_id += 1
            added.append(a)
    j["added_tokens"] = added
    ids = {a["content"]: a["id"] for a in added}

    def fix_post(p):
        if not p:
            return
        if p.get("type") == "Sequence":
            for q in p["processors"]:
                fix_post(q)
        if p.get("type") == "TemplateProcessing":
            for k, v in list(p["special_tokens"].items()):
                if k in ids:
                    v["ids"] = [ids[k]]
                else:
                    del p["special_tokens"][k]
            p["single"] = [x for x in p["single"] if "Sequence" in x or x["SpecialToken"]["id"] in ids]
            p["pair"] = [x for x in p["pair"] if "Sequence" in x or x["SpecialToken"]["id"] in ids]

    fix_post(j.get("post_processor"))
    cfg = {k: v for k, v in cfg.items() if k not in ("added_tokens_decoder", "chat_template")}
    return j, cfg


def write(name, j, cfg):
    data = json.dumps(j, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if cfg is not None:
        data += b"\0" + json.dumps(cfg, separators=(",", ":")).encode("utf-8")
    with open(OUT + name, "wb") as f:
        f.write(data)
    print(OUT + name, len(data), "bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "bytelevel": trim("gpt2-bytelevel", 300),
        "split_regex": trim("llama3-split", 300),
        "metaspace": trim("metaspace", 280),
        "prepend_replace": trim("spm-bpe", 280),
    }
    for name, (j, cfg) in seeds.items():
        write(name + ".bin", j, cfg)
    j, cfg = seeds["split_regex"]
    write("split_regex_noconfig.bin", j, None)
    # Digits before ByteLevel; added tokens with every matching option; a
    # config that adds BOS and EOS and carries a chat template
    j, cfg = trim("smollm-digits", 300)
    j["added_tokens"] += [
        {"id": 300 + len(j["added_tokens"]), "content": "<tool>", "single_word": True, "lstrip": True,
         "rstrip": True, "normalized": False, "special": False},
        {"id": 301 + len(j["added_tokens"]), "content": "xyz", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": True, "special": False},
    ]
    cfg.update({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}, "add_bos_token": True,
                "add_eos_token": True, "pad_token": "<|endoftext|>",
                "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                                 "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"})
    write("digits_added_options.bin", j, cfg)
    # near misses: a Unigram model, an NFD normalizer, an unknown regex
    j, cfg = trim("metaspace", 40)
    j["model"]["type"] = "Unigram"
    write("unigram.bin", j, cfg)
    j, cfg = trim("spm-bpe", 40)
    j["normalizer"] = {"type": "NFD"}
    write("nfd.bin", j, cfg)
    j, cfg = trim("llama3-split", 40)
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{L}+|\\s+"
    write("unknown_regex.bin", j, cfg)


if __name__ == "__main__":
    main()
