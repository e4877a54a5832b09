#!/usr/bin/env python3
"""reprise score --perplexity against a numpy computation: the fixtures' float64 reference forward (tests/fp8_fixtures.py)
run on each window of the Hugging Face sliding-window recipe, per schedule; the mean negative log-likelihood a token,
its standard error, the perplexity and the paired difference from the first schedule, and the refusals.
usage: test_perplexity.py REPRISE"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp8_fixtures as F  # noqa: E402
from checks import check, finish  # noqa: E402

REPRISE = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEDULES = {"base": [0, 1, 2, 3], "rys:1,3": [0, 1, 2, 1, 2, 3], "0,1,3": [0, 1, 3]}


def run(*args):
    p = subprocess.run([REPRISE, "score", "--perplexity", *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def reference(c, w, ids, window, stride):
    """Per schedule, the NLL of every scored token: windows [b, b + window) every stride tokens; a window scores the
    tokens after the last one scored, from its own tokens (the recipe's trg_len = end - prev_end)."""
    nll = {s: [] for s in SCHEDULES}
    prev_end, b, windows = 0, 0, 0
    while b < len(ids):
        e = min(b + window, len(ids))
        first = max(prev_end, b + 1)
        for name, sched in SCHEDULES.items():
            logits = F.forward(c, w, ids[b:e], sched)
            logp = logits - logits.max(-1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
            nll[name] += [-logp[t - 1 - b, ids[t]] for t in range(first, e)]
        windows, prev_end = windows + 1, e
        if e == len(ids):
            break
        b += stride
    return {k: np.array(v) for k, v in nll.items()}, windows


def mean_se(x):
    return x.mean(), x.std(ddof=1) / np.sqrt(len(x))


for arch in ("llama", "qwen2"):
    c, w = F.fixture_weights(arch)
    ids = np.random.default_rng(5).integers(0, c["vocab_size"], 45).tolist()
    for window, stride in ((16, 8), (16, 16), (45, 45), (10, 3)):
        rc, out, err = run("-m", os.path.join(HERE, "fixtures", arch), "--tokens", ",".join(map(str, ids)), "-c", str(window),
                           "--stride", str(stride), "--schedule", ";".join(SCHEDULES), "--kv-dtype", "f32", "--json")
        label = "%s -c %d --stride %d" % (arch, window, stride)
        if rc != 0:
            check(False, "%s: exit %d: %s" % (label, rc, err[-300:]))
            continue
        got = json.loads(out)
        nll, windows = reference(c, w, ids, window, stride)
        # windows that overlap score every token but the first; windows apart lose each one's first token (no context)
        want = len(ids) - 1 if stride < window else len(ids) - windows
        check(got["scored"] == want == len(nll["base"]) and got["windows"] == windows,
              "%s: %d tokens scored (%d), in %d windows (%d)" % (label, got["scored"], want, windows, got["windows"]))
        base = nll["base"]
        for row, name in zip(got["schedules"], SCHEDULES):
            m, se = mean_se(nll[name])
            ok = abs(row["nll"] - m) < 2e-3 and abs(row["nll_se"] - se) < 2e-3 and \
                abs(row["perplexity"] - np.exp(m)) < 2e-3 * np.exp(m) and abs(row["perplexity_se"] - np.exp(m) * se) < 3e-3 * np.exp(m)
            if name != "base":
                dm, dse = mean_se(nll[name] - base)
                ok = ok and abs(row["delta_nll"] - dm) < 2e-3 and abs(row["delta_nll_se"] - dse) < 2e-3
            check(ok and row["visits"] == len(SCHEDULES[name]),
                  "%s %s: nll %.5f +- %.5f (numpy %.5f +- %.5f), perplexity %.4f" % (label, name, row["nll"], row["nll_se"], m, se,
                                                                                    row["perplexity"]))

# text through the tokenizer, the table, and the refusals
with tempfile.TemporaryDirectory() as t:
    path = os.path.join(t, "text.txt")
    with open(path, "w") as f:
        f.write("".join("%d+%d=%d\n" % (a, b, a + b) for a in range(7) for b in range(5)))
    rc, out, err = run("-f", path, "-c", "48", "--stride", "24", "--schedule", "base; rys:2,4")
    lines = out.splitlines()
    check(rc == 0 and lines[0].startswith("perplexity of ") and lines[2].split()[0] == "base" and lines[3].split()[0] == "rys:2,4"
          and lines[3].split()[-3 if lines[3].endswith("*") else -2].startswith(("+", "-")),
          "the built-in model on a text file: a row a schedule, the second with its paired difference:\n" + out)
    for args, want in ((["--tokens", "1,2,3", "-c", "4", "--stride", "5"], "--stride 5: at most the window"),
                       (["--tokens", "1,2,3", "-c", "1"], "a window holds at least 2 tokens"),
                       (["--tokens", "1"], "perplexity needs at least 2 tokens, the text has 1"),
                       (["--tokens", "1,2,3", "--schedule", ";"], "no schedules"),
                       (["--tokens", "1,2,3", "--schedule", "base;0-9"], "--schedule 0-9"),
                       (["--tokens", "1,2,3", "--dump-logits", os.path.join(t, "x")], "--dump-logits goes without --perplexity")):
        rc, out, err = run(*args)
        check(rc != 0 and want in err and not out, "refused: %s (%s)" % (" ".join(args), err.strip()[-160:]))
    p = subprocess.run([REPRISE, "score", "--tokens", "1,2,3", "--stride", "2"], capture_output=True, text=True)
    check(p.returncode != 0 and "--stride goes with --perplexity" in p.stderr, "--stride alone is refused")
finish()
