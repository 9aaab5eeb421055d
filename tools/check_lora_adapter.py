#!/usr/bin/env python3
"""Checks an adapter written by `lisa train --mode lora --out-adapter ADAPTER`
against peft: PeftModel.from_pretrained(BASE, ADAPTER) must give the logits
of the merged model lisa wrote with --out MERGED (a Hugging Face directory),
and so must peft's own merge_and_unload().

    /work/venv/bin/python tools/check_lora_adapter.py BASE ADAPTER MERGED

BASE is the Hugging Face directory the run started from (--model). Prints the
largest logit differences relative to the largest logit; exits 1 above 1e-4.
"""
import sys

import torch
from peft import PeftModel
from transformers import LlamaForCausalLM


def load(path):
    return LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager").eval()


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    base_dir, adapter_dir, merged_dir = sys.argv[1:]
    merged = load(merged_dir)
    peft_model = PeftModel.from_pretrained(load(base_dir), adapter_dir).eval()
    cfg = merged.config
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, cfg.vocab_size, (2, min(16, cfg.max_position_embeddings)), generator=g)
    with torch.no_grad():
        want = merged(input_ids=ids).logits
        got = peft_model(input_ids=ids).logits
        folded = peft_model.merge_and_unload()(input_ids=ids).logits
    scale = float(want.abs().max())
    err = float((got - want).abs().max()) / scale
    err_merged = float((folded - want).abs().max()) / scale
    print("PeftModel(base, adapter) vs lisa's merged model: largest logit difference %.3g of the largest logit" % err)
    print("peft's merge_and_unload vs lisa's merged model:  %.3g" % err_merged)
    sys.exit(0 if err < 1e-4 and err_merged < 1e-4 else 1)


if __name__ == "__main__":
    main()
