#!/usr/bin/env python3
"""The command line on the CUDA backend (under the emulation): a sweep's rows do not depend on --batch, the memory
plan refuses a run the device cannot hold before any weight is read, and runs one that fits; --tp 2 (two emulated
GPUs) gives the text, samples and sweep rows of one GPU, and is refused where it cannot split; a prompt in --ubatch
windows gives one window's numbers; the sampling penalties give the CPU backend's text.
usage: test_cuda_cli.py REPRISE_EMU [full|quick]
quick (under the sanitizers, where the emulation is 5x slower: the same code): the window checks at --ubatch 4 alone,
greedy, and on the CUDA backend through generate only (serve and sweep windows on the CPU backend)."""
import atexit
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish  # noqa: E402
from serve_proc import start  # noqa: E402

BIN = sys.argv[1]
QUICK = len(sys.argv) > 2 and sys.argv[2] == "quick"
WINDOWS = [4] if QUICK else [3, 4, 8]
CUDA_TOO = [] if QUICK else ["cuda"]
T = tempfile.mkdtemp(prefix="reprise-cuda-cli-")
atexit.register(shutil.rmtree, T, True)


def run(*args, env=None):
    """reprise's exit code, stdout and stderr."""
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=env)
    return p.returncode, p.stdout, p.stderr


def out(*args, env=None):
    """reprise's stdout with its last newline cut, as $(...) gives it."""
    return run(*args, env=env)[1].rstrip("\n")


def rows(db):
    """A sweep database's rows, in one order."""
    with sqlite3.connect(db) as c:
        return c.execute("SELECT c.label, r.probe, r.item, r.score, r.reply FROM results r JOIN configs c ON c.id = r.config "
                         "ORDER BY 1, 2, 3").fetchall()


