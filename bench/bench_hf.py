"""The comparison for bench_cuda.c: the same LLaMA shapes trained with PyTorch and
Hugging Face transformers on the same GPU, batch, seq and dtype.

Modes:
  full  full fine-tuning: fp32 weights under torch.autocast(bfloat16) (mixed
        precision, as the transformers Trainer does with bf16=True), AdamW
        (fused when this PyTorch has it). lisa_cuda keeps bf16 weights plus fp32
        master weights, gradients and moments for what trains; this is the
        usual PyTorch way to the same numerics.
  lora  peft LoRA rank 128, alpha 256, no dropout, on q, k, v, o, gate, up and
        down projections of every layer; the base model in bf16, the adapters
        as peft makes them, the step under autocast(bfloat16).
  --precision bf16 makes full fine-tuning pure bf16 (bf16 weights and AdamW
  states, half the memory, not the same numerics).

Weights are random (a LlamaConfig, built on the GPU: nothing is downloaded),
tokens are random, attention is "sdpa". Warm-up steps, then timed steps, each
ended by torch.cuda.synchronize(). Prints a readable report on stderr and, with
--json, one JSON line on stdout; running out of memory is reported as status
"oom", not as a crash.

FLOP convention: identical to bench/bench_cuda.c (the same formula, written
the same way in count_flops below): a full step is 3 x forward, forward is 2 x
the parameters of every linear layer (head included, embedding lookup not)
plus per layer 2 x 2 x dim x seq / 2 for causal attention; recomputation under
checkpointing is not counted. "mfu" uses the full-step count for every mode;
"mfu_done" the FLOPs the mode computes (LoRA: no base weight gradients, plus
the adapters' own work).

Example:  python3 bench/bench_hf.py --shape 1b --mode lora --batch 4 --seq 2048 --ckpt 0 --json
"""

import argparse
import json
import math
import statistics
import sys
import time

SHAPES = {  # the same three as bench_cuda.c
    "tiny": dict(dim=256, hidden=768, layers=4, heads=8, kv_heads=4, vocab=32000),
    "1b": dict(dim=2048, hidden=5632, layers=22, heads=32, kv_heads=4, vocab=32000),
    "7b": dict(dim=4096, hidden=11008, layers=32, heads=32, kv_heads=32, vocab=32000),
}

# Dense bf16 tensor-core peak in TFLOPs (fp32 accumulation, no sparsity), by
# device name; the more specific names first. Same table as bench_cuda.c.
PEAK_TFLOPS = [
    ("H200 NVL", 835), ("H200", 989), ("H100 NVL", 835), ("H100 PCIe", 756), ("H100", 989),
    ("A100", 312), ("RTX 4090", 165), ("RTX 3090", 71),
]

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GIB = float(1 << 30)


def peak_tflops_of(name):
    for key, tflops in PEAK_TFLOPS:
        if key in name:
            return tflops
    return 0.0


def count_flops(s, seq, lora_rank=0):
    """Model FLOPs per token: (full step, what the mode computes). See the top."""
    D, H, V, L = s["dim"], s["hidden"], s["vocab"], s["layers"]
    kv_dim = D / s["heads"] * s["kv_heads"]
    layer_linear = D * D + 2 * D * kv_dim + D * D + 3 * D * H  # wq wk wv wo w1 w2 w3
    head = D * V
    fwd_linear = 2 * (L * layer_linear + head)
    fwd_attention = L * 2 * 2 * D * seq / 2
    full = 3 * (fwd_linear + fwd_attention)
    if not lora_rank:
        return full, full
    # forward, input gradients through every layer (the lowest adapters need
    # them; attention's backward is twice its forward), no base weight
    # gradients; each adapter pair A (r x in), B (out x r) costs 3 x 2 x its
    # parameters (forward, input and weight gradients)
    lora_params = L * lora_rank * ((D + D) * 2 + (D + kv_dim) * 2 + (D + H) * 3)
    done = (fwd_linear + fwd_attention) + (fwd_linear + 2 * fwd_attention) + 6 * lora_params
    return full, done


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--mode", choices=["full", "lora"], default="lora")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--ckpt", type=int, choices=[0, 1], default=1)
    p.add_argument("--precision", choices=["amp", "bf16"], default="amp",
                   help="full mode: fp32 weights + bf16 autocast (amp) or pure bf16")
    p.add_argument("--lora-rank", type=int, default=128)
    p.add_argument("--peak-tflops", type=float, default=0.0)
    p.add_argument("--device", default="cuda",
                   help="cuda, or cpu only to check this script on a machine without a GPU (tiny shape)")
    p.add_argument("--label", default="")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.batch < 1 or a.seq < 1 or a.steps < 1 or a.warmup < 0:
        p.error("batch, seq and steps must be >= 1, warmup >= 0")
    return a


