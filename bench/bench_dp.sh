#!/bin/sh
# Data-parallel training: bytes summed per step and time per step, for the
# 67M shape and SmolLM2-135M's, full fine-tuning and LISA (gamma 2), with
# mpirun -np 1 and -np 2 (one thread per rank, batch 1 x seq 128 per rank, so
# -np 2 trains a global batch twice as large), from each run's JSONL log
# (allreduce_bytes; the median "ms" of the steps after the first). Then an
# estimate for LLaMA-2-7B on 8 nodes: a ring all-reduce sends 2 (P-1)/P times
# the bytes summed per rank, over each node's link, at 10 and 100 Gbit/s;
# the bytes are the trained blocks' gradients plus 12 (what the log counts,
# checked against the measured shapes here: trained floats x 4 + 12).
# Usage: sh bench/bench_dp.sh [BUILD_DIR] [STEPS]   (needs make mpi)
build=${1:-build}
steps=${2:-6}
mpi=$build/lisa-mpi
[ -x "$mpi" ] || { echo "bench_dp: $mpi missing: run make mpi"; exit 2; }
command -v mpirun > /dev/null 2>&1 || { echo "bench_dp: mpirun not installed"; exit 2; }
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
awk 'BEGIN { for (i = 0; i < 4000; i++) printf "the %d cats sat on %d mats; ", i, i * 7 % 13 }' > "$tmp/t.txt"
"$mpi" tokenize --tokenizer bytes "$tmp/t.txt" "$tmp/t.tok" > /dev/null 2>&1 || exit 2

# trained_floats DIM HIDDEN LAYERS HEADS KV VOCAB TIED MODE
trained_floats() {
    awk -v d="$1" -v h="$2" -v L="$3" -v H="$4" -v kv="$5" -v V="$6" -v tied="$7" -v mode="$8" 'BEGIN {
        layer = 2 * d + 2 * d * d + 2 * d * (d / H * kv) + 3 * d * h
        fixed = V * d * (tied ? 1 : 2) + d
        printf "%.0f\n", fixed + (mode == "lisa" ? 2 : L) * layer }'
}

echo "| shape | mode | P | allreduce bytes/step (per rank) | expected (trained floats x 4 + 12) | ms/step | tokens/s |"
echo "|---|---|---|---|---|---|---|"
for shape in 67M SmolLM2-135M; do
    if [ $shape = 67M ]; then
        set -- 512 1376 16 8 8 32000 1
    else
        set -- 576 1536 30 9 3 49152 1
    fi
    spec="dim=$1,hidden=$2,layers=$3,heads=$4,kv_heads=$5,vocab=$6,seq=128,tied=$7"
    for mode in full lisa; do
        want=$(($(trained_floats "$@" $mode) * 4 + 12))
        for P in 1 2; do
            log=$tmp/$shape-$mode-$P.jsonl
            m=""
            [ $mode = lisa ] && m="--mode lisa --lisa-layers 2 --lisa-interval 100"
            mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 -np $P "$mpi" train --init "$spec" \
                --data "$tmp/t.tok" --steps "$steps" --batch 1 --seq 128 --threads 1 $m --out "$tmp/m.bin" \
                --log "$log" > /dev/null 2>&1 || { echo "bench_dp: $shape $mode P=$P failed"; exit 1; }
            bytes=$(sed -n '1s/.*"allreduce_bytes":\([0-9]*\).*/\1/p' "$log")
            ms=$(sed -n '2,$s/.*"ms":\([0-9.]*\).*/\1/p' "$log" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
            tps=$(awk -v ms="$ms" -v P=$P 'BEGIN { printf "%.0f", P * 128 / (ms / 1000) }')
            echo "| $shape | $mode | $P | $bytes | $([ $P -gt 1 ] && echo "$want" || echo 0) | $ms | $tps |"
        done
    done
done

echo
echo "Estimate (not measured): LLaMA-2-7B, 8 nodes, ring all-reduce of the bytes each rank sums per step"
echo
echo "| mode | bytes/step per rank | sent per node (2 x 7/8 x bytes) | at 10 Gbit/s | at 100 Gbit/s |"
echo "|---|---|---|---|---|"
for mode in full lisa; do
    b=$(($(trained_floats 4096 11008 32 32 32 32000 0 $mode) * 4 + 12))
    awk -v b="$b" -v mode="$mode" 'BEGIN {
        s = 2 * 7 / 8 * b
        printf "| %s | %.2f GB | %.2f GB | %.2f s | %.3f s |\n", mode == "lisa" ? "LISA gamma 2" : "full", b / 1e9, s / 1e9,
            s * 8 / 10e9, s * 8 / 100e9 }'
done
