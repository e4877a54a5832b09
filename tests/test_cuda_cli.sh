#!/usr/bin/env bash
# The command line on the CUDA backend (under the emulation): a sweep's rows do not depend on --batch, the memory
# plan refuses a run the device cannot hold before any weight is read, and runs one that fits; --tp 2 (two emulated
# GPUs) gives the text, samples and sweep rows of one GPU, and is refused where it cannot split; a prompt in
# --ubatch windows gives one window's numbers; the sampling penalties give the CPU backend's text.
set -u
BIN=$1
# quick (under the sanitizers, where the emulation is 5x slower: the same code): the window checks at --ubatch 4 alone,
# greedy, and on the CUDA backend through generate only (serve and sweep windows on the CPU backend)
QUICK=${2:-}
[ "$QUICK" = quick ] || QUICK=""
WINDOWS="3 4 8" CUDA_TOO=cuda
[ "$QUICK" = quick ] && WINDOWS=4 CUDA_TOO=""
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
rows() {
    python3 - "$1" <<'PY'
import sqlite3, sys
for r in sqlite3.connect(sys.argv[1]).execute("SELECT c.label, r.probe, r.item, r.score, r.reply FROM results r JOIN configs c ON c.id = r.config ORDER BY 1, 2, 3"):
    print("\t".join(map(repr, r)))
PY
}
args=(sweep --probe arith --items 3 --configs "rys:1,3;rys:2,4;0-1,3-5" --backend cuda)
"$BIN" "${args[@]}" --out "$T/b64" >/dev/null 2>"$T/b64.err" &&
    "$BIN" "${args[@]}" --out "$T/b1" --batch 1 --ubatch 4 >/dev/null 2>"$T/b1.err"
r=$?
grep -q "CPU emulation" "$T/b64.err" || r=1
[ $r -eq 0 ] && [ "$(rows "$T/b64/results.sqlite" | wc -l)" -eq 12 ] && cmp -s <(rows "$T/b64/results.sqlite") <(rows "$T/b1/results.sqlite")
check "CUDA backend: a sweep at --batch 1 --ubatch 4 gives the rows of --batch 64, exactly" $?

# a prompt longer than --ubatch runs in windows; a window that ends no sequence must not change a number. Every
# window size of $WINDOWS against one window, on both backends, at prompt lengths that straddle the window (w-1, w,
# w+1, 2w+1): through generate (greedy; sampled too at the first size), serve and a sweep
r=0
declare -A one_window   # the one-window ids of (length, backend, sampling), run once
for w in $WINDOWS; do
    for len in $((w - 1)) $w $((w + 1)) $((2 * w + 1)); do
        ids=$(python3 -c "import sys; print(','.join(str(3 + (i * 7) % 13) for i in range(int(sys.argv[1]))))" $len)
        for be in cuda cpu; do
            for s in "--temp 0" "--temp 1 --seed 3"; do
                [ "$s" = "--temp 0" ] || { [ "$w" = "${WINDOWS%% *}" ] && [ -z "$QUICK" ]; } || continue
                key="$len $be $s"
                [ -n "${one_window[$key]:-}" ] ||
                    one_window[$key]=$("$BIN" generate --tokens "$ids" -n 4 $s --ignore-eos --backend $be --ubatch 512 2>"$T/w.err")
                one=${one_window[$key]}
                win=$("$BIN" generate --tokens "$ids" -n 4 $s --ignore-eos --backend $be --ubatch $w 2>>"$T/w.err")
                [ -n "$one" ] && [ "$one" = "$win" ] || { echo "generate $be $s: $len tokens at --ubatch $w: '$win', one window: '$one'"; cat "$T/w.err"; r=1; }
            done
        done
    done
done
check "generate: prompts of w-1, w, w+1, 2w+1 tokens at --ubatch w ($WINDOWS) give one window's ids, CUDA and CPU${QUICK:+ (greedy)}" $r
python3 - "$BIN" "$(dirname "$0")" $CUDA_TOO cpu <<'PY'
import json, subprocess, sys, urllib.request
binary = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from serve_proc import start
def serve(backend, ubatch):
    return start(binary, "--backend", backend, "--ubatch", str(ubatch), "--parallel", "2")