def is_oom(e):
    import torch
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(e, oom_type)) or \
        "out of memory" in str(e) or "CUBLAS_STATUS_ALLOC_FAILED" in str(e)


def synchronize(a, torch):
    if a.device != "cpu":
        torch.cuda.synchronize()


def enable_checkpointing(model):
    """Every decoder layer recomputed in backward, as lisa_cuda's checkpointing does."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the newer name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        return
    try:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    except TypeError:  # older transformers: no kwargs
        model.gradient_checkpointing_enable()


def build_model(a, torch):
    """LlamaForCausalLM with random weights, made directly on the GPU."""
    from transformers import LlamaConfig, LlamaForCausalLM
    s = SHAPES[a.shape]
    config = LlamaConfig(
        vocab_size=s["vocab"], hidden_size=s["dim"], intermediate_size=s["hidden"],
        num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"], max_position_embeddings=max(a.seq, 2048),
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, use_cache=False)
    config._attn_implementation = "sdpa"
    weight_dtype = torch.float32 if a.mode == "full" and a.precision == "amp" else torch.bfloat16
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(weight_dtype)  # so no fp32 copy of a 7B model is ever made
    try:
        with torch.device(a.device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(old_dtype)
    model.to(weight_dtype)  # a no-op unless this transformers chose another dtype
    if a.ckpt:
        enable_checkpointing(model)
    model.config.use_cache = False
    r_attn = getattr(model.config, "_attn_implementation", None)
    return model, r_attn


def add_lora(model, a):
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=a.lora_rank, lora_alpha=2 * a.lora_rank, lora_dropout=0.0,
                     target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    if a.ckpt:
        model.enable_input_require_grads()  # adapters under checkpointing need a grad path from the input
    return model


def make_optimizer(params, torch):
    try:
        return torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, fused=True), True
    except (TypeError, RuntimeError, ValueError):
        return torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0), False


def train_step(model, opt, ids, a, torch):
    with torch.autocast(a.device, dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def run(a, torch, r):
    """Builds, warms up and times; fills r. Exceptions (OOM) propagate."""
    model, r["attn_implementation"] = build_model(a, torch)
    r["params"] = sum(p.numel() for p in model.parameters())
    if a.mode == "lora":
        model = add_lora(model, a)
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    r["trained_params"] = sum(p.numel() for p in trained)
    opt, r["fused_adamw"] = make_optimizer(trained, torch)
    g = torch.Generator(device=a.device).manual_seed(1234)
    ids = torch.randint(0, SHAPES[a.shape]["vocab"], (a.batch, a.seq), device=a.device, generator=g)
    times = []
    for i in range(a.warmup + a.steps):
        synchronize(a, torch)
        t0 = time.perf_counter()
        loss = train_step(model, opt, ids, a, torch)
        synchronize(a, torch)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
        r["loss_last"] = loss.item()
        if i == 0:
            r["loss_first"] = r["loss_last"]
    total = sum(times)
    r["ms_per_step"] = 1e3 * total / len(times)
    r["ms_median"] = 1e3 * statistics.median(times)
    r["tokens_per_s"] = a.batch * a.seq * a.steps / total


def finish(a, r, peak):
    """MFU figures, or null where they cannot be had."""
    tps = r.get("tokens_per_s")
    ok = r["status"] == "ok" and peak > 0 and tps
    r["mfu"] = tps * r["flops_per_token"] / (peak * 1e12) if ok else None
    r["mfu_done"] = tps * r["flops_per_token_done"] / (peak * 1e12) if ok else None
    for k in ("loss_first", "loss_last"):
        if k in r and not math.isfinite(r[k]):
            r[k] = None


def report(r, out):
    print(f"{r['device'] or '(no device)'}: HF {r['mode']} ({r['precision']}) {r['shape']}, batch {r['batch']} x seq {r['seq']}, "
          f"checkpointing {'on' if r['ckpt'] else 'off'}", file=out)
    if r["status"] != "ok":
        print(f"  FAILED ({r['status']}): {r['error']}", file=out)
    else:
        print(f"  {r['ms_per_step']:.2f} ms/step (median {r['ms_median']:.2f}), {r['tokens_per_s']:.0f} tokens/s, "
              f"loss {r['loss_first']} -> {r['loss_last']}", file=out)
        if r["mfu"] is not None:
            print(f"  MFU {100 * r['mfu']:.1f}% of {r['peak_tflops']:.0f} TFLOPs (full-step FLOPs; "
                  f"{100 * r['mfu_done']:.1f}% counting the FLOPs done)", file=out)
        else:
            print("  MFU: unknown card, pass --peak-tflops", file=out)
    if r.get("max_memory_allocated") is not None:
        print(f"  torch.cuda.max_memory_allocated {r['max_memory_allocated'] / GIB:.3f} GiB, "
              f"max_memory_reserved {r['max_memory_reserved'] / GIB:.3f} GiB", file=out)


def main(argv):
    a = parse_args(argv)
    s = SHAPES[a.shape]
    full_flops, done_flops = count_flops(s, a.seq, a.lora_rank if a.mode == "lora" else 0)
    r = dict(tool="hf", label=a.label, status="ok", error="", device="", shape=a.shape, mode=a.mode,
             precision=a.precision if a.mode == "full" else "bf16 base", batch=a.batch, seq=a.seq,
             dtype="bf16", ckpt=a.ckpt, warmup=a.warmup, steps=a.steps,
             lora_rank=a.lora_rank if a.mode == "lora" else 0,
             flops_per_token=full_flops, flops_per_token_done=done_flops)
    try:
        import torch
        import transformers
        r["versions"] = f"torch {torch.__version__}, transformers {transformers.__version__}"
        if a.mode == "lora":
            import peft
            r["versions"] += f", peft {peft.__version__}"
    except ImportError as e:
        r.update(status="missing_package", error=str(e))
        return emit(a, r, 0.0)
    on_gpu = a.device != "cpu"
    if on_gpu and not torch.cuda.is_available():
        r.update(status="no_device", error="torch.cuda.is_available() is False")
        return emit(a, r, 0.0)
    r["device"] = torch.cuda.get_device_name(0) if on_gpu else "cpu"
    peak = a.peak_tflops or peak_tflops_of(r["device"])
    r["peak_tflops"] = peak or None
    torch.backends.cuda.matmul.allow_tf32 = True  # fp32 leftovers (norms, loss) as any trainer runs them
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    try:
        run(a, torch, r)
    except Exception as e:  # noqa: BLE001 - every failure becomes a JSON line
        r.update(status="oom" if is_oom(e) else "failed", error=f"{type(e).__name__}: {str(e)[:300]}")
    if on_gpu:
        r["max_memory_allocated"] = torch.cuda.max_memory_allocated()
        r["max_memory_reserved"] = torch.cuda.max_memory_reserved()
    return emit(a, r, peak)


def emit(a, r, peak):
    finish(a, r, peak)
    report(r, sys.stderr if a.json else sys.stdout)
    if a.json:
        print(json.dumps(r), flush=True)
    return 0 if r["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
