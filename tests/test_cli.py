#!/usr/bin/env python3
"""The `reprise` command end to end: outputs, exports, logits dumps, and a clear error for each bad input.
usage: test_cli.py REPRISE FIXTURES_DIR SHARED_DIR"""
import csv
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish, skip  # noqa: E402

BIN, FIX, SHARED = sys.argv[1:4]
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "..", "tools", "default_model")
T = tempfile.mkdtemp(prefix="reprise-cli-")
M = os.path.join(FIX, "llama")


def run(*args, env=None, stdin=subprocess.DEVNULL, binary=BIN):
    """Exit code, stdout, stderr (stdout as bytes when it is not text)."""
    p = subprocess.run([binary, *args], capture_output=True, env=env, stdin=stdin)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def out(*args, **kw):
    """stdout with its last newline cut, as $(...) gives it."""
    return run(*args, **kw)[1].rstrip("\n")


def expect_error(name, text, *args, **kw):
    """Must exit non-zero (not by a signal), print text on stderr, and nothing on stdout."""
    rc, o, e = run(*args, **kw)
    check(0 < rc < 128 and text in e and not o, name if 0 < rc < 128 and text in e and not o
          else "%s (exit %d; stderr: %s)" % (name, rc, e[:300]))


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def logits(path, n):
    return struct.unpack("<%df" % n, read(path, "rb"))


for cmd in ("inspect", "generate", "score", "export"):
    check("usage: reprise %s" % cmd in out(cmd, "--help"), "%s --help" % cmd)

text = run("inspect", "-m", M, "--schedule", "rys:1,3")
text = text[1] + text[2]
check("6 visits over 4 unique layers" in text and re.search(r"architecture +llama", text), "inspect reports visits and architecture")

# a schedule on the model equals base on its export, through the command line
a = out("generate", "-m", M, "--tokens", "1,5,9", "-n", "12", "--temp", "0", "--ignore-eos", "--schedule", "0-2,1-3")
run("export", "-m", M, "--schedule", "0-2,1-3", "-o", T + "/exp")
b = out("generate", "-m", T + "/exp", "--tokens", "1,5,9", "-n", "12", "--temp", "0", "--ignore-eos")
check(len(a.split()) == 12 and a == b, "generate with a schedule equals generate on its export")
check(re.search(r'"num_hidden_layers":\s*6,', read(T + "/exp/config.json")) and os.path.isfile(T + "/exp/expected.json"),
      "export writes config.json with 6 layers and copies other files")

# a hand-duplicated RYS checkpoint whose num_hidden_layers was set back (the built-in model's rys:3,4 exported: 7 layers
# of tensors; config.json says 5): every command that runs it refuses, naming the tensors and the field;
# --allow-unused-tensors runs the 5 layers; inspect lists the unused tensors and does not count them
run("export", "--schedule", "rys:3,4", "-o", T + "/rys")
shutil.copytree(T + "/rys", T + "/trunc")
write(T + "/trunc/config.json", re.sub(r'"num_hidden_layers":\s*7,', '"num_hidden_layers": 5,', read(T + "/trunc/config.json")))
expect_error("generate refuses a checkpoint with layers beyond num_hidden_layers", "belong to layers 5-6, at or beyond num_hidden_layers 5",
             "generate", "-m", T + "/trunc", "-p", "1+1=", "-n", "2", "--temp", "0")
for cmd in (["score", "-p", "1+1=2"], ["chat"], ["export", "--schedule", "base", "-o", T + "/trunc-exp"],
            ["sweep", "--probe", "arith", "--items", "1", "--configs", "base", "--out", T + "/trunc-sweep"],
            ["bench", "-p", "4", "-n", "2", "-r", "1"], ["profile", "-p", "1+1=", "--out", T + "/trunc-prof"], ["serve", "--port", "0"]):
    expect_error("%s refuses it, naming the field and the way out" % " ".join(cmd), "--allow-unused-tensors", *cmd, "-m", T + "/trunc")
rc, got, _ = run("generate", "-m", T + "/trunc", "-p", "99*99=", "-n", "6", "--temp", "0", "--ignore-eos", "--allow-unused-tensors")
want = run("generate", "-p", "99*99=", "-n", "6", "--temp", "0", "--ignore-eos", "--schedule", "0-3,3")[1]
check(rc == 0 and got and got == want, "--allow-unused-tensors runs the 5 layers config.json names (= layers 0-3,3 of the source)")
rc, o, e = run("inspect", "-m", T + "/trunc")
trunc_text = o + e
src = "".join(run("inspect")[1:])
c = json.loads(read(DEFAULT_MODEL + "/config.json"))
try:
    def count(t):
        return int(re.search(r"^parameters +(\d+)", t, re.M).group(1))
    n = int(re.search(r"^unused tensors +(\d+), not counted", trunc_text, re.M).group(1))
    layers = [int(x) for x in re.findall(r"^  model\.layers\.(\d+)\.\S+$", trunc_text, re.M)]
    d, h = c["hidden_size"], c["intermediate_size"]
    kv = c["num_key_value_heads"] * c["hidden_size"] // c["num_attention_heads"]
    per_layer = 2 * d + 2 * d * d + 2 * kv * d + 3 * d * h
    ok = (rc == 0 and n == len(layers) == 18 and set(layers) == {5, 6} and count(trunc_text) == count(src) - per_layer
          and re.search(r"^parameters +\d+ \(\d+\.\d+ [KM]\)", src, re.M))   # 5 layers read, not 7; not "0.000 B"
except AttributeError:
    ok = False
check(ok, "inspect lists the 18 tensors of layers 5-6 as unused and counts only the 5 layers' parameters, in K or M")

s = out("score", "-m", M, "--tokens", "1,5,9,3", "--schedule", "rys:1,3", "--dump-logits", T + "/l.f32")
check(os.path.getsize(T + "/l.f32") == 4 * 96 * 4 and len([x for x in s.split("\n") if x]) == 4 and
      re.search(r"^perplexity", s, re.M), "score prints 3 log-probabilities, perplexity, and dumps [4][96] logits")
try:
    d = json.loads(out("score", "-m", M, "--tokens", "1,5,9,3", "--json"))
    ok = len(d["logprobs"]) == 3 and d["perplexity"] > 1
