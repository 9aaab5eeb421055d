#!/bin/sh
# End-to-end tests of build/lisa: train, eval, resume from a saved model, the
# log format, checkpointing, help texts and bad input. Usage: test_cli.sh BUILD_DIR
build=${1:-build}
lisa=$build/lisa
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
. tests/check.sh

# An llm.c token file (magic 20240520, version 1, uint16) written with printf:
# a repeating sentence of byte-sized tokens, so a small model can learn it.
le32() { printf "\\$(printf %03o $(($1 & 255)))\\$(printf %03o $((($1 >> 8) & 255)))\\$(printf %03o $((($1 >> 16) & 255)))\\$(printf %03o $((($1 >> 24) & 255)))"; }
make_tokens() { # make_tokens FILE COUNT
    { le32 20240520; le32 1; le32 "$2"; i=3; while [ $i -lt 256 ]; do le32 0; i=$((i + 1)); done
      awk -v n="$2" 'BEGIN { s = "the cat sat on the mat. "; for (i = 0; i < n; i++) { c = substr(s, i % length(s) + 1, 1); printf "%c%c", index(" .acehmnost", c) + 1, 0 } }'
    } > "$1"
}
make_tokens "$tmp/train.tok" 4000
make_tokens "$tmp/val.tok" 600

init="dim=32,hidden=64,layers=2,heads=4,kv_heads=2,vocab=16,seq=32"
train="$lisa train --data $tmp/train.tok --steps 30 --batch 4 --seq 16 --lr 3e-3"

check "train from --init writes a model and a log" \
    $train --init $init --out "$tmp/m.bin" --log "$tmp/log.jsonl" --schedule cosine --warmup 5 --min-lr 1e-4 --weight-decay 0.01 --grad-clip 1
check "the model file exists" test -s "$tmp/m.bin"
check "one log line per step" test "$(wc -l < "$tmp/log.jsonl")" -eq 30
check "log lines carry every field" sh -c "grep -c '^{\"step\":[0-9]*,\"loss\":[0-9.]*,\"lr\":[0-9.e+-]*,\"grad_norm\":[0-9.]*,\"allreduce_bytes\":0,\"tokens_per_s\":[0-9.]*,\"ms\":[0-9.]*,\"active_layers\":\\[[0-9,]*\\]}\$' '$tmp/log.jsonl' | grep -qx 30"
check "steps count from 1 to 30" sh -c "head -1 '$tmp/log.jsonl' | grep -q '^{\"step\":1,' && tail -1 '$tmp/log.jsonl' | grep -q '^{\"step\":30,'"
loss_of() { sed -n "$2p" "$1" | sed 's/.*"loss":\([0-9.]*\).*/\1/'; }
first=$(loss_of "$tmp/log.jsonl" 1)
last=$(loss_of "$tmp/log.jsonl" 30)
check "training lowers the loss ($first -> $last)" awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a * 0.8) }'

check "eval prints loss and perplexity" sh -c "$lisa eval --model '$tmp/m.bin' --data '$tmp/val.tok' --batch 2 --seq 16 > '$tmp/eval.txt' && grep -q '^loss [0-9.]* perplexity [0-9.]*' '$tmp/eval.txt'"
check "train 0 steps saves the initial model" $train --init $init --steps 0 --out "$tmp/m0.bin"
check "eval of the initial model" sh -c "$lisa eval --model '$tmp/m0.bin' --data '$tmp/val.tok' --batch 2 --seq 16 > '$tmp/eval0.txt'"
e0=$(sed 's/^loss \([0-9.]*\).*/\1/' "$tmp/eval0.txt")
e1=$(sed 's/^loss \([0-9.]*\).*/\1/' "$tmp/eval.txt")
check "trained model has lower held-out loss ($e0 -> $e1)" awk -v a="$e0" -v b="$e1" 'BEGIN { exit !(b < a) }'
check "perplexity is exp(loss)" awk -v l="$e1" -v p="$(sed 's/.*perplexity \([0-9.]*\).*/\1/' "$tmp/eval.txt")" 'BEGIN { d = exp(l) - p; exit !(d < 1e-3 * p && d > -1e-3 * p) }'

check "training continues from --model" $train --model "$tmp/m.bin" --out "$tmp/m2.bin" --steps 5 --log "$tmp/log2.jsonl"
cont=$(loss_of "$tmp/log2.jsonl" 1)
check "the continued run starts near where the first ended ($last vs $cont)" awk -v a="$last" -v b="$cont" 'BEGIN { exit !(b < a * 1.5 + 0.05) }'

check "checkpointing gives the same losses" sh -c "$train --init $init --out '$tmp/c.bin' --log '$tmp/ck.jsonl' --checkpointing --schedule cosine --warmup 5 --min-lr 1e-4 --weight-decay 0.01 --grad-clip 1 &&
    sed 's/,\"tokens_per_s.*//' '$tmp/log.jsonl' > '$tmp/a' && sed 's/,\"tokens_per_s.*//' '$tmp/ck.jsonl' > '$tmp/b' && cmp '$tmp/a' '$tmp/b'"
check "checkpointing gives the same model" cmp "$tmp/m.bin" "$tmp/c.bin"

fails_with() { # fails_with PATTERN COMMAND...: nonzero exit and PATTERN on stderr
    pattern=$1
    shift
    if "$@" > "$tmp/out" 2> "$tmp/err"; then echo "unexpected success"; return 1; fi
    grep -q -- "$pattern" "$tmp/err" || { echo "stderr lacks '$pattern':"; cat "$tmp/err"; return 1; }
}
check "missing data file is named" fails_with "$tmp/nope.tok" $train --init $init --data "$tmp/nope.tok" --out "$tmp/x.bin"
printf 'garbage' > "$tmp/bad.bin"
check "malformed model file is named" fails_with "$tmp/bad.bin: truncated header" $lisa eval --model "$tmp/bad.bin" --data "$tmp/val.tok"
check "token ids beyond the vocabulary are caught" fails_with "outside the model's vocabulary" $train --init "dim=32,layers=1,heads=4,vocab=8,seq=32" --out "$tmp/x.bin"
check "unknown option" fails_with "unknown option" $train --init $init --out "$tmp/x.bin" --bogus
check "bad --init key" fails_with "unknown key" $train --init "dim=32,wat=1" --out "$tmp/x.bin"
check "bad shape in --init" fails_with "does not divide" $train --init "dim=30,layers=1,heads=4,vocab=16" --out "$tmp/x.bin"
check "the failed commands above wrote no model" test ! -e "$tmp/x.bin"
# Saves that fail after training ran. A model is written to PATH.tmp, then
# renamed to PATH: with PATH.tmp a link to /dev/full the writes fail midway,
# and with PATH an existing directory the rename fails. Each time the command
# fails, and neither a partial model nor the temporary file is left.
if [ -c /dev/full ]; then
    ln -s /dev/full "$tmp/full.bin.tmp"
    check "a save whose writes fail is reported" fails_with "write failed" $train --init $init --steps 3 --log "$tmp/full.jsonl" --out "$tmp/full.bin"
    check "... after its 3 steps ran" test "$(wc -l < "$tmp/full.jsonl")" -eq 3
    check "... and leaves no half-written model and no temporary file" sh -c "test ! -e '$tmp/full.bin' && test ! -e '$tmp/full.bin.tmp' && test ! -L '$tmp/full.bin.tmp'"
else
    echo "test_cli: no /dev/full, the failing-write save is not tested (not counted)"
fi
mkdir -p "$tmp/dir.bin/keep"
check "a save that cannot replace its target is reported" fails_with "cannot rename" $train --init $init --steps 3 --out "$tmp/dir.bin"
check "... and leaves the target as it was and no temporary file" sh -c "test -d '$tmp/dir.bin/keep' && test ! -e '$tmp/dir.bin.tmp'"
check "--model and --init together" fails_with "exactly one" $train --init $init --model "$tmp/m.bin" --out "$tmp/x.bin"

# LISA: the log names the active layers, which change only at steps 1, 1+K, 1+2K, ...
init4="dim=32,hidden=64,layers=4,heads=4,kv_heads=2,vocab=16,seq=32"
check "train --mode lisa" $train --init $init4 --out "$tmp/l.bin" --log "$tmp/l.jsonl" --mode lisa --lisa-layers 2 --lisa-interval 7 --lisa-seed 3
check "every log line has two distinct sorted layers" sh -c "[ \$(grep -c '\"active_layers\":\\[\\([0-3]\\),\\([0-3]\\)\\]}\$' '$tmp/l.jsonl') -eq 30 ] &&
    ! sed 's/.*active_layers\":\\[\\([0-9]\\),\\([0-9]\\)\\].*/\\1 \\2/' '$tmp/l.jsonl' | awk '\$1 >= \$2 { bad = 1 } END { exit !bad }'"
