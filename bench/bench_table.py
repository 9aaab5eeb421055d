"""Markdown tables for bench/RESULTS.md from one bench/results/*.jsonl file
(written by bench/bench_gpu.sh). Standard library only.

Usage:  python3 bench/bench_table.py bench/results/<date>.jsonl
Exit status 1 when a run failed for a reason other than running out of memory.
"""

import json
import sys

GIB = float(1 << 30)
FINE = ("ok", "oom", "oom_predicted")  # out of memory is a result, not a failure


def gib(v):
    return f"{v / GIB:.3f}" if isinstance(v, (int, float)) and v else "-"


def num(v, fmt):
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


def pct(v):
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "-"


def trainer(r):
    return "lisa_cuda" if r["tool"] == "lisa_cuda" else "PyTorch + transformers"


def mode_name(r):
    if r.get("mode") == "lisa":
        return f"LISA gamma={r.get('gamma')}"
    if r.get("mode") == "lora":
        return f"LoRA r={r.get('lora_rank')}"
    if r.get("mode") == "full" and r["tool"] == "hf":
        return "full (fp32 weights, bf16 autocast)" if r.get("precision") == "amp" else "full (pure bf16)"
    return r.get("mode", "?")


def status(r):
    return "ok" if r["status"] == "ok" else f"{r['status']}: {r.get('error', '')}".strip()


def memory_table(runs):
    rows = [r for r in runs if r["tool"] == "lisa_cuda" and r["label"].startswith(("mem-", "fit-"))]
    if not rows:
        return
    print("### Memory: lisa_cuda, LLaMA-2-7B shape, LISA, bf16, batch 1, gradient checkpointing\n")
    print("| run | gamma | K | seq | steps | layer switches | counted peak GiB | planned peak GiB | "
          "equal | device used, GiB more than before | under 24 GiB | ms/step | status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        steps = r.get("warmup", 0) + r.get("steps", 0)
        print(f"| {r['label']} | {r.get('gamma', '-')} | {r.get('interval', '-')} | {r.get('seq', '-')} | {steps} | "
              f"{r.get('layer_changes', '-')} | {gib(r.get('peak_bytes'))} | {gib(r.get('plan_peak'))} | "
              f"{'yes' if r.get('plan_match') else 'no'} | {gib(r.get('device_delta'))} | "
              f"{'yes' if r.get('fits_24gib') else 'no'} | {num(r.get('ms_per_step'), '.1f')} | {status(r)} |")
    print()


def peak_memory(r):
    return r.get("peak_bytes") if r["tool"] == "lisa_cuda" else r.get("max_memory_allocated")


def speed_table(runs):
    rows = [r for r in runs if r["label"].startswith("speed-")]
    if not rows:
        return
    print("### Speed: same GPU, shape, batch, seq and bf16\n")
    print("| shape | batch x seq | checkpointing | trainer | mode | ms/step | tokens/s | MFU | "
          "MFU, FLOPs done | peak GiB | status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.get('shape', '-')} | {r.get('batch', '-')} x {r.get('seq', '-')} | "
              f"{'yes' if r.get('ckpt') else 'no'} | {trainer(r)} | {mode_name(r)} | "
              f"{num(r.get('ms_per_step'), '.1f')} | {num(r.get('tokens_per_s'), '.0f')} | {pct(r.get('mfu'))} | "
              f"{pct(r.get('mfu_done'))} | {gib(peak_memory(r))} | {status(r)} |")
    print()
    ratios(rows)


def ratios(rows):
    """lisa_cuda's LISA step against each PyTorch run of the same shape."""
    by = {(r["tool"], r.get("shape"), r.get("mode")): r for r in rows if r["status"] == "ok"}
    for shape in ("1b", "7b"):
        lisa = by.get(("lisa_cuda", shape, "lisa"))
        if not lisa:
            continue
        for mode in ("lora", "full"):
            other = by.get(("hf", shape, mode))
            if other:
                print(f"- {shape}: lisa_cuda LISA / PyTorch {mode_name(other)}: "
                      f"{lisa['tokens_per_s'] / other['tokens_per_s']:.2f}x the tokens/s")
        full = by.get(("lisa_cuda", shape, "full"))
        if full:
            print(f"- {shape}: lisa_cuda full fine-tuning MFU {pct(full.get('mfu'))}")
    print()


def main(path):
    with open(path) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    env = next((r for r in runs if r["tool"] == "env"), {})
    runs = [r for r in runs if r["tool"] != "env"]
    print(f"## {env.get('card', '?')} ({env.get('card_memory', '?')}), driver {env.get('driver', '?')}, "
          f"CUDA {env.get('cuda', '?')}, {env.get('date', '?')}\n")
    print(f"Command: `{env.get('command', 'sh bench/bench_gpu.sh')}`; raw results: `{path}`.\n")
    versions = next((r["versions"] for r in runs if r.get("versions")), None)
    if versions:
        print(f"Comparison: {versions}.\n")
    memory_table(runs)
    speed_table(runs)
    sanity = [r for r in runs if r["label"].startswith("sanity-")]
    for r in sanity:
        print(f"Sanity run ({r['label']}): {status(r)}, loss {r.get('loss_first')} -> {r.get('loss_last')}.\n")
    failed = [r["label"] + " (" + r["tool"] + ")" for r in runs if r["status"] not in FINE]
    if failed:
        print("Failed runs: " + ", ".join(failed) + ".")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
