"""The sweep's statistics (tools/sweep/statistics.c) against numpy: paired deltas and standard errors, z-scores,
p-values, Benjamini-Hochberg q-values and the vs-base t, on random cases and edge cases (one pair, no spread, NaN).
usage: test_statistics.py STATISTICS_CLI"""
import math
import subprocess
import sys

import numpy as np

from checks import check, finish

rng = np.random.default_rng(7)
lines, want = [], []


def paired(c, b):
    lines.append("paired %d %s" % (len(c), " ".join("%r %r" % (float(x), float(y)) for x, y in zip(c, b))))
    d = np.asarray(c, float) - np.asarray(b, float)
    k = len(d)
    mean = np.mean(c) if k else math.nan
    delta = np.mean(d) if k else math.nan
    se = np.std(d, ddof=1) / math.sqrt(k) if k > 1 else math.nan
    want.append(("paired", [mean, delta, se]))


def zs(x, use):
    lines.append("z %d %s" % (len(x), " ".join("%r %d" % (float(v), u) for v, u in zip(x, use))))
    x, use = np.asarray(x, float), np.asarray(use, bool)
    z = np.zeros(len(x))
    if use.sum() > 1 and np.std(x[use], ddof=1) > 0:
        z[use] = (x[use] - x[use].mean()) / np.std(x[use], ddof=1)
    want.append(("z", list(z)))


def bh(p):
    lines.append("bh %d %s" % (len(p), " ".join(repr(float(v)) for v in p)))
    p = np.asarray(p, float)
    q = np.full(len(p), math.nan)
    ok = ~np.isnan(p)
    m = ok.sum()
    if m:
        idx = np.where(ok)[0][np.argsort(p[ok], kind="stable")]
        ranked = p[idx] * m / np.arange(1, m + 1)
        q[idx] = np.minimum(1, np.minimum.accumulate(ranked[::-1])[::-1])
    want.append(("bh", list(q)))


def t(delta, se):
    lines.append("t %r %r" % (delta, se))
    if math.isnan(delta) or delta == 0 or math.isnan(se):
        tv = 0.0
    else:
        tv = math.copysign(10.0, delta) if se == 0 else float(np.clip(delta / se, -10, 10))
    if math.isnan(delta) or math.isnan(se):
        p = math.nan
    elif se == 0:
        p = 1.0 if delta == 0 else 0.0
    else:  # two-sided normal tail, through the error function as numpy has no normal cdf
        p = math.erfc(abs(delta / se) / math.sqrt(2))
    want.append(("t", [tv, p]))


for n in (0, 1, 2, 3, 10, 57, 250):   # scores in [0, 1] as probes give them, and 0/1 scores
    paired(rng.random(n), rng.random(n))
    paired(rng.integers(0, 2, n), rng.integers(0, 2, n))
paired([0.5] * 5, [0.25] * 5)   # no spread: SE 0
for n in (0, 1, 2, 5, 40):
    zs(rng.normal(size=n), rng.integers(0, 2, n))
    zs(rng.normal(size=n), np.ones(n, int))
zs([0.5, 0.5, 0.5], [1, 1, 1])   # no variation: zeros (values exact in binary: numpy sees no spread either)
for n in (0, 1, 2, 7, 100):
    bh(rng.random(n) ** 3)
bh([0.01, math.nan, 0.04, 0.04, 0.5, math.nan])   # ties and NaN
bh([1e-9, 0.9, 0.9, 0.9])
for d, se in ((0.1, 0.02), (-0.3, 0.01), (0.05, 0.5), (0.0, 0.1), (0.2, 0.0), (-0.2, 0.0), (0.0, 0.0),
              (math.nan, 0.1), (0.1, math.nan), (1e-12, 1e-3)):
    t(d, se)

out = subprocess.run([sys.argv[1]], input="\n".join(lines) + "\n", capture_output=True, text=True)
check(out.returncode == 0, "statistics_cli runs (exit %d: %s)" % (out.returncode, out.stderr[-300:]))
got = out.stdout.split("\n")
for i, (kind, w) in enumerate(want):
    g = [float(v) for v in got[i].split()] if i < len(got) else []
    same = len(g) == len(w) and all((math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(1, abs(b))
                                    for a, b in zip(g, w))
    check(same, "%s case %d (%s...): reprise %s, numpy %s" % (kind, i, lines[i][:40], g[:6], [float(v) for v in w][:6]))
finish()