switches=$(sed 's/.*"step":\([0-9]*\),.*"active_layers":\(.*\)}/\1 \2/' "$tmp/l.jsonl" | awk 'prev != $2 { printf "%s ", $1 } { prev = $2 }')
check "layers switch only at steps 1, 8, 15, 22, 29 (saw: $switches)" awk -v s="$switches" 'BEGIN { n = split(s, a, " "); for (i = 1; i <= n; i++) if ((a[i] - 1) % 7 != 0) exit 1 }'
check "the same seed gives the same schedule" sh -c "$train --init $init4 --out '$tmp/l2.bin' --log '$tmp/l2.jsonl' --mode lisa --lisa-layers 2 --lisa-interval 7 --lisa-seed 3 &&
    sed 's/.*active_layers//' '$tmp/l.jsonl' > '$tmp/a' && sed 's/.*active_layers//' '$tmp/l2.jsonl' > '$tmp/b' && cmp '$tmp/a' '$tmp/b'"
check "full mode logs every layer" sh -c "grep -c 'active_layers\":\\[0,1\\]}' '$tmp/log.jsonl' | grep -qx 30"
check "LISA with every layer equals full training" sh -c "$train --init $init --out '$tmp/f.bin' --log '$tmp/f.jsonl' && $train --init $init --out '$tmp/g.bin' --log '$tmp/g.jsonl' --mode lisa --lisa-layers 2 --lisa-interval 3 &&
    sed 's/,\"tokens_per_s.*//' '$tmp/f.jsonl' > '$tmp/a' && sed 's/,\"tokens_per_s.*//' '$tmp/g.jsonl' > '$tmp/b' && cmp '$tmp/a' '$tmp/b' && cmp '$tmp/f.bin' '$tmp/g.bin'"
check "cyclic order hands out layers in turn" sh -c "$train --init $init4 --out '$tmp/cy.bin' --log '$tmp/cy.jsonl' --mode lisa --lisa-layers 1 --lisa-interval 5 --lisa-order cyclic &&
    sed 's/.*active_layers\":\\[\\([0-9]\\)\\]}/\\1/' '$tmp/cy.jsonl' | uniq | tr '\\n' ' ' | grep -qx '0 1 2 3 0 1 '"
check "weights steer sampling" sh -c "$train --init $init4 --out '$tmp/w.bin' --log '$tmp/w.jsonl' --mode lisa --lisa-layers 2 --lisa-interval 1 --lisa-probs 0,1,0,1 &&
    grep -c 'active_layers\":\\[1,3\\]}' '$tmp/w.jsonl' | grep -qx 30"
check "--lisa-probs needs one weight per layer" fails_with "gives 3 weights; the model has 4 layers" $train --init $init4 --out "$tmp/x.bin" --mode lisa --lisa-probs 1,2,3
check "--lisa-layers beyond the layer count" fails_with "LISA layers 9" $train --init $init4 --out "$tmp/x.bin" --mode lisa --lisa-layers 9
check "frozen embedding and head with LISA" $train --init $init4 --out "$tmp/fz.bin" --mode lisa --lisa-layers 1 --freeze-embed --freeze-head --lisa-keep-state

# Resume: stop after 13 of 20 steps (mid LISA interval), resume, and match the uninterrupted run.
lisa_run="$train --init $init4 --mode lisa --lisa-layers 2 --lisa-interval 5 --schedule cosine --warmup 3 --weight-decay 0.1 --schedule-steps 20"
check "uninterrupted LISA run of 20 steps" $lisa_run --steps 20 --out "$tmp/whole.bin" --log "$tmp/whole.jsonl"
check "the same run stopped after 13 steps with --save-state" $lisa_run --steps 13 --out "$tmp/part.bin" --log "$tmp/part.jsonl" --save-state "$tmp/s.lsst" --save-every 4
check "resumed to step 20" $lisa train --data "$tmp/train.tok" --resume "$tmp/s.lsst" --steps 20 --out "$tmp/resumed.bin" --log "$tmp/resumed.jsonl"
check "the resumed log continues at step 14" sh -c "head -1 '$tmp/resumed.jsonl' | grep -q '^{\"step\":14,'"
check "stopped + resumed losses equal the uninterrupted run's" sh -c "cat '$tmp/part.jsonl' '$tmp/resumed.jsonl' | sed 's/,\"tokens_per_s[^}]*,\"active/,\"active/' > '$tmp/a' &&
    sed 's/,\"tokens_per_s[^}]*,\"active/,\"active/' '$tmp/whole.jsonl' > '$tmp/b' && cmp '$tmp/a' '$tmp/b'"
check "the resumed model equals the uninterrupted one byte for byte" cmp "$tmp/whole.bin" "$tmp/resumed.bin"
check "--resume refuses a setting that differs from the state's" fails_with "--lr 1 differs from the state's 0.003" $lisa train --data "$tmp/train.tok" --resume "$tmp/s.lsst" --steps 20 --out "$tmp/x.bin" --lr 1
# The command that started the run, given again with --resume (and a later --steps), continues it bitwise too.
check "the original command with --resume added resumes" $lisa_run --steps 20 --out "$tmp/again.bin" --log "$tmp/again.jsonl" --save-state "$tmp/again.lsst" --save-every 4 --resume "$tmp/s.lsst"
check "... with the plain --resume's losses and model" sh -c "sed 's/,\"tokens_per_s[^}]*,\"active/,\"active/' '$tmp/again.jsonl' > '$tmp/a' &&
    sed 's/,\"tokens_per_s[^}]*,\"active/,\"active/' '$tmp/resumed.jsonl' > '$tmp/b' && cmp '$tmp/a' '$tmp/b' && cmp '$tmp/whole.bin' '$tmp/again.bin'"
printf 'LSST garbage' > "$tmp/bad.lsst"
check "a bad state file is named" fails_with "$tmp/bad.lsst" $lisa train --data "$tmp/train.tok" --resume "$tmp/bad.lsst" --steps 20 --out "$tmp/x.bin"

