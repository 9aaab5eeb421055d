"""The CPU comparison for bench_lisa.c: the same LLaMA shapes trained with PyTorch
and Hugging Face transformers on the same cores, batch, seq and dtype (fp32).

Modes (one step = forward + backward + AdamW, as lisa_trainer_step):
  full  every parameter trains, torch.optim.AdamW over all of them.
  lisa  LISA by requires_grad freezing: the embedding (tied to the head) and the
        final norm train, plus gamma (default 2) decoder layers drawn once with
        a fixed seed; every other decoder layer is frozen. The optimizer is over
        the trainable parameters. No resampling inside the timed steps, as in
        bench_lisa.
  lora  peft LoRA rank 128, alpha 256, no dropout, on q, k, v, o, gate, up and
        down projections of every layer; the base model frozen.

The model is transformers' LlamaForCausalLM from a LlamaConfig (random weights,
tied head, attn_implementation "sdpa", nothing downloaded); the tokens and
targets are random and the same batch every step. The loss is the cross
entropy of every position's logits against its target, as lisa.h computes it.
AdamW is fused (fused=True) where this PyTorch has it on the CPU, else the
default implementation; weight decay 0. torch.set_num_threads(--threads).

Warm-up steps, then timed steps: the median ms/step and the spread, (slowest -
fastest) / median, as bench_lisa reports them. Prints a readable report on
stderr and, with --json, one JSON line on stdout; a failure is reported as
status "failed" with its error, not as a crash.

Example:  python3 bench/bench_torch_cpu.py --shape ref --mode lisa --steps 5 --threads 2 --json
"""

import argparse
import json
import random
import resource
import statistics
import sys
import time

SHAPES = {  # the same three as bench_lisa.c, with its batch and seq
    "ref": dict(dim=288, hidden=768, layers=6, heads=6, kv_heads=6, vocab=32000, batch=4, seq=256),
    "deep": dict(dim=512, hidden=1376, layers=16, heads=8, kv_heads=8, vocab=32000, batch=4, seq=256),
    "smol": dict(dim=576, hidden=1536, layers=30, heads=9, kv_heads=3, vocab=49152, batch=1, seq=512),
}

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="ref")
    p.add_argument("--mode", choices=["full", "lisa", "lora"], default="full")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gamma", type=int, default=2, help="lisa: decoder layers that train")
    p.add_argument("--lora-rank", type=int, default=128)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.steps < 1 or a.warmup < 0 or a.threads < 1 or a.gamma < 1:
        p.error("steps, threads and gamma must be >= 1, warmup >= 0")
    return a


def build_model(s, torch):
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(
        vocab_size=s["vocab"], hidden_size=s["dim"], intermediate_size=s["hidden"],
        num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"], max_position_embeddings=s["seq"],
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True, use_cache=False,
        attn_implementation="sdpa")
    model = LlamaForCausalLM(config).to(torch.float32)
    model.config.use_cache = False
    return model, getattr(model.config, "_attn_implementation", None)


def freeze_for_lisa(model, gamma, seed):
    """All decoder layers frozen but gamma drawn ones; everything else trains."""
    layers = model.model.layers
    active = sorted(random.Random(seed).sample(range(len(layers)), min(gamma, len(layers))))
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            p.requires_grad_(i in active)
    return active


def add_lora(model, rank):
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                     target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def make_optimizer(params, torch):
    kw = dict(lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    try:
        return torch.optim.AdamW(params, fused=True, **kw), "fused"
    except (TypeError, RuntimeError, ValueError):
        return torch.optim.AdamW(params, **kw), "default"


def train_step(model, opt, ids, targets, vocab, torch):
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits.view(-1, vocab), targets.view(-1))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def run(a, torch, r):
    s = SHAPES[a.shape]
    torch.manual_seed(a.seed)
    model, r["attn_implementation"] = build_model(s, torch)
    r["params"] = sum(p.numel() for p in model.parameters())
    if a.mode == "lisa":
        r["active_layers"] = freeze_for_lisa(model, a.gamma, a.seed)
    elif a.mode == "lora":
        model = add_lora(model, a.lora_rank)
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    r["trained_params"] = sum(p.numel() for p in trained)
    opt, r["adamw"] = make_optimizer(trained, torch)
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, s["vocab"], (s["batch"], s["seq"]), generator=g)
    targets = torch.randint(0, s["vocab"], (s["batch"], s["seq"]), generator=g)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = train_step(model, opt, ids, targets, s["vocab"], torch)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
        r["loss_last"] = loss.item()
        if i == 0:
            r["loss_first"] = r["loss_last"]
    med = statistics.median(times)
    r["ms_median"] = 1e3 * med
    r["spread"] = (max(times) - min(times)) / med
    r["ms_steps"] = [round(1e3 * t, 2) for t in times]
    r["tokens_per_s"] = s["batch"] * s["seq"] / med


def report(r, out):
    print(f"PyTorch {r['mode']} {r['shape']}, batch {r['batch']} x seq {r['seq']}, fp32, {r['threads']} threads",
          file=out)
    if r["status"] != "ok":
        print(f"  FAILED: {r['error']}", file=out)
        return
    print(f"  {r['ms_median']:.1f} ms/step median (spread {100 * r['spread']:.0f}%), "
          f"{r['tokens_per_s']:.0f} tokens/s, loss {r['loss_first']:.4f} -> {r['loss_last']:.4f}, "
          f"{r['trained_params'] / 1e6:.2f}M of {r['params'] / 1e6:.2f}M params train, AdamW {r['adamw']}, "
          f"peak RSS {r['max_rss_mb']:.0f} MB", file=out)


def main(argv):
    a = parse_args(argv)
    s = SHAPES[a.shape]
    r = dict(tool="torch_cpu", status="ok", error="", shape=a.shape, mode=a.mode, batch=s["batch"],
             seq=s["seq"], dtype="fp32", threads=a.threads, warmup=a.warmup, steps=a.steps,
             gamma=a.gamma if a.mode == "lisa" else 0, lora_rank=a.lora_rank if a.mode == "lora" else 0)
    try:
        import torch
        import transformers
        r["versions"] = f"torch {torch.__version__}, transformers {transformers.__version__}"
        if a.mode == "lora":
            import peft
            r["versions"] += f", peft {peft.__version__}"
        torch.set_num_threads(a.threads)
        r["torch_threads"] = torch.get_num_threads()
        run(a, torch, r)
    except Exception as e:  # noqa: BLE001 - every failure becomes a JSON line
        r.update(status="failed", error=f"{type(e).__name__}: {str(e)[:300]}")
    r["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KB on Linux
    report(r, sys.stderr if a.json else sys.stdout)
    if a.json:
        print(json.dumps(r), flush=True)
    return 0 if r["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
