#!/usr/bin/env bash
# The `reprise` command end to end: outputs, exports, logits dumps, and a clear error for each bad input.
set -u
BIN=$1 FIX=$2 SHARED=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
skipped=0
# a part that cannot run here: said, counted, and the script exits 77 (ctest: skipped) when nothing failed
skip() { echo "skip $1"; skipped=$((skipped + 1)); }
check() {   # check NAME CONDITION-EXIT-CODE
    if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}
# expect_error NAME TEXT-IN-STDERR COMMAND...: must exit non-zero, print TEXT on stderr, print nothing on stdout
expect_error() {
    local name=$1 text=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qF -- "$text" "$T/err" && [ ! -s "$T/out" ]; then echo "ok   $name"
    else echo "FAIL $name (exit $rc; stderr: $(head -c 300 "$T/err"))"; fail=1; fi
}

M=$FIX/llama
for cmd in inspect generate score export; do
    "$BIN" $cmd --help | grep -q "usage: reprise $cmd"
    check "$cmd --help" $?
done

"$BIN" inspect -m "$M" --schedule rys:1,3 >"$T/inspect" 2>&1
grep -q "6 visits over 4 unique layers" "$T/inspect" && grep -q "architecture  *llama" "$T/inspect"
check "inspect reports visits and architecture" $?

# a schedule on the model equals base on its export, through the command line
"$BIN" generate -m "$M" --tokens 1,5,9 -n 12 --temp 0 --ignore-eos --schedule 0-2,1-3 >"$T/a" 2>/dev/null
"$BIN" export -m "$M" --schedule 0-2,1-3 -o "$T/exp" 2>/dev/null
"$BIN" generate -m "$T/exp" --tokens 1,5,9 -n 12 --temp 0 --ignore-eos >"$T/b" 2>/dev/null
[ "$(wc -w <"$T/a")" -eq 12 ] && cmp -s "$T/a" "$T/b"
check "generate with a schedule equals generate on its export" $?
grep -qE '"num_hidden_layers":\s*6,' "$T/exp/config.json" && [ -f "$T/exp/expected.json" ]
check "export writes config.json with 6 layers and copies other files" $?

# a hand-duplicated RYS checkpoint whose num_hidden_layers was set back (the built-in model's rys:3,4 exported: 7
# layers of tensors; config.json says 5): every command that runs it refuses, naming the tensors and the field;
# --allow-unused-tensors runs the 5 layers; inspect lists the unused tensors and does not count them
D=$(dirname "$0")/../tools/default_model
"$BIN" export --schedule rys:3,4 -o "$T/rys" 2>/dev/null
cp -r "$T/rys" "$T/trunc" && sed -i -E 's/"num_hidden_layers":\s*7,/"num_hidden_layers": 5,/' "$T/trunc/config.json"
expect_error "generate refuses a checkpoint with layers beyond num_hidden_layers" "belong to layers 5-6, at or beyond num_hidden_layers 5" \
    "$BIN" generate -m "$T/trunc" -p 1+1= -n 2 --temp 0
for cmd in "score -p 1+1=2" "chat" "export --schedule base -o $T/trunc-exp" "sweep --probe arith --items 1 --configs base --out $T/trunc-sweep" \
           "bench -p 4 -n 2 -r 1" "profile -p 1+1= --out $T/trunc-prof" "serve --port 0"; do
    expect_error "$cmd refuses it, naming the field and the way out" "--allow-unused-tensors" "$BIN" $cmd -m "$T/trunc" </dev/null