# Formats: Hugging Face directories, conversion, tokenize, instruction data.
hf=tests/fixtures/hf_tiny
check "a transformers directory saved again keeps every weight and setting" sh -c "$lisa convert '$hf' '$tmp/hf_same' && $lisa convert '$hf' '$tmp/a.bin' && $lisa convert '$tmp/hf_same' '$tmp/b.bin' && cmp '$tmp/a.bin' '$tmp/b.bin' && grep -q '\"rope_theta\": 500.0' '$tmp/hf_same/config.json'"
check "llama2.c -> Hugging Face -> llama2.c is byte for byte the same" sh -c "$lisa convert '$tmp/m.bin' '$tmp/m_hf' && $lisa convert '$tmp/m_hf' '$tmp/m2.bin' && cmp '$tmp/m.bin' '$tmp/m2.bin'"
check "convert to bf16" sh -c "$lisa convert '$hf' '$tmp/hf_bf16' --dtype bf16 && test -s '$tmp/hf_bf16/model.safetensors' && test -s '$tmp/hf_bf16/config.json'"
printf 'the cat sat on the mat. ' > "$tmp/text.txt"
i=0; while [ $i -lt 7 ]; do cat "$tmp/text.txt" "$tmp/text.txt" > "$tmp/t2.txt"; mv "$tmp/t2.txt" "$tmp/text.txt"; i=$((i + 1)); done
check "tokenize with the byte-level tokenizer" $lisa tokenize --tokenizer bytes "$tmp/text.txt" "$tmp/bytes.tok"
# The tokens of an llm.c file (after its 1024-byte header) as bytes: the
# first must be the byte tokenizer's BOS (256), each other a byte value.
decode_bytes() {
    od -An -v -tu1 -j 1024 "$1" | LC_ALL=C awk '{ for (i = 1; i <= NF; i++) if (n++ % 2 == 0) lo = $i; else {
        v = lo + 256 * $i; if (n == 2) { if (v != 256) exit 1 } else if (v > 255) exit 1; else printf "%c", v } }'
}
check "the byte tokens are BOS and one token per byte" test "$(wc -c < "$tmp/bytes.tok")" -eq $((1024 + 2 * (1 + $(wc -c < "$tmp/text.txt"))))
decodes_to() { decode_bytes "$1" > "$tmp/decoded.txt" && cmp "$tmp/decoded.txt" "$2"; }
check "the byte tokens decode back to the text" decodes_to "$tmp/bytes.tok" "$tmp/text.txt"
check "a Hugging Face model trains and is written as a directory" $lisa train --model "$hf" --data "$tmp/train.tok" --steps 3 --batch 2 --seq 8 --out "$tmp/hf_trained" --mode lisa --lisa-layers 1 --out-dtype bf16
check "the trained directory loads again" $lisa eval --model "$tmp/hf_trained" --data "$tmp/train.tok" --batch 2 --seq 8 --batches 2
printf '{"prompt": "2+2=", "response": "4"}\n{"prompt": "3+4=", "response": "7"}\n{"prompt": "1+5=", "response": "6"}\n' > "$tmp/sft.jsonl"
printf '{"type": "text2text", "instances": [{"input": "2+2=", "output": "4"}]}' > "$tmp/sft.json"
sftinit="dim=32,hidden=64,layers=2,heads=4,vocab=258,seq=16"
check "train on JSON Lines instruction data" sh -c "$lisa train --init $sftinit --data '$tmp/sft.jsonl' --tokenizer bytes --steps 80 --batch 3 --seq 16 --lr 1e-2 --out '$tmp/sft.bin' --log '$tmp/sft.log' 2> '$tmp/sft.err' && grep -q '3 examples in 3 rows' '$tmp/sft.err'"
check "instruction loss falls" awk -v a="$(loss_of "$tmp/sft.log" 1)" -v b="$(loss_of "$tmp/sft.log" 80)" 'BEGIN { exit !(b < a / 2) }'
check "eval on LMFlow text2text" sh -c "$lisa eval --model '$tmp/sft.bin' --data '$tmp/sft.json' --tokenizer bytes --batch 1 --seq 16 | grep -q '^loss '"
check "eval reports exact match on the memorised answers" sh -c "$lisa eval --model '$tmp/sft.bin' --data '$tmp/sft.jsonl' --tokenizer bytes --batch 3 --seq 16 | grep -q '^exact match 100.0% (3 of 3 greedy answers)'"
printf '{"prompt": "2+2=", "response": "5"}\n{"prompt": "3+4=", "response": "7"}\n' > "$tmp/wrong.jsonl"
check "exact match counts a wrong answer" sh -c "$lisa eval --model '$tmp/sft.bin' --data '$tmp/wrong.jsonl' --tokenizer bytes --batch 2 --seq 16 2> /dev/null | grep -q '^exact match 50.0% (1 of 2 greedy answers)'"
check "instruction data needs a tokenizer" fails_with "needs --tokenizer" $lisa train --init $sftinit --data "$tmp/sft.jsonl" --out "$tmp/x.bin"
printf '{"prompt": "a"}\n' > "$tmp/bad.jsonl"
check "a bad JSON Lines record is named with its line" fails_with "bad.jsonl: line 1" $lisa train --init $sftinit --data "$tmp/bad.jsonl" --tokenizer bytes --out "$tmp/x.bin"

# Tokenizers: tokenize gives exactly transformers' tokenizer(text).input_ids
# (tools/make_cli_tokenize_fixtures.py wrote the expected token files) for a
# Hugging Face directory, a tokenizer.json file and a SentencePiece-style BPE.
cli=tests/fixtures/cli
toks=tests/fixtures/tokenizers
tokenizes_as() { # tokenizes_as TOKENIZER NAME: every fixture text gives NAME's expected token file
    for text in lines unicode special; do
        $lisa tokenize --tokenizer "$1" "$cli/$text.txt" "$tmp/$text.tok" 2> "$tmp/err" || { cat "$tmp/err"; return 1; }
        cmp "$tmp/$text.tok" "$cli/$text.$2.tok" || { echo "$text.txt: other ids than transformers' with $1"; return 1; }
    done
}
check "tokenize with a Hugging Face directory (smollm2) gives transformers' ids" tokenizes_as "$toks/smollm2" smollm2
check "tokenize with a tokenizer.json file (llama3-split, BOS added) gives transformers' ids" tokenizes_as "$toks/llama3-split/tokenizer.json" llama3-split
check "tokenize with a SentencePiece-style BPE (spm-bpe) gives transformers' ids" tokenizes_as "$toks/spm-bpe" spm-bpe
check "a missing --tokenizer path is named" fails_with "$tmp/none.json: cannot open for reading (expected a tokenizer.json" $lisa tokenize --tokenizer "$tmp/none.json" "$cli/lines.txt" "$tmp/x.tok"
mkdir -p "$tmp/notok"
check "a directory without tokenizer.json is named" fails_with "$tmp/notok: a directory without tokenizer.json (expected" $lisa tokenize --tokenizer "$tmp/notok" "$cli/lines.txt" "$tmp/x.tok"
printf 'garbage, not a tokenizer' > "$tmp/garbage.tok"
check "a file that is neither JSON, GGUF nor tokenizer.bin is named" fails_with "$tmp/garbage.tok: not JSON, not GGUF, and as a llama2.c tokenizer.bin: " $lisa tokenize --tokenizer "$tmp/garbage.tok" "$cli/lines.txt" "$tmp/x.tok"
# A GGUF vocabulary: llama.cpp's own ids for the texts (tools/make_llamacpp_fixtures.py --cli).
check "tokenize with a GGUF file (smollm2.gguf) gives llama.cpp's ids" tokenizes_as "$toks/gguf/smollm2.gguf" smollm2-gguf
check "the failed tokenizes wrote nothing" test ! -e "$tmp/x.tok"

# Chat: conversations in a chat template, with the byte tokenizer and with a tokenizer.json.
printf '%s\n' '{"messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]}' \
    '{"messages": [{"role": "user", "content": "3+4"}, {"role": "assistant", "content": "7"}]}' \
    '{"prompt": "1+5", "response": "6"}' > "$tmp/chat.jsonl"
printf '{"type": "conversation", "instances": [{"system": "", "messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]}]}' > "$tmp/chat.json"
chatinit="dim=32,hidden=64,layers=2,heads=4,vocab=258,seq=64"
check "train on conversations with --chat-template chatml and bytes" sh -c "$lisa train --init $chatinit --data '$tmp/chat.jsonl' --tokenizer bytes --chat-template chatml --steps 60 --batch 3 --seq 64 --lr 1e-2 --out '$tmp/chat.bin' --log '$tmp/chat.log' 2> '$tmp/chat.err' && grep -q '3 examples in 3 rows.*chat template chatml' '$tmp/chat.err'"
check "conversation loss falls" awk -v a="$(loss_of "$tmp/chat.log" 1)" -v b="$(loss_of "$tmp/chat.log" 60)" 'BEGIN { exit !(b < a / 2) }'
check "eval on LMFlow conversations answers in chatml" sh -c "$lisa eval --model '$tmp/chat.bin' --data '$tmp/chat.json' --tokenizer bytes --chat-template chatml --batch 1 --seq 64 | grep -q '^exact match 100.0% (1 of 1 greedy answers)'"
check "generate --chat stops where chatml's end of turn is text (bytes)" sh -c "$lisa generate --model '$tmp/chat.bin' --chat --chat-template chatml --prompt 2+2 --temperature 0 --steps 40 > '$tmp/cb.out' 2> '$tmp/cb.err' &&
    grep -qx 4 '$tmp/cb.out' && grep -q '^1[0-9] tokens in .*stopped at the end of the turn' '$tmp/cb.err'"