def post(port, body):
    req = urllib.request.Request("http://127.0.0.1:%s/v1/completions" % port, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        return 200, json.loads(urllib.request.urlopen(req, timeout=600).read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def ids_of(n):
    return [3 + (i * 7) % 13 for i in range(n)]


# a sweep at --batch 1 --ubatch 4 gives the rows of --batch 64
sweep_args = ["sweep", "--probe", "arith", "--items", "3", "--configs", "rys:1,3;rys:2,4;0-1,3-5", "--backend", "cuda"]
rc1, _, err1 = run(*sweep_args, "--out", T + "/b64")
rc2, _, _ = run(*sweep_args, "--out", T + "/b1", "--batch", "1", "--ubatch", "4")
ok = rc1 == 0 and rc2 == 0 and "CPU emulation" in err1
check(ok and len(rows(T + "/b64/results.sqlite")) == 12 and rows(T + "/b64/results.sqlite") == rows(T + "/b1/results.sqlite"),
      "CUDA backend: a sweep at --batch 1 --ubatch 4 gives the rows of --batch 64, exactly")
# the base's hidden states stay on the device (the backend's stash, planned), and sharing them changes no number:
# the rows of --naive (every config from its first visit, nothing shared)
rc3, _, _ = run(*sweep_args, "--out", T + "/naive", "--naive")
check(rc3 == 0 and "hidden states kept on the device" in err1 and rows(T + "/naive/results.sqlite") == rows(T + "/b64/results.sqlite"),
      "CUDA backend: the sweep keeps the base's hidden states on the device, and its rows are --naive's, exactly")

# a prompt longer than --ubatch runs in windows; a window that ends no sequence must not change a number. Every window
# size against one window, on both backends, at prompt lengths that straddle the window (w-1, w, w+1, 2w+1): through
# generate (greedy; sampled too at the first size), serve and a sweep
bad, one_window = [], {}
for w in WINDOWS:
    for n in (w - 1, w, w + 1, 2 * w + 1):
        ids = ",".join(map(str, ids_of(n)))
        for be in ("cuda", "cpu"):
            for s in (["--temp", "0"], ["--temp", "1", "--seed", "3"]):
                if s[1] != "0" and (w != WINDOWS[0] or QUICK):
                    continue
                key = (n, be, tuple(s))
                common = ["generate", "--tokens", ids, "-n", "4", *s, "--ignore-eos", "--backend", be]
                if key not in one_window:
                    one_window[key] = out(*common, "--ubatch", "512")
                win = out(*common, "--ubatch", str(w))
                if not one_window[key] or win != one_window[key]:
                    bad.append("generate %s %s: %d tokens at --ubatch %d: %r, one window: %r" % (be, s, n, w, win, one_window[key]))
check(not bad, "generate: prompts of w-1, w, w+1, 2w+1 tokens at --ubatch w (%s) give one window's ids, CUDA and CPU%s%s"
      % (" ".join(map(str, WINDOWS)), " (greedy)" if QUICK else "", ": " + "; ".join(bad[:3]) if bad else ""))

bad = []
for be in CUDA_TOO + ["cpu"]:
    got = {}
    for ub in (512, 4):
        p, port = start(BIN, "--backend", be, "--ubatch", str(ub), "--parallel", "2")
        for n in (3, 4, 5, 9, 13):
            st, r = post(port, {"prompt": ids_of(n), "max_tokens": 4, "temperature": 0, "ignore_eos": True, "logprobs": 1})
            c = r["choices"][0] if st == 200 else {"text": None, "logprobs": {"token_logprobs": []}}
            got.setdefault(n, []).append((c["text"], c["logprobs"]["token_logprobs"]))
        p.terminate()
        if p.wait(60) != 0:
            bad.append("%s server at --ubatch %d: exit %s" % (be, ub, p.returncode))
    for n, (one, win) in got.items():
        if one[0] is None or one[0] != win[0] or max(abs(a - b) for a, b in zip(one[1], win[1])) >= 1e-5:
            bad.append("%s, %d tokens: %r vs one window %r" % (be, n, win, one))
check(not bad, "serve --ubatch 4: prompts of 3, 4, 5, 9 and 13 tokens complete as in one window (text and logprobs), %sCPU%s"
      % ("CUDA and " if CUDA_TOO else "", ": " + "; ".join(bad[:3]) if bad else ""))

# a sweep: prompts of 3, 4, 5 and 9 tokens (BOS and a character a token) at each --ubatch
bad = []
with open(T + "/w.jsonl", "w") as f:
    for p in ("1+", "1+1", "1+1=", "12+34=12"):
        f.write(json.dumps({"prompt": p, "answer": "2", "match": "numeric"}) + "\n")
for be in CUDA_TOO + ["cpu"]:
    sw = ["sweep", "--probe", "jsonl:%s/w.jsonl" % T, "--max-tokens", "6", "--configs", "rys:1,3", "--backend", be, "--batch", "1"]
    if run(*sw, "--ubatch", "512", "--out", "%s/sw1-%s" % (T, be))[0]:
        bad.append("%s: the one-window sweep failed" % be)
        continue
    one = rows("%s/sw1-%s/results.sqlite" % (T, be))
    if len(one) != 8:
        bad.append("%s: %d rows, not 8" % (be, len(one)))
    for w in WINDOWS:
        if run(*sw, "--ubatch", str(w), "--out", "%s/sw%d-%s" % (T, w, be))[0] or rows("%s/sw%d-%s/results.sqlite" % (T, w, be)) != one:
            bad.append("sweep %s --ubatch %d: other rows" % (be, w))
check(not bad, "sweep --ubatch %s (prompts of 3, 4, 5, 9 tokens) give one window's rows, %sCPU%s"
      % (" ".join(map(str, WINDOWS)), "CUDA and " if CUDA_TOO else "", ": " + "; ".join(bad) if bad else ""))

# the penalties on the CUDA backend: a seeded (and a greedy) generation gives the CPU backend's text
bad = []
pens = ["--temp 1 --seed 3 --frequency-penalty 2 --presence-penalty 0.5"]
if not QUICK:
    pens += ["--temp 0 --repeat-penalty 5", "--temp 0.8 --seed 9 --repeat-penalty 1.5"]
for s in pens:
    common = ["generate", "-p", "7", "-n", "12", "--ignore-eos"]
    no_penalty = s.split(" --")[0].split()   # the temperature alone (as the shell test cut it)
    a = out(*common, *s.split(), "--backend", "cuda")
    b = out(*common, *s.split(), "--backend", "cpu")
    c = out(*common, *no_penalty, "--backend", "cpu")
    if not a or a != b or a == c:
        bad.append("%s: cuda %r, cpu %r, no penalty %r" % (s, a, b, c))
check(not bad, "penalties: CUDA and CPU give the same text (greedy and seeded), which the penalties changed%s"
      % (": " + "; ".join(bad) if bad else ""))

rc, o, e = run("generate", "-p", "7", "-n", "2", "--backend", "cuda", "--kv-dtype", "f32")
check(rc != 0 and "the CUDA backend keeps its KV cache in BF16" in e and not o, "CUDA backend: --kv-dtype f32 refused, naming why")
rc, o, e = run("generate", "-p", "7", "-n", "6", "--temp", "0", "--backend", "cuda", "--weights", "fp8")
rc2, o2, e2 = run("generate", "-p", "7", "-n", "6", "--temp", "0", "--backend", "cpu", "--weights", "fp8")
check(rc == 0 and rc2 == 0 and o and o == o2, "CUDA backend: --weights fp8 (W8A16) gives the CPU backend's greedy text (%r, %r)" % (o, o2))

# the plan of generate on the built-in model: refused on a device one byte too small, run on one just big enough
small = dict(os.environ, REPRISE_EMU_DEVICE_MEMORY="1000000")
rc, o, e = run("generate", "-p", "12+35=", "-n", "3", "--temp", "0", "--backend", "cuda", env=small)
check(rc != 0 and "of GPU memory, more than the" in e and "kv cache" in e and not o,
      "a run larger than the device is refused before loading, with its plan")
m = re.search(r"the run needs ([0-9.]+) GiB", e)
fits = dict(os.environ, REPRISE_EMU_DEVICE_MEMORY=str(int((float(m.group(1)) + 0.001) * 2**30) + (256 << 20))) if m else None
got = out("generate", "-p", "12+35=", "-n", "3", "--temp", "0", "--backend", "cuda", env=fits) if fits else None
check(got == "47", "the same run on a device of the plan's size (plus headroom) completes (got %r)" % got)

# tensor parallel: the built-in model split over 2 GPUs
for s in ("--temp 0", "--temp 1.5 --top-k 40 --top-p 0.95 --min-p 0.01 --seed 1"):
    a = out("generate", "-p", "7", "-n", "12", *s.split(), "--backend", "cuda")
    b = out("generate", "-p", "7", "-n", "12", *s.split(), "--backend", "cuda", "--tp", "2")
    check(a and a == b, "generate --tp 2 %s gives one GPU's text (%r / %r)" % (s, a, b))
try:
    a = json.loads(out("score", "-p", "12+35=47", "--backend", "cuda", "--json"))
    b = json.loads(out("score", "-p", "12+35=47", "--backend", "cuda", "--tp", "2", "--json"))
    ok = a["tokens"] == b["tokens"] and len(a["logprobs"]) == 8 and max(abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"])) < 1e-3
except ValueError:
    ok = False
check(ok, "score --tp 2 gives one GPU's log-probabilities (every row's logits gathered from both GPUs' columns)")
rc, _, _ = run(*sweep_args, "--out", T + "/tp2", "--tp", "2")
check(rc == 0 and rows(T + "/b64/results.sqlite") == rows(T + "/tp2/results.sqlite"), "sweep --tp 2 gives the rows of one GPU")
rc, _, e = run("generate", "-p", "1+1=", "-n", "2", "--tp", "2", "--backend", "cpu")
check(rc != 0 and "needs --backend cuda" in e, "--tp 2 on the CPU backend is refused: %s" % e.strip())
rc, _, e = run("generate", "-p", "1+1=", "-n", "2", "--tp", "3", "--backend", "cuda")
check(rc != 0 and "do not split evenly" in e, "--tp that does not divide the KV heads is refused: %s" % e.strip())
rc, _, e = run("generate", "-p", "12+35=", "-n", "3", "--temp", "0", "--backend", "cuda", "--tp", "2", env=small)
check(rc != 0 and "on GPU 0 (rank 0 of --tp 2)" in e and "this GPU's share of 2" in e,
      "--tp 2 larger than a GPU is refused naming the GPU and rank, with the per-GPU plan")

# reprise serve on the CUDA backend (and --tp 2): greedy completions of two schedules in one batch equal generate's, an
# echo request's logprobs equal score's
bad = []
for tp in ("1", "2"):
    p, port = start(BIN, "--backend", "cuda", "--tp", tp)
    got = {}
    jobs = [(pr, sc) for pr in ("99*99=", "12+34=") for sc in ("base", "rys:2,4")]
    threads = [threading.Thread(target=lambda j=j: got.__setitem__(j, post(port, {"prompt": j[0], "max_tokens": 8, "temperature": 0,
                                                                                   "layer_schedule": j[1]}))) for j in jobs]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for (pr, sc), (st, r) in got.items():
        want = out("generate", "-p", pr, "-n", "8", "--temp", "0", "--schedule", sc, "--backend", "cuda", "--tp", tp)
        if st != 200 or r["choices"][0]["text"] != want:
            bad.append("--tp %s %s %s: %r, generate %r" % (tp, pr, sc, r, want))
    # requests of their own sampling parameters in one batch, drawn on the device: each the text generate gives alone
    samplers = [{"temperature": 1, "seed": 3, "top_k": -1, "top_p": 1, "min_p": 0},
                {"temperature": 0.8, "seed": 5, "top_k": 5, "top_p": 0.9, "min_p": 0},
                {"temperature": 1.2, "seed": 7, "top_k": -1, "top_p": 1, "min_p": 0.1, "frequency_penalty": 1.5, "presence_penalty": 0.5},
                {"temperature": 0, "top_k": -1, "top_p": 1, "min_p": 0, "repetition_penalty": 3}]
    flags = {"temperature": "--temp", "seed": "--seed", "top_k": "--top-k", "top_p": "--top-p", "min_p": "--min-p",
             "frequency_penalty": "--frequency-penalty", "presence_penalty": "--presence-penalty", "repetition_penalty": "--repeat-penalty"}
    got = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, post(port, dict(samplers[i], prompt="7", max_tokens=10, ignore_eos=True))))
               for i in range(len(samplers))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for i, sp in enumerate(samplers):
        args = [a for k, v in sp.items() for a in (flags[k], str(max(v, 0) if k == "top_k" else v))]   # the server's off: -1
        want = out("generate", "-p", "7", "-n", "10", "--ignore-eos", *args, "--backend", "cuda", "--tp", tp)
        st, r = got[i]
        if st != 200 or r["choices"][0]["text"] != want:
            bad.append("--tp %s %s: %r, generate %r" % (tp, sp, r, want))
    # a logit_bias moves the draw, not the log-probabilities (of the model's logits: the device keeps the unedited)
    g1 = (out("generate", "--tokens", "1,5,6,7,11", "-n", "1", "--temp", "0", "--backend", "cuda", "--tp", tp) or "0").split()[0]
    lp = []
    for extra in ({}, {"logit_bias": {g1: -100}}):
        st, r = post(port, dict(extra, prompt=[1, 5, 6, 7, 11], max_tokens=1, temperature=0, logprobs=5))
        lp.append(r["choices"][0]["logprobs"] if st == 200 else None)
    if not lp[0] or not lp[1] or lp[0]["tokens"] == lp[1]["tokens"] or lp[0]["top_logprobs"] != lp[1]["top_logprobs"] or \
            lp[1]["token_logprobs"][0] != lp[1]["top_logprobs"][0].get(lp[1]["tokens"][0]) or \
            lp[0]["token_logprobs"][0] != max(lp[0]["top_logprobs"][0].values()):
        bad.append("--tp %s logit_bias against the greedy id %s: logprobs %r" % (tp, g1, lp))
    st, r = post(port, {"prompt": [1, 5, 6, 7, 11], "max_tokens": 1, "echo": True, "logprobs": 1})
    lp = r["choices"][0]["logprobs"]["token_logprobs"] if st == 200 else []
    want = json.loads(out("score", "--tokens", "1,5,6,7,11", "--json", "--backend", "cuda", "--tp", tp) or "{}").get("logprobs", [])
    if len(lp) < 5 or not want or max(abs(a - b) for a, b in zip(lp[1:5], want)) >= 1e-5:
        bad.append("--tp %s echo logprobs %r, score %r" % (tp, lp, want))
    # every request's KV came from the planned arena: no device allocation or free since the first step
    metrics = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=60).read().decode()
    m = re.search(r"^reprise:device_allocations_after_start\{[^}]*\} (\S+)$", metrics, re.M)
    if not m or float(m.group(1)) != 0:
        bad.append("--tp %s: device allocations after the first step: %s" % (tp, m.group(1) if m else "no metric"))
    p.terminate()
    if p.wait(60) != 0:
        bad.append("--tp %s: the server exited %s" % (tp, p.returncode))