except ValueError:
    ok = False
check(ok, "score --json is JSON")

# the CPU backend's KV cache: BF16 for this BF16 model by default, float32 on request; the logits of the two agree to
# BF16's rounding of keys and values, and differ (the option is not ignored)
check("KV per token, cpu (bf16)" in out("inspect", "-m", M) and "KV per token, cpu (f32)" in out("inspect", "-m", M, "--kv-dtype", "f32"),
      "inspect: the CPU KV cache of a BF16 model is bf16 by default, f32 with --kv-dtype f32")
toks = ["score", "-m", M, "--tokens", "1,5,9,3,7,2,8"]
ok = all(run(*toks, *extra, "--dump-logits", "%s/kv_%s.f32" % (T, name))[0] == 0
         for name, extra in (("auto", []), ("bf16", ["--kv-dtype", "bf16"]), ("f32", ["--kv-dtype", "f32"])))
if ok:
    bf, f32 = logits(T + "/kv_bf16.f32", 7 * 96), logits(T + "/kv_f32.f32", 7 * 96)
    diff = max(abs(x - y) for x, y in zip(bf, f32))
    ok = read(T + "/kv_auto.f32", "rb") == read(T + "/kv_bf16.f32", "rb") and 0 < diff < 2e-2
check(ok, "score: --kv-dtype bf16 (the default here) and f32 differ by less than 2e-2 in every logit")