check "conversations without a chat template ask for one" fails_with "conversations need a chat template (--chat-template NAME: chatml, llama2" $lisa train --init $chatinit --data "$tmp/chat.jsonl" --tokenizer bytes --out "$tmp/x.bin"
check "an unknown --chat-template lists the choices" fails_with "no template called 'chatmel'; choose one of chatml, llama2, llama3, zephyr, mistral, plain" $lisa train --init $chatinit --data "$tmp/chat.jsonl" --tokenizer bytes --chat-template chatmel --out "$tmp/x.bin"
check "a tokenizer larger than the model's vocabulary is refused" fails_with "llama3-split: the tokenizer has 1217 tokens, more than the model's vocab_size 258" $lisa eval --model "$tmp/chat.bin" --data "$tmp/chat.jsonl" --tokenizer "$toks/llama3-split"
mkdir -p "$tmp/odd"
cp $toks/llama3-split/tokenizer.json "$tmp/odd/"
printf '{"chat_template": "{%% for m in messages %%}{{ m.content }}{%% endfor %%}"}' > "$tmp/odd/tokenizer_config.json"
check "a tokenizer's chat template that is not known names the choices" fails_with "odd: the chat template .* choose one of chatml, llama2, llama3, zephyr, mistral, plain; give --chat-template NAME" $lisa train --init "dim=8,hidden=16,layers=1,heads=1,vocab=1217,seq=64" --data "$tmp/chat.jsonl" --tokenizer "$tmp/odd" --out "$tmp/x.bin"
# llama3-split's own template (Llama 3's, recognised): train, then generate --chat stops at <|eot_id|>
l3init="dim=32,hidden=64,layers=2,heads=4,vocab=1217,seq=48"
check "train with a tokenizer.json's own chat template" sh -c "$lisa train --init $l3init --data '$tmp/chat.jsonl' --tokenizer $toks/llama3-split --steps 40 --batch 3 --seq 48 --lr 1e-2 --out '$tmp/l3.bin' 2> '$tmp/l3.err' && grep -q 'chat template llama3' '$tmp/l3.err'"
check "generate --chat feeds transformers' apply_chat_template ids and stops at the end of the turn" sh -c "$lisa generate --model '$tmp/l3.bin' --tokenizer $toks/llama3-split --chat --prompt 'What is 2+2?' --show-ids --temperature 0 --steps 40 > '$tmp/l3.out' 2> '$tmp/l3.err' &&
    grep -qx \"prompt ids: \$(cat $cli/chat.llama3-split.ids)\" '$tmp/l3.err' && grep -q '^generated ids:.* 1216\$' '$tmp/l3.err' && grep -q 'stopped at the end of the turn' '$tmp/l3.err'"
check "a model saved as a Hugging Face directory takes its tokenizer.json along" sh -c "$lisa train --model '$tmp/l3.bin' --data '$tmp/chat.jsonl' --tokenizer $toks/llama3-split/tokenizer.json --steps 0 --seq 48 --out '$tmp/l3_hf' 2> /dev/null &&
    cmp $toks/llama3-split/tokenizer.json '$tmp/l3_hf/tokenizer.json' && cmp $toks/llama3-split/tokenizer_config.json '$tmp/l3_hf/tokenizer_config.json'"
check "... and convert takes it along too" sh -c "$lisa convert '$tmp/l3_hf' '$tmp/l3_hf2' 2> /dev/null && cmp $toks/llama3-split/tokenizer.json '$tmp/l3_hf2/tokenizer.json'"
check "... and saving over the directory keeps it" sh -c "$lisa train --model '$tmp/l3_hf2' --data '$tmp/chat.jsonl' --steps 0 --seq 48 --out '$tmp/l3_hf2' 2> /dev/null && cmp $toks/llama3-split/tokenizer.json '$tmp/l3_hf2/tokenizer.json'"
check "a Hugging Face model directory's tokenizer.json is the default --tokenizer" sh -c "$lisa generate --model '$tmp/l3_hf2' --chat --prompt 'What is 2+2?' --show-ids --temperature 0 --steps 40 2> '$tmp/l3d.err' > /dev/null &&
    grep -qx \"prompt ids: \$(cat $cli/chat.llama3-split.ids)\" '$tmp/l3d.err'"
check "smollm2's chat template with its default system message" sh -c "$lisa train --init dim=8,hidden=16,layers=1,heads=1,vocab=49152,seq=64 --data '$tmp/train.tok' --steps 0 --out '$tmp/s2.bin' 2> /dev/null &&
    $lisa generate --model '$tmp/s2.bin' --tokenizer $toks/smollm2 --chat --prompt 'What is 2+2?' --show-ids --steps 2 2> '$tmp/s2.err' > /dev/null && grep -qx \"prompt ids: \$(cat $cli/chat.smollm2.ids)\" '$tmp/s2.err'"

# generate: the model trained on "the cat sat on the mat. " in bytes continues it. (At lr 1e-2
# the loss of this run swings near its end, so builds that round differently, e.g. without FMA,
# could stop at different greedy texts; at 5e-3 every build has learned the text.)
check "train a byte-level model on the text" $lisa train --init "dim=32,hidden=64,layers=2,heads=4,vocab=258,seq=48" --data "$tmp/bytes.tok" --steps 300 --batch 4 --seq 48 --lr 5e-3 --out "$tmp/g.bin"
check "greedy generation continues the text" sh -c "$lisa generate --model '$tmp/g.bin' --prompt 'the cat sat on' --steps 30 --temperature 0 > '$tmp/gen.txt' && grep -q '^the cat sat on the mat. the cat' '$tmp/gen.txt'"
check "sampling with a seed is repeatable" sh -c "$lisa generate --model '$tmp/g.bin' --prompt 'the' --steps 20 --seed 5 > '$tmp/g1.txt' && $lisa generate --model '$tmp/g.bin' --prompt 'the' --steps 20 --seed 5 > '$tmp/g2.txt' && cmp '$tmp/g1.txt' '$tmp/g2.txt'"
check "generate --help" sh -c "$lisa generate --help | grep -q -- --top-p"

# validation and the plot
check "train with --val, --eval-every and --plot" $train --init $init4 --out "$tmp/p.bin" --log "$tmp/p.jsonl" --mode lisa --lisa-interval 7 --val "$tmp/val.tok" --eval-every 10 --plot "$tmp/p.svg"
check "validation loss is logged at steps 10, 20 and 30" sh -c "[ \$(grep -c '\"val_loss\":[0-9.]*}\$' '$tmp/p.jsonl') -eq 3 ] && grep '\"step\":20,' '$tmp/p.jsonl' | grep -q val_loss"
check "the plot is one SVG document" sh -c "head -c 4 '$tmp/p.svg' | grep -q '<svg' && tail -1 '$tmp/p.svg' | grep -q '^</svg>\$' && [ \$(grep -c '<svg' '$tmp/p.svg') -eq 1 ]"
check "the plot has one point per logged step" sh -c "[ \$(grep '<polyline class=\"train\"' '$tmp/p.svg' | sed 's/.*points=\"//; s/\".*//' | tr ' ' '\\n' | grep -c ,) -eq \$(wc -l < '$tmp/p.jsonl') ]"
check "the plot marks every LISA switch and validation point" sh -c "[ \$(grep -c 'class=\"switch\"' '$tmp/p.svg') -eq 5 ] && [ \$(grep -c 'class=\"val\"' '$tmp/p.svg') -eq 3 ]"
if command -v xmllint > /dev/null; then check "the plot is well-formed XML" xmllint --noout "$tmp/p.svg"; fi

# the demo, in its quick form: it exits 0 only when LISA raised the held-out accuracy of every fine-tuned task
check "demo --quick raises held-out accuracy with LISA" sh -c "$lisa demo --quick > '$tmp/demo.txt' 2> /dev/null && grep -q 'number family accuracy rose on every task' '$tmp/demo.txt'"
check "demo prints accuracy before and after, and the active layers" sh -c "grep -q '^   after pre-training: .*sort *0.0%' '$tmp/demo.txt' && grep -q '^   after LISA fine-tuning: ' '$tmp/demo.txt' && [ \$(grep -c '^     layer [0-3] ' '$tmp/demo.txt') -eq 4 ]"
check "demo --help" sh -c "$lisa demo --help | grep -q -- --quick"
# demo --compare, fine-tuning steps cut for the test: the three methods' rows, four accuracies each in 0..100%,
# and LoRA training fewer parameters than LISA, LISA fewer than full fine-tuning
demo_cmp_rows='BEGIN { FS = "|" } $2 ~ /^ (full|lora|lisa) $/ { n++; for (i = 6; i <= 9; i++) { v = $i; if (v !~ /^ [0-9]+[.][0-9]% $/) bad = 1; sub(/%/, "", v); if (v + 0 > 100) bad = 1 } p[$2] = $4 + 0 } END { exit !(n == 3 && !bad && p[" lora "] < p[" lisa "] && p[" lisa "] < p[" full "]) }'
check "demo --compare prints full, LoRA and LISA with accuracies in 0..100%" sh -c "$lisa demo --compare --quick --steps 60 --threads 1 > '$tmp/democmp.txt' 2> /dev/null && awk '$demo_cmp_rows' '$tmp/democmp.txt'"
check "demo --help lists --compare" sh -c "$lisa demo --help | grep -q -- --compare"

# plan
check "plan for LLaMA-2-7B with LISA in bf16 at seq 1024" sh -c "$lisa plan --init llama2-7b --mode lisa --lisa-layers 2 --batch 1 --seq 1024 --checkpointing --dtype bf16 --budget 24 > '$tmp/plan.txt' &&
    grep -q '6.738B parameters' '$tmp/plan.txt' && grep -q '^  peak ' '$tmp/plan.txt' && grep -q '^fits in 24.0 GiB' '$tmp/plan.txt'"
