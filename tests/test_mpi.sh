#!/bin/sh
# Data-parallel training across processes: builds lisa-mpi (examples/lisa.c
# with mpicc and LISA_WITH_MPI) and checks, with mpirun -np 2 against one
# process holding the whole batch (mpirun -np 1, --batch 2B): losses within
# 1e-5 relative over 10 steps (full and LISA, on a token file and on
# instruction data whose prompts are ignore targets), the same weights on
# both ranks (their checksums), the bytes summed per step, that rank 0 alone
# writes, and that a run stopped and resumed under MPI equals the
# uninterrupted one bitwise. Without mpirun or mpicc (or with another MPI
# than Open MPI) everything is skipped.
# Usage: sh tests/test_mpi.sh BUILD_DIR
build=${1:-build}
mpicc=${MPICC:-mpicc}
if ! command -v mpirun > /dev/null 2>&1 || ! command -v "$mpicc" > /dev/null 2>&1; then
    echo "mpi: mpirun or mpicc not installed, skipped"
    echo "mpi: 0 passed, 0 failed"
    exit 0
fi
# The flags below (--oversubscribe, --allow-run-as-root, -x) are Open MPI's.
if ! mpirun --version 2>&1 | grep -q "Open MPI"; then
    echo "mpi: mpirun is not Open MPI's, skipped"
    echo "mpi: 0 passed, 0 failed"
    exit 0
fi
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
. tests/check.sh
# One thread per rank: two ranks share this machine's cores.
export OMP_NUM_THREADS=1
run() { # run P ARGS...: lisa-mpi on P ranks
    np=$1
    shift
    mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 -np "$np" "$tmp/lisa-mpi" "$@"
}
# Built without sanitizers whatever BUILD is: the MPI library's own
# allocations would read as leaks.
check "mpicc builds lisa-mpi warning-free" "$mpicc" -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -fopenmp -I. \
    -DLISA_WITH_MPI -o "$tmp/lisa-mpi" examples/lisa.c -lm
if [ ! -x "$tmp/lisa-mpi" ]; then
    echo "mpi: $passed passed, $failed failed"
    exit 1
fi

# A token file of bytes, and instruction data whose prompts carry no loss.
awk 'BEGIN { for (i = 0; i < 300; i++) printf "the %d cats sat on %d mats; ", i, i * 7 % 13 }' > "$tmp/t.txt"
"$tmp/lisa-mpi" tokenize --tokenizer bytes "$tmp/t.txt" "$tmp/t.tok" > /dev/null 2>&1
: > "$tmp/sft.jsonl"
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    printf '{"prompt": "%d+%d=", "response": "%d"}\n' "$i" "$((i * 3 % 7))" "$((i + i * 3 % 7))" >> "$tmp/sft.jsonl"
done

dim=32 hidden=64 layers=4 heads=4 kv=2 vocab=258
init="dim=$dim,hidden=$hidden,layers=$layers,heads=$heads,kv_heads=$kv,vocab=$vocab,seq=16,tied=0"
common="--init $init --steps 10 --seq 16 --lr 3e-3 --grad-clip 0.5 --weight-decay 0.1"
lisa_opts="--mode lisa --lisa-layers 2 --lisa-interval 3 --lisa-seed 5"
# Floats of the gradients summed, from the shape: embedding, one layer, final norm, head.
embed=$((vocab * dim))
layer=$((2 * dim + 2 * dim * dim + 2 * dim * dim / heads * kv + 3 * dim * hidden))
full_bytes=$(((2 * embed + layers * layer + dim + 3) * 4))
lisa_bytes=$(((2 * embed + 2 * layer + dim + 3) * 4))

