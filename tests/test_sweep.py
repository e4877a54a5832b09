#!/usr/bin/env python3
"""`reprise sweep` end to end: outputs, shared-prefix results equal to naive ones, kill -9 and resume row by row,
shards merged, bad inputs named; on the built-in model and on ../shared's stories260K with RYS's probe files.
usage: test_sweep.py REPRISE SHARED_DIR"""
import glob
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import attempt, check, finish, skip  # noqa: E402

BIN, SHARED = os.path.abspath(sys.argv[1]), sys.argv[2]   # absolute: some cases run from other directories
T = tempfile.mkdtemp(prefix="reprise-sweep-")


def p(*parts):
    return os.path.join(T, *parts)


def run(*args, cwd=None, timeout=600, prefix=(), preexec_fn=None):
    """Exit code, stdout, stderr of BIN with args (prefix: a command BIN runs under, e.g. setpriv)."""
    try:
        r = subprocess.run([*prefix, BIN, *args], capture_output=True, cwd=cwd, timeout=timeout, preexec_fn=preexec_fn,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 124, "", "timed out after %d s" % timeout
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def sweep(*args, **kw):
    return run("sweep", *args, **kw)


def start(*args, cwd=None):
    """BIN sweep args in the background; its stderr goes to a file (read with wait_for)."""
    f = tempfile.TemporaryFile(dir=T)
    return subprocess.Popen([BIN, "sweep", *args], stdout=subprocess.DEVNULL, stderr=f, cwd=cwd, stdin=subprocess.DEVNULL), f


def wait_for(proc, timeout=300):
    """(exit code, stderr) of a process from start(); killed after timeout."""
    pr, f = proc
    try:
        rc = pr.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pr.kill()
        rc = pr.wait()
    f.seek(0)
    return rc, f.read().decode("utf-8", "replace")


def connect(db):
    """The database, or None when there is none (connecting would create an empty one)."""
    return sqlite3.connect(db) if os.path.isfile(db) else None


def count_rows(db):
    try:
        c = connect(db)
        return c.execute("SELECT count(*) FROM results").fetchone()[0] if c else 0
    except sqlite3.Error:
        return 0


def wait_rows(db, n, timeout=60):
    """Returns once db holds n result rows (or after timeout seconds)."""
    deadline = time.time() + timeout
    while time.time() < deadline and count_rows(db) < n:
        time.sleep(0.005)


def kill_after_rows(n, db, *args):
    """Runs BIN sweep args, and SIGKILLs it once db holds n result rows."""
    pr, f = start(*args)
    wait_rows(db, n)
    pr.kill()
    pr.wait()
    f.close()


def rows(db):
    """Every result row, sorted; None without a database."""
    c = connect(db)
    if not c:
        return None
    return c.execute("SELECT c.label, r.probe, r.item, r.score, r.reply FROM results r JOIN configs c ON c.id = r.config "
                     "ORDER BY 1, 2, 3").fetchall()


def same_rows(a, b):
    ra = rows(a)
    return ra is not None and ra == rows(b)


def integrity_ok(db):
    c = connect(db)
    return bool(c) and c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def per_config(db):
    """{label: result rows}"""
    return dict(connect(db).execute("SELECT c.label, count(*) FROM results r JOIN configs c ON c.id = r.config GROUP BY c.label"))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def expect_error(name, text, *args, **kw):
    """Must exit non-zero (not by a signal) and say text on stderr."""
    rc, _, e = run(*args, **kw)
    ok = 0 < rc < 128 and text in e
    check(ok, name if ok else "%s (exit %d: %s)" % (name, rc, e[:300]))


# 1. a small sweep of the built-in model writes everything it promises
rc, a_out, a_err = sweep("--probe", "arith", "--items", "12", "--out", p("a"))
pictures = ["heatmap_arith.png", "heatmap_combined.png", "skyline.png"]
if "built without Cairo" in a_err:
    pictures = []
    skip("PNG checks: this reprise is built without Cairo (it says so)")


def first_sweep():
    assert rc == 0, a_err[-300:]
    for f in ["results.sqlite", "summary.csv", "summary.json", "results.csv"] + pictures:
        assert os.path.getsize(p("a", f)) > 0, f
    assert len(json.load(open(p("a", "summary.json")))["configs"]) == 22
    assert re.search(r"^1 ", a_out, re.M) and "within two standard errors" in a_out


attempt("built-in model: 21 configs + base, database, summaries, heatmaps, skyline, ranking", first_sweep)


# --confirm: the screen's top 3 and base again on 40 fresh generated items, in DIR/confirm/; run again, nothing new
def confirm():
    conf_args = ["--probe", "arith", "--items", "12", "--out", p("a"), "--confirm", "3", "--confirm-probe", "arith",
                 "--confirm-items", "40"]
    rc1, cf_out, _ = sweep(*conf_args)
    rc2, _, cf2_err = sweep(*conf_args)
    assert rc1 == 0 and rc2 == 0
    screen, conf = json.load(open(p("a", "summary.json"))), json.load(open(p("a", "confirm", "summary.json")))
    ranked = sorted((c for c in screen["configs"] if c["config"] != "base"), key=lambda c: -c["balanced"])
    top = {c["config"] for c in ranked[:3]}
    third = ranked[2]["balanced"]   # ties at the cut: any config as good as the third may stand in for it
    got = {c["config"] for c in conf["configs"] if c["config"] != "base"}
    assert len(got) == 3 and all(c in top or [x for x in ranked if x["config"] == c][0]["balanced"] == third for c in got), (got, top)
    assert conf["probes"] == ["confirm:arith"], conf["probes"]
    assert all(c["probes"]["confirm:arith"]["items"] == 40 for c in conf["configs"]), conf["configs"]
    db = connect(p("a", "confirm", "results.sqlite"))
    assert db.execute("SELECT count(*) FROM results").fetchone()[0] == 4 * 40
    screen_prompts = {q for (q,) in connect(p("a", "results.sqlite")).execute("SELECT prompt FROM items")}
    conf_prompts = {q for (q,) in db.execute("SELECT prompt FROM items")}
    assert len(conf_prompts & screen_prompts) < 10, len(conf_prompts & screen_prompts)   # another seed: mostly new items
    assert re.search(r"^confirmation", cf_out, re.M) and "confirm:arith: " in cf_out
    assert "0 new rows (160 were already done)" in cf2_err, cf2_err[-300:]


attempt("--confirm 3: the screen's top 3 and base on 40 other items, a report of their own; a rerun resumes", confirm)


# each config's p-value (two-sided, z = delta / se) and Benjamini-Hochberg q-value, recomputed here from its delta
# and standard error; the printed count of configs below p < 0.05 beside the count expected by chance
def p_values():
    d = json.load(open(p("a", "summary.json")))
    cfg_rows = [(c["probes"]["arith"], c["config"]) for c in d["configs"] if c["config"] != "base"]

    def p_of(x):
        if x["se"] is None:
            return None
        if x["se"] == 0:
            return 1.0 if x["delta"] == 0 else 0.0
        return math.erfc(abs(x["delta"] / x["se"]) / math.sqrt(2))
    ps = [p_of(x) for x, _ in cfg_rows]
    order = sorted((pv, i) for i, pv in enumerate(ps) if pv is not None)
    m, q, run_min = len(order), {}, 1.0
    for r in range(m - 1, -1, -1):
        run_min = min(run_min, order[r][0] * m / (r + 1))
        q[order[r][1]] = run_min
    assert m == 21 and any(0 < pv < 1 for pv in ps), ps
    for i, (x, name) in enumerate(cfg_rows):
        # (delta and se are printed to 6 decimals: z here carries their rounding)
        assert abs(x["p"] - ps[i]) <= 1e-3 and abs(x["q"] - q[i]) <= 1e-3, (name, x, ps[i], q[i])
    line = [ln for ln in a_out.splitlines() if ln.startswith("arith: ")][0]
    n_pass = sum(pv < 0.05 for pv in ps)
    assert line.startswith(f"arith: {n_pass} of 21 configs differ from base at p < 0.05, where 1.1 would by chance alone; "
                           f"{sum(v < 0.05 for v in q.values())} at a false discovery rate"), line


attempt("p-values and Benjamini-Hochberg q-values of every config, and how many pass by chance", p_values)
if pictures:
    with open(p("a", "heatmap_arith.png"), "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "heatmaps are PNG files")

# 2. sharing the base's prefix and batching configs changes no result
sweep("--probe", "arith", "--items", "12", "--out", p("naive"), "--naive")
check(same_rows(p("a", "results.sqlite"), p("naive", "results.sqlite")),
      "shared-prefix batched sweep equals one-config-at-a-time, row by row")
sweep("--probe", "arith", "--items", "12", "--out", p("b1"), "--batch", "1", "--ubatch", "3")
check(same_rows(p("a", "results.sqlite"), p("b1", "results.sqlite")),
      "--batch 1 --ubatch 3 gives the rows of --batch 64 --ubatch 512, exactly")

# 3. the same command again resumes: nothing new, nothing repeated
rc, _, e = sweep("--probe", "arith", "--items", "12", "--out", p("a"))
check("0 new rows (264 were already done)" in e, "rerunning a finished sweep adds no row")

# 4. shards merged equal the whole sweep
ok = (sweep("--probe", "arith", "--items", "12", "--out", p("s0"), "--shard", "0/2")[0] == 0 and
      sweep("--probe", "arith", "--items", "12", "--out", p("s1"), "--shard", "1/2")[0] == 0 and
      sweep("merge", "--out", p("m"), p("s0", "results.sqlite"), p("s1", "results.sqlite"))[0] == 0)
check(ok and same_rows(p("a", "results.sqlite"), p("m", "results.sqlite")), "--shard 0/2 and 1/2, merged, equal the unsharded sweep")


# merge only reads its inputs: read-only shards in a read-only directory merge, and stay byte for byte as they were
def merge_read_only():
    os.makedirs(p("ro"))
    shutil.copy(p("s0", "results.sqlite"), p("ro", "s0.sqlite"))
    shutil.copy(p("s1", "results.sqlite"), p("ro", "s1.sqlite"))
    before = [open(p("ro", f), "rb").read() for f in ("s0.sqlite", "s1.sqlite")]
    for f in ("s0.sqlite", "s1.sqlite"):
        os.chmod(p("ro", f), 0o444)
    os.chmod(p("ro"), 0o555)
    rc, _, e = sweep("merge", "--out", p("m2"), p("ro", "s0.sqlite"), p("ro", "s1.sqlite"))
    os.chmod(p("ro"), 0o755)
    assert rc == 0, e[-300:]
    assert same_rows(p("a", "results.sqlite"), p("m2", "results.sqlite"))
    assert [open(p("ro", f), "rb").read() for f in ("s0.sqlite", "s1.sqlite")] == before
    assert sorted(os.listdir(p("ro"))) == ["s0.sqlite", "s1.sqlite"], os.listdir(p("ro"))


attempt("merge of read-only shards in a read-only directory: equal to the whole, the shards untouched", merge_read_only)


# a SQLite file that is no sweep is refused and gets no table; a shard with a NULL label is named; a failed merge
# leaves --out as it was
def merge_refusals():
    c = sqlite3.connect(p("stray.sqlite"))
    c.execute("CREATE TABLE notes(x)")
    c.commit()
    c.close()
    shutil.copytree(p("m"), p("m3"))
    before = rows(p("m3", "results.sqlite"))
    rc, _, e = sweep("merge", "--out", p("m3"), p("s0", "results.sqlite"), p("stray.sqlite"))
    assert rc != 0
    assert "stray.sqlite: not a reprise sweep database (no table 'meta')" in e and "is as it was" in e, e[-300:]
    assert [n for (n,) in sqlite3.connect(p("stray.sqlite")).execute("SELECT name FROM sqlite_master")] == ["notes"]
    assert before == rows(p("m3", "results.sqlite")) and not [f for f in os.listdir(p("m3")) if "merging" in f]
    shutil.copy(p("s1", "results.sqlite"), p("nul.sqlite"))
    c = sqlite3.connect(p("nul.sqlite"))
    for q in ("CREATE TABLE c2 AS SELECT * FROM configs", "DROP TABLE configs",
              "CREATE TABLE configs(id INTEGER PRIMARY KEY, label TEXT, schedule TEXT, i, j, k, visits)",
              "INSERT INTO configs SELECT * FROM c2", "UPDATE configs SET label = NULL WHERE id = 2"):
        c.execute(q)
    c.commit()
    c.close()
    rc, _, e = sweep("merge", "--out", p("m4"), p("nul.sqlite"))
    assert rc == 1 and "nul.sqlite: a row with no label" in e, e[-300:]


attempt("merge: a stray SQLite file refused and untouched, a NULL label named, a failed merge leaves --out as it was",
        merge_refusals)


# shards of two sweeps (other --items): the file refused is named, not the merge's temporary one, with a merge's advice
def merge_other_sweep():
    sweep("--probe", "arith", "--items", "3", "--configs", "rys:1,3", "--out", p("other3"))
    rc, _, e = sweep("merge", "--out", p("m5"), p("s0", "results.sqlite"), p("other3", "results.sqlite"))
    assert rc != 0 and "other3/results.sqlite is another sweep's: its items of probe arith is '3 items" in e, e[-300:]
    assert "only the shards of one sweep merge" in e and "merging-" not in e and "use another --out" not in e, e[-300:]


attempt("merge of another sweep's database names that file and says what merges", merge_other_sweep)

# 5. killed with SIGKILL mid-way, then resumed: the final database equals an uninterrupted run's
ARGS = ["--probe", "arith", "--items", "150", "--out"]
TOTAL = 22 * 150
sweep(*ARGS, p("full"))
FULL = p("full", "results.sqlite")
kill_after_rows(200, p("k", "results.sqlite"), *ARGS, p("k"))
before = rows(p("k", "results.sqlite")) or []
rc, _, e = sweep(*ARGS, p("k"))
n_before = len(before)
check("%d new rows (%d were already done)" % (TOTAL - n_before, n_before) in e and 0 < n_before < TOTAL and
      same_rows(p("k", "results.sqlite"), FULL) and set(before) <= set(rows(p("k", "results.sqlite"))),
      "SIGKILL after %d of %d rows, then resume: every row once, equal to an uninterrupted run" % (n_before, TOTAL))

# killed at random points, again and again (each resume killed too), then finished: equal to an uninterrupted run
points, intact = [], True
for _ in range(4):
    at = random.randrange(50, TOTAL - 50)
    points.append(at)
    kill_after_rows(at, p("kr", "results.sqlite"), *ARGS, p("kr"))
    intact = intact and integrity_ok(p("kr", "results.sqlite"))
rc = sweep(*ARGS, p("kr"))[0]
check(intact and rc == 0 and same_rows(p("kr", "results.sqlite"), FULL),
      "SIGKILL at random points (rows %s), each resume killed again, then finished: equal to an uninterrupted run"
      % " ".join(map(str, points)))

# Ctrl-C: stops after the item in progress, says how many rows are safe and how to resume (exit 130); the resume
# counts its own rate
proc = start(*ARGS, p("ci"))
wait_rows(p("ci", "results.sqlite"), 300)
proc[0].send_signal(signal.SIGINT)
rc, e = wait_for(proc)
m = re.search(r"interrupted: (\d+) rows are safe in .* run the same command again to resume", e)
safe = int(m.group(1)) if m else None
rc2, _, e2 = sweep(*ARGS, p("ci"))
check(rc == 130 and "stopping after the item in progress" in e and safe is not None and safe < TOTAL and rc2 == 0 and
      "(%s were already done)" % safe in e2 and same_rows(p("ci", "results.sqlite"), FULL),
      "Ctrl-C: stops after the item in progress with %s rows safe (exit 130), and the rerun resumes from them" % safe)

# one writer: a second sweep on the same --out while the first runs is refused, naming why; the first goes on
proc = start(*ARGS, p("lock"))
wait_rows(p("lock", "results.sqlite"), 50)
rc, _, e = sweep(*ARGS, p("lock"))
rc_first = wait_for(proc)[0]
check(rc == 1 and "is being written by another process" in e and rc_first == 0 and same_rows(p("lock", "results.sqlite"), FULL),
      "a second sweep on the same --out while one runs: refused with the reason; the first completes intact")


# a full disk (a file size limit: the WAL cannot grow past 3.5 MB, some hundred rows in): the sweep stops with the
# database's reason, nothing is corrupted, and the rerun with room resumes to the same rows as an uninterrupted run
def small_disk():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3500 * 1024, 3500 * 1024))