check "plan: full fine-tuning of LLaMA-2-7B does not fit 24 GiB" sh -c "$lisa plan --init llama2-7b --batch 1 --seq 1024 --checkpointing --dtype bf16 --budget 24 | grep -q '^does NOT fit in 24.0 GiB'"
check "plan reads a model file's header" sh -c "$lisa plan --model '$tmp/m.bin' --mode lisa --lisa-layers 1 | grep -q 'dim 32, hidden 64, 2 layers'"
check "plan --help" sh -c "$lisa plan --help > /dev/null"

for cmd in train eval; do
    check "$cmd --help" sh -c "$lisa $cmd --help > '$tmp/help.txt'"
done
$lisa train --help > "$tmp/help.txt"
check "train --help names every option" sh -c "for f in model init data out steps batch seq lr min-lr warmup schedule weight-decay beta1 beta2 eps grad-clip checkpointing seed threads log save-state save-every resume schedule-steps val eval-every plot tokenizer chat-template pack out-dtype mode lisa-layers lisa-interval lisa-order lisa-probs lisa-seed lisa-keep-state freeze-embed freeze-head freeze-norm; do grep -q -- \"--\$f\" '$tmp/help.txt' || { echo missing \$f; exit 1; }; done"
check "lisa --help" $lisa --help

# llama2.c version-1 files ("ak42"): only the legacy format marks an own head by a
# negative vocab_size, so every command that reads a model must refuse a version-1
# file with one. The file is the --init $init shape, untied, with zero weights.
make_v1() { # make_v1 FILE VOCAB
    { le32 1634415666; le32 1; for v in 32 64 2 4 2 "$2" 32; do le32 "$v"; done
      head -c 220 /dev/zero; head -c $((4 * (2 * 16 * 32 + 32 + 2 * (2 * 32 + 2 * 32 * 32 + 2 * 16 * 32 + 3 * 32 * 64)))) /dev/zero
    } > "$1"
}
make_v1 "$tmp/v1.bin" 16
make_v1 "$tmp/v1neg.bin" -16
check "a version-1 file is read by plan" sh -c "$lisa plan --model '$tmp/v1.bin' | grep -q 'dim 32, hidden 64, 2 layers'"
check "a version-1 file converts to a legacy one" sh -c "$lisa convert '$tmp/v1.bin' '$tmp/v1_legacy.bin' && test -s '$tmp/v1_legacy.bin'"
neg="$tmp/v1neg.bin: bad header: vocab_size -16 is negative"
check "train --model refuses a negative version-1 vocab_size" fails_with "$neg" $train --model "$tmp/v1neg.bin" --out "$tmp/v1out.bin"
check "eval refuses a negative version-1 vocab_size" fails_with "$neg" $lisa eval --model "$tmp/v1neg.bin" --data "$tmp/val.tok"
check "generate refuses a negative version-1 vocab_size" fails_with "$neg" $lisa generate --model "$tmp/v1neg.bin" --prompt the
check "convert refuses a negative version-1 vocab_size" fails_with "$neg" $lisa convert "$tmp/v1neg.bin" "$tmp/v1out.bin"
check "plan refuses a negative version-1 vocab_size" fails_with "$neg" $lisa plan --model "$tmp/v1neg.bin"
check "no output from the refused runs" test ! -e "$tmp/v1out.bin"

# One option table: each command's --help lists what it takes, and takes what it lists.
help_agrees() { # help_agrees COMMAND: every --flag of its help parses (a stray --zzz ends the parse fast)
    $lisa "$1" --help > "$tmp/h.txt" || return 1
    [ "$(grep -c '^  --' "$tmp/h.txt")" -gt 0 ] || { echo "no options listed"; return 1; }
    for f in $(sed -n 's/^  \(--[a-z0-9-]*\).*/\1/p' "$tmp/h.txt"); do
        $lisa "$1" $f --zzz > "$tmp/h.out" 2>&1
        if grep -q "unknown option '$f'" "$tmp/h.out"; then echo "$1 lists $f but refuses it"; return 1; fi
    done
}
for cmd in train eval plan convert tokenize generate demo; do
    check "$cmd takes every option its --help lists" help_agrees $cmd