check(not bad, "serve on the CUDA backend (--tp 1 and 2): mixed-schedule greedy text equal to generate's, requests of their "
      "own sampling parameters and penalties in one batch equal to generate's, a logit_bias moving the draw and not the "
      "logprobs, echo logprobs equal to score's, no device allocation after the first step%s" % (": " + "; ".join(bad[:3]) if bad else ""))

# without --kv-budget, serve's KV budget is what the GPU's free memory holds when that is less than the default
# 256 MiB of headroom, the buffers (64 KiB of them the GEMM's K-segment partials of the down projection; 512 KiB fewer
# since RMSNorm and attention write the GEMMs' BF16 inputs themselves; 1152 KiB fewer since gate and up are never
# stored - SwiGLU in the GEMM's epilogue - a step's row metadata is one buffer, and the residual stream's BF16 copy
# and sums of squares feed the gate/up GEMM; 32 KiB fewer since the KV is pages, a slot's K and V no longer each
# aligned to 256 bytes), a little KV (256 visit-positions)
env = dict(os.environ, REPRISE_EMU_DEVICE_MEMORY=str((263 << 20) + (64 << 10) - (512 << 10) - (1152 << 10) - (32 << 10)))
p = subprocess.Popen([BIN, "serve", "--port", "0", "--backend", "cuda", "--parallel", "64"], stderr=subprocess.PIPE, text=True, env=env)
port = budget = None
for line in p.stderr:
    m = re.search(r"listening on http://[^:]+:(\d+)", line)
    port = port or (m and m.group(1))
    m = re.search(r"KV budget (\d+) visit-positions", line)
    if m:
        budget = int(m.group(1))
        break