rc, _, e = sweep(*ARGS, p("full_disk"), preexec_fn=small_disk)
ok = rc == 1 and re.search(r"add result: .*error", e) and "could not be written (a full disk?)" in e
if not ok:
    print(e[-300:])
ok = ok and integrity_ok(p("full_disk", "results.sqlite"))
rc = sweep(*ARGS, p("full_disk"))[0]
check(bool(ok) and rc == 0 and same_rows(p("full_disk", "results.sqlite"), FULL),
      "a full disk mid-sweep: a clear error, the database intact, the rerun resumes to the same rows")


# --search halving: 21 configs on 4 items, the better 11 on 8, the better 6 on all 16; killed in its second rung and
# resumed, the same rows as an uninterrupted search; run again, nothing new
def halving():
    hargs = ["--probe", "arith", "--items", "16", "--search", "halving", "--out"]
    assert sweep(*hargs, p("hv"))[0] == 0
    db = p("hv", "results.sqlite")
    per = per_config(db)
    sizes = sorted(per.values())
    assert per["base"] == 16 and sizes.count(4) == 10 and sizes.count(8) == 5 and sizes.count(16) == 7, per
    score = {(lb, int(i)): s for lb, i, s in connect(db).execute(
        "SELECT c.label, r.item, r.score FROM results r JOIN configs c ON c.id = r.config")}

    def delta(label, n):
        return sum(score[(label, i)] - score[("base", i)] for i in range(n)) / n
    for n, lost, kept in ((4, 4, 8), (8, 8, 16)):   # each rung's survivors are at least as good as those it dropped
        dropped = [lb for lb, k in per.items() if k == lost and lb != "base"]
        survived = [lb for lb, k in per.items() if k >= kept and lb != "base"]
        assert min(delta(lb, n) for lb in survived) >= max(delta(lb, n) for lb in dropped) - 1e-9, n
    kill_after_rows(100, p("hk", "results.sqlite"), *hargs, p("hk"))
    assert sweep(*hargs, p("hk"))[0] == 0
    assert same_rows(p("hk", "results.sqlite"), db)
    rc, _, e = sweep(*hargs, p("hv"))
    assert rc == 0 and e.count(" 0 new rows") == 3, e[-300:]