done
check "eval --help lists eval's options, not train's" sh -c "$lisa eval --help > '$tmp/h.txt' && grep -q -- '--batches N' '$tmp/h.txt' && ! grep -q -- '--lr' '$tmp/h.txt'"
check "plan --help lists the LISA options and --budget, not --steps" sh -c "$lisa plan --help > '$tmp/h.txt' && grep -q -- '--lisa-layers G' '$tmp/h.txt' && grep -q -- '--budget GIB' '$tmp/h.txt' && ! grep -q -- '--steps' '$tmp/h.txt'"
check "generate --help lists its sampler" sh -c "$lisa generate --help > '$tmp/h.txt' && grep -q -- '--temperature X' '$tmp/h.txt' && grep -q -- '--prompt TEXT' '$tmp/h.txt' && ! grep -q -- '--batch' '$tmp/h.txt'"
check "an option of another command is refused" fails_with "eval: unknown option '--lr'" $lisa eval --model "$tmp/m.bin" --data "$tmp/val.tok" --lr 1
check "lisa --help lists every command" sh -c "$lisa --help > '$tmp/h.txt' && for c in train eval plan convert tokenize generate demo; do grep -q \"^  \$c \" '$tmp/h.txt' || { echo missing \$c; exit 1; }; done"
check "build/lisa names build/lisa-cuda for the GPU options" fails_with "build/lisa-cuda (make cuda) trains on a GPU" $train --init $init --out "$tmp/x.bin" --dtype bf16
# train --resume: each setting the state records is taken with the state's value and refused,
# naming both values, with another; everything else is taken. s.lsst: the LISA run above.
resume_with() { # resume_with STATE ARGS...: 0 steps left (both states stopped at step 13 or 2)
    state=$1
    shift
    $lisa train --data "$tmp/train.tok" --resume "$state" --steps "$steps_done" --out "$tmp/rs.bin" "$@" > "$tmp/r.out" 2>&1
}
refuses_other_values() { # entries "ARGS|GIVEN|STORED"
    for e in "--batch 2|2|4" "--seq 8|8|16" "--lr 1|1|0.003" "--min-lr 0.5|0.5|0" "--warmup 1|1|3" "--schedule linear|linear|cosine" \
        "--schedule-steps 9|9|20" "--weight-decay 0|0|0.1" "--beta1 0.5|0.5|0.9" "--beta2 0.9|0.9|0.999" "--eps 1|1|1e-08" \
        "--grad-clip 1|1|0" "--checkpointing|on|off" "--mode full|full|lisa" "--lisa-layers 1|1|2" "--lisa-interval 2|2|5" \
        "--lisa-order cyclic|cyclic|random" "--lisa-probs 1,1,1,1|1,1,1,1|uniform" "--lisa-seed 1|1|0" "--lisa-keep-state|on|off" \
        "--freeze-embed|on|off" "--freeze-head|on|off" "--freeze-norm|on|off"; do
        args=${e%%|*}
        rest=${e#*|}
        flag=${args%% *}
        if resume_with "$tmp/s.lsst" $args; then echo "--resume took $args"; return 1; fi
        grep -qF -- "$flag ${rest%|*} differs from the state's ${rest#*|}; a resumed run keeps the state's settings (drop $flag" "$tmp/r.out" ||
            { echo "$args:"; cat "$tmp/r.out"; return 1; }
    done
}
steps_done=13
check "--resume refuses each recorded setting with another value, naming both" refuses_other_values
check "--resume refuses --init of another shape" sh -c "! $lisa train --data '$tmp/train.tok' --resume '$tmp/s.lsst' --steps 13 --out '$tmp/x.bin' --init $init 2> '$tmp/r.out' &&
    grep -qF -- '--init $init describes another model than the state'\''s (layers 2, the state'\''s layers 4)' '$tmp/r.out'"
check "--resume refuses --model of another shape" sh -c "! $lisa train --data '$tmp/train.tok' --resume '$tmp/s.lsst' --steps 13 --out '$tmp/x.bin' --model '$tmp/m.bin' 2> '$tmp/r.out' &&
    grep -qF -- '--model $tmp/m.bin describes another model than the state'\''s (layers 2' '$tmp/r.out'"
takes_same_values() {
    for s in "--batch 4" "--seq 16" "--lr 3e-3" "--lr 0.003" "--min-lr 0" "--warmup 3" "--schedule cosine" "--schedule-steps 20" \
        "--weight-decay 0.1" "--beta1 0.9" "--beta2 0.999" "--eps 1e-8" "--grad-clip 0" "--mode lisa" "--lisa-layers 2" \
        "--lisa-interval 5" "--lisa-order random" "--lisa-seed 0" "--init $init4" "--model $tmp/l.bin" "--seed 7"; do
        resume_with "$tmp/s.lsst" $s || { echo "$s:"; cat "$tmp/r.out"; return 1; }
    done
}
check "--resume takes each recorded setting with the state's value, and a model of its shape" takes_same_values
check "a state with every flag on and layer weights" $train --init $init4 --steps 2 --out "$tmp/x2.bin" --save-state "$tmp/on.lsst" \
    --checkpointing --mode lisa --lisa-keep-state --lisa-probs 1,2,3,4 --freeze-embed --freeze-head --freeze-norm
steps_done=2
check "... resumes with its flags and weights given again" resume_with "$tmp/on.lsst" --checkpointing --mode lisa --lisa-keep-state \
    --lisa-probs 1,2.0,3,4e0 --freeze-embed --freeze-head --freeze-norm
check "... and refuses other weights, element by element" sh -c "! $lisa train --data '$tmp/train.tok' --resume '$tmp/on.lsst' --steps 2 --out '$tmp/x.bin' --lisa-probs 1,2,3,5 2> '$tmp/r.out' &&
    grep -qF -- '--lisa-probs 1,2,3,5 differs from the state'\''s 1,2,3,4' '$tmp/r.out'"
check "a full-mode state" $train --init $init --steps 2 --out "$tmp/x2.bin" --save-state "$tmp/full.lsst"
check "... refuses a LISA setting on resume" sh -c "! $lisa train --data '$tmp/train.tok' --resume '$tmp/full.lsst' --steps 2 --out '$tmp/x.bin' --lisa-interval 20 2> '$tmp/r.out' &&
    grep -qF -- '--lisa-interval is a LISA setting, but the state'\''s run trains every layer' '$tmp/r.out'"
# The --lisa-* options need --mode lisa (full mode would ignore them): train and plan refuse them without it.
lisa_needs_mode() {
    for s in "--lisa-layers 1" "--lisa-interval 2" "--lisa-order cyclic" "--lisa-probs 1,1,1,1" "--lisa-seed 1" --lisa-keep-state; do
        flag=${s%% *}
        for cmd in "$train --steps 0 --out $tmp/lm.bin" "$lisa plan"; do
            for mode in "" "--mode full"; do
                if $cmd --init $init4 $mode $s > "$tmp/r.out" 2>&1; then echo "$cmd $mode took $s"; return 1; fi
                grep -qF -- "$flag is a LISA setting, but the mode is full (the default): add --mode lisa" "$tmp/r.out" ||
                    { echo "$cmd $mode $s:"; cat "$tmp/r.out"; return 1; }
            done
            $cmd --init $init4 --mode lisa $s > "$tmp/r.out" 2>&1 || { echo "$cmd --mode lisa $s:"; cat "$tmp/r.out"; return 1; }
        done
    done
}
check "train and plan refuse each --lisa-* option without --mode lisa, and take it with" lisa_needs_mode
check "--resume takes every option that is not a setting" $lisa train --resume "$tmp/s.lsst" --steps 14 --data "$tmp/train.tok" \
    --tokenizer bytes --pack --out "$tmp/r14.bin" --out-dtype f32 --val "$tmp/val.tok" --eval-every 1 --plot "$tmp/r14.svg" \
    --threads 1 --log "$tmp/r14.jsonl" --save-state "$tmp/r14.lsst" --save-every 1
check "... and runs the one step left" sh -c "[ \$(wc -l < '$tmp/r14.jsonl') -eq 1 ] && grep -q '^{\"step\":14,.*\"val_loss\"' '$tmp/r14.jsonl' && test -s '$tmp/r14.lsst'"
# GGUF models (tests/fixtures/gguf_model, written as llama.cpp's converter writes them; vocabulary
# 300 with a byte-level tokenizer): every command reads them, their vocabulary is the default tokenizer.
gg=tests/fixtures/gguf_model
loss_word() { sed -n 's/^loss \([0-9.]*\) perplexity.*/\1/p' "$1"; }
same_loss() { # same_loss EVAL_OUT_A EVAL_OUT_B: both hold a loss, the same
    a=$(loss_word "$1")
    b=$(loss_word "$2")
    [ -n "$a" ] && [ "$a" = "$b" ] || { echo "loss '$a' vs '$b'"; return 1; }
}
eval16() { $lisa eval --model "$1" --data "$tmp/val.tok" --batch 2 --seq 16 > "$2"; }
check "eval reads a GGUF model (F16)" eval16 $gg/tiny_f16.gguf "$tmp/g.eval"
gguf_to_llama2c() {
    $lisa convert $gg/tiny_f16.gguf "$tmp/g.bin" 2> /dev/null && eval16 "$tmp/g.bin" "$tmp/g2.eval" &&
        same_loss "$tmp/g.eval" "$tmp/g2.eval"
}
check "convert GGUF -> llama2.c keeps the weights: the same loss" gguf_to_llama2c
gguf_to_hf() {
    $lisa convert $gg/tied_f32.gguf "$tmp/g_hf" 2> /dev/null && eval16 $gg/tied_f32.gguf "$tmp/g3.eval" &&
        eval16 "$tmp/g_hf" "$tmp/g4.eval" && same_loss "$tmp/g3.eval" "$tmp/g4.eval"
}
check "convert GGUF -> Hugging Face directory keeps the weights: the same loss" gguf_to_hf
check "plan reads a GGUF model's config" sh -c "$lisa plan --model $gg/tiny_f16.gguf --mode lisa --lisa-layers 1 --batch 2 --seq 16 | grep -q ."
check "train fine-tunes a GGUF model" sh -c "$lisa train --model $gg/tied_f32.gguf --data '$tmp/train.tok' --steps 3 --batch 2 --seq 16 --mode lisa --lisa-layers 1 --out '$tmp/gt.bin' 2> /dev/null && test -s '$tmp/gt.bin'"
check "generate uses the GGUF's own vocabulary by default" sh -c "$lisa generate --model $gg/tied_f32.gguf --prompt 'hello' --temperature 0 --steps 4 --show-ids > /dev/null 2> '$tmp/gg.err' &&
    $lisa generate --model $gg/tied_f32.gguf --tokenizer $gg/tied_f32.gguf --prompt 'hello' --temperature 0 --steps 4 --show-ids > /dev/null 2> '$tmp/gg2.err' &&
    grep -q '^prompt ids:' '$tmp/gg.err' && test \"\$(grep ids: '$tmp/gg.err')\" = \"\$(grep ids: '$tmp/gg2.err')\""
head -c 2000 $gg/tiny_f16.gguf > "$tmp/cut.gguf"
check "a truncated GGUF model is named" fails_with "$tmp/cut.gguf: " $lisa eval --model "$tmp/cut.gguf" --data "$tmp/val.tok"
# Writing GGUF (OUT.gguf): the weights and the tokenizer in use travel; q8_0 only there.
gguf_to_gguf() {
    $lisa convert $gg/tiny_f16.gguf "$tmp/g32.gguf" --dtype f32 2> /dev/null && eval16 $gg/tiny_f16.gguf "$tmp/g5a.eval" &&
        eval16 "$tmp/g32.gguf" "$tmp/g5.eval" && same_loss "$tmp/g5a.eval" "$tmp/g5.eval"
}
check "convert GGUF -> GGUF f32 keeps the weights: the same loss" gguf_to_gguf
check "... keeps the source's vocabulary: the same ids" sh -c "$lisa tokenize --tokenizer $gg/tiny_f16.gguf $cli/lines.txt '$tmp/gv1.tok' 2> /dev/null &&
    $lisa tokenize --tokenizer '$tmp/g32.gguf' $cli/lines.txt '$tmp/gv2.tok' 2> /dev/null && cmp '$tmp/gv1.tok' '$tmp/gv2.tok'"
check "... and saved again is byte for byte the same file" sh -c "$lisa convert '$tmp/g32.gguf' '$tmp/g32b.gguf' 2> /dev/null && cmp '$tmp/g32.gguf' '$tmp/g32b.gguf'"
check "convert to GGUF q8_0 writes a smaller file that loads" sh -c "$lisa convert $gg/tied_f32.gguf '$tmp/gq.gguf' --dtype q8_0 2> /dev/null &&
    test \$(wc -c < '$tmp/gq.gguf') -lt \$(wc -c < $gg/tied_f32.gguf) && $lisa eval --model '$tmp/gq.gguf' --data '$tmp/val.tok' --batch 2 --seq 16 | grep -q '^loss '"
hf_to_gguf() {
    $lisa convert "$tmp/l3_hf2" "$tmp/l3.gguf" 2> /dev/null &&
        $lisa eval --model "$tmp/l3_hf2" --data "$tmp/chat.jsonl" --seq 48 > "$tmp/l3a.eval" 2> /dev/null &&
        $lisa eval --model "$tmp/l3.gguf" --data "$tmp/chat.jsonl" --seq 48 > "$tmp/l3b.eval" 2> /dev/null &&
        same_loss "$tmp/l3a.eval" "$tmp/l3b.eval" &&
        $lisa tokenize --tokenizer "$tmp/l3_hf2" $cli/lines.txt "$tmp/l3a.tok" 2> /dev/null &&
        $lisa tokenize --tokenizer "$tmp/l3.gguf" $cli/lines.txt "$tmp/l3b.tok" 2> /dev/null && cmp "$tmp/l3a.tok" "$tmp/l3b.tok"
}
check "convert Hugging Face directory -> GGUF: tokenizer.json as metadata, the same loss (chat data) and ids" hf_to_gguf
train_to_gguf() {
    $lisa train --model $gg/tied_f32.gguf --data "$tmp/train.tok" --steps 0 --batch 2 --seq 16 --out "$tmp/gt0.gguf" 2> /dev/null &&
        eval16 $gg/tied_f32.gguf "$tmp/g6a.eval" && eval16 "$tmp/gt0.gguf" "$tmp/g6.eval" && same_loss "$tmp/g6a.eval" "$tmp/g6.eval"
}
check "train --out x.gguf (0 steps) keeps the model: the same loss" train_to_gguf
check "train --out x.gguf --out-dtype q8_0 writes a GGUF that loads" sh -c "$lisa train --model $gg/tied_f32.gguf --data '$tmp/train.tok' --steps 3 --batch 2 --seq 16 --mode lisa --lisa-layers 1 --out '$tmp/gt.gguf' --out-dtype q8_0 2> /dev/null &&
    $lisa eval --model '$tmp/gt.gguf' --data '$tmp/val.tok' --batch 2 --seq 16 | grep -q '^loss '"
check "a GGUF written without a tokenizer says so" sh -c "$lisa convert '$tmp/m.bin' '$tmp/m.gguf' 2> '$tmp/mg.err' && grep -q 'm.gguf: no tokenizer.\* keys written' '$tmp/mg.err' && $lisa eval --model '$tmp/m.gguf' --data '$tmp/val.tok' --batch 2 --seq 16 | grep -q '^loss '"
check "q8_0 to a llama2.c checkpoint is refused" fails_with "q.bin: q8_0 is written only as GGUF" $lisa convert $gg/tiny_f16.gguf "$tmp/q.bin" --dtype q8_0
check "q8_0 to a Hugging Face directory is refused" fails_with "q_hf: q8_0 is written only as GGUF" $lisa convert $gg/tiny_f16.gguf "$tmp/q_hf" --dtype q8_0
check "train refuses --out-dtype q8_0 for a .bin before training" fails_with "x.bin: q8_0 is written only as GGUF" $train --init $init --out "$tmp/x.bin" --out-dtype q8_0
# Hugging Face output: --max-shard-size shards it, a GGUF's tokenizer goes with it as
# tokenizer.json, tokenizer_config.json and generation_config.json.
printf 'the cat sat on the mat. 12345 <|end|>\n' > "$tmp/t.txt"
# The shard count transformers' rule gives for tied_f32 (dim 48, hidden 80, 2 layers, 4 heads, 2 kv heads,
# vocab 300, tied; fp32): tensors whole, in order, a new shard when the next would pass the size.
expected_shards() { awk -v max="$1" 'BEGIN { d = 48; h = 80; kv = 24; v = 300
    n = split(v * d " " d " " d * d " " kv * d " " kv * d " " d * d " " d " " h * d " " d * h " " h * d " " \
              d " " d * d " " kv * d " " kv * d " " d * d " " d " " h * d " " d * h " " h * d " " d, t, " ")
    for (i = 1; i <= n; i++) { b = 4 * t[i]; if (i == 1 || bytes + b > max) { k++; bytes = 0 } bytes += b }
    printf "%05d", k }'; }
n20=$(expected_shards 20000)
n15=$(expected_shards 15360)
check "convert GGUF -> Hugging Face in shards of 20KB: $n20 shards, index, tokenizer files" sh -c "$lisa convert $gg/tied_f32.gguf '$tmp/sh' --max-shard-size 20KB 2> /dev/null &&
    test -s '$tmp/sh/model-00001-of-$n20.safetensors' && test -s '$tmp/sh/model-$n20-of-$n20.safetensors' &&
    test \$(ls '$tmp/sh' | grep -c '^model-.*-of-$n20.safetensors\$') -eq $n20 && test -s '$tmp/sh/model.safetensors.index.json' &&
    ! test -e '$tmp/sh/model.safetensors' && test -s '$tmp/sh/tokenizer.json' && test -s '$tmp/sh/tokenizer_config.json' &&
    grep -q '\"eos_token_id\"' '$tmp/sh/generation_config.json'"
sharded_loss() { eval16 "$tmp/sh" "$tmp/sh.eval" && same_loss "$tmp/sh.eval" "$tmp/g3.eval"; }
check "... which loads with the same loss as the GGUF" sharded_loss
check "... and whose tokenizer.json gives the GGUF vocabulary's ids" sh -c "$lisa tokenize --tokenizer '$tmp/sh' '$tmp/t.txt' '$tmp/t1.tok' > /dev/null 2>&1 &&
    $lisa tokenize --tokenizer $gg/tied_f32.gguf '$tmp/t.txt' '$tmp/t2.tok' > /dev/null 2>&1 && cmp -s '$tmp/t1.tok' '$tmp/t2.tok'"
check "--max-shard-size 15KiB over it: $n15 shards, the $n20 gone" sh -c "$lisa convert $gg/tied_f32.gguf '$tmp/sh' --max-shard-size 15KiB 2> /dev/null &&
    test \$(ls '$tmp/sh' | grep -c '^model-.*-of-$n15.safetensors\$') -eq $n15 && ! ls '$tmp/sh' | grep -q 'of-$n20' &&
    grep -q 'of-$n15' '$tmp/sh/model.safetensors.index.json'"
check "the default size over it: one model.safetensors, no index, no shards" sh -c "$lisa convert $gg/tied_f32.gguf '$tmp/sh' 2> /dev/null &&
    test -s '$tmp/sh/model.safetensors' && ! test -e '$tmp/sh/model.safetensors.index.json' && ! ls '$tmp/sh' | grep -q 'of-000'"
check "train takes --max-shard-size (bytes)" sh -c "$lisa train --model $gg/tied_f32.gguf --data '$tmp/train.tok' --steps 1 --batch 2 --seq 16 --out '$tmp/tsh' --max-shard-size 30000 2> /dev/null &&
    test -s '$tmp/tsh/model.safetensors.index.json' && test -s '$tmp/tsh/tokenizer.json' && test -s '$tmp/tsh/generation_config.json'"
check "convert HF -> HF copies generation_config.json" sh -c "$lisa convert '$tmp/tsh' '$tmp/tsh2' 2> /dev/null && cmp -s '$tmp/tsh/generation_config.json' '$tmp/tsh2/generation_config.json'"
bad_shard_sizes() {
    for v in 0 x 5Gb 1.5GB 10TB -3 ""; do
        if $lisa convert $gg/tied_f32.gguf "$tmp/bad_sh" --max-shard-size "$v" > "$tmp/r.out" 2>&1; then echo "took '$v'"; return 1; fi
        grep -qF -- "bad value for --max-shard-size" "$tmp/r.out" || { echo "'$v':"; cat "$tmp/r.out"; return 1; }
    done
}
check "--max-shard-size refuses 0, bits, fractions, unknown units" bad_shard_sizes
check "convert --help and train --help name --max-shard-size" sh -c "$lisa convert --help | grep -q -- --max-shard-size && $lisa train --help | grep -q -- --max-shard-size"

# LoRA: the base model frozen, adapters trained; --out the merged model, --out-adapter peft's files.
lora="$lisa train --init $init --data $tmp/train.tok --batch 4 --seq 16 --lr 1e-2 --mode lora --lora-rank 4"
check "train --mode lora writes the merged model and a peft adapter" $lora --steps 12 --out "$tmp/lora.bin" --out-adapter "$tmp/ad" --log "$tmp/lora.jsonl"
check "the adapter directory holds peft's two files" sh -c "test -s '$tmp/ad/adapter_model.safetensors' && grep -q '\"peft_type\": \"LORA\"' '$tmp/ad/adapter_config.json' && grep -q '\"r\": 4,' '$tmp/ad/adapter_config.json'"
check "LoRA lowers the loss" awk -v a="$(loss_of "$tmp/lora.jsonl" 1)" -v b="$(loss_of "$tmp/lora.jsonl" 12)" 'BEGIN { exit !(b < a) }'
check "train 0 steps in LoRA mode saves the base model" $lora --steps 0 --out "$tmp/lora_base.bin"
check "eval --lora-adapter-in on the base equals eval of the merged model" sh -c "
    $lisa eval --model '$tmp/lora.bin' --data '$tmp/val.tok' --batch 2 --seq 16 > '$tmp/e_merged.txt' &&
    $lisa eval --model '$tmp/lora_base.bin' --lora-adapter-in '$tmp/ad' --data '$tmp/val.tok' --batch 2 --seq 16 > '$tmp/e_ad.txt' &&
    $lisa eval --model '$tmp/lora_base.bin' --data '$tmp/val.tok' --batch 2 --seq 16 > '$tmp/e_base.txt' &&
    a=\$(sed 's/^loss \([0-9.]*\).*/\1/' '$tmp/e_merged.txt') && b=\$(sed 's/^loss \([0-9.]*\).*/\1/' '$tmp/e_ad.txt') &&
    c=\$(sed 's/^loss \([0-9.]*\).*/\1/' '$tmp/e_base.txt') &&
    awk -v a=\$a -v b=\$b -v c=\$c 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4 && c != a) }'"
