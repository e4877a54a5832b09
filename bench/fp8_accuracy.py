#!/usr/bin/env python3
"""What FP8 weights cost in accuracy: the same model with its projections as stored and with --weights fp8, side by
side in one run, through reprise's own commands.

For each model (the built-in model; ../shared's stories260K when present; the test fixtures):
  - over a text: the mean and largest |delta log-probability| of the text's tokens (`reprise score --json`), and the
    agreement of greedy tokens: the share of positions whose argmax over the vocabulary is the same in both
    (`--dump-logits`);
  - over a probe (the built-in model: arith, loglik; stories260K: RYS's math_120, loglik): every config's delta vs
    base with its paired standard error (`reprise sweep --score loglik`), as stored and in FP8: each config whose
    stored delta lies beyond two standard errors must keep its sign in FP8 (a sweep's conclusion must not flip).

usage: fp8_accuracy.py REPRISE [--shared DIR] [--backend cpu|cuda] [--items N]
Exits 1 when a config's sign flips (or a command fails), else 0; the table goes to stdout.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STORY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
         "friends. One day, she saw a big red ball under a tree. She ran to the ball and kicked it very high.")
ARITH = "12+7=19\n3*4=12\n25+16=41\n9*8=72\n47+35=82\n6*7=42\n13+29=42\n8*9=72\n"


def run(reprise, *args):
    r = subprocess.run([reprise, *args], capture_output=True, text=True, timeout=1800)
    if r.returncode:
        raise RuntimeError("reprise %s: %s" % (" ".join(args[:3]), r.stderr.strip()[-300:]))
    return r.stdout


def text_metrics(reprise, model, text_args, backend, tmp):
    """(tokens, mean |dlogprob|, max |dlogprob|, greedy agreement) of stored against fp8."""
    out = {}
    for w in ("stored", "fp8"):
        dump = os.path.join(tmp, "logits_%s.f32" % w)
        j = json.loads(run(reprise, "score", "-m", model, *text_args, "--json", "--dump-logits", dump, "--weights", w,
                           "--backend", backend))
        out[w] = (np.array(j["logprobs"], dtype=np.float64), np.fromfile(dump, dtype="<f4").reshape(len(j["tokens"]), -1))
    d = np.abs(out["stored"][0] - out["fp8"][0])
    agree = np.mean(np.argmax(out["stored"][1], 1) == np.argmax(out["fp8"][1], 1))
    return len(out["stored"][1]), float(d.mean()), float(d.max()), float(agree)


def probe_deltas(reprise, model, probe, configs, items, backend, tmp):
    """{weights: {config: (delta, se)}} of a loglik sweep, stored and fp8."""
    res = {}
    for w in ("stored", "fp8"):
        out = os.path.join(tmp, "sweep_%s_%s" % (os.path.basename(model), w))
        run(reprise, "sweep", "-m", model, "--probe", probe, "--score", "loglik", "--items", str(items), "--configs",
            ";".join(configs), "--out", out, "--weights", w, "--backend", backend)
        s = json.load(open(os.path.join(out, "summary.json")))
        name = s["probes"][0]
        res[w] = {c["config"]: (c["probes"][name]["delta"], c["probes"][name]["se"]) for c in s["configs"] if c["config"] != "base"}
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reprise")
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--items", type=int, default=128)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="reprise_fp8_acc_")
    models = [("built-in", os.path.join(ROOT, "tools", "default_model"), ["-p", ARITH],
               ("arith", ["rys:%d,%d" % (i, j) for i in range(6) for j in range(i + 1, 7)]))]
    stories = os.path.join(a.shared, "models", "stories260K")
    math = os.path.join(a.shared, "probes", "rys", "math_120.json")
    if os.path.isdir(stories):
        models.append(("stories260K", stories, ["-p", STORY],
                       ("math:" + math, ["rys:%d,%d" % (i, j) for i in range(5) for j in range(i + 1, 6)]) if os.path.exists(math) else None))
    else:
        print("(stories260K: %s is absent)" % stories)
    for arch in ("llama", "qwen2", "qwen3", "mistral"):
        toks = json.load(open(os.path.join(ROOT, "tests", "fixtures", arch, "expected.json")))["tokens"]
        models.append(("fixture " + arch, os.path.join(ROOT, "tests", "fixtures", arch), ["--tokens", ",".join(map(str, toks))], None))
    flips, failed = 0, 0
    print("FP8 (--weights fp8: E4M3, a scale per output row) against the weights as stored, backend %s\n" % a.backend)
    print("%-20s %7s %14s %14s %10s" % ("model", "tokens", "mean |dlogp|", "max |dlogp|", "greedy =="))
    probes = []
    for name, model, text, probe in models:
        try:
            n, mean, worst, agree = text_metrics(a.reprise, model, text, a.backend, tmp)
            print("%-20s %7d %14.5f %14.5f %9.1f%%" % (name, n, mean, worst, 100 * agree))
        except Exception as e:
            failed += 1
            print("%-20s failed: %s" % (name, e))
        if probe:
            probes.append((name, model, probe))
    for name, model, (probe, configs) in probes:
        try:
            d = probe_deltas(a.reprise, model, probe, configs, a.items, a.backend, tmp)
        except Exception as e:
            failed += 1
            print("\n%s, %s: failed: %s" % (name, probe, e))
            continue
        beyond = [c for c in configs if abs(d["stored"][c][0]) > 2 * d["stored"][c][1] > 0]
        flipped = [c for c in beyond if np.sign(d["fp8"][c][0]) != np.sign(d["stored"][c][0])]
        flips += len(flipped)
        moves = [abs(d["fp8"][c][0] - d["stored"][c][0]) / d["stored"][c][1] for c in configs if d["stored"][c][1] > 0]
        print("\n%s, probe %s (loglik, %d items), %d configs: delta vs base, stored -> fp8 (+- SE)" % (name, os.path.basename(probe), a.items, len(configs)))
        for c in configs:
            (ds, ss), (df, sf) = d["stored"][c], d["fp8"][c]
            mark = " beyond 2 SE" + (", SIGN FLIPPED" if c in flipped else ", sign kept") if c in beyond else ""
            print("  %-10s %+9.4f +- %.4f -> %+9.4f +- %.4f%s" % (c, ds, ss, df, sf, mark))
        print("  %d of %d configs beyond two standard errors as stored; %d keep their sign in FP8; the deltas move by %.2f "
              "standard errors on average (largest %.2f)" % (len(beyond), len(configs), len(beyond) - len(flipped),
                                                            float(np.mean(moves)) if moves else 0, max(moves) if moves else 0))
    print("\n%s" % ("every config beyond two standard errors kept its sign" if not flips else "%d config(s) flipped sign" % flips))
    sys.exit(1 if flips or failed else 0)


if __name__ == "__main__":
    main()