losses() { sed 's/.*"loss":\([0-9.]*\).*/\1/' "$1"; }
# close A.jsonl B.jsonl: 10 losses each, within 1e-5 relative
close() {
    [ "$(wc -l < "$1")" -eq 10 ] && [ "$(wc -l < "$2")" -eq 10 ] || return 1
    losses "$1" > "$tmp/la"
    losses "$2" > "$tmp/lb"
    paste "$tmp/la" "$tmp/lb" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $2) { print "step " NR ": " $1 " vs " $2; bad = 1 } } END { exit bad }'
}
bytes_are() { # bytes_are LOG N: every step summed N bytes
    sed 's/.*"allreduce_bytes":\([0-9]*\).*/\1/' "$1" | sort -u | grep -qx "$2" &&
        [ "$(sed 's/.*"allreduce_bytes":\([0-9]*\).*/\1/' "$1" | sort -u | wc -l)" -eq 1 ]
}
same_weights() { # same_weights ERR: both ranks print the same checksum
    [ "$(grep -c '^rank [01] of 2: weights checksum ' "$1")" -eq 2 ] &&
        [ "$(sed -n 's/^rank [01] of 2: weights checksum //p' "$1" | sort -u | wc -l)" -eq 1 ]
}

for data in tok sft; do
    if [ $data = tok ]; then d="--data $tmp/t.tok"; else d="--data $tmp/sft.jsonl --tokenizer bytes"; fi
    for mode in full lisa; do
        if [ $mode = lisa ]; then m=$lisa_opts; want=$lisa_bytes; else m=""; want=$full_bytes; fi
        name="$data-$mode"
        check "$name: one process, --batch 4" run 1 train $common $m $d --batch 4 --out "$tmp/$name-1.bin" --log "$tmp/$name-1.jsonl"
        check "$name: two processes, --batch 2" sh -c "mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 -np 2 '$tmp/lisa-mpi' train $common $m $d --batch 2 --out '$tmp/$name-2.bin' --log '$tmp/$name-2.jsonl' 2> '$tmp/$name-2.err'"
        check "$name: two processes' losses are one process's within 1e-5 relative over 10 steps" close "$tmp/$name-2.jsonl" "$tmp/$name-1.jsonl"
        check "$name: both ranks hold the same weights" same_weights "$tmp/$name-2.err"
        check "$name: each step sums $want bytes per rank" bytes_are "$tmp/$name-2.jsonl" "$want"
        check "$name: ... and one process none" bytes_are "$tmp/$name-1.jsonl" 0
    done
done
check "LISA sums fewer bytes than full fine-tuning" test "$lisa_bytes" -lt "$full_bytes"
check "rank 0 alone writes the log (10 lines, not 20) and the model" sh -c "[ \$(wc -l < '$tmp/tok-lisa-2.jsonl') -eq 10 ] && [ -s '$tmp/tok-lisa-2.bin' ]"

# Resume under MPI: 4 steps with a state file, then on to 10, against 10 in one go.
d="--data $tmp/sft.jsonl --tokenizer bytes"
check "two processes: 4 steps, saving state" run 2 train $common $lisa_opts $d --batch 2 --steps 4 --save-state "$tmp/s.state" --out "$tmp/part.bin" --log "$tmp/part.jsonl"
check "two processes: resumed to step 10" run 2 train --resume "$tmp/s.state" $d --steps 10 --out "$tmp/resumed.bin" --log "$tmp/resumed.jsonl"
check "stopped + resumed under MPI equals the uninterrupted run bitwise (losses, model)" sh -c "
    cat '$tmp/part.jsonl' '$tmp/resumed.jsonl' | sed 's/,\"tokens_per_s[^}]*,\"active/,\"active/' > '$tmp/a' &&
    sed 's/,\"tokens_per_s[^}]*,\"active/,\"active/' '$tmp/sft-lisa-2.jsonl' > '$tmp/b' && cmp '$tmp/a' '$tmp/b' &&
    cmp '$tmp/resumed.bin' '$tmp/sft-lisa-2.bin'"
check "a state written by 2 processes is refused by 1" sh -c "! mpirun --oversubscribe --allow-run-as-root -np 1 '$tmp/lisa-mpi' train --resume '$tmp/s.state' $d --steps 10 --out '$tmp/x.bin' 2> '$tmp/err'; grep -q 'number of processes' '$tmp/err'"

echo "mpi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