binit="dim=32,hidden=64,layers=2,heads=4,kv_heads=2,vocab=258,seq=32"
check "generate --lora-adapter-in on the base says what the merged model says" sh -c "
    $lisa train --init $binit --data '$tmp/train.tok' --batch 4 --seq 16 --lr 5e-2 --mode lora --steps 4 --out '$tmp/gm.bin' --out-adapter '$tmp/gad' 2> /dev/null &&
    $lisa train --init $binit --data '$tmp/train.tok' --batch 4 --seq 16 --mode lora --steps 0 --out '$tmp/gb.bin' 2> /dev/null &&
    $lisa generate --model '$tmp/gm.bin' --prompt 'the ' --steps 8 --temperature 0 --show-ids > /dev/null 2> '$tmp/g1' &&
    $lisa generate --model '$tmp/gb.bin' --lora-adapter-in '$tmp/gad' --prompt 'the ' --steps 8 --temperature 0 --show-ids > /dev/null 2> '$tmp/g2' &&
    $lisa generate --model '$tmp/gb.bin' --prompt 'the ' --steps 8 --temperature 0 --show-ids > /dev/null 2> '$tmp/g3' &&
    grep 'generated ids' '$tmp/g1' > '$tmp/g1i' && grep 'generated ids' '$tmp/g2' > '$tmp/g2i' && grep 'generated ids' '$tmp/g3' > '$tmp/g3i' &&
    cmp -s '$tmp/g1i' '$tmp/g2i' && ! cmp -s '$tmp/g1i' '$tmp/g3i'"