done
"$BIN" generate -m "$T/trunc" -p 99*99= -n 6 --temp 0 --ignore-eos --allow-unused-tensors >"$T/trunc.out" 2>/dev/null
r=$?
"$BIN" generate -p 99*99= -n 6 --temp 0 --ignore-eos --schedule 0-3,3 >"$T/trunc.want" 2>/dev/null
[ $r -eq 0 ] && [ -s "$T/trunc.out" ] && cmp -s "$T/trunc.out" "$T/trunc.want"
check "--allow-unused-tensors runs the 5 layers config.json names (= layers 0-3,3 of the source)" $?
"$BIN" inspect -m "$T/trunc" >"$T/trunc.inspect" 2>&1
r=$?
"$BIN" inspect >"$T/src.inspect" 2>&1
python3 - "$T/trunc.inspect" "$T/src.inspect" "$D/config.json" <<'PY' || r=1
import json, re, sys
text, src, c = open(sys.argv[1]).read(), open(sys.argv[2]).read(), json.load(open(sys.argv[3]))
count = lambda t: int(re.search(r"^parameters +(\d+)", t, re.M).group(1))
n = int(re.search(r"^unused tensors +(\d+), not counted", text, re.M).group(1))
layers = [int(l) for l in re.findall(r"^  model\.layers\.(\d+)\.\S+$", text, re.M)]
assert n == len(layers) == 18 and set(layers) == {5, 6}, (n, layers)
d, h, kv = c["hidden_size"], c["intermediate_size"], c["num_key_value_heads"] * c["hidden_size"] // c["num_attention_heads"]
per_layer = 2 * d + 2 * d * d + 2 * kv * d + 3 * d * h
assert count(text) == count(src) - per_layer, (count(text), count(src), per_layer)   # 5 layers read, not 7
assert re.search(r"^parameters +\d+ \(\d+\.\d+ [KM]\)", src, re.M), src   # a small model's count is not "0.000 B"
PY
check "inspect lists the 18 tensors of layers 5-6 as unused and counts only the 5 layers' parameters, in K or M" $r

"$BIN" score -m "$M" --tokens 1,5,9,3 --schedule rys:1,3 --dump-logits "$T/l.f32" >"$T/s" 2>/dev/null
[ "$(stat -c %s "$T/l.f32")" -eq $((4 * 96 * 4)) ] && [ "$(grep -c . "$T/s")" -eq 4 ] && grep -q '^perplexity' "$T/s"
check "score prints 3 log-probabilities, perplexity, and dumps [4][96] logits" $?
"$BIN" score -m "$M" --tokens 1,5,9,3 --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["logprobs"])==3 and d["perplexity"]>1'
check "score --json is JSON" $?

# the CPU backend's KV cache: BF16 for this BF16 model by default, float32 on request; the logits of the two agree
# to BF16's rounding of keys and values, and differ (the option is not ignored)
"$BIN" inspect -m "$M" | grep -q "KV per token, cpu (bf16)" && "$BIN" inspect -m "$M" --kv-dtype f32 | grep -q "KV per token, cpu (f32)"
check "inspect: the CPU KV cache of a BF16 model is bf16 by default, f32 with --kv-dtype f32" $?
"$BIN" score -m "$M" --tokens 1,5,9,3,7,2,8 --dump-logits "$T/kv_auto.f32" >/dev/null 2>&1 &&
"$BIN" score -m "$M" --tokens 1,5,9,3,7,2,8 --kv-dtype bf16 --dump-logits "$T/kv_bf16.f32" >/dev/null 2>&1 &&
"$BIN" score -m "$M" --tokens 1,5,9,3,7,2,8 --kv-dtype f32 --dump-logits "$T/kv_f32.f32" >/dev/null 2>&1 &&
cmp -s "$T/kv_auto.f32" "$T/kv_bf16.f32" && python3 - "$T/kv_bf16.f32" "$T/kv_f32.f32" <<'PY'
import struct, sys
a, b = (struct.unpack(f"<{n}f", open(p, "rb").read()) for p, n in ((sys.argv[1], 7 * 96), (sys.argv[2], 7 * 96)))
d = max(abs(x - y) for x, y in zip(a, b))
assert 0 < d < 2e-2, d
PY
check "score: --kv-dtype bf16 (the default here) and f32 differ by less than 2e-2 in every logit" $?
# the penalties against their definition (vLLM's): each greedy id is the argmax of the step's raw logits (from
# score --dump-logits) after repetition (prompt and output tokens), frequency and presence (output tokens)
r=0
for pen in "--repeat-penalty 5" "--repeat-penalty 0.5" "--frequency-penalty 2" "--presence-penalty 2 --frequency-penalty 0.5" \
           "--repeat-penalty 3 --presence-penalty -1"; do
    ids=$("$BIN" generate --tokens 1,12,12,4,12,12,14 -n 10 --temp 0 --ignore-eos $pen 2>/dev/null)
    plain=$("$BIN" generate --tokens 1,12,12,4,12,12,14 -n 10 --temp 0 --ignore-eos 2>/dev/null)
    "$BIN" score --tokens "1,12,12,4,12,12,14,$(tr ' ' ',' <<<"$ids")" --dump-logits "$T/pen.f32" >/dev/null 2>&1 || r=1
    python3 - "$T/pen.f32" "$ids" "$pen" <<'PY' || { echo "penalties $pen: $ids"; r=1; }