attempt("--search halving: 21 configs on 4 items, the better 11 on 8, the better 6 on 16; killed and resumed, the same rows",
        halving)


def best_delta(db):
    """The best mean delta vs base of any config."""
    got = connect(db).execute("SELECT c.label, r.probe, r.item, r.score FROM results r JOIN configs c ON c.id = r.config").fetchall()
    base = {(pr, i): s for lb, pr, i, s in got if lb == "base"}
    d = {}
    for lb, pr, i, s in got:
        if lb != "base":
            d.setdefault(lb, []).append(s - base[(pr, i)])
    return "%.9f" % max(sum(v) / len(v) for v in d.values())


def search_checks(name, budget, *args):
    """beam and surrogate: within the budget; every config measured once, on every item; killed with SIGKILL half-way
    and resumed, the same rows as an uninterrupted search; run again, nothing new. Returns the first run's stderr."""
    rc, _, err = sweep(*args, "--budget", str(budget), "--out", p(name))
    assert rc == 0, err[-300:]
    per = per_config(p(name, "results.sqlite"))
    assert 1 < len(per) <= budget + 1, (len(per), budget)
    assert len(set(per.values())) == 1, per   # each config once, on every item
    total = sum(per.values())
    kill_after_rows(total // 2, p(name + "-k", "results.sqlite"), *args, "--budget", str(budget), "--out", p(name + "-k"))
    assert sweep(*args, "--budget", str(budget), "--out", p(name + "-k"))[0] == 0
    assert same_rows(p(name + "-k", "results.sqlite"), p(name, "results.sqlite"))
    rc, _, e = sweep(*args, "--budget", str(budget), "--out", p(name))
    assert rc == 0 and e.count(" new rows") == e.count(" 0 new rows"), e[-300:]
    return err


attempt("--search beam: 30 configs at most, each once on every item; killed and resumed, the same rows; rerun, nothing new",
        lambda: search_checks("beam", 30, "--probe", "arith", "--items", "16", "--search", "beam", "--beam", "4", "--max-visits", "10"))


def surrogate():
    err = search_checks("surrogate", 61, "--probe", "arith", "--items", "16", "--search", "surrogate", "--round", "8")
    assert re.search(r"Spearman .* on the fifth held out", err), err[-300:]


attempt("--search surrogate: 61 configs at most, each once on every item; killed and resumed, the same rows; Spearman printed",
        surrogate)

# with a budget that covers the grid, from a coarse seed (--stride 2), each finds the grid's best
sweep("--probe", "arith", "--items", "16", "--score", "loglik", "--out", p("grid16"))
want = best_delta(p("grid16", "results.sqlite"))
ok = True
for mode in ("beam", "surrogate"):
    rc = sweep("--probe", "arith", "--items", "16", "--score", "loglik", "--search", mode, "--stride", "2", "--max-blocks", "1",
               "--max-passes", "2", "--budget", "21", "--out", p("cover-" + mode))[0]
    got = best_delta(p("cover-" + mode, "results.sqlite")) if rc == 0 else None
    if got != want:
        print("%s: best %s, grid %s" % (mode, got, want))
        ok = False
check(ok, "beam and surrogate from a coarse seed, with a budget covering the grid, find the grid's best (delta %s)" % want)


# sharded searches: --shard K/N --exchange DIR splits each step's configs over the shards, which trade rows through
# DIR: every shard ends with the rows of the same search run unsharded, having measured a disjoint part of each step
def exchange_split(d, n):
    """Each shard's step files hold rows, and no config is in two shards' files of a step."""
    steps, counts = {}, [0] * n
    for f in glob.glob(os.path.join(d, "step-*.sqlite")):
        s, k, of = map(int, re.match(r"step-(\d+)\.shard-(\d+)-of-(\d+)\.sqlite$", os.path.basename(f)).groups())
        assert of == n, f
        db = sqlite3.connect(f)
        labels = {lb for (lb,) in db.execute("SELECT label FROM configs")}
        counts[k] += db.execute("SELECT count(*) FROM results").fetchone()[0]
        for other, theirs in steps.setdefault(s, {}).items():
            assert not labels & theirs, (f, other, labels & theirs)
        steps[s][k] = labels
    assert steps and all(len(v) == n for v in steps.values()) and all(counts), (counts, {s: len(v) for s, v in steps.items()})


def shard_checks(name, n, *args):
    """n shards at once against the unsharded run in NAME-one."""
    assert sweep(*args, "--out", p(name + "-one"))[0] == 0
    procs = [start(*args, "--shard", "%d/%d" % (k, n), "--exchange", p(name + "-ex"), "--out", p("%s-s%d" % (name, k)))
             for k in range(n)]
    for k, pr in enumerate(procs):
        rc, e = wait_for(pr)
        assert rc == 0, (k, e[-300:])
    for k in range(n):
        assert same_rows(p("%s-s%d" % (name, k), "results.sqlite"), p(name + "-one", "results.sqlite")), "%s shard %d: other rows" % (name, k)
    exchange_split(p(name + "-ex"), n)


BEAM = ["--probe", "arith", "--items", "16", "--search", "beam", "--beam", "4", "--max-visits", "10", "--budget", "30"]
attempt("--search beam in 2 shards: each shard holds the unsharded search's rows, each step split between them",
        lambda: shard_checks("shbeam", 2, *BEAM))
attempt("--search halving in 3 shards: each shard holds the unsharded search's rows, each rung split between them",
        lambda: shard_checks("shhalving", 3, "--probe", "arith", "--items", "16", "--search", "halving"))
attempt("--search surrogate in 3 shards: each shard holds the unsharded search's rows, each round split between them",
        lambda: shard_checks("shsurrogate", 3, "--probe", "arith", "--items", "16", "--search", "surrogate", "--round", "8",
                             "--budget", "61"))


# a shard killed with SIGKILL half-way (the other waits for it) and started again: both end with the same rows
def shard_killed():
    sargs = BEAM + ["--exchange", p("shk-ex")]
    other = start(*sargs, "--shard", "1/2", "--out", p("shk-s1"))
    kill_after_rows(150, p("shk-s0", "results.sqlite"), *sargs, "--shard", "0/2", "--out", p("shk-s0"))
    rc, _, e = sweep(*sargs, "--shard", "0/2", "--out", p("shk-s0"), timeout=300)
    assert rc == 0, e[-300:]
    assert wait_for(other)[0] == 0
    for k in (0, 1):
        assert same_rows(p("shk-s%d" % k, "results.sqlite"), p("shbeam-one", "results.sqlite")), k


attempt("a search's shard killed half-way and started again: both shards end with the unsharded search's rows", shard_killed)


# The same at chosen points, exactly (this search takes a fraction of a second, so a kill by polling lands where
# it may): shard 0's database as a kill after its first N rows leaves it (rows are committed one by one), its step
# files gone (at worst a half-built .tmp-PID of one left behind, as a kill while writing leaves it), then started
# again: it finds rows ending a step and rewrites that step's file, which must not stop it at the next step.
def shard_cut(n0):
    step_files = lambda d: sorted(glob.glob(os.path.join(d, "*.shard-0-of-2.sqlite")))   # noqa: E731
    for n in (1, 40, 150, n0 - 1, n0):
        ex = p("shk-ex%d" % n)
        shutil.rmtree(p("shk-cut"), ignore_errors=True)
        shutil.rmtree(ex, ignore_errors=True)
        shutil.copytree(p("shk-ex"), ex)
        os.makedirs(p("shk-cut"))
        d = sqlite3.connect(p("shk-cut", "results.sqlite"))
        connect(p("shk-s0", "results.sqlite")).backup(d)   # its pages and any in its write-ahead log
        d.execute("DELETE FROM results WHERE rowid NOT IN (SELECT rowid FROM results ORDER BY rowid LIMIT ?)", (n,))
        d.commit()
        d.close()
        last = step_files(ex)[-1]
        with open(last, "rb") as f, open(last + ".tmp-99999999", "wb") as g:   # a half-built file of a killed writer
            g.write(f.read(3000))
        for f in step_files(ex):
            os.unlink(f)
        rc, _, e = sweep(*BEAM, "--exchange", ex, "--shard", "0/2", "--out", p("shk-cut"), timeout=300)
        assert rc == 0, ("after %d rows" % n, e[-300:])
        assert same_rows(p("shk-cut", "results.sqlite"), p("shbeam-one", "results.sqlite")), "after %d rows: other rows" % n
        assert len(step_files(ex)) == len(step_files(p("shk-ex"))), "after %d rows: other step files" % n


N0 = count_rows(p("shk-s0", "results.sqlite"))
attempt("shard 0 stopped after 1, 40, 150, all but one and all of the %d rows its database ends with (its own and merged), its "
        "step files gone and one half-built: started again, it rewrites them and ends with the unsharded rows" % N0,
        lambda: shard_cut(N0))

# shards given different flags diverge at the step where it matters: refused there, naming the file
other = start("--probe", "arith", "--items", "16", "--search", "beam", "--beam", "4", "--budget", "30", "--shard", "0/2",
              "--exchange", p("shx-ex"), "--out", p("shx-s0"))
r1, _, e1 = sweep("--probe", "arith", "--items", "16", "--search", "beam", "--beam", "3", "--budget", "30", "--shard", "1/2",
                  "--exchange", p("shx-ex"), "--out", p("shx-s1"), timeout=120)
r0, e0 = wait_for(other, timeout=120)
check(r0 == 1 and r1 == 1 and "shards were given different flags" in e0 and "shards were given different flags" in e1,
      "shards of a search given different flags (--beam 4 and 3): both refuse at the step that differs, naming the file")

# a schedule of 2,404 visits is stored whole in the database, never cut at 4,095 bytes
long_schedule = ",".join(["0,1"] * 1200) + ",2-5"
rc = sweep("--probe", "arith", "--items", "1", "--configs", long_schedule, "--out", p("long"))[0]
want = ",".join(["0-1"] * 1199) + ",0-5"   # as the database writes it: range syntax, 1 then 2-5 joined
stored = connect(p("long", "results.sqlite")).execute("SELECT schedule FROM configs WHERE label != 'base'").fetchone()[0] if rc == 0 else None
check(stored == want, "a schedule of 2,404 visits (%d bytes in range syntax) is stored whole" % len(want))


# --prune-by-profile: exactly the grid's blocks inside the profile's reasoning zone; a profile of another model or
# of a repeated schedule is refused
def prune():
    run("profile", "-p", "12+34=46 7*8=56 99+1=100", "--out", p("prof"))
    assert sweep("--probe", "arith", "--items", "4", "--prune-by-profile", p("prof"), "--out", p("pruned"))[0] == 0
    z = json.load(open(p("prof", "profile.json")))["reasoning_zone"]
    got = {lb for (lb,) in connect(p("pruned", "results.sqlite")).execute("SELECT label FROM configs") if lb != "base"}
    want = {f"rys:{i},{j}" for i in range(z["start"], z["end"]) for j in range(i + 1, z["end"] + 1)}
    assert got == want and got, (got, want, z)


attempt("--prune-by-profile: the grid's blocks inside the profile's reasoning zone, no others", prune)
run("profile", "-p", "12+34=46", "--schedule", "rys:1,3", "--out", p("prof_rys"))


# Rankings and pictures anchored to base: the ranking's order is the sum over probes of delta / SE (vs base), every
# colour of the combined heatmap is that score's (red only above base), and the ranking ends with who beats base
# beyond noise, or that none does. A probe whose rows all failed is named; names are never cut; each probe's item
# count is said at the start and in the ranking; a jsonl line's max_tokens and --max-tokens set the reply budget.
def anchored():
    fa, fb = p("rys_wins_on_this_long_named_probe_a.jsonl"), p("rys_wins_on_this_long_named_probe_b.jsonl")
    write(fa, '{"prompt": "99*99=", "answer": "9801", "match": "numeric"}\n' * 3)
    write(fb, '{"prompt": "12+35=", "answer": "47", "max_tokens": 1000}\n' * 2)
    rc, o, e = sweep("--probe", "jsonl:" + fa, "--probe", "jsonl:" + fb, "--configs", "rys:2,4;rys:1,3", "--max-tokens", "8",
                     "--out", p("anch"))
    assert rc == 0, e[-300:]
    assert re.search(r"^Beats base beyond noise: rys:2,4 on jsonl:rys_wins_on_this_long_named_probe_a.jsonl@[0-9a-f]* "
                     r"\(\+1.0000 \+- 0.0000\)$", o, re.M), o[-500:]
    assert re.search(r"^Probe jsonl:rys_wins_on_this_long_named_probe_b.jsonl@[0-9a-f]*: every row failed \(6\), nothing "
                     r"scored; first reason: the prompt \(7 tokens\) and its reply \(1000\) do not fit", o, re.M), o[-500:]
    assert re.search(r"jsonl:rys_wins_on_this_long_named_probe_a.jsonl@[0-9a-f]* \(3 items\)", o)
    assert re.search(r"probe jsonl:rys_wins_on_this_long_named_probe_a.jsonl@[0-9a-f]*: 3 item\(s\), replies of up to 8 tokens", e)
    assert re.findall(r"^1 +(\S+) ", o, re.M) == ["rys:2,4"]


attempt("the ranking ends with who beats base beyond noise; the probe whose every row failed is named; item counts and whole names",
        anchored)


def png_rows(path):
    """A PNG's pixel rows (8-bit RGB or RGBA), filters undone."""
    raw = open(path, "rb").read()
    w, h, depth, ctype = struct.unpack(">IIBB", raw[16:26])
    assert depth == 8 and ctype in (2, 6), (depth, ctype)
    bpp, data, at = 3 if ctype == 2 else 4, b"", 8
    while at < len(raw):
        n, kind = struct.unpack(">I4s", raw[at:at + 8])
        if kind == b"IDAT":
            data += raw[at + 8:at + 8 + n]
        at += 12 + n
    data, stride, out, prev = zlib.decompress(data), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a, b, c = line[x - bpp] if x >= bpp else 0, prev[x], prev[x - bpp] if x >= bpp else 0
            pr = a + b - c
            paeth = a if abs(pr - a) <= abs(pr - b) and abs(pr - a) <= abs(pr - c) else b if abs(pr - b) <= abs(pr - c) else c
            line[x] = (line[x] + [0, a, b, (a + b) // 2, paeth][f]) & 255
        out.append(line)
        prev = line
    return w, h, bpp, out


def anchored_arith():
    rc, out, e = sweep("--probe", "arith", "--items", "24", "--out", p("anch2"))
    assert rc == 0, e[-300:]
    cfgs = {c["config"]: c for c in json.load(open(p("anch2", "summary.json")))["configs"]}
    ranked = re.findall(r"^\d+ +(\S+) ", out, re.M)
    vs = [cfgs[lb]["vs_base"] for lb in ranked]
    assert ranked and vs == sorted(vs, reverse=True), (ranked, vs)   # ranked by the score against base
    beats = [lb for lb, c in cfgs.items() if lb != "base" and any(x["delta"] > 0 and not x["within_noise"] for x in c["probes"].values())]
    assert ("No config beats base beyond noise on any probe" in out) == (not beats), beats
    if not pictures:
        return
    # the combined heatmap: each rys cell red exactly when its vs_base is above 0, blue below
    w, h, bpp, px_rows = png_rows(p("anch2", "heatmap_combined.png"))
    grid = [(c["config"], int(m.group(1)), int(m.group(2))) for c in cfgs.values()
            if (m := re.fullmatch(r"rys:(\d+),(\d+)", c["config"]))]
    imin, jmin = min(i for _, i, _ in grid), min(j for _, _, j in grid)
    ni, nj = max(i for _, i, _ in grid) - imin + 1, max(j for _, _, j in grid) - jmin + 1
    left, right, top, bottom = 90, 150, 70, 80
    for label, i, j in grid:
        x, y = int(left + (j - jmin + 0.5) * (w - left - right) / nj), int(top + (i - imin + 0.5) * (h - top - bottom) / ni)
        px = px_rows[y][x * bpp:x * bpp + 3]
        red, blue = px[0] > px[2], px[2] > px[0]   # Cairo's RGB24 is written as RGB
        v = cfgs[label]["vs_base"]
        assert (v > 0) == red and (v < 0) == blue, (label, v, list(px))


attempt("arith: ranked by the score against base; the combined heatmap red only above base, blue below; the last line agrees",
        anchored_arith)


def max_tokens():
    rc, _, e = sweep("--probe", "arith", "--items", "8", "--configs", "rys:2,4", "--max-tokens", "2", "--out", p("mt"))
    assert rc == 0, e[-300:]
    replies = [r for (r,) in connect(p("mt", "results.sqlite")).execute("SELECT reply FROM results")]
    assert len(replies) == 16 and max(map(len, replies)) <= 2, replies
    assert "probe arith: 8 item(s), replies of up to 2 tokens" in e
    write(p("p120.jsonl"), '{"prompt": "1+1=", "answer": "2"}\n' * 120)
    rc, _, e = sweep("--probe", "jsonl:" + p("p120.jsonl"), "--configs", "rys:2,4", "--max-tokens", "4", "--out", p("p120"))
    assert rc == 0 and re.search(r"probe jsonl:p120.jsonl@[0-9a-f]*: 32 item\(s\) of the 120 it holds \(--items 32\)", e), e[-300:]


attempt("--max-tokens 2 cuts every reply at 2 tokens; a 120-line file at the default --items says it runs 32 of 120", max_tokens)

# 6. errors name their cause
expect_error("unknown probe", "unknown kind", "sweep", "--probe", "trivia", "--out", p("e1"))
expect_error("bad range", "--i-range 5:2", "sweep", "--probe", "arith", "--out", p("e2"), "--i-range", "5:2")
expect_error("bad shard", "--shard 2/2", "sweep", "--probe", "arith", "--out", p("e3"), "--shard", "2/2")
expect_error("bad config", "'9'", "sweep", "--probe", "arith", "--out", p("e4"), "--configs", "rys:1,3;0-2,9")
# a model is known by its content: a copy elsewhere (re-written by export) resumes the sweep, another model is refused
run("export", "--schedule", "base", "-o", p("same_model"))
rc, _, e = sweep("-m", p("same_model"), "--probe", "arith", "--items", "12", "--out", p("a"))
check(rc == 0 and "0 new rows" in e, "the built-in model copied to another directory resumes its sweep")
run("export", "--schedule", "0-4", "-o", p("other_model"))   # five of its six layers: another model
expect_error("another model in the same --out", "holds a sweep with model (config.json and tensors)",
             "sweep", "-m", p("other_model"), "--probe", "arith", "--items", "12", "--out", p("a"))
expect_error("other items in the same --out", "holds a sweep with items of probe arith '12 items",
             "sweep", "--probe", "arith", "--items", "6", "--out", p("a"))
expect_error("another system prompt in the same --out", "holds a sweep with decoding",
             "sweep", "--probe", "arith", "--items", "12", "--system", "Be brief.", "--out", p("a"))
expect_error("another KV dtype in the same --out", "holds a sweep with kv_dtype 'f32', not 'bf16'",
             "sweep", "--probe", "arith", "--items", "12", "--out", p("a"), "--kv-dtype", "bf16")

# a read-only --out is refused at once, naming it; so is a finished sweep's database that cannot be written, whose
# rows `sweep merge` still reads into a new directory. As root (which ignores permissions) these run as user nobody.
as_user = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups") if os.getuid() == 0 else ()
os.chmod(T, 0o755)
shutil.rmtree(p("ro"), ignore_errors=True)
os.makedirs(p("ro"))
os.makedirs(p("w"))
os.chmod(p("ro"), 0o555)
os.chmod(p("w"), 0o777)
sweep("--probe", "arith", "--items", "2", "--out", p("ro_db"))
os.chmod(p("ro_db", "results.sqlite"), 0o444)
os.chmod(p("ro_db"), 0o777)
if run("inspect", prefix=as_user)[0] == 0:
    expect_error("a read-only --out", "--out %s: cannot write there" % p("ro"),
                 "sweep", "--probe", "arith", "--items", "2", "--out", p("ro"), prefix=as_user)
    expect_error("a sweep database that cannot be written", "ro_db/results.sqlite: cannot write it",
                 "sweep", "--probe", "arith", "--items", "2", "--out", p("ro_db"), prefix=as_user)
    os.chmod(p("ro_db"), 0o555)
    rc = sweep("merge", "--out", p("w", "merged"), p("ro_db", "results.sqlite"), prefix=as_user)[0]
    check(rc == 0 and same_rows(p("w", "merged", "results.sqlite"), p("ro_db", "results.sqlite")),
          "a read-only sweep in a read-only directory merges into a writable one, every row")
else:
    skip("read-only --out checks: %s cannot run as user nobody here (a directory above it is private)" % BIN)


# --score loglik: each row is the log-probability of the answer after the prompt, as `reprise score` gives it for the
# prompt's ids followed by the answer's (the built-in model's template is BOS + the text: `tokenize -p` gives the ids)
def loglik():
    items = [("12+35=", "47", "exact"), ("8*7=", "56", "exact"), ("31+4=", "99", "numeric")]
    write(p("ll.jsonl"), "".join(json.dumps({"prompt": q, "answer": a, "match": mt}) + "\n" for q, a, mt in items))
    rc, o, e = sweep("--probe", "jsonl:" + p("ll.jsonl"), "--score", "loglik", "--configs", "rys:1,3", "--out", p("ll"))
    assert rc == 0, e[-300:]
    db = connect(p("ll", "results.sqlite"))
    got = {(label, item): score for label, item, score in db.execute(
        "SELECT c.label, r.item, r.score FROM results r JOIN configs c ON c.id = r.config")}
    probes = {pr for (pr,) in db.execute("SELECT DISTINCT probe FROM results")}
    assert len(probes) == 1 and next(iter(probes)).startswith("loglik:jsonl:"), probes
    assert len(got) == 6, got
    for sched in ("base", "rys:1,3"):
        for k, (prompt, answer, _) in enumerate(items):
            ids = json.loads(run("tokenize", "-p", prompt, "--json")[1])
            ans = json.loads(run("tokenize", "-p", answer, "--no-special", "--json")[1])
            rc, o, e = run("score", "--tokens", ",".join(map(str, ids + ans)), "--schedule", sched, "--json")
            assert rc == 0, e[-300:]
            want = sum(json.loads(o)["logprobs"][-len(ans):])
            g = got[(sched, str(k))]
            assert g < 0 and abs(g - want) < 1e-4, (sched, prompt, g, want)


attempt("--score loglik: each row is reprise score's log-probability of the answer after the prompt", loglik)
EQ_SMALL = ('{"1": {"prompt": "Tom lost his ball.%s\\nSad: <score>\\nHappy: <score>\\nAngry: <score>\\nCalm: <score>\\n", '
            '"reference_answer": {"emotion1": "Sad", "emotion1_score": 5, "emotion2": "Happy", "emotion2_score": 0, '
            '"emotion3": "Angry", "emotion3_score": 3, "emotion4": "Calm", "emotion4_score": 2}}}')
write(p("eq_small.json"), EQ_SMALL % "")
expect_error("--score loglik on eq", "has no reference answer text",
             "sweep", "--probe", "eq:" + p("eq_small.json"), "--score", "loglik", "--out", p("e5"))
write(p("re.jsonl"), '{"prompt": "1+1=", "answer": "[0-9]+", "match": "regex"}\n')
expect_error("--score loglik on a regex answer", "matched by a regex",
             "sweep", "--probe", "jsonl:" + p("re.jsonl"), "--score", "loglik", "--out", p("e6"))
expect_error("bad --score", "--score best: gen, loglik or acceptance", "sweep", "--probe", "arith", "--score", "best", "--out", p("e7"))
expect_error("--confirm without --confirm-probe", "go together", "sweep", "--probe", "arith", "--out", p("e8"), "--confirm", "3")
expect_error("a number with trailing text", "--batch: '64x'", "sweep", "--probe", "arith", "--out", p("e11"), "--batch", "64x")
expect_error("zero items", "--items: '0'", "sweep", "--probe", "arith", "--out", p("e12"), "--items", "0")

# probe names that need JSON escaping, and two that share their first 70 bytes: summary.json parses, each has a heatmap
L = p("probes")
F1 = 'a "quoted" probe file whose name is long enough to share more than seventy bytes with its sibling, one.jsonl'
F2 = 'a "quoted" probe file whose name is long enough to share more than seventy bytes with its sibling, two.jsonl'
os.makedirs(L)
write(os.path.join(L, F1), '{"prompt": "1+2=", "answer": "3", "match": "exact"}\n{"prompt": "2+2=", "answer": "4", "match": "exact"}\n')
write(os.path.join(L, F2), '{"prompt": "1+3=", "answer": "4", "match": "exact"}\n{"prompt": "2+3=", "answer": "5", "match": "exact"}\n')


def long_names():
    rc, _, e = sweep("--probe", "jsonl:" + os.path.join(L, F1), "--probe", "jsonl:" + os.path.join(L, F2), "--configs", "rys:1,3",
                     "--score", "loglik", "--out", p("names"))
    assert rc == 0, e[-300:]
    d = json.load(open(p("names", "summary.json")))
    assert len(d["probes"]) == 2 and all('"quoted"' in x for x in d["probes"]), d["probes"]
    assert not pictures or len(glob.glob(p("names", "heatmap_*.png"))) == 3


attempt("probe names with quotes in summary.json; two long names sharing their first 100 bytes stay two probes, a heatmap each",
        long_names)


# a probe is known by its content: the same file by a relative path, then an absolute one, then a copy in another
# directory resumes the same rows; shards run from different directories merge into one probe
def probe_by_content():
    ll = ["--configs", "rys:1,3", "--score", "loglik"]
    assert sweep("--probe", "jsonl:" + F1, *ll, "--out", p("byname"), cwd=L)[0] == 0
    rc, _, e = sweep("--probe", "jsonl:" + os.path.join(L, F1), *ll, "--out", p("byname"))
    assert rc == 0 and " 0 new rows (4 were already done)" in e, e[-300:]
    os.makedirs(p("elsewhere"))
    shutil.copy(os.path.join(L, F1), p("elsewhere", F1))
    rc, _, e = sweep("--probe", "jsonl:" + p("elsewhere", F1), *ll, "--out", p("byname"))
    assert rc == 0 and " 0 new rows (4 were already done)" in e, e[-300:]
    two = ["--configs", "rys:1,3;rys:2,4", "--score", "loglik"]
    assert sweep("--probe", "jsonl:" + F1, *two, "--shard", "0/2", "--out", p("sh0"), cwd=L)[0] == 0
    assert sweep("--probe", "jsonl:./" + F1, *two, "--shard", "1/2", "--out", p("sh1"), cwd=p("elsewhere"))[0] == 0
    assert sweep("merge", "--out", p("shm"), p("sh0", "results.sqlite"), p("sh1", "results.sqlite"))[0] == 0
    assert connect(p("shm", "results.sqlite")).execute("SELECT count(DISTINCT probe) FROM results").fetchone()[0] == 1


attempt("a probe file by a relative path, an absolute one, a copy elsewhere, and shards from two directories: one probe",
        probe_by_content)
expect_error("--prune-by-profile of a repeated schedule", "the grid needs one of the base schedule",
             "sweep", "--probe", "arith", "--out", p("e14"), "--prune-by-profile", p("prof_rys"))
expect_error("--prune-by-profile with --i-range", "give neither",
             "sweep", "--probe", "arith", "--out", p("e15"), "--prune-by-profile", p("prof"), "--i-range", "0:2")
expect_error("--prune-by-profile of no profile", "profile.json",
             "sweep", "--probe", "arith", "--out", p("e16"), "--prune-by-profile", p("nothing"))
expect_error("--search halving with --shard, no --exchange", "its shards need --exchange DIR",
             "sweep", "--probe", "arith", "--out", p("e9"), "--search", "halving", "--shard", "0/2")
expect_error("--search beam with --shard, no --exchange", "beam decides each step",
             "sweep", "--probe", "arith", "--out", p("e10"), "--search", "beam", "--shard", "0/2")
expect_error("--exchange on a grid", "--exchange DIR goes with --shard K/N and a --search",
             "sweep", "--probe", "arith", "--out", p("e10b"), "--shard", "0/2", "--exchange", p("e10x"))
expect_error("--search annealing", "--search annealing: grid, halving, beam or surrogate",
             "sweep", "--probe", "arith", "--out", p("e11"), "--search", "annealing")
expect_error("a seed over the budget", "21 configs, more than --budget 5",
             "sweep", "--probe", "arith", "--out", p("e12"), "--search", "beam", "--budget", "5")
expect_error("--max-passes 1", "--max-passes: '1' is not",
             "sweep", "--probe", "arith", "--out", p("e13"), "--search", "surrogate", "--max-passes", "1")


# 7. NaN logits fail the rows of the configs that meet them, never the sweep: a copy of the built-in model with NaN
# weights in layer 2; "0-1,3-5" skips layer 2 and is scored, base and rys:1,3 fail with the reason
def nan_rows():
    run("export", "--schedule", "base", "-o", p("nan_model"))
    with open(p("nan_model", "model.safetensors"), "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        t = json.loads(f.read(n))["model.layers.2.mlp.down_proj.weight"]
        f.seek(8 + n + t["data_offsets"][0])
        f.write(struct.pack("<f", float("nan")) * 64)
    rc, o, e = sweep("-m", p("nan_model"), "--probe", "arith", "--items", "4", "--configs", "0-1,3-5;rys:1,3", "--out", p("nan"))
    assert rc == 0, e[-300:]
    fails = json.load(open(p("nan", "summary.json")))["failures"]
    assert len(fails) == 8 and {x["config"] for x in fails} == {"base", "rys:1,3"}, fails
    assert all(x["reason"].startswith("non-finite logits (NaN or infinity)") for x in fails), fails
    n = connect(p("nan", "results.sqlite")).execute(
        "SELECT count(*) FROM results r JOIN configs c ON c.id = r.config WHERE c.label = '0-1,3-5'").fetchone()[0]
    assert n == 4, n
    assert "no scored item" in o


attempt("NaN logits: the configs that meet them fail with the reason, the others are scored, the sweep completes", nan_rows)

S = os.path.join(SHARED, "models", "stories260K")
MATH16 = os.path.join(SHARED, "probes", "rys", "math_16.json")
EQ16 = os.path.join(SHARED, "probes", "rys", "eq_16.json")
if os.path.isfile(os.path.join(S, "config.json")) and os.path.isfile(MATH16):
    write(p("custom.jsonl"), '{"prompt": "Once upon a time", "answer": ", there", "match": "exact"}\n'
                             r'{"prompt": "Lily and Tom", "answer": "\\w+", "match": "regex"}' "\n")
    write(p("mc.jsonl"), '{"prompt": "Once upon a time, there was a little", "options": [" girl", " banana"], "answer": 0}\n'
                         '{"prompt": "The sun was", "options": [" shining", " purple"], "answer": 0}\n')
    # RYS's EQ prompts (over 1500 tokens) do not fit stories260K's 512 positions: a short one in the same format
    write(p("eq.json"), EQ_SMALL % " First pass scores:")

    # an item that cannot run is a failed row with its reason; the sweep goes on, and a rerun does not retry it
    def too_long():
        eq_args = ["-m", S, "--probe", "eq:" + EQ16, "--items", "2", "--configs", "rys:1,3", "--out", p("eqlong")]
        rc, _, e = sweep(*eq_args)
        assert rc == 0, e[-300:]
        fails = json.load(open(p("eqlong", "summary.json")))["failures"]
        assert len(fails) == 4 and all("do not fit the context of 512" in x["reason"] for x in fails), fails
        assert {x["config"] for x in fails} == {"base", "rys:1,3"}, fails
        assert "4 rows failed and have no score" in e
        # each item that cannot run is named before the first config runs
        named = e.index("item 1 cannot run: the prompt (1531 tokens) and its reply (96) do not fit the context of 512")
        assert named < e.index("configs (base included)") and "item 2 cannot run" in e
        assert "0 new rows (4 were already done)" in sweep(*eq_args)[2]
        assert "--retry-failed: 4 failed rows will run again" in sweep(*eq_args, "--retry-failed")[2]

    attempt("prompts longer than the context: failed rows with their reason, the sweep completes, not retried unless asked",
            too_long)

    def stories_probes():
        rc, _, e = sweep("-m", S, "--probe", "math:" + MATH16, "--probe", "eq:" + p("eq.json"), "--probe", "jsonl:" + p("custom.jsonl"),
                         "--probe", "mc:" + p("mc.jsonl"), "--items", "3", "--configs", "rys:1,3;rys:2,4;0-1,3-4", "--out", p("st"))
        assert rc == 0, e[-300:]
        db = connect(p("st", "results.sqlite"))
        n = dict(db.execute("SELECT probe, count(*) FROM results GROUP BY probe").fetchall())
        assert len(n) == 4 and all(v == 4 * (3 if pr.startswith("math") else 1 if pr.startswith("eq") else 2) for pr, v in n.items()), n
        base = dict(db.execute("SELECT r.probe, avg(r.score) FROM results r JOIN configs c ON c.id = r.config "
                               "WHERE c.label = 'base' GROUP BY r.probe"))
        mc = [x for x in base if x.startswith("mc:")][0]
        js = [x for x in base if x.startswith("jsonl:")][0]
        assert base[mc] == 1.0 and base[js] == 1.0, base   # stories continues "Once upon a time" with ", there", prefers " girl"
        assert not pictures or os.path.getsize(p("st", "heatmap_combined.png")) > 0

    attempt("stories260K: RYS math and EQ files, jsonl and mc probes, explicit configs", stories_probes)
    run("profile", "-m", S, "-p", "Once upon a time, there was a girl", "--out", p("st_prof"))
    try:
        prof = json.load(open(p("st_prof", "profile.json")))
        prof["model_fingerprint"] = "0123456789abcdef"
        json.dump(prof, open(p("st_prof", "profile.json"), "w"))
    except OSError as ex:
        print("profile of stories260K: %s" % ex)
    expect_error("stories260K: --prune-by-profile of another model", "a profile of another model",
                 "sweep", "-m", S, "--probe", "arith", "--items", "2", "--out", p("e17"), "--prune-by-profile", p("st_prof"))

    # BIG-Bench Hard: a seeded subset of a logical deduction task, generated and by the option letters' log-likelihood;
    # each loglik row is 1 exactly when `reprise score` gives the right letter the highest log-probability
    def bbh():
        task = os.path.join(SHARED, "probes", "bbh", "logical_deduction_three_objects.json")
        assert sweep("-m", S, "--probe", "bbh:" + task, "--items", "6", "--configs", "rys:1,3", "--out", p("bbh"))[0] == 0
        assert sweep("-m", S, "--probe", "bbh:" + task, "--items", "6", "--configs", "rys:1,3", "--score", "loglik",
                     "--out", p("bbhll"))[0] == 0
        n = connect(p("bbh", "results.sqlite")).execute("SELECT count(*) FROM results").fetchone()[0]
        assert n == 12, n
        db = connect(p("bbhll", "results.sqlite"))
        items = {i: (q, int(a)) for i, q, a in db.execute("SELECT item, prompt, answer FROM items")}
        assert len(items) == 6 and sorted(items) != [str(k) for k in range(6)], sorted(items)   # a subset, not the first six

        def ids(text, special):
            return json.loads(run("tokenize", "-m", S, "-p", text, "--json", *([] if special else ["--no-special"]))[1])
        for label in ("base", "rys:1,3"):
            for item, score in db.execute("SELECT r.item, r.score FROM results r JOIN configs c ON c.id = r.config "
                                          "WHERE c.label = ?", (label,)):
                prompt, right = items[item]
                letters = [ln[:3] for ln in prompt.split("\n") if ln[:1] == "(" and ln[2:3] == ")"]
                lls = []
                for opt in letters:
                    q, o = ids(prompt, True), ids(opt, False)
                    rc, out, e = run("score", "-m", S, "--tokens", ",".join(map(str, q + o)), "--schedule", label, "--json")
                    assert rc == 0, e[-300:]
                    lls.append(sum(json.loads(out)["logprobs"][-len(o):]))
                want = 1.0 if max(range(len(lls)), key=lambda k: lls[k]) == right else 0.0
                assert score == want, (label, item, score, lls, right)

    attempt("stories260K: BBH logical deduction, generated and by the option letters' log-likelihood (each row as reprise "
            "score ranks the letters)", bbh)
    attempt("stories260K: --search beam on RYS math by log-likelihood, in budget, resumed after SIGKILL to the same rows",
            lambda: search_checks("st-beam", 25, "-m", S, "--probe", "math:" + MATH16, "--items", "4", "--score", "loglik",
                                  "--search", "beam", "--beam", "3"))
    attempt("stories260K: --search surrogate on RYS math by log-likelihood, in budget, resumed after SIGKILL to the same rows",
            lambda: search_checks("st-surrogate", 30, "-m", S, "--probe", "math:" + MATH16, "--items", "4", "--score", "loglik",
                                  "--search", "surrogate"))

    # halving: 15 configs on 2 items, the better 8 on 4, the better 4 on all 8; killed half-way and resumed, the same
    # rows; and in 2 shards, each holding those rows
    def stories_halving():
        hs = ["-m", S, "--probe", "math:" + MATH16, "--items", "8", "--score", "loglik", "--search", "halving", "--halving-items", "2"]
        assert sweep(*hs, "--out", p("st-hv"))[0] == 0
        per = per_config(p("st-hv", "results.sqlite"))
        sizes = sorted(v for lb, v in per.items() if lb != "base")
        assert per["base"] == 8 and sizes == [2] * 7 + [4] * 4 + [8] * 4, per
        kill_after_rows(30, p("st-hk", "results.sqlite"), *hs, "--out", p("st-hk"))
        assert sweep(*hs, "--out", p("st-hk"))[0] == 0
        assert same_rows(p("st-hk", "results.sqlite"), p("st-hv", "results.sqlite"))
        other = start(*hs, "--shard", "1/2", "--exchange", p("st-hx"), "--out", p("st-hs1"))
        assert sweep(*hs, "--shard", "0/2", "--exchange", p("st-hx"), "--out", p("st-hs0"), timeout=300)[0] == 0
        assert wait_for(other)[0] == 0
        for k in (0, 1):
            assert same_rows(p("st-hs%d" % k, "results.sqlite"), p("st-hv", "results.sqlite")), k

    attempt("stories260K: --search halving on RYS math, 15 -> 8 -> 4 configs; killed and resumed, and in 2 shards, the same rows",
            stories_halving)
else:
    skip("stories260K sweep: %s or the probe files are absent" % S)

for root, dirs, _ in os.walk(T):   # the read-only directories made above, writable again to be removed
    for d in dirs:
        os.chmod(os.path.join(root, d), 0o755)
shutil.rmtree(T, ignore_errors=True)
finish()