ok = bool(budget) and 6 * 23 <= budget < 64 * 64 * 6   # fits one 23-token request, not the default 64 x 64 x 6
if ok:
    want = out("generate", "-p", "99*99=", "-n", "8", "--temp", "0", "--backend", "cuda")
    st, r = post(port, {"prompt": "99*99=", "max_tokens": 8, "temperature": 0})
    ok = st == 200 and r["choices"][0]["text"] == want
    too_many = budget // 6 - 7 + 1   # (7 prompt tokens + this) x 6 visits is just over the budget, within the context
    st, r = post(port, {"prompt": "99*99=", "max_tokens": too_many, "temperature": 0})
    ok = ok and too_many <= 57 and st == 400 and "--kv-budget" in r["error"]["message"]
p.terminate()
ok = p.wait(60) == 0 and ok
check(ok, "serve without --kv-budget fits the KV budget to the GPU's free memory (%s visit-positions), and refuses what "
      "exceeds it" % budget)

# reprise bench on the CUDA backend measures the device's bandwidth (a copy) and its peak (the backend's own GEMM)
rc, o, e = run("bench", "--backend", "cuda", "-p", "8", "-n", "4", "-r", "1", "--no-warmup", "-o", "json")
try:
    bench = json.loads(o)
    ok = rc == 0 and len(bench) == 2 and all(
        r["backend"] == "cuda" and r["bandwidth_gbs"] > 0 and r["peak_gflops"] > 0 and r["roofline_ts"] > 0 and
        r["peak_source"].startswith("measured: the CUDA backend's BF16 GEMM") for r in bench)
except ValueError:
    ok = False
check(ok, "bench on the CUDA backend: bandwidth and GEMM peak measured, rooflines from them (%s)"
      % (e.split("\n")[1][:80] if e.count("\n") > 1 else e[:80]))
finish()