# the penalties against their definition (vLLM's): each greedy id is the argmax of the step's raw logits (from score
# --dump-logits) after repetition (prompt and output tokens), frequency and presence (output tokens)
bad = []
prompt, V = [1, 12, 12, 4, 12, 12, 14], 16
plain = out("generate", "--tokens", ",".join(map(str, prompt)), "-n", "10", "--temp", "0", "--ignore-eos")
for pen in ("--repeat-penalty 5", "--repeat-penalty 0.5", "--frequency-penalty 2", "--presence-penalty 2 --frequency-penalty 0.5",
            "--repeat-penalty 3 --presence-penalty -1"):
    flags = pen.split()
    ids = out("generate", "--tokens", ",".join(map(str, prompt)), "-n", "10", "--temp", "0", "--ignore-eos", *flags)
    gen_ids = [int(x) for x in ids.split()]
    if run("score", "--tokens", ",".join(map(str, prompt + gen_ids)), "--dump-logits", T + "/pen.f32")[0]:
        bad.append("%s: score failed" % pen)
        continue
    raw = read(T + "/pen.f32", "rb")
    rows = [list(struct.unpack_from("<%df" % V, raw, 4 * V * i)) for i in range(len(raw) // (4 * V))]
    opt = {flags[i]: float(flags[i + 1]) for i in range(0, len(flags), 2)}
    rep, freq, pres = opt.get("--repeat-penalty", 1), opt.get("--frequency-penalty", 0), opt.get("--presence-penalty", 0)
    for t, want in enumerate(gen_ids):
        lg = rows[len(prompt) - 1 + t][:]
        gen = gen_ids[:t]
        for i in set(prompt) | set(gen):
            lg[i] = lg[i] / rep if lg[i] > 0 else lg[i] * rep
        for i in set(gen):
            lg[i] -= freq * gen.count(i) + pres
        if lg.index(max(lg)) != want:
            bad.append("penalties %s: %s, step %d" % (pen, ids, t))
            break
    if ids == plain:
        bad.append("penalties %s changed nothing: %s" % (pen, ids))
check(not bad, "--repeat-penalty, --frequency-penalty, --presence-penalty: each greedy id the argmax of the penalized logits"
      + (": " + "; ".join(bad) if bad else ""))
expect_error("a repeat penalty of 0", "--repeat-penalty: '0'", "generate", "--tokens", "1", "--repeat-penalty", "0")
expect_error("a presence penalty past 2", "--presence-penalty: '3'", "generate", "--tokens", "1", "--presence-penalty", "3")

# small ones: flags named for what the user typed, at once; schedules as people type them; the percentiles of a prompt
# test left empty; bench_sweep's modes compared row by row
if "built without the CUDA backend" in "".join(run("generate", "--backend", "cuda", "--tokens", "1", "-n", "1")[1:]):
    expect_error("--tp 2 on a build without CUDA names --tp, not a --backend never given",
                 "--tp 2 splits the model over GPUs, and this reprise was built without the CUDA backend", "generate", "--tp", "2",
                 "--tokens", "1", "-n", "1")
expect_error("--backend gpu refused before any model is read", "--backend gpu: unknown backend (cpu, cuda, auto)",
             "generate", "-m", T + "/no-such-model", "--backend", "gpu", "--tokens", "1")
expect_error("bench --backend gpu refused at once", "--backend gpu: unknown backend", "bench", "-m", T + "/no-such-model", "--backend", "gpu")
rc, _, e = run("generate", "-m", M, "--tokens", "1,5", "-n", "2", "--temp", "0", "-t", "100000")
check(rc != 0 and "1024" in e, "-t 100000 is refused with the bound")
cores = os.cpu_count()
rc, _, e = run("generate", "-m", M, "--tokens", "1,5", "-n", "2", "--temp", "0", "-t", str(cores + 7))
said = re.search(r"^reprise: -t %d: this machine has %d cores; using %d.*$" % (cores + 7, cores, cores), e, re.M)
check(rc == 0 and said, "-t past the cores is said and lowered to them: %s" % (said.group(0) if said else e[:200]))
gen = ["generate", "-m", M, "--tokens", "1,5,9", "-n", "6", "--temp", "0", "--ignore-eos", "--schedule"]
a, b, c_, d_ = (out(*gen, s) for s in ("0-2,1-3", " 0-2, 1-3 ", "rys: 1, 3", "rys:1,3"))
check(a and a == b and c_ and c_ == d_, "schedules with blanks after commas and around separators read as without them")
expect_error("a blank between two numbers is still an error", "'1 2'", "generate", "-m", M, "--tokens", "1", "--schedule", "0,1 2")
rc, o, _ = run("bench", "-m", M, "--schedule", "base; rys:1,3", "-p", "4", "-n", "2", "-r", "1", "-o", "csv")
rows = list(csv.DictReader(o.splitlines()))
ok = rc == 0 and [r["schedule"] for r in rows] == ["base", "base", "rys:1,3", "rys:1,3"] and all(
    all((r[k] != "" and float(r[k]) > 0) if int(r["n_gen"]) > 0 else r[k] == "" for k in ("p50_ms", "p90_ms", "p99_ms")) for r in rows)
check(ok, "bench -o csv: a prompt test's percentiles empty, a generation test's positive; 'base; rys:1,3' split and tidied")
rc, o, e = run(binary=os.path.join(os.path.dirname(BIN), "bench_sweep"))
check(rc == 0 and len(re.findall(r" same$", o + e, re.M)) == 3 and "DIFFER" not in o + e,
      "bench_sweep: duplicated checkpoints, naive and sweep give the same rows (compared row by row)")

expect_error("bad --kv-dtype", "--kv-dtype: 'f16'", "generate", "-m", M, "--tokens", "1", "--kv-dtype", "f16")
r1, r2, r3 = (out("generate", "-m", M, "--tokens", "1", "-n", "20", "--temp", "1", "--seed", s, "--ignore-eos") for s in ("7", "7", "8"))
check(r1 == r2 and r1 != r3, "sampling is reproducible by --seed")

expect_error("bad schedule names its token", "'7'", "generate", "-m", M, "--tokens", "1", "--schedule", "0-2,7")
expect_error("rys with I >= J", "I=3 must be below J=2", "inspect", "-m", M, "--schedule", "rys:3,2")
expect_error("unknown option", "unknown option '--frobnicate'", "generate", "-m", M, "--tokens", "1", "--frobnicate")
# a command takes exactly the flags its help names (tools/cli.c reads them from it): a shared flag another command
# takes is refused where the help does not list it, and one named on a grouped line is taken
expect_error("a flag its command's help does not list", "unknown option '--temp'", "score", "-m", M, "--tokens", "1,2", "--temp", "1")
expect_error("sweep's own flag, not the shared parser's", "unknown option '--tokens'", "sweep", "--probe", "arith", "--out", T + "/x",
             "--tokens", "1")
p = subprocess.run([BIN, "chat", "--top-p", "0.5", "--presence-penalty", "1", "-t", "1", "--temp", "0"], input=b"1+1=\n",
                   capture_output=True)
check(p.returncode == 0 and "chat --top-p" not in p.stdout.decode() and "--presence-penalty" in out("chat", "--help"),
      "chat takes --top-p and --presence-penalty, named on its help's grouped lines")
# the spellings llama.cpp and vLLM users type: aliases run as reprise's flag, --flag=value, and the rest answered
plain = out("generate", "-m", M, "--tokens", "1", "-n", "6", "--temp", "0", "-c", "16", "-t", "1")
for args in (("--model", M, "--max-tokens", "6", "--ctx-size", "16", "--threads", "1"),
             ("--model=" + M, "--n-predict=6", "--max-model-len=16", "--temperature=0", "-t", "1"),
             ("-m", M, "--predict", "6", "--tensor-parallel-size", "1", "-c", "16", "-t", "1")):
    check(out("generate", "--tokens", "1", "--temp", "0", *args) == plain and plain, "generate %s: as -m -n -c -t" % " ".join(args[2:]))
expect_error("a typo gets the closest flag", "unknown option '--top_k' (did you mean --top-k?)", "generate", "-m", M,
             "--tokens", "1", "--top_k", "3")
expect_error("a typo of an alias", "(did you mean --max-tokens?)", "generate", "-m", M, "--tokens", "1", "--max_tokens", "3")
expect_error("llama.cpp's -ngl answered", "unknown option '-ngl': reprise runs every layer on the GPU with --backend cuda",
             "generate", "-m", M, "--tokens", "1", "-ngl", "99")
expect_error("vLLM's --gpu-memory-utilization answered", "--kv-budget N caps it", "serve", "-m", M,
             "--gpu-memory-utilization", "0.9")
expect_error("an alias of a flag the command lacks", "it is reprise's --parallel, which this command does not take",
             "generate", "-m", M, "--tokens", "1", "--max-num-seqs", "4")
expect_error("a switch given a value", "--ignore-eos takes no value (given '1')", "generate", "-m", M, "--tokens", "1",
             "--ignore-eos=1")
expect_error("--flag=value checked as the value", "--max-tokens: 'x' is not an integer", "generate", "-m", M, "--tokens", "1", "--max-tokens=x")
expect_error("nothing close: see --help", "unknown option '--frobnicate' (see --help)", "generate", "-m", M, "--tokens", "1",
             "--frobnicate", "1")
for b in ("bench_cpu", "bench_gpu", "bench_sweep", "bench_tokenizer"):
    path = os.path.join(os.path.dirname(BIN), b)
    rc, o, e = run("--help", binary=path)
    rc2, o2, e2 = run("--bogus", binary=path)
    check(rc == 0 and o.startswith("usage: " + b) and rc2 == 2 and "usage: " + b in e2 and not o2,
          "%s --help prints its usage (exit %d); a bad flag is refused with it (exit %d)" % (b, rc, rc2))
# -m ORG/NAME: a model in the Hugging Face cache, found as the hub's tools lay it out (refs/REV holding a commit,
# snapshots/COMMIT of links into blobs/), never downloaded
def hub_cache(root, repo, refs):
    """A cache under root holding the fixture M as repo at each ref -> commit of refs."""
    folder = os.path.join(root, "models--" + repo.replace("/", "--"))
    os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
    os.makedirs(os.path.join(folder, "blobs"), exist_ok=True)
    for ref, commit in refs.items():
        write(os.path.join(folder, "refs", ref), commit + "\n")
        os.makedirs(os.path.join(folder, "snapshots", commit), exist_ok=True)
        for name in os.listdir(M):
            blob = os.path.join(folder, "blobs", name + ".blob")
            if not os.path.exists(blob):
                shutil.copy(os.path.join(M, name), blob)
            os.symlink(os.path.join("..", "..", "blobs", name + ".blob"), os.path.join(folder, "snapshots", commit, name))
    return folder


clean = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")}
hub = hub_cache(os.path.join(T, "hub"), "test-org/tiny-llama", {"main": "a1b2c3", "v2": "d4e5f6"})
gen = ("generate", "--tokens", "1", "-n", "6", "--temp", "0", "-c", "16", "-t", "1")
check(out(*gen, "-m", "test-org/tiny-llama", env=dict(clean, HF_HUB_CACHE=os.path.join(T, "hub"))) == plain,
      "-m ORG/NAME from $HF_HUB_CACHE: the model's output")
hub_cache(os.path.join(T, "hfhome", "hub"), "test-org/tiny-llama", {"main": "a1b2c3"})
check(out(*gen, "-m", "test-org/tiny-llama", env=dict(clean, HF_HOME=os.path.join(T, "hfhome"))) == plain, "from $HF_HOME/hub")
hub_cache(os.path.join(T, "home", ".cache", "huggingface", "hub"), "test-org/tiny-llama", {"main": "a1b2c3"})
check(out(*gen, "-m", "test-org/tiny-llama", env=dict(clean, HOME=os.path.join(T, "home"))) == plain,
      "from the default cache, ~/.cache/huggingface/hub")
env = dict(clean, HF_HUB_CACHE=os.path.join(T, "hub"))
for rev in ("v2", "d4e5f6", "a1b2c3"):
    check(out(*gen, "-m", "test-org/tiny-llama", "--revision", rev, env=env) == plain, "--revision %s (a ref, or a commit)" % rev)
rc, o, e = run("inspect", "-m", "test-org/tiny-llama", "--revision", "v2", env=env)
check(rc == 0 and "snapshots/d4e5f6" in o + e, "inspect shows the snapshot a revision names")
expect_error("a revision not in the cache", "revision 'v9' is not in the cache", *gen, "-m", "test-org/tiny-llama",
             "--revision", "v9", env=env)
expect_error("a model not in the cache names where it looked and how to download it",
             "looked for %s/models--test-org--missing" % os.path.join(T, "hub"), *gen, "-m", "test-org/missing", env=env)
expect_error("... and the command that downloads it", "`huggingface-cli download test-org/missing`", *gen, "-m",
             "test-org/missing", env=env)
shutil.rmtree(os.path.join(hub, "snapshots", "d4e5f6"))
expect_error("a ref whose snapshot is gone", "names commit d4e5f6, whose snapshot", *gen, "-m", "test-org/tiny-llama",
             "--revision", "v2", env=env)
expect_error("--revision with a directory", "is a directory, not a Hugging Face name", *gen, "-m", M, "--revision", "main")
expect_error("--revision that is a path", "a branch, tag or commit (one name)", *gen, "-m", "test-org/tiny-llama",
             "--revision", "../x", env=env)
# the built-in model travels with the command: beside the binary, or in the install prefix (cmake --install), wherever
# that prefix is moved
if shutil.which("cmake"):
    subprocess.run(["cmake", "--install", os.path.dirname(BIN), "--prefix", T + "/prefix"], capture_output=True, check=True)
    os.rename(T + "/prefix", T + "/moved")
    rc, o, e = run("inspect", binary=T + "/moved/bin/reprise")
    check(rc == 0 and re.search(r"^model +%s/moved/share/reprise/default_model$" % re.escape(os.path.realpath(T)), o, re.M),
          "an installed reprise, its prefix moved, finds the built-in model under it: %s" % o.splitlines()[:1])
    check(out("generate", "-p", "99*99=", "-n", "6", "--temp", "0", binary=T + "/moved/bin/reprise") ==
          out("generate", "-p", "99*99=", "-n", "6", "--temp", "0"), "... and runs it")
else:
    skip("cmake --install: no cmake on this machine")
os.makedirs(T + "/beside")
shutil.copy(BIN, T + "/beside/reprise")
shutil.copytree(DEFAULT_MODEL, T + "/beside/default_model")
rc, o, e = run("inspect", binary=T + "/beside/reprise")
check(rc == 0 and re.search(r"^model +%s/beside/default_model$" % re.escape(os.path.realpath(T)), o, re.M),
      "a binary with default_model/ beside it takes that one")
# loading says what it does: progress once it takes longer than $REPRISE_PROGRESS_S (1 s), and auto's choice
rc, o, e = run("generate", "-m", M, "--tokens", "1", "-n", "2", env=dict(os.environ, REPRISE_PROGRESS_S="0"))
n_tensors = re.search(r"tensors +(\d+) in", out("inspect", "-m", M)).group(1)
check(rc == 0 and re.search(r"reprise: loading weights: [\d.]+ of [\d.]+ [MG]iB \(\d+%%\), \d+ of %s tensors, [\d.]+ [MG]iB/s, ETA" % n_tensors, e)
      and re.search(r"reprise: loaded [\d.]+ [MG]iB, %s tensors, in [\d.]+ s" % n_tensors, e),
      "REPRISE_PROGRESS_S=0: the load's progress and its end, every tensor counted: %s" % e[:300])
check("loading weights" not in run("generate", "-m", M, "--tokens", "1", "-n", "2")[2], "a load under a second says nothing")
e = run("generate", "-m", M, "--tokens", "1", "-n", "2", "--backend", "auto")[2]
check(re.search(r"reprise: --backend auto: (cpu \(no GPU backend: .+\)|cuda \(the CUDA backend started\))", e),
      "--backend auto says which backend it took and why: %s" % e[:200])
# export writes shards with an index as Hugging Face does; a source shard kept whole is copied whole (reflinked where
# the filesystem shares blocks), never hard-linked: a write into the export must not reach the source
def st_names(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return [k for k in json.loads(f.read(n)) if k != "__metadata__"]


MS = os.path.join(FIX, "mistral")   # two shards: layers 0-3 under their names in a 0-3,2-3 export
src_shards = sorted(f for f in os.listdir(MS) if f.endswith(".safetensors"))
src_bytes = {g: read(os.path.join(MS, g), "rb") for g in src_shards}
want = out("generate", "-m", MS, "--schedule", "0-3,2-3", "--tokens", "1,5", "-n", "8", "--temp", "0")
for extra, kept, n_shards in (([], 2, 4), (["--no-clones"], 0, 6)):
    dst = T + "/ms-export" + "".join(extra)
    rc, o, e = run("export", "-m", MS, "--schedule", "0-3,2-3", "--shard-size", "100KB", "-o", dst, *extra)
    shards = sorted(f for f in os.listdir(dst) if f.endswith(".safetensors")) if rc == 0 else []
    index = json.loads(read(dst + "/model.safetensors.index.json")) if rc == 0 else {"weight_map": {}}
    mapped = {n: f for f in shards for n in st_names(os.path.join(dst, f))}
    whole = [f for f in shards if read(os.path.join(dst, f), "rb") in src_bytes.values()]
    inodes = {os.stat(os.path.join(MS, g)).st_ino for g in src_shards}
    check(rc == 0 and shards == ["model-%05d-of-%05d.safetensors" % (k, n_shards) for k in range(1, n_shards + 1)] and
          index["weight_map"] == mapped and len(mapped) == 57 and index["metadata"]["total_size"] > 0 and
          len(whole) == kept == len(re.findall(r"(cloned|copied whole) from the source's", e)) and
          not any(os.stat(os.path.join(dst, f)).st_ino in inodes for f in shards),
          "export --shard-size 100KB %s: %d shards and an index naming every tensor's shard, %d the source's copied whole "
          "(no hard link)" % (" ".join(extra), n_shards, kept))
    check(out("generate", "-m", dst, "--tokens", "1,5", "-n", "8", "--temp", "0") == want and want, "... which runs as the schedule does")
    for f in whole:   # patched in place, as a tool editing a tensor does: the source keeps its bytes
        with open(os.path.join(dst, f), "r+b") as h:
            h.seek(-4, 2)
            h.write(b"\xff\xff\xff\x7f")
    check(all(read(os.path.join(MS, g), "rb") == src_bytes[g] for g in src_shards), "a write into the export leaves the source as it was")
# the same folder exported again with another shape: the earlier shards are replaced, none left behind
rc, o, e = run("export", "-m", MS, "--schedule", "0,1", "-o", T + "/ms-export")
check(rc == 0 and sorted(f for f in os.listdir(T + "/ms-export") if f.startswith("model")) == ["model.safetensors"] and
      out("generate", "-m", T + "/ms-export", "--tokens", "1,5", "-n", "8", "--temp", "0") ==
      out("generate", "-m", MS, "--schedule", "0,1", "--tokens", "1,5", "-n", "8", "--temp", "0"),
      "an export over an earlier one: one model.safetensors, the earlier shards and index gone")
expect_error("a bad --shard-size", "--shard-size 5XB: a size such as 5GB", "export", "-m", MS, "--schedule", "base", "-o",
             T + "/x", "--shard-size", "5XB")
expect_error("bad token list", "'x3'", "generate", "-m", M, "--tokens", "1,x3")
expect_error("token outside the vocabulary", "token id 96 is outside the vocabulary", "generate", "-m", M, "--tokens", "1,96", "-n", "2")
expect_error("context overflow", "needs a context of 7, more than -c 4", "generate", "-m", M, "--tokens", "1,2,3", "-n", "5", "-c", "4")
expect_error("longer than max_position_embeddings", "more than max_position_embeddings 64", "generate", "-m", M, "--tokens", "1", "-n", "100")
expect_error("bad -n", "-n: 'abc'", "generate", "-m", M, "--tokens", "1", "-n", "abc")
expect_error("bad --top-p", "--top-p: '1.5'", "generate", "-m", M, "--tokens", "1", "--top-p", "1.5")
expect_error("unknown backend", "--backend tpu", "generate", "-m", M, "--tokens", "1", "--backend", "tpu")
expect_error("no model", "config.json", "score", "-m", T + "/nothing", "--tokens", "1,2")
expect_error("export onto its source", "must differ", "export", "-m", M, "--schedule", "base", "-o", M)
expect_error("unknown command", "unknown command 'frob'", "frob")
# files past their kind's limit are refused, naming it: a stream without end read up to the limit, a huge file at once
expect_error("-f /dev/zero", "more than the 256 MiB a prompt file may have", "score", "-f", "/dev/zero")
shutil.copytree(M, T + "/huge")
os.truncate(T + "/huge/config.json", 10 << 30)
expect_error("a 10 GB config.json", "10737418240 bytes, more than the 64 MiB a JSON file of settings may have", "score", "-m", T + "/huge",
             "--tokens", "1,2")
write(T + "/huge/probe.jsonl", "")
os.truncate(T + "/huge/probe.jsonl", 2 << 30)
expect_error("a 2 GB probe file", "more than the 1024 MiB a probe file may have", "sweep", "--probe", "jsonl:%s/huge/probe.jsonl" % T,
             "--out", T + "/hugeout")
expect_error("a directory as a prompt file", "is a directory", "score", "-f", T)
shutil.rmtree(T + "/huge")
# added tokens: 4 MB of them load (12 bytes of trie a byte, not 1 KiB) and match; 65 MiB are refused, naming the limit
shutil.copytree(DEFAULT_MODEL, T + "/added")
tj = json.loads(read(T + "/added/tokenizer.json"))
base = max(x["id"] for x in tj["added_tokens"]) + 1 if tj["added_tokens"] else len(tj["model"]["vocab"])
tj["added_tokens"] += [{"id": base + i, "content": "<tok%06d>" % i + "x" * 1000, "special": True} for i in range(4000)]
write(T + "/added/tokenizer.json", json.dumps(tj))
want_id = [x["id"] for x in tj["added_tokens"] if x["content"].startswith("<tok000007>")][0]
rc, o, e = run("tokenize", "-m", T + "/added", "-p", "1+1=<tok000007>" + "x" * 1000 + "2", "--json")
check(str(want_id) in o + e, "4 MB of added tokens load, and one of them matches")
tj["added_tokens"] += [{"id": 100000 + i, "content": "<big%06d>" % i + "y" * 1100, "special": True} for i in range(62000)]
write(T + "/added/tokenizer.json", json.dumps(tj))
expect_error("65 MiB of added tokens", "added tokens hold more than 64 MiB of text", "tokenize", "-m", T + "/added", "-p", "1+1=")
shutil.rmtree(T + "/added")
os.makedirs(T + "/trunc2")
shutil.copy(M + "/config.json", T + "/trunc2/")
write(T + "/trunc2/model.safetensors", read(M + "/model.safetensors", "rb")[:5000])
expect_error("truncated safetensors", "past the end", "generate", "-m", T + "/trunc2", "--tokens", "1")

expect_error("text prompt without a tokenizer", "no tokenizer.json", "generate", "-m", M, "-p", "hello", "-n", "2")
expect_error("two prompt sources", "one of --tokens, -p and -f", "generate", "-m", M, "-p", "x", "--tokens", "1")
expect_error("chat without a template", "--chat-template", "chat", "-m", M)
expect_error("unknown chat template", "--chat-template vicuna: unknown template", "chat", "-m", M, "--chat-template", "vicuna")
for cmd in ("tokenize", "chat"):
    check("usage: reprise %s" % cmd in out(cmd, "--help"), "%s --help" % cmd)

# the built-in default model (no -m): arithmetic, greedy
got = out("generate", "-p", "12+35=", "-n", "8", "--temp", "0")
check(got == "47", "built-in model: 12+35= gives 47 (got %r)" % got)
# --weights fp8: the projections quantized at load (the CPU backend), the arithmetic kept; inspect counts the bytes
got = out("generate", "-p", "12+35=", "-n", "8", "--temp", "0", "--weights", "fp8")
check(got == "47", "built-in model with --weights fp8: 12+35= gives 47 (got %r)" % got)
ins = "".join(run("inspect", "--weights", "fp8")[1:])
check(re.search(r"weights in cpu backend \(fp8\) +1\.17 MiB", ins) is not None, "inspect --weights fp8: the CPU backend's bytes in FP8")
expect_error("--weights fp9", "--weights: 'fp9': stored or fp8", "generate", "-p", "1", "--weights", "fp9")
# the README's demo: a schedule changes the answer
a, b = out("generate", "-p", "99*99=", "--temp", "0"), out("generate", "-p", "99*99=", "--temp", "0", "--schedule", "rys:2,4")
check(a == "9701" and b == "9801", "README demo: 99*99= gives 9701 on base and 9801 on rys:2,4 (got %r, %r)" % (a, b))
p = subprocess.run([BIN, "chat", "--temp", "0"], input=b"12+35=\n7*8=\n", capture_output=True)
check(p.returncode == 0 and p.stdout.decode().rstrip("\n") == "47\n56" and "template plain" in p.stderr.decode(),
      "chat without -m: the built-in model's plain template, one problem per line")
rc, first_out, e = run("generate", "-p", "12+35=", "-n", "4", "--seed", "-1")
m = re.search(r"--seed -1: the seed is (\d+)$", e, re.M)
seed = m.group(1) if m else ""
check(seed and run("generate", "-p", "12+35=", "-n", "4", "--seed", seed)[1] == first_out,
      "--seed -1 prints the seed it drew, and that seed repeats the run (seed %r)" % seed)
again = re.search(r"the seed is (\d+)", run("generate", "-p", "1+1=", "-n", "2", "--seed", "-1")[2])
check(again and again.group(1) != seed, "--seed -1 draws a different seed each run")
check("context of 64 tokens (max_position_embeddings 64, at most 4096 without -c)" in run("generate", "-p", "12+35=", "--temp", "0")[2],
      "generate without -n or -c says the context it chose")
expect_error("seed below -1", "--seed: '-2'", "generate", "-p", "1+1=", "--seed", "-2")

# the GPU memory plan at real sizes: checkpoints of Qwen2-7B's and Qwen2-72B's real shapes, headers only (sparse)
Q = ('"model_type":"qwen2","architectures":["Qwen2ForCausalLM"],"vocab_size":152064,"max_position_embeddings":32768,'
     '"rms_norm_eps":1e-6,"rope_theta":1000000.0,"tie_word_embeddings":false')
sparse = os.path.join(HERE, "sparse_checkpoint.py")
ok = subprocess.run([sys.executable, sparse, T + "/q7", '{%s,"hidden_size":3584,"intermediate_size":18944,"num_hidden_layers":28,'
                     '"num_attention_heads":28,"num_key_value_heads":4}' % Q]).returncode == 0
ok = ok and subprocess.run([sys.executable, sparse, T + "/q72", '{%s,"hidden_size":8192,"intermediate_size":29568,"num_hidden_layers":80,'
                            '"num_attention_heads":64,"num_key_value_heads":8}' % Q]).returncode == 0
check(ok, "sparse checkpoints of Qwen2-7B and Qwen2-72B shapes")


# the CPU backend refuses a model larger than the memory free, before reading a weight, naming both figures
with open("/proc/meminfo") as f:
    avail_gib = int(re.search(r"MemAvailable:\s+(\d+) kB", f.read()).group(1)) / 2**20
if avail_gib < 130:
    rc, o, e = run("generate", "-m", T + "/q72", "--tokens", "1", "-n", "2", "--backend", "cpu")
    m = re.search(r"the CPU backend needs ([\d.]+) GiB \(weights 135\.43 GiB, KV cache [\d.]+ GiB\) and this machine has "
                  r"([\d.]+) GiB free \((MemAvailable in /proc/meminfo|the cgroup's memory\.max less its memory\.current)\)", e)
    check(rc == 1 and m and abs(float(m.group(2)) - avail_gib) < 2, "a 72B model on the CPU is refused with both figures: %s" % e[-300:])
    check("REPRISE_SKIP_MEMORY_CHECK=1" in e, "... and the way to try anyway")
else:
    skip("the memory check: this machine has %.0f GiB free, more than a 72B model needs" % avail_gib)

# export at real sizes: a 72B schedule's copy is refused before a byte is written when the disk cannot take it
free_gib = shutil.disk_usage(T).free / 2**30
if free_gib < 140:
    rc, o, e = run("export", "-m", T + "/q72", "--schedule", "rys:45,52", "-o", T + "/q72-rys")
    check(rc == 1 and re.search(r"-o \S+: the export writes 146\.87 GiB \(0 B more cloned from the source's shards, blocks "
                                r"shared\) and its filesystem has [\d.]+ GiB free; nothing was written", e) and
          not [f for f in os.listdir(T + "/q72-rys") if f.endswith(".safetensors")],
          "export of RYS-XLarge to a disk without 147 GiB free: refused with both figures, nothing written: %s" % e[-200:])
else:
    skip("export's free-space check: %.0f GiB free here" % free_gib)

def has(text, *patterns):
    return all(re.search(p, text) for p in patterns)


i72 = "".join(run("inspect", "-m", T + "/q72", "--schedule", "rys:45,52", "-c", "4096", "--gpu-memory", "139")[1:])
check(has(i72, r"weights +135\.426 GiB", r"87 slots x 4096 positions", r"kv cache +1\.360 GiB", r"fits +yes, on a 139\.000 GiB GPU",
          r"parameters +72706203648"),
      "inspect: RYS-XLarge (rys:45,52 on Qwen2-72B) at 4096 positions fits one 139 GiB GPU: 135.4 GiB of weights, 87 KV slots")
check(has(i72, r"weights in cpu backend +135\.43 GiB", r"KV per token, cpu \(bf16\) +348\.00 KiB"),
      "inspect: the CPU backend keeps Qwen2-72B's BF16 weights in BF16 (135.43 GiB, not 270) and its KV in BF16")
check(has("".join(run("inspect", "-m", T + "/q72", "--schedule", "rys:45,52", "--gpu-memory", "79")[1:]), r"fits +no, not on a 79\.000 GiB GPU"),
      "inspect: RYS-XLarge does not fit one 79 GiB GPU")
i7 = "".join(run("inspect", "-m", T + "/q7", "--schedule", "rys:10,20", "--batch", "64", "-c", "1600", "--gpu-memory", "79")[1:])
check(has(i7, r"64 sequence\(s\) of 1600 positions, 512 rows per step", r"2432 slots x 1600 positions", r"logits +45\.229 MiB  64 rows",
          r"most sequences that fit +552"),
      "inspect: a 64-config sweep batch of Qwen2-7B plans logits for 64 rows, not every prompt row")
tp72 = "".join(run("inspect", "-m", T + "/q72", "--schedule", "rys:45,52", "--tp", "2", "-c", "32768", "--gpu-memory", "79")[1:])
check(has(tp72, r"weights per GPU \(bf16\) +67\.71 GiB", r"KV per token per GPU +174\.00 KiB",
          r"weights +67\.714 GiB  BF16, each unique layer once, this GPU's share of 2", r"kv cache +5\.440 GiB  87 slots x 32768 positions",
          r"fits +yes, on each 79\.000 GiB GPU"),
      "inspect --tp 2: RYS-XLarge at 32768 positions fits two 79 GiB GPUs (67.7 GiB of weights and 5.4 GiB of KV each)")
expect_error("--tp that does not divide the KV heads", "do not split evenly", "inspect", "-m", T + "/q72", "--tp", "3")
# --weights fp8: the plan counts the projections at a byte a weight (and a scale a row): RYS-XLarge fits one 79 GiB GPU
f72 = "".join(run("inspect", "-m", T + "/q72", "--schedule", "rys:45,52", "-c", "4096", "--gpu-memory", "79", "--weights", "fp8")[1:])
check(has(f72, r"weights +70\.063 GiB  FP8 projections \(a scale a row\), the rest BF16", r"fits +yes, on a 79\.000 GiB GPU",
          r"longest context that fits +25616 positions"),
      "inspect --weights fp8: RYS-XLarge's 70.06 GiB plan fits one 79 GiB GPU (25616 positions of one sequence)")

# the README's reference holds each command's --help, verbatim
readme = read(os.path.join(HERE, "..", "README.md"))
for cmd in ("inspect", "generate", "chat", "tokenize", "sweep", "sweep merge", "score", "export"):
    help_text = out(*cmd.split(), "--help")
    check("```text\n$ reprise %s --help\n%s\n```" % (cmd, help_text) in readme,
          "README holds 'reprise %s --help' verbatim (python3 tools/update_readme_help.py rewrites it)" % cmd)

S = os.path.join(SHARED, "models", "stories260K")
if os.path.isfile(S + "/expected.json"):
    expected = json.loads(read(S + "/expected.json"))
    g = expected["greedy_once_upon_a_time_64"]
    got = run("generate", "-m", S, "-p", "Once upon a time", "-n", "60", "--temp", "0")[1]
    check(got == g["text"][len(g["prompt"]):] + "\n", "stories260K: -p 'Once upon a time' streams the text of greedy_once_upon_a_time_64")
    check(out("tokenize", "-m", S, "-p", "Once upon a time", "--json") == "[1, 403, 407, 261, 378]", "stories260K: tokenize --json")
    os.makedirs(T + "/tokonly")
    shutil.copy(S + "/tokenizer.json", T + "/tokonly/")
    check(out("tokenize", "-m", T + "/tokonly", "-p", "Once upon a time", "--no-special") == "403 407 261 378",
          "tokenize with only tokenizer.json, --no-special")
    got = out("generate", "-m", S, "-p", "Once upon a time", "-n", "60", "--temp", "0", "--stop", "Lily")
    check(got == ", there was a little girl named ", "--stop ends the text before the stop string (got %r)" % got)
    check(re.search(r"^perplexity", out("score", "-m", S, "-p", "Once upon a time there was a girl"), re.M), "score -p")
    expect_error("missing prompt file", "nothing.txt: cannot open", "generate", "-m", S, "-f", T + "/nothing.txt")
    write(T + "/bad.txt", b"bad \xff byte")
    expect_error("invalid UTF-8 prompt", "not valid UTF-8 (byte 4)", "tokenize", "-m", S, "-f", T + "/bad.txt")
    p = subprocess.run([BIN, "chat", "-m", S, "--chat-template", "chatml", "-n", "24", "--temp", "0"],
                       input=b"Hello there\nWhat is your name?\nTell me a story\n", capture_output=True)
    check(p.returncode == 0 and len([x for x in p.stdout.decode().split("\n") if x]) >= 3 and "error" not in p.stderr.decode().lower(),
          "chat: three turns from a pipe")
    if shutil.which("script"):   # the same through a pseudo-terminal
        p = subprocess.run(["script", "-qec", "%s chat -m %s --chat-template chatml -n 24 --temp 0" % (BIN, S), "/dev/null"],
                           input=b"Hello there\nWhat is your name?\nTell me a story\n/exit\n", stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        pty = p.stdout.decode("utf-8", "replace")
        check(p.returncode == 0 and "template chatml" in pty and len([x for x in pty.split("\n") if "> " in x]) >= 3 and
              "error" not in pty.lower(), "chat: three turns through a pseudo-terminal")
    # chat's commands (never sent to the model), a message continued by a trailing backslash, /save and /load
    conv = os.path.join(T, "conv.json")
    p = subprocess.run([BIN, "chat", "-m", S, "--chat-template", "chatml", "-n", "12", "--temp", "0"], capture_output=True,
                       input=("/help\nHello\\\nthere\n/save %s\n/bogus\n/reset\n/load %s\nWhat next?\n/save %s.2\n/quit\n"
                              "never sent\n" % (conv, conv, conv)).encode())
    e = p.stderr.decode()
    saved = json.loads(read(conv))["messages"] if os.path.exists(conv) else []
    saved2 = json.loads(read(conv + ".2"))["messages"] if os.path.exists(conv + ".2") else []
    check(p.returncode == 0 and "/save FILE, /load FILE" in e and "(saved 2 messages" in e and "unknown command /bogus" in e
          and "(conversation reset)" in e and "(loaded 2 messages" in e and "(saved 4 messages" in e,
          "chat: /help, /save, an unknown command, /reset, /load, /quit: %s" % e[-400:])
    check([m["role"] for m in saved] == ["user", "assistant"] and saved[0]["content"] == "Hello\nthere" and
          [m["content"] for m in saved2[:2]] == [m["content"] for m in saved] and saved2[2]["content"] == "What next?",
          "chat: 'Hello\\' + 'there' is one message of two lines; /load brought the turns back, /quit ended it")
    p = subprocess.run([BIN, "chat", "-m", S, "--chat-template", "chatml", "-n", "4", "--temp", "0"], capture_output=True,
                       input=b"\x1b[200~Once upon\na time\\\nthere\x1b[201~\n/save " + conv.encode() + b"\n")
    check(p.returncode == 0 and json.loads(read(conv))["messages"][0]["content"] == "Once upon\na time\\\nthere",
          "chat: a bracketed paste is one message, its lines (and a backslash in it) as pasted")
    write(T + "/bad.json", "{bad")
    write(T + "/badrole.json", '{"messages": [{"role": "bot", "content": "x"}]}')
    p = subprocess.run([BIN, "chat", "-m", S, "--chat-template", "chatml", "-n", "4", "--temp", "0"], capture_output=True,
                       input=("/load %s/bad.json\n/load %s/badrole.json\n/load\n" % (T, T)).encode())
    e = p.stderr.decode()
    check(p.returncode == 0 and "bad.json: not JSON" in e and 'message 0: a "role" (system, user or assistant)' in e and
          "/load needs a FILE" in e, "chat: a bad /load is refused, naming the problem: %s" % e[-300:])
    # a full context drops the oldest turns, with a notice, and the chat goes on
    p = subprocess.run([BIN, "chat", "-m", S, "--chat-template", "chatml", "-n", "16", "-c", "96", "--temp", "0", "--system", "Be kind"],
                       input=b"Hello there\nWhat is your name?\nTell me a story\nOnce upon a time\nAnother one\n/save %s\n"
                       % conv.encode(), capture_output=True)
    e, kept = p.stderr.decode(), json.loads(read(conv))["messages"]
    check(p.returncode == 0 and "(the context of 96 tokens was full: the oldest 2 message(s) were dropped)" in e and
          kept[0] == {"role": "system", "content": "Be kind"} and kept[-2]["content"] == "Another one" and len(kept) < 11,
          "chat: a full context drops the oldest turns, the system prompt kept: %s" % e[-300:])
    # Ctrl-C stops the reply being written, not the conversation (the emulated CUDA build decodes slowly enough)
    emu = os.path.join(os.path.dirname(BIN), "reprise_emu")
    if os.path.exists(emu):
        p = subprocess.Popen([emu, "chat", "-m", S, "--chat-template", "chatml", "-n", "300", "--temp", "0"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(b"Tell me a story\n")
        p.stdin.flush()
        first = p.stdout.read(1)   # the reply has begun
        p.send_signal(signal.SIGINT)
        o, e = p.communicate(("/save %s\n/quit\n" % conv).encode(), timeout=600)
        kept = json.loads(read(conv))["messages"]
        check(p.returncode == 0 and first and "(reply stopped: Ctrl-C)" in e.decode() and len(kept) == 2 and
              kept[1]["role"] == "assistant" and 0 < len(kept[1]["content"]) < 300,
              "chat: Ctrl-C stops the reply (%d characters kept), the chat goes on to /save and /quit" % len(kept[-1]["content"]))
    else:
        skip("chat's Ctrl-C: no reprise_emu in this build")
    # score runs a long text in chunks of 64 rows: its logits are those of the text's prefixes, bit for bit
    ids = ",".join(str(x) for x in expected["greedy_bos_200"]["ids"][:150])
    run("score", "-m", S, "--tokens", ids, "--dump-logits", T + "/long.f32")
    run("score", "-m", S, "--tokens", ",".join(ids.split(",")[:100]), "--dump-logits", T + "/prefix.f32")
    row = 512 * 4
    check(os.path.getsize(T + "/long.f32") == 150 * row and read(T + "/long.f32", "rb")[:100 * row] == read(T + "/prefix.f32", "rb"),
          "score of 150 tokens (3 chunks): its first 100 rows are those of scoring the first 100 alone")
    got = [int(x) for x in out("generate", "-m", S, "--tokens", "1", "-n", "200", "--temp", "0").split()]
    check(got == expected["greedy_bos_200"]["ids"][1:201],
          "stories260K: generate --tokens 1 -n 200 --temp 0 prints greedy_bos_200 ids[1..200]")
else:
    skip("stories260K: %s is absent" % S)
shutil.rmtree(T, True)
finish()
