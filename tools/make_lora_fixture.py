#!/usr/bin/env python3
"""LoRA training with peft itself: the oracle for test_reference's LoRA check.

A tiny LLaMA (random weights) saved by transformers, a peft LoRA adapter on all
seven projections with random NONZERO A and B (so every product of the
adapters' backward shows), 8 steps of torch.optim.AdamW on the adapters only
(the base model frozen) with the settings lisa's trainer takes
(lisa_train_config: constant lr, betas, eps, weight decay on every adapter
matrix, clipping as clip_grad_norm_), the losses of every step, and the
logits of peft's merged model afterwards.

Run from the repository root:
    /work/venv/bin/python tools/make_lora_fixture.py

Writes (deterministic, fixed seeds):
    tests/fixtures/lora_tiny/                 the base model (config.json + model.safetensors, fp32)
    tests/fixtures/lora_tiny_adapter/         the starting adapter (adapter_config.json +
                                              adapter_model.safetensors), as peft saves it
    tests/fixtures/lora_tiny_trained/         the adapter after the 8 steps, as peft saves it
    tests/fixtures/lora_tiny.bin              per-step inputs and targets, losses, the
                                              evaluation batch and the merged model's logits
                                              (LSFX, tests/fixture.h)

Check that peft loads an adapter written by `lisa train --mode lora
--out-adapter DIR` on a base model and gives lisa's merged logits: see
tools/check_lora_adapter.py.
"""
import os
import shutil
import sys

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_hf_fixture import write_lsfx  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures")
B, T, STEPS = 2, 12, 8
RANK, ALPHA = 4, 8.0
LR, BETAS, EPS, WD, CLIP = 1e-2, (0.9, 0.999), 1e-8, 0.1, 1.0
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
IGNORE = -1  # LISA_IGNORE


def main():
    torch.manual_seed(5)
    torch.use_deterministic_algorithms(True)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=500.0, tie_word_embeddings=False,
                      hidden_act="silu", attention_bias=False, rope_scaling=None,
                      attn_implementation="eager")
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape))
            else:
                p.copy_(0.25 * torch.randn(p.shape))
    base_dir = os.path.join(FIX, "lora_tiny")
    shutil.rmtree(base_dir, ignore_errors=True)
    model.save_pretrained(base_dir, safe_serialization=True)

    lcfg = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0, bias="none",
                      task_type="CAUSAL_LM")
    pm = get_peft_model(model, lcfg)
    with torch.no_grad():
        for name, p in sorted(pm.named_parameters()):
            if "lora_A" in name or "lora_B" in name:
                p.copy_(0.3 * torch.randn(p.shape))
    start_dir = os.path.join(FIX, "lora_tiny_adapter")
    shutil.rmtree(start_dir, ignore_errors=True)
    pm.save_pretrained(start_dir)

    params = [p for n, p in pm.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n, p in pm.named_parameters() if p.requires_grad)
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    g = torch.Generator().manual_seed(17)
    inputs = torch.randint(0, cfg.vocab_size, (STEPS, B, T), generator=g)
    targets = torch.randint(0, cfg.vocab_size, (STEPS, B, T), generator=g)
    targets[:, :, ::5] = IGNORE
    losses = []
    pm.train()
    for s in range(STEPS):
        opt.zero_grad()
        logits = pm(input_ids=inputs[s]).logits
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size).float(), targets[s].reshape(-1),
                               ignore_index=IGNORE)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        losses.append(float(loss))
    trained_dir = os.path.join(FIX, "lora_tiny_trained")
    shutil.rmtree(trained_dir, ignore_errors=True)
    pm.save_pretrained(trained_dir)

    # The oracle: peft loading what it wrote on the saved base, merged.
    base = LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32, attn_implementation="eager")
    merged = PeftModel.from_pretrained(base, trained_dir).merge_and_unload()
    merged.eval()
    eval_ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    with torch.no_grad():
        eval_logits = merged(input_ids=eval_ids).logits.float()
    write_lsfx(os.path.join(FIX, "lora_tiny.bin"),
               [("inputs", inputs), ("targets", targets), ("losses", torch.tensor(losses)),
                ("eval_inputs", eval_ids), ("eval_logits", eval_logits),
                ("settings", torch.tensor([RANK, ALPHA, LR, BETAS[0], BETAS[1], EPS, WD, CLIP]))])
    print("losses", " ".join("%.7f" % x for x in losses))


if __name__ == "__main__":
    main()
