# What --prune-by-profile keeps and saves: the full grid sweep against `reprise profile` + the grid pruned to its
# reasoning zone, on one model and probe set, timed in the same run. Prints how many of the full grid's top-10
# configs the pruned sweep also ranks in its top 10, and the time of profile + pruned sweep as a ratio of the full's.
# usage: python3 bench/prune_by_profile.py [--reprise BIN] [-m DIR] [--probe SPEC ...] [--items N] [--top N] [--score M]
import argparse, csv, os, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--reprise", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "reprise"))
ap.add_argument("-m", dest="model")
ap.add_argument("--probe", action="append")
ap.add_argument("--items", default="32")
ap.add_argument("--top", type=int, default=10)
ap.add_argument("--score", default="gen", help="the sweeps' --score (loglik: a ranking without ties on a tiny model)")
a = ap.parse_args()
probes = a.probe or ["arith"]
model = ["-m", a.model] if a.model else []
T = tempfile.mkdtemp()
pargs = sum((["--probe", p] for p in probes), [])


def run(args):
    t0 = time.perf_counter()
    r = subprocess.run([a.reprise] + args, capture_output=True, text=True)
    if r.returncode:
        sys.exit("failed: reprise %s\n%s" % (" ".join(args), r.stderr[-2000:]))
    return time.perf_counter() - t0


def ranking(out):
    """Configs but base, best balanced score first (summary.csv: one row per config and probe)."""
    score = {}
    with open(os.path.join(out, "summary.csv")) as f:
        for row in csv.DictReader(f):
            if row["config"] != "base": score[row["config"]] = float(row["balanced"])
    return sorted(score, key=lambda c: -score[c])


t_full = run(["sweep"] + model + pargs + ["--items", a.items, "--score", a.score, "--out", os.path.join(T, "full")])
t_prof = run(["profile"] + model + pargs + ["--items", a.items, "--out", os.path.join(T, "profile")])
t_pruned = run(["sweep"] + model + pargs + ["--items", a.items, "--score", a.score, "--prune-by-profile", os.path.join(T, "profile"),
                                           "--out", os.path.join(T, "pruned")])
full, pruned = ranking(os.path.join(T, "full")), ranking(os.path.join(T, "pruned"))
top_full, top_pruned = full[:a.top], pruned[:a.top]
kept = [c for c in top_full if c in top_pruned]
print("model %s, probes %s, %s items each, --score %s" % (a.model or "built-in", " ".join(probes), a.items, a.score))
print("| run | configs | seconds | ratio to the full grid |")
print("|---|---|---|---|")
print("| full grid | %d | %.2f | 1.00 |" % (len(full), t_full))
print("| profile + pruned grid | %d | %.2f + %.2f | %.2f |" % (len(pruned), t_prof, t_pruned, (t_prof + t_pruned) / t_full))
print("full grid's top %d found in the pruned sweep's top %d: %d (%s)" % (len(top_full), len(top_pruned), len(kept),
      ", ".join(kept) or "none"))
print("full grid's top %d: %s" % (len(top_full), ", ".join(top_full)))