import struct, sys
raw, out, flags = open(sys.argv[1], "rb").read(), [int(x) for x in sys.argv[2].split()], sys.argv[3].split()
opt = {flags[i]: float(flags[i + 1]) for i in range(0, len(flags), 2)}
rep, freq, pres = opt.get("--repeat-penalty", 1), opt.get("--frequency-penalty", 0), opt.get("--presence-penalty", 0)
prompt, V = [1, 12, 12, 4, 12, 12, 14], 16
rows = [list(struct.unpack_from("<%df" % V, raw, 4 * V * i)) for i in range(len(raw) // (4 * V))]
for t, want in enumerate(out):
    l = rows[len(prompt) - 1 + t][:]
    gen = out[:t]
    for i in set(prompt) | set(gen):
        l[i] = l[i] / rep if l[i] > 0 else l[i] * rep
    for i in set(gen):
        l[i] -= freq * gen.count(i) + pres
    assert l.index(max(l)) == want, (t, want, l)
PY
    [ "$ids" != "$plain" ] || { echo "penalties $pen changed nothing: $ids"; r=1; }
done
check "--repeat-penalty, --frequency-penalty, --presence-penalty: each greedy id the argmax of the penalized logits" $r
expect_error "a repeat penalty of 0" "--repeat-penalty: '0'" "$BIN" generate --tokens 1 --repeat-penalty 0
expect_error "a presence penalty past 2" "--presence-penalty: '3'" "$BIN" generate --tokens 1 --presence-penalty 3

# small ones: flags named for what the user typed, at once; schedules as people type them; the percentiles of a
# prompt test left empty; bench_sweep's modes compared row by row
if "$BIN" generate --backend cuda --tokens 1 -n 1 2>&1 | grep -q "built without the CUDA backend"; then
    expect_error "--tp 2 on a build without CUDA names --tp, not a --backend never given" "--tp 2 splits the model over GPUs, and this reprise was built without the CUDA backend" \
        "$BIN" generate --tp 2 --tokens 1 -n 1
fi
expect_error "--backend gpu refused before any model is read" "--backend gpu: unknown backend (cpu, cuda, auto)" "$BIN" generate -m "$T/no-such-model" --backend gpu --tokens 1
expect_error "bench --backend gpu refused at once" "--backend gpu: unknown backend" "$BIN" bench -m "$T/no-such-model" --backend gpu
"$BIN" generate -m "$M" --tokens 1,5 -n 2 --temp 0 -t 100000 >/dev/null 2>"$T/t.err"
[ $? -ne 0 ] && grep -q "1024" "$T/t.err"
check "-t 100000 is refused with the bound" $?
cores=$(nproc)
"$BIN" generate -m "$M" --tokens 1,5 -n 2 --temp 0 -t $((cores + 7)) >/dev/null 2>"$T/t.err"
[ $? -eq 0 ] && grep -q "^reprise: -t $((cores + 7)): this machine has $cores cores; using $cores" "$T/t.err"
check "-t past the cores is said and lowered to them: $(head -1 "$T/t.err")" $?
a=$("$BIN" generate -m "$M" --tokens 1,5,9 -n 6 --temp 0 --ignore-eos --schedule "0-2,1-3" 2>/dev/null)
b=$("$BIN" generate -m "$M" --tokens 1,5,9 -n 6 --temp 0 --ignore-eos --schedule " 0-2, 1-3 " 2>/dev/null)
c=$("$BIN" generate -m "$M" --tokens 1,5,9 -n 6 --temp 0 --ignore-eos --schedule "rys: 1, 3" 2>/dev/null)
d=$("$BIN" generate -m "$M" --tokens 1,5,9 -n 6 --temp 0 --ignore-eos --schedule "rys:1,3" 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && [ -n "$c" ] && [ "$c" = "$d" ]
check "schedules with blanks after commas and around separators read as without them" $?
expect_error "a blank between two numbers is still an error" "'1 2'" "$BIN" generate -m "$M" --tokens 1 --schedule "0,1 2"
"$BIN" bench -m "$M" --schedule "base; rys:1,3" -p 4 -n 2 -r 1 -o csv >"$T/b.csv" 2>/dev/null
python3 - "$T/b.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["schedule"] for r in rows] == ["base", "base", "rys:1,3", "rys:1,3"], rows
for r in rows:
    gen = int(r["n_gen"]) > 0
    assert all((r[k] != "" and float(r[k]) > 0) if gen else r[k] == "" for k in ("p50_ms", "p90_ms", "p99_ms")), r
PY
check "bench -o csv: a prompt test's percentiles empty, a generation test's positive; 'base; rys:1,3' split and tidied" $?
"$(dirname "$BIN")/bench_sweep" >"$T/bs.out" 2>&1
[ $? -eq 0 ] && [ "$(grep -c ' same$' "$T/bs.out")" -eq 3 ] && ! grep -q DIFFER "$T/bs.out"
check "bench_sweep: duplicated checkpoints, naive and sweep give the same rows (compared row by row)" $?

expect_error "bad --kv-dtype" "--kv-dtype: 'f16'" "$BIN" generate -m "$M" --tokens 1 --kv-dtype f16
"$BIN" generate -m "$M" --tokens 1 -n 20 --temp 1 --seed 7 --ignore-eos >"$T/r1" 2>/dev/null
"$BIN" generate -m "$M" --tokens 1 -n 20 --temp 1 --seed 7 --ignore-eos >"$T/r2" 2>/dev/null
"$BIN" generate -m "$M" --tokens 1 -n 20 --temp 1 --seed 8 --ignore-eos >"$T/r3" 2>/dev/null
cmp -s "$T/r1" "$T/r2" && ! cmp -s "$T/r1" "$T/r3"
check "sampling is reproducible by --seed" $?

expect_error "bad schedule names its token" "'7'" "$BIN" generate -m "$M" --tokens 1 --schedule 0-2,7
expect_error "rys with I >= J" "I=3 must be below J=2" "$BIN" inspect -m "$M" --schedule rys:3,2
expect_error "unknown option" "unknown option '--frobnicate'" "$BIN" generate -m "$M" --tokens 1 --frobnicate
expect_error "bad token list" "'x3'" "$BIN" generate -m "$M" --tokens 1,x3
expect_error "token outside the vocabulary" "token id 96 is outside the vocabulary" "$BIN" generate -m "$M" --tokens 1,96 -n 2
expect_error "context overflow" "needs a context of 7, more than -c 4" "$BIN" generate -m "$M" --tokens 1,2,3 -n 5 -c 4
expect_error "longer than max_position_embeddings" "more than max_position_embeddings 64" "$BIN" generate -m "$M" --tokens 1 -n 100
expect_error "bad -n" "-n: 'abc'" "$BIN" generate -m "$M" --tokens 1 -n abc
expect_error "bad --top-p" "--top-p: '1.5'" "$BIN" generate -m "$M" --tokens 1 --top-p 1.5
expect_error "unknown backend" "--backend tpu" "$BIN" generate -m "$M" --tokens 1 --backend tpu
expect_error "no model" "config.json" "$BIN" score -m "$T/nothing" --tokens 1,2
expect_error "export onto its source" "must differ" "$BIN" export -m "$M" --schedule base -o "$M"
expect_error "unknown command" "unknown command 'frob'" "$BIN" frob
# files past their kind's limit are refused, naming it: a stream without end read up to the limit, a huge file at once
expect_error "-f /dev/zero" "more than the 256 MiB a prompt file may have" "$BIN" score -f /dev/zero
mkdir -p "$T/huge" && cp "$M"/* "$T/huge/" && truncate -s 10G "$T/huge/config.json"
expect_error "a 10 GB config.json" "10737418240 bytes, more than the 64 MiB a JSON file of settings may have" "$BIN" score -m "$T/huge" --tokens 1,2
truncate -s 2G "$T/huge/probe.jsonl"
expect_error "a 2 GB probe file" "more than the 1024 MiB a probe file may have" "$BIN" sweep --probe "jsonl:$T/huge/probe.jsonl" --out "$T/hugeout"
expect_error "a directory as a prompt file" "is a directory" "$BIN" score -f "$T"
rm -rf "$T/huge"
# added tokens: 4 MB of them load (12 bytes of trie a byte, not 1 KiB) and match; 65 MiB are refused, naming the limit
D=$(dirname "$0")/../tools/default_model
mkdir -p "$T/added" && cp "$D"/* "$T/added/"
python3 - "$T/added/tokenizer.json" 4000 <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
base = max(a["id"] for a in t["added_tokens"]) + 1 if t["added_tokens"] else len(t["model"]["vocab"])
t["added_tokens"] += [{"id": base + i, "content": "<tok%06d>" % i + "x" * 1000, "special": True} for i in range(int(sys.argv[2]))]
json.dump(t, open(sys.argv[1], "w"))
PY
"$BIN" tokenize -m "$T/added" -p "1+1=<tok000007>$(printf 'x%.0s' $(seq 1000))2" --json >"$T/added.out" 2>&1
grep -q "$(python3 -c "import json; t=json.load(open('$T/added/tokenizer.json')); print([a['id'] for a in t['added_tokens'] if a['content'].startswith('<tok000007>')][0])")" "$T/added.out"
check "4 MB of added tokens load, and one of them matches" $?
python3 - "$T/added/tokenizer.json" 62000 <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
t["added_tokens"] += [{"id": 100000 + i, "content": "<big%06d>" % i + "y" * 1100, "special": True} for i in range(int(sys.argv[2]))]
json.dump(t, open(sys.argv[1], "w"))
PY
expect_error "65 MiB of added tokens" "added tokens hold more than 64 MiB of text" "$BIN" tokenize -m "$T/added" -p "1+1="
rm -rf "$T/added"
mkdir -p "$T/trunc" && cp "$M/config.json" "$T/trunc/" && head -c 5000 "$M/model.safetensors" >"$T/trunc/model.safetensors"
expect_error "truncated safetensors" "past the end" "$BIN" generate -m "$T/trunc" --tokens 1

expect_error "text prompt without a tokenizer" "no tokenizer.json" "$BIN" generate -m "$M" -p "hello" -n 2
expect_error "two prompt sources" "one of --tokens, -p and -f" "$BIN" generate -m "$M" -p "x" --tokens 1
expect_error "chat without a template" "--chat-template" "$BIN" chat -m "$M"
expect_error "unknown chat template" "--chat-template vicuna: unknown template" "$BIN" chat -m "$M" --chat-template vicuna
for cmd in tokenize chat; do
    "$BIN" $cmd --help | grep -q "usage: reprise $cmd"
    check "$cmd --help" $?
done

# the built-in default model (no -m): arithmetic, greedy
out=$("$BIN" generate -p "12+35=" -n 8 --temp 0 2>/dev/null)
[ "$out" = "47" ]
check "built-in model: 12+35= gives 47 (got '$out')" $?
# the README's demo: a schedule changes the answer
a=$("$BIN" generate -p "99*99=" --temp 0 2>/dev/null) b=$("$BIN" generate -p "99*99=" --temp 0 --schedule rys:2,4 2>/dev/null)
[ "$a" = 9701 ] && [ "$b" = 9801 ]
check "README demo: 99*99= gives 9701 on base and 9801 on rys:2,4 (got '$a', '$b')" $?
printf '12+35=\n7*8=\n' | "$BIN" chat --temp 0 >"$T/chat_builtin" 2>"$T/chat_builtin_err"
[ $? -eq 0 ] && [ "$(cat "$T/chat_builtin")" = "$(printf '47\n56')" ] && grep -q "template plain" "$T/chat_builtin_err"
check "chat without -m: the built-in model's plain template, one problem per line" $?
"$BIN" generate -p "12+35=" -n 4 --seed -1 2>"$T/seed_err" >"$T/seed_out"
seed=$(sed -n 's/.*--seed -1: the seed is \([0-9]*\)$/\1/p' "$T/seed_err")
[ -n "$seed" ] && [ "$("$BIN" generate -p "12+35=" -n 4 --seed "$seed" 2>/dev/null)" = "$(cat "$T/seed_out")" ]
check "--seed -1 prints the seed it drew, and that seed repeats the run (seed '$seed')" $?
"$BIN" generate -p "1+1=" -n 2 --seed -1 2>&1 >/dev/null | grep -q "the seed is" &&
    [ "$(sed -n 's/.*the seed is //p' "$T/seed_err")" != "$("$BIN" generate -p "1+1=" -n 2 --seed -1 2>&1 >/dev/null | sed -n 's/.*the seed is //p')" ]
check "--seed -1 draws a different seed each run" $?
"$BIN" generate -p "12+35=" --temp 0 2>&1 >/dev/null | grep -q "context of 64 tokens (max_position_embeddings 64, at most 4096 without -c)"
check "generate without -n or -c says the context it chose" $?
expect_error "seed below -1" "--seed: '-2'" "$BIN" generate -p "1+1=" --seed -2

# the GPU memory plan at real sizes: checkpoints of Qwen2-7B's and Qwen2-72B's real shapes, headers only (sparse)
Q='"model_type":"qwen2","architectures":["Qwen2ForCausalLM"],"vocab_size":152064,"max_position_embeddings":32768,"rms_norm_eps":1e-6,"rope_theta":1000000.0,"tie_word_embeddings":false'
python3 "$FIX/../sparse_checkpoint.py" "$T/q7" "{$Q,\"hidden_size\":3584,\"intermediate_size\":18944,\"num_hidden_layers\":28,\"num_attention_heads\":28,\"num_key_value_heads\":4}" &&
python3 "$FIX/../sparse_checkpoint.py" "$T/q72" "{$Q,\"hidden_size\":8192,\"intermediate_size\":29568,\"num_hidden_layers\":80,\"num_attention_heads\":64,\"num_key_value_heads\":8}"
check "sparse checkpoints of Qwen2-7B and Qwen2-72B shapes" $?
"$BIN" inspect -m "$T/q72" --schedule rys:45,52 -c 4096 --gpu-memory 139 >"$T/i72" 2>&1
grep -q "weights  *135.426 GiB" "$T/i72" && grep -q "87 slots x 4096 positions" "$T/i72" && grep -q "kv cache  *1.359 GiB" "$T/i72" &&
    grep -q "fits  *yes, on a 139.000 GiB GPU" "$T/i72" && grep -q "parameters  *72706203648" "$T/i72"
check "inspect: RYS-XLarge (rys:45,52 on Qwen2-72B) at 4096 positions fits one 139 GiB GPU: 135.4 GiB of weights, 87 KV slots" $?
grep -q "weights in cpu backend  *135.43 GiB" "$T/i72" && grep -q "KV per token, cpu (bf16)  *348.00 KiB" "$T/i72"
check "inspect: the CPU backend keeps Qwen2-72B's BF16 weights in BF16 (135.43 GiB, not 270) and its KV in BF16" $?

"$BIN" inspect -m "$T/q72" --schedule rys:45,52 --gpu-memory 79 2>&1 | grep -q "fits  *no, not on a 79.000 GiB GPU"
check "inspect: RYS-XLarge does not fit one 79 GiB GPU" $?
"$BIN" inspect -m "$T/q7" --schedule rys:10,20 --batch 64 -c 1600 --gpu-memory 79 >"$T/i7" 2>&1
grep -q "64 sequence(s) of 1600 positions, 512 rows per step" "$T/i7" && grep -q "2432 slots x 1600 positions" "$T/i7" &&
    grep -q "logits  *47.409 MiB  64 rows" "$T/i7" && grep -q "most sequences that fit  *551" "$T/i7"
check "inspect: a 64-config sweep batch of Qwen2-7B plans logits for 64 rows, not every prompt row" $?
"$BIN" inspect -m "$T/q72" --schedule rys:45,52 --tp 2 -c 32768 --gpu-memory 79 >"$T/tp72" 2>&1
grep -q "weights per GPU (bf16)  *67.71 GiB" "$T/tp72" && grep -q "KV per token per GPU  *174.00 KiB" "$T/tp72" &&
    grep -q "weights  *67.714 GiB  BF16, each unique layer once, this GPU's share of 2" "$T/tp72" &&
    grep -q "kv cache  *5.438 GiB  87 slots x 32768 positions" "$T/tp72" && grep -q "fits  *yes, on each 79.000 GiB GPU" "$T/tp72"
check "inspect --tp 2: RYS-XLarge at 32768 positions fits two 79 GiB GPUs (67.7 GiB of weights and 5.4 GiB of KV each)" $?
expect_error "--tp that does not divide the KV heads" "do not split evenly" "$BIN" inspect -m "$T/q72" --tp 3

# the README's reference holds each command's --help, verbatim
README=$FIX/../../README.md
for cmd in inspect generate chat tokenize sweep "sweep merge" score export; do
    python3 - "$README" "$cmd" "$("$BIN" $cmd --help)" <<'PY'
import sys
readme, cmd, help_text = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
want = "```text\n$ reprise %s --help\n%s\n```" % (cmd, help_text)
sys.exit(0 if want in readme else 1)
PY
    check "README holds 'reprise $cmd --help' verbatim (python3 tools/update_readme_help.py rewrites it)" $?
done

S=$SHARED/models/stories260K
if [ -f "$S/expected.json" ]; then
    python3 - "$S/expected.json" >"$T/want_text" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["greedy_once_upon_a_time_64"]
print(g["text"][len(g["prompt"]):])
PY
    "$BIN" generate -m "$S" -p "Once upon a time" -n 60 --temp 0 >"$T/got_text" 2>/dev/null
    cmp -s "$T/got_text" "$T/want_text"
    check "stories260K: -p 'Once upon a time' streams the text of greedy_once_upon_a_time_64" $?
    [ "$("$BIN" tokenize -m "$S" -p "Once upon a time" --json)" = "[1, 403, 407, 261, 378]" ]
    check "stories260K: tokenize --json" $?
    mkdir -p "$T/tokonly" && cp "$S/tokenizer.json" "$T/tokonly/"
    [ "$("$BIN" tokenize -m "$T/tokonly" -p "Once upon a time" --no-special)" = "403 407 261 378" ]
    check "tokenize with only tokenizer.json, --no-special" $?
    out=$("$BIN" generate -m "$S" -p "Once upon a time" -n 60 --temp 0 --stop "Lily" 2>/dev/null)
    [ "$out" = ", there was a little girl named " ]
    check "--stop ends the text before the stop string (got '$out')" $?
    "$BIN" score -m "$S" -p "Once upon a time there was a girl" | grep -q '^perplexity'
    check "score -p" $?
    expect_error "missing prompt file" "nothing.txt: cannot open" "$BIN" generate -m "$S" -f "$T/nothing.txt"
    printf 'bad \xff byte' >"$T/bad.txt"
    expect_error "invalid UTF-8 prompt" "not valid UTF-8 (byte 4)" "$BIN" tokenize -m "$S" -f "$T/bad.txt"
    printf 'Hello there\nWhat is your name?\nTell me a story\n' | "$BIN" chat -m "$S" --chat-template chatml -n 24 --temp 0 >"$T/chat" 2>"$T/chat_err"
    [ $? -eq 0 ] && [ "$(grep -c . "$T/chat")" -ge 3 ] && ! grep -qi error "$T/chat_err"
    check "chat: three turns from a pipe" $?
    if command -v script >/dev/null; then   # the same through a pseudo-terminal
        printf 'Hello there\nWhat is your name?\nTell me a story\n/exit\n' | script -qec "$BIN chat -m $S --chat-template chatml -n 24 --temp 0" /dev/null >"$T/pty" 2>&1
        [ $? -eq 0 ] && grep -q "template chatml" "$T/pty" && [ "$(grep -c '> ' "$T/pty")" -ge 3 ] && ! grep -qi error "$T/pty"
        check "chat: three turns through a pseudo-terminal" $?
    fi
    "$BIN" generate -m "$S" --tokens 1 -n 200 --temp 0 >"$T/g" 2>/dev/null
    python3 - "$S/expected.json" "$T/g" <<'PY'
import json, sys
want = json.load(open(sys.argv[1]))["greedy_bos_200"]["ids"][1:201]
got = [int(x) for x in open(sys.argv[2]).read().split()]
sys.exit(0 if got == want else 1)
PY
    check "stories260K: generate --tokens 1 -n 200 --temp 0 prints greedy_bos_200 ids[1..200]" $?
else
    skip "stories260K: $S is absent"
fi
if [ $fail -eq 0 ] && [ $skipped -gt 0 ]; then echo "$skipped part(s) skipped"; exit 77; fi
exit $fail