for backend in sys.argv[3:]:
    got = {}
    for ub in (512, 4):
        p, port = serve(backend, ub)
        for n in (3, 4, 5, 9, 13):
            ids = [3 + (i * 7) % 13 for i in range(n)]
            body = {"prompt": ids, "max_tokens": 4, "temperature": 0, "ignore_eos": True, "logprobs": 1}
            req = urllib.request.Request("http://127.0.0.1:%s/v1/completions" % port, json.dumps(body).encode(), {"Content-Type": "application/json"})
            c = json.loads(urllib.request.urlopen(req, timeout=600).read())["choices"][0]
            got.setdefault(n, []).append((c["text"], c["logprobs"]["token_logprobs"]))
        p.terminate()
        assert p.wait(60) == 0
    for n, (one, win) in got.items():
        assert one[0] == win[0] and max(abs(a - b) for a, b in zip(one[1], win[1])) < 1e-5, (backend, n, one, win)
PY
check "serve --ubatch 4: prompts of 3, 4, 5, 9 and 13 tokens complete as in one window (text and logprobs), ${CUDA_TOO:+CUDA and }CPU" $?
# a sweep: prompts of 3, 4, 5 and 9 tokens (BOS and a character a token) at each --ubatch
r=0
for p in 1+ 1+1 1+1= 12+34=12; do echo "{\"prompt\": \"$p\", \"answer\": \"2\", \"match\": \"numeric\"}"; done >"$T/w.jsonl"
for be in $CUDA_TOO cpu; do
    sw=(--probe "jsonl:$T/w.jsonl" --max-tokens 6 --configs "rys:1,3" --backend $be --batch 1)
    "$BIN" sweep "${sw[@]}" --ubatch 512 --out "$T/sw1-$be" >/dev/null 2>&1 || r=1
    for w in $WINDOWS; do
        "$BIN" sweep "${sw[@]}" --ubatch $w --out "$T/sw$w-$be" >/dev/null 2>&1 || r=1
        cmp -s <(rows "$T/sw1-$be/results.sqlite") <(rows "$T/sw$w-$be/results.sqlite") || { echo "sweep $be --ubatch $w: other rows"; r=1; }
    done
    [ "$(rows "$T/sw1-$be/results.sqlite" | wc -l)" -eq 8 ] || r=1
done
check "sweep --ubatch $WINDOWS (prompts of 3, 4, 5, 9 tokens) give one window's rows, ${CUDA_TOO:+CUDA and }CPU" $r