check "training continues from --lora-adapter-in (its rank taken)" $lisa train --model "$tmp/lora_base.bin" --data "$tmp/train.tok" --batch 4 --seq 16 --lr 1e-2 --mode lora --lora-adapter-in "$tmp/ad" --steps 1 --out "$tmp/lora_c.bin" --log "$tmp/lora_c.jsonl"
check "... from where the adapter's run ended" awk -v a="$(loss_of "$tmp/lora_c.jsonl" 1)" -v b="$(loss_of "$tmp/lora.jsonl" 1)" 'BEGIN { exit !(a < b) }'
check "LoRA checkpointing gives the same losses" sh -c "$lora --steps 6 --out '$tmp/l1.bin' --log '$tmp/l1.jsonl' && $lora --steps 6 --checkpointing --out '$tmp/l2.bin' --log '$tmp/l2.jsonl' &&
    sed 's/,\"tokens_per_s.*//' '$tmp/l1.jsonl' > '$tmp/a' && sed 's/,\"tokens_per_s.*//' '$tmp/l2.jsonl' > '$tmp/b' && cmp '$tmp/a' '$tmp/b' && cmp '$tmp/l1.bin' '$tmp/l2.bin'"
check "LoRA: stopped and resumed equals the uninterrupted run" sh -c "$lora --steps 6 --schedule-steps 12 --out '$tmp/lp.bin' --save-state '$tmp/l.lsst' 2> /dev/null &&
    $lisa train --data '$tmp/train.tok' --resume '$tmp/l.lsst' --steps 12 --out '$tmp/lr.bin' --out-adapter '$tmp/ad_r' 2> /dev/null &&
    cmp '$tmp/lr.bin' '$tmp/lora.bin' && cmp '$tmp/ad_r/adapter_model.safetensors' '$tmp/ad/adapter_model.safetensors'"
check "plan --mode lora plans the adapters" sh -c "$lisa plan --init $init --mode lora --lora-rank 4 --batch 4 --seq 16 | grep -q 'LoRA: rank 4'"
check "--lora-rank without --mode lora is refused" fails_with "is a LoRA setting" $train --init $init --out "$tmp/x.bin" --lora-rank 4
check "--lisa-layers with --mode lora is refused" fails_with "is a LISA setting, but the mode is lora" $lora --steps 1 --out "$tmp/x.bin" --lisa-layers 1
check "--lora-targets names the bad projection" fails_with "'lm_head' is not one of" $lora --steps 1 --out "$tmp/x.bin" --lora-targets q,lm_head
mkdir -p "$tmp/bad_ad"
printf '{"r": 4, "lora_alpha": 8, "use_dora": true, "target_modules": ["q_proj"]}' > "$tmp/bad_ad/adapter_config.json"
check "a DoRA adapter is refused, naming the file" fails_with "bad_ad/adapter_config.json: use_dora is set" $lisa eval --model "$tmp/lora_base.bin" --lora-adapter-in "$tmp/bad_ad" --data "$tmp/val.tok"
check "a missing adapter file is named" fails_with "nope/adapter_config.json" $lisa eval --model "$tmp/lora_base.bin" --lora-adapter-in "$tmp/nope" --data "$tmp/val.tok"

# compare: every method from the same weights and batches, one table.
cmp_init="dim=32,hidden=64,layers=4,heads=4,kv_heads=2,vocab=16,seq=32"
check "compare runs full, lora and lisa and prints one table" sh -c "$lisa compare --init $cmp_init --data '$tmp/train.tok' --val '$tmp/val.tok' --steps 6 --batch 4 --seq 16 --lr 3e-3 --lr-lora 1e-2 --lisa-layers 1 --log '$tmp/cmp.jsonl' --plot '$tmp/cmp.svg' > '$tmp/cmp.txt' 2> /dev/null &&
    grep -q '^| method | trainable params | final train loss | val loss | exact match | tokens/s | peak planned | peak measured |' '$tmp/cmp.txt' &&
    grep -q '^| full | [0-9]* | [0-9.]* | [0-9.]* |' '$tmp/cmp.txt' && grep -q '^| lora | [0-9]* | [0-9.]* | [0-9.]* |' '$tmp/cmp.txt' &&
    grep -q '^| lisa | [0-9]* | [0-9.]* | [0-9.]* |' '$tmp/cmp.txt'"
check "compare logs one line per step and method" test "$(grep -c '"method"' "$tmp/cmp.jsonl")" -eq 18
check "every method starts from the same weights: the same first-step loss" sh -c "grep '\"step\":1,' '$tmp/cmp.jsonl' | sed 's/.*\"loss\":\([0-9.]*\).*/\1/' | sort -u | wc -l | grep -qx 1"
check "the plot has a curve per method" sh -c "grep -c '<polyline class=\"\(full\|lora\|lisa\)\"' '$tmp/cmp.svg' | grep -qx 3"
check "a method over --budget is reported and not run" sh -c "$lisa compare --init $cmp_init --data '$tmp/train.tok' --steps 2 --batch 4 --seq 16 --methods lisa,full --lisa-layers 1 --budget 0.00087 --log '$tmp/cmpb.jsonl' > '$tmp/cmpb.txt' 2> '$tmp/cmpb.err' &&
    grep -q '^| full | [0-9]* | does not fit the budget' '$tmp/cmpb.txt' && grep -q '^| lisa | [0-9]* | [0-9.]* |' '$tmp/cmpb.txt' && ! grep -q '\"full\"' '$tmp/cmpb.jsonl'"
check "compare refuses an unknown method by name" fails_with "'dora' is not one of" $lisa compare --init $cmp_init --data "$tmp/train.tok" --methods full,dora
echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