# the penalties on the CUDA backend: a seeded (and a greedy) generation gives the CPU backend's text
r=0
pens=("--temp 1 --seed 3 --frequency-penalty 2 --presence-penalty 0.5")
[ -n "$QUICK" ] || pens+=("--temp 0 --repeat-penalty 5" "--temp 0.8 --seed 9 --repeat-penalty 1.5")
for s in "${pens[@]}"; do
    a=$("$BIN" generate -p "7" -n 12 --ignore-eos $s --backend cuda 2>/dev/null)
    b=$("$BIN" generate -p "7" -n 12 --ignore-eos $s --backend cpu 2>/dev/null)
    c=$("$BIN" generate -p "7" -n 12 --ignore-eos ${s%% --*} --backend cpu 2>/dev/null)
    [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$c" ] || { echo "$s: cuda '$a', cpu '$b', no penalty '$c'"; r=1; }
done
check "penalties: CUDA and CPU give the same text (greedy and seeded), which the penalties changed" $r

"$BIN" generate -p "7" -n 2 --backend cuda --kv-dtype f32 >"$T/kv.out" 2>"$T/kv.err"
[ $? -ne 0 ] && grep -q "the CUDA backend keeps its KV cache in BF16" "$T/kv.err" && [ ! -s "$T/kv.out" ]
check "CUDA backend: --kv-dtype f32 refused, naming why" $?

# the plan of generate on the built-in model: refused on a device one byte too small, run on one just big enough
REPRISE_EMU_DEVICE_MEMORY=1000000 "$BIN" generate -p "12+35=" -n 3 --temp 0 --backend cuda >"$T/small.out" 2>"$T/small.err"
r=$?
[ $r -ne 0 ] && grep -q "of GPU memory, more than the" "$T/small.err" && grep -q "kv cache" "$T/small.err" && [ ! -s "$T/small.out" ]
check "a run larger than the device is refused before loading, with its plan" $?
total=$(sed -n 's/.*the run needs \([0-9.]*\) GiB.*/\1/p' "$T/small.err")
bytes=$(python3 -c "print(int(($total + 0.001) * 2**30) + (256 << 20))")
out=$(REPRISE_EMU_DEVICE_MEMORY=$bytes "$BIN" generate -p "12+35=" -n 3 --temp 0 --backend cuda 2>/dev/null)
[ "$out" = "47" ]
check "the same run on a device of the plan's size (plus headroom) completes (got '$out')" $?

# tensor parallel: the built-in model split over 2 GPUs
for s in "--temp 0" "--temp 1.5 --top-k 40 --top-p 0.95 --min-p 0.01 --seed 1"; do
    a=$("$BIN" generate -p "7" -n 12 $s --backend cuda 2>/dev/null)
    b=$("$BIN" generate -p "7" -n 12 $s --backend cuda --tp 2 2>"$T/tp.err")
    [ -n "$a" ] && [ "$a" = "$b" ]
    check "generate --tp 2 $s gives one GPU's text ('$a' / '$b')" $?
done
a=$("$BIN" score -p "12+35=47" --backend cuda --json 2>/dev/null)
b=$("$BIN" score -p "12+35=47" --backend cuda --tp 2 --json 2>/dev/null)
python3 - "$a" "$b" <<'PY'
import json, sys
a, b = (json.loads(x) for x in sys.argv[1:])
assert a["tokens"] == b["tokens"] and len(a["logprobs"]) == 8
assert max(abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"])) < 1e-3, (a, b)
PY
check "score --tp 2 gives one GPU's log-probabilities (every row's logits gathered from both GPUs' columns)" $?
"$BIN" "${args[@]}" --out "$T/tp2" --tp 2 >/dev/null 2>"$T/tp2.err" && cmp -s <(rows "$T/b64/results.sqlite") <(rows "$T/tp2/results.sqlite")
check "sweep --tp 2 gives the rows of one GPU" $?
"$BIN" generate -p "1+1=" -n 2 --tp 2 --backend cpu >/dev/null 2>"$T/cpu.err"
[ $? -ne 0 ] && grep -q "needs --backend cuda" "$T/cpu.err"
check "--tp 2 on the CPU backend is refused: $(cat "$T/cpu.err")" $?
"$BIN" generate -p "1+1=" -n 2 --tp 3 --backend cuda >/dev/null 2>"$T/tp3.err"
[ $? -ne 0 ] && grep -q "do not split evenly" "$T/tp3.err"
check "--tp that does not divide the KV heads is refused: $(cat "$T/tp3.err")" $?
REPRISE_EMU_DEVICE_MEMORY=1000000 "$BIN" generate -p "12+35=" -n 3 --temp 0 --backend cuda --tp 2 >/dev/null 2>"$T/tpsmall.err"
[ $? -ne 0 ] && grep -q "on GPU 0 (rank 0 of --tp 2)" "$T/tpsmall.err" && grep -q "this GPU's share of 2" "$T/tpsmall.err"
check "--tp 2 larger than a GPU is refused naming the GPU and rank, with the per-GPU plan" $?
# reprise serve on the CUDA backend (and --tp 2): greedy completions of two schedules in one batch equal generate's,
# an echo request's logprobs equal score's
python3 - "$BIN" "$(dirname "$0")" <<'PY'
import json, re, subprocess, sys, threading, time, urllib.request
binary = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from serve_proc import start
def gen(prompt, sched, tp):
    return subprocess.run([binary, "generate", "-p", prompt, "-n", "8", "--temp", "0", "--schedule", sched, "--backend", "cuda",
                           "--tp", tp], capture_output=True, text=True, check=True).stdout[:-1]
for tp in ("1", "2"):
    p, port = start(binary, "--backend", "cuda", "--tp", tp)
    def post(body):
        req = urllib.request.Request("http://127.0.0.1:%s/v1/completions" % port, json.dumps(body).encode(), {"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=600).read())
    out = {}
    jobs = [(pr, sc) for pr in ("99*99=", "12+34=") for sc in ("base", "rys:2,4")]
    threads = [threading.Thread(target=lambda j=j: out.__setitem__(j, post({"prompt": j[0], "max_tokens": 8, "temperature": 0,
                                                                             "layer_schedule": j[1]}))) for j in jobs]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for (pr, sc), r in out.items():
        assert r["choices"][0]["text"] == gen(pr, sc, tp), (tp, pr, sc, r)
    lp = post({"prompt": [1, 5, 6, 7, 11], "max_tokens": 1, "echo": True, "logprobs": 1})["choices"][0]["logprobs"]["token_logprobs"]
    want = json.loads(subprocess.run([binary, "score", "--tokens", "1,5,6,7,11", "--json", "--backend", "cuda", "--tp", tp],
                                     capture_output=True, text=True, check=True).stdout)["logprobs"]
    assert max(abs(a - b) for a, b in zip(lp[1:5], want)) < 1e-5, (lp, want)
    p.terminate()
    assert p.wait(60) == 0
PY
check "serve on the CUDA backend (--tp 1 and 2): mixed-schedule greedy text equal to generate's, echo logprobs equal to score's" $?

# without --kv-budget, serve's KV budget is what the GPU's free memory holds when that is less than the default
python3 - "$BIN" <<'PY'
import json, os, re, subprocess, sys, urllib.error, urllib.request
binary = sys.argv[1]
env = dict(os.environ, REPRISE_EMU_DEVICE_MEMORY=str(263 << 20))   # 256 MiB of headroom, the buffers, a little KV
p = subprocess.Popen([binary, "serve", "--port", "0", "--backend", "cuda", "--parallel", "64"], stderr=subprocess.PIPE, text=True, env=env)
port = budget = None
for line in p.stderr:
    m = re.search(r"listening on http://[^:]+:(\d+)", line)
    port = port or (m and m.group(1))
    m = re.search(r"KV budget (\d+) visit-positions", line)
    if m:
        budget = int(m.group(1))
        break
assert budget and 6 * 23 <= budget < 64 * 64 * 6, budget   # fits one 23-token request, not the default 64 x 64 x 6
def post(body):
    req = urllib.request.Request("http://127.0.0.1:%s/v1/completions" % port, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        return 200, json.loads(urllib.request.urlopen(req, timeout=600).read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
want = subprocess.run([binary, "generate", "-p", "99*99=", "-n", "8", "--temp", "0", "--backend", "cuda"], capture_output=True, text=True).stdout[:-1]
st, r = post({"prompt": "99*99=", "max_tokens": 8, "temperature": 0})
assert st == 200 and r["choices"][0]["text"] == want, r
too_many = budget // 6 - 7 + 1   # (7 prompt tokens + this) x 6 visits is just over the budget, within the context
assert too_many <= 57, budget
st, r = post({"prompt": "99*99=", "max_tokens": too_many, "temperature": 0})
assert st == 400 and "--kv-budget" in r["error"]["message"], r
p.terminate()
assert p.wait(60) == 0
print("KV budget fitted to the device: %d visit-positions" % budget)
PY
check "serve without --kv-budget fits the KV budget to the GPU's free memory, and refuses what exceeds it" $?

# reprise bench on the CUDA backend measures the device's bandwidth (a copy) and its peak (the backend's own GEMM)
"$BIN" bench --backend cuda -p 8 -n 4 -r 1 --no-warmup -o json >"$T/bench.json" 2>"$T/bench.err"
r=$?
python3 - "$T/bench.json" <<'PY' || r=1
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 2 and all(r["backend"] == "cuda" and r["bandwidth_gbs"] > 0 and r["peak_gflops"] > 0 for r in rows), rows
assert all(r["peak_source"].startswith("measured: the CUDA backend's BF16 GEMM") and r["roofline_ts"] > 0 for r in rows), rows
PY
check "bench on the CUDA backend: bandwidth and GEMM peak measured, rooflines from them ($(sed -n 2p "$T/bench.err" | cut -c1-80))" $r
exit $fail
