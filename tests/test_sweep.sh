#!/usr/bin/env bash
# `reprise sweep` end to end: outputs, shared-prefix results equal to naive ones, kill -9 and resume row by row,
# shards merged, bad inputs named; on the built-in model and on ../shared's stories260K with RYS's probe files.
set -u
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") SHARED=$2   # absolute: some cases run from other directories
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
skipped=0
# a part that cannot run here: said, counted, and the script exits 77 (ctest: skipped) when nothing failed
skip() { echo "skip $1"; skipped=$((skipped + 1)); }
check() { if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
wait_rows() {   # wait_rows N DB: returns once DB holds N result rows (or after 60 s)
    python3 - "$2" "$1" <<'PY'
import sqlite3, sys, time
deadline = time.time() + 60
while time.time() < deadline:
    try:
        if sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM results").fetchone()[0] >= int(sys.argv[2]): break
    except sqlite3.Error: pass
    time.sleep(0.005)
PY
}
kill_after_rows() {   # kill_after_rows N DB COMMAND...: runs COMMAND, and SIGKILLs it once DB holds N result rows
    local n=$1 db=$2
    shift 2
    "$@" >/dev/null 2>&1 &
    local pid=$!
    wait_rows "$n" "$db"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
}
rows() {   # every result row, sorted, as text
    python3 - "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for r in db.execute("SELECT c.label, r.probe, r.item, r.score, r.reply FROM results r JOIN configs c ON c.id = r.config ORDER BY 1, 2, 3"):
    print("\t".join(map(repr, r)))
PY
}

# 1. a small sweep of the built-in model writes everything it promises
"$BIN" sweep --probe arith --items 12 --out "$T/a" >"$T/a.out" 2>"$T/a.err"
r=$?
pictures="heatmap_arith.png heatmap_combined.png skyline.png"
if grep -q "built without Cairo" "$T/a.err"; then pictures=""; skip "PNG checks: this reprise is built without Cairo (it says so)"; fi
[ $r -eq 0 ] && for f in results.sqlite summary.csv summary.json results.csv $pictures; do [ -s "$T/a/$f" ] || r=1; done
python3 -c "import json,sys; d=json.load(open('$T/a/summary.json')); assert len(d['configs']) == 22" || r=1
grep -q "^1 " "$T/a.out" && grep -q "within two standard errors" "$T/a.out" || r=1
check "built-in model: 21 configs + base, database, summaries, heatmaps, skyline, ranking" $r
# --confirm: the screen's top 3 and base again on 40 fresh generated items, in DIR/confirm/; run again, nothing new
"$BIN" sweep --probe arith --items 12 --out "$T/a" --confirm 3 --confirm-probe arith --confirm-items 40 >"$T/cf.out" 2>"$T/cf.err"
r=$?
"$BIN" sweep --probe arith --items 12 --out "$T/a" --confirm 3 --confirm-probe arith --confirm-items 40 >/dev/null 2>"$T/cf2.err" || r=1
python3 - "$T/a/summary.json" "$T/a/confirm/summary.json" "$T/a/confirm/results.sqlite" <<'PY' || r=1
import json, sqlite3, sys
screen, conf = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ranked = sorted((c for c in screen["configs"] if c["config"] != "base"), key=lambda c: -c["balanced"])
top = {c["config"] for c in ranked[:3]}
# ties at the cut: any config as good as the third may stand in for it
third = ranked[2]["balanced"]
got = {c["config"] for c in conf["configs"] if c["config"] != "base"}
assert len(got) == 3 and all(c in top or [x for x in ranked if x["config"] == c][0]["balanced"] == third for c in got), (got, top)
assert conf["probes"] == ["confirm:arith"], conf["probes"]
assert all(c["probes"]["confirm:arith"]["items"] == 40 for c in conf["configs"]), conf["configs"]
db = sqlite3.connect(sys.argv[3])
assert db.execute("SELECT count(*) FROM results").fetchone()[0] == 4 * 40
screen_prompts = {p for (p,) in sqlite3.connect(sys.argv[3].replace("/confirm", "")).execute("SELECT prompt FROM items")}
conf_prompts = {p for (p,) in db.execute("SELECT prompt FROM items")}
assert len(conf_prompts & screen_prompts) < 10, len(conf_prompts & screen_prompts)   # another seed: mostly new items
PY
grep -q "^confirmation" "$T/cf.out" && grep -q "confirm:arith: " "$T/cf.out" && grep -q "0 new rows (160 were already done)" "$T/cf2.err" || r=1
check "--confirm 3: the screen's top 3 and base on 40 other items, a report of their own; a rerun resumes" $r

# each config's p-value (two-sided, z = delta / se) and Benjamini-Hochberg q-value, recomputed here from its delta
# and standard error; the printed count of configs below p < 0.05 beside the count expected by chance
python3 - "$T/a/summary.json" "$T/a.out" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))
rows = [(c["probes"]["arith"], c["config"]) for c in d["configs"] if c["config"] != "base"]
def p_of(x):
    if x["se"] is None: return None
    if x["se"] == 0: return 1.0 if x["delta"] == 0 else 0.0
    return math.erfc(abs(x["delta"] / x["se"]) / math.sqrt(2))
ps = [p_of(x) for x, _ in rows]
order = sorted((p, i) for i, p in enumerate(ps) if p is not None)
m, q, run = len(order), {}, 1.0
for r in range(m - 1, -1, -1):
    run = min(run, order[r][0] * m / (r + 1))
    q[order[r][1]] = run
assert m == 21 and any(0 < p < 1 for p in ps), ps
for i, (x, name) in enumerate(rows):
    # (delta and se are printed to 6 decimals: z here carries their rounding)
    assert abs(x["p"] - ps[i]) <= 1e-3 and abs(x["q"] - q[i]) <= 1e-3, (name, x, ps[i], q[i])
line = [l for l in open(sys.argv[2]) if l.startswith("arith: ")][0]
n_pass = sum(p < 0.05 for p in ps)
assert line.startswith(f"arith: {n_pass} of 21 configs differ from base at p < 0.05, where 1.1 would by chance alone; "
                       f"{sum(v < 0.05 for v in q.values())} at a false discovery rate"), line
PY
check "p-values and Benjamini-Hochberg q-values of every config, and how many pass by chance" $?
if [ -n "$pictures" ]; then
    [ "$(head -c 8 "$T/a/heatmap_arith.png" | od -An -c | tr -d ' ')" = "211PNG\r\n032\n" ]
    check "heatmaps are PNG files" $?
fi

# 2. sharing the base's prefix and batching configs changes no result
"$BIN" sweep --probe arith --items 12 --out "$T/naive" --naive >/dev/null 2>&1
cmp -s <(rows "$T/a/results.sqlite") <(rows "$T/naive/results.sqlite")
check "shared-prefix batched sweep equals one-config-at-a-time, row by row" $?

"$BIN" sweep --probe arith --items 12 --out "$T/b1" --batch 1 --ubatch 3 >/dev/null 2>&1
cmp -s <(rows "$T/a/results.sqlite") <(rows "$T/b1/results.sqlite")
check "--batch 1 --ubatch 3 gives the rows of --batch 64 --ubatch 512, exactly" $?

# 3. the same command again resumes: nothing new, nothing repeated
"$BIN" sweep --probe arith --items 12 --out "$T/a" >/dev/null 2>"$T/again.err"
grep -q "0 new rows (264 were already done)" "$T/again.err"
check "rerunning a finished sweep adds no row" $?

# 4. shards merged equal the whole sweep
"$BIN" sweep --probe arith --items 12 --out "$T/s0" --shard 0/2 >/dev/null 2>&1 &&
"$BIN" sweep --probe arith --items 12 --out "$T/s1" --shard 1/2 >/dev/null 2>&1 &&
"$BIN" sweep merge --out "$T/m" "$T/s0/results.sqlite" "$T/s1/results.sqlite" >/dev/null 2>&1
cmp -s <(rows "$T/a/results.sqlite") <(rows "$T/m/results.sqlite")
check "--shard 0/2 and 1/2, merged, equal the unsharded sweep" $?
# merge only reads its inputs: read-only shards in a read-only directory merge, and stay byte for byte as they were
mkdir -p "$T/ro" && cp "$T/s0/results.sqlite" "$T/ro/s0.sqlite" && cp "$T/s1/results.sqlite" "$T/ro/s1.sqlite"
sum_before=$(cat "$T/ro/"*.sqlite | cksum)
chmod 444 "$T/ro/"*.sqlite && chmod 555 "$T/ro"
"$BIN" sweep merge --out "$T/m2" "$T/ro/s0.sqlite" "$T/ro/s1.sqlite" >/dev/null 2>&1
r=$?
cmp -s <(rows "$T/a/results.sqlite") <(rows "$T/m2/results.sqlite") || r=1
chmod 755 "$T/ro"
[ "$(cat "$T/ro/"*.sqlite | cksum)" = "$sum_before" ] && [ "$(ls "$T/ro")" = "$(printf 's0.sqlite\ns1.sqlite')" ] || r=1
check "merge of read-only shards in a read-only directory: equal to the whole, the shards untouched" $r
# a SQLite file that is no sweep is refused and gets no table; a shard with a NULL label is named; a failed merge
# leaves --out as it was
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE notes(x)'); c.commit()" "$T/stray.sqlite"
cp -r "$T/m" "$T/m3" && before=$(rows "$T/m3/results.sqlite")
"$BIN" sweep merge --out "$T/m3" "$T/s0/results.sqlite" "$T/stray.sqlite" >/dev/null 2>"$T/stray.err"
r=$((1 - $?))
grep -q "stray.sqlite: not a reprise sweep database (no table 'meta')" "$T/stray.err" || r=1
grep -q "is as it was" "$T/stray.err" || r=1
[ "$(python3 -c "import sqlite3,sys; print([n for (n,) in sqlite3.connect(sys.argv[1]).execute('SELECT name FROM sqlite_master')])" "$T/stray.sqlite")" = "['notes']" ] || r=1
[ "$before" = "$(rows "$T/m3/results.sqlite")" ] && [ -z "$(ls "$T/m3" | grep merging)" ] || r=1
# shards of two sweeps (other --items): the file refused is named, not the merge's temporary one, with a merge's advice
"$BIN" sweep --probe arith --items 3 --configs "rys:1,3" --out "$T/other3" >/dev/null 2>&1
"$BIN" sweep merge --out "$T/m5" "$T/s0/results.sqlite" "$T/other3/results.sqlite" >/dev/null 2>"$T/other.err"
r=$((1 - $?))
grep -q "other3/results.sqlite is another sweep's: its items of probe arith is '3 items" "$T/other.err" &&
    grep -q "only the shards of one sweep merge" "$T/other.err" && ! grep -q "merging-\|use another --out" "$T/other.err" || r=1
check "merge of another sweep's database names that file and says what merges: $(head -c 160 "$T/other.err")" $r
cp "$T/s1/results.sqlite" "$T/nul.sqlite"
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE c2 AS SELECT * FROM configs'); c.execute('DROP TABLE configs'); c.execute('CREATE TABLE configs(id INTEGER PRIMARY KEY, label TEXT, schedule TEXT, i, j, k, visits)'); c.execute('INSERT INTO configs SELECT * FROM c2'); c.execute('UPDATE configs SET label = NULL WHERE id = 2'); c.commit()" "$T/nul.sqlite"
"$BIN" sweep merge --out "$T/m4" "$T/nul.sqlite" >/dev/null 2>"$T/nul.err"
[ $? -eq 1 ] && grep -q "nul.sqlite: a row with no label" "$T/nul.err" || r=1
check "merge: a stray SQLite file refused and untouched, a NULL label named, a failed merge leaves --out as it was" $r

# 5. killed with SIGKILL mid-way, then resumed: the final database equals an uninterrupted run's
args=(--probe arith --items 150 --out)
"$BIN" sweep "${args[@]}" "$T/full" >/dev/null 2>&1
kill_after_rows 200 "$T/k/results.sqlite" "$BIN" sweep "${args[@]}" "$T/k"
before=$(rows "$T/k/results.sqlite")
n_before=$(printf '%s\n' "$before" | grep -c .)
"$BIN" sweep "${args[@]}" "$T/k" >/dev/null 2>"$T/resume.err"
total=$((22 * 150))
grep -q "$((total - n_before)) new rows ($n_before were already done)" "$T/resume.err" &&
    [ "$n_before" -lt "$total" ] && [ "$n_before" -gt 0 ] &&
    cmp -s <(rows "$T/k/results.sqlite") <(rows "$T/full/results.sqlite") &&
    [ -z "$(comm -23 <(printf '%s\n' "$before" | sort) <(rows "$T/k/results.sqlite" | sort))" ]
check "SIGKILL after $n_before of $total rows, then resume: every row once, equal to an uninterrupted run" $?

# killed at random points, again and again (each resume killed too), then finished: equal to an uninterrupted run
r=0
points=""
for round in 1 2 3 4; do
    at=$(( (RANDOM * 32768 + RANDOM) % (total - 100) + 50 ))
    points="$points $at"
    kill_after_rows "$at" "$T/kr/results.sqlite" "$BIN" sweep "${args[@]}" "$T/kr"
    python3 -c "import sqlite3,sys; assert sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0] == 'ok'" \
        "$T/kr/results.sqlite" || r=1
done
"$BIN" sweep "${args[@]}" "$T/kr" >/dev/null 2>&1 || r=1
cmp -s <(rows "$T/kr/results.sqlite") <(rows "$T/full/results.sqlite") || r=1
check "SIGKILL at random points (rows$points), each resume killed again, then finished: equal to an uninterrupted run" $r

# Ctrl-C: stops after the item in progress, says how many rows are safe and how to resume (exit 130); the resume
# counts its own rate
"$BIN" sweep "${args[@]}" "$T/ci" >/dev/null 2>"$T/ci.err" &
pid=$!
wait_rows 300 "$T/ci/results.sqlite"
kill -INT $pid
wait $pid
r=$(( $? == 130 ? 0 : 1 ))
safe=$(sed -n 's/.*interrupted: \([0-9]*\) rows are safe in .* run the same command again to resume/\1/p' "$T/ci.err")
grep -q "stopping after the item in progress" "$T/ci.err" || r=1
[ -n "$safe" ] && [ "$safe" -lt "$total" ] || r=1
"$BIN" sweep "${args[@]}" "$T/ci" >/dev/null 2>"$T/ci2.err" || r=1
grep -q "($safe were already done)" "$T/ci2.err" || r=1
cmp -s <(rows "$T/ci/results.sqlite") <(rows "$T/full/results.sqlite") || r=1
check "Ctrl-C: stops after the item in progress with ${safe:-?} rows safe (exit 130), and the rerun resumes from them" $r

# one writer: a second sweep on the same --out while the first runs is refused, naming why; the first goes on
"$BIN" sweep "${args[@]}" "$T/lock" >/dev/null 2>&1 &
pid=$!
wait_rows 50 "$T/lock/results.sqlite"
"$BIN" sweep "${args[@]}" "$T/lock" >/dev/null 2>"$T/lock.err"
r=$(( $? == 1 ? 0 : 1 ))
grep -q "is being written by another process" "$T/lock.err" || r=1
wait $pid || r=1
cmp -s <(rows "$T/lock/results.sqlite") <(rows "$T/full/results.sqlite") || r=1
check "a second sweep on the same --out while one runs: refused with the reason; the first completes intact" $r

# a full disk (a file size limit: the WAL cannot grow past 3.5 MB, some hundred rows in): the sweep stops with the
# database's reason, nothing is corrupted, and the rerun with room resumes to the same rows as an uninterrupted run
(trap '' XFSZ; ulimit -f 3500; exec "$BIN" sweep "${args[@]}" "$T/full_disk") >/dev/null 2>"$T/disk.err"
r=$(( $? == 1 ? 0 : 1 ))
grep -q "add result: .*error" "$T/disk.err" && grep -q "could not be written (a full disk?)" "$T/disk.err" || { r=1; tail -2 "$T/disk.err"; }
python3 -c "import sqlite3,sys; assert sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0] == 'ok'" \
    "$T/full_disk/results.sqlite" || r=1
"$BIN" sweep "${args[@]}" "$T/full_disk" >/dev/null 2>&1 || r=1
cmp -s <(rows "$T/full_disk/results.sqlite") <(rows "$T/full/results.sqlite") || r=1
check "a full disk mid-sweep: a clear error, the database intact, the rerun resumes to the same rows" $r

# --search halving: 21 configs on 4 items, the better 11 on 8, the better 6 on all 16; killed in its second rung and
# resumed, the same rows as an uninterrupted search; run again, nothing new
hargs=(--probe arith --items 16 --search halving --out)
"$BIN" sweep "${hargs[@]}" "$T/hv" >/dev/null 2>"$T/hv.err"
r=$?
python3 - "$T/hv/results.sqlite" <<'PY' || r=1
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
per = dict(db.execute("SELECT c.label, count(*) FROM results r JOIN configs c ON c.id = r.config GROUP BY c.label"))
sizes = sorted(per.values())
assert per["base"] == 16 and sizes.count(4) == 10 and sizes.count(8) == 5 and sizes.count(16) == 7, per
score = {(l, int(i)): s for l, i, s in db.execute("SELECT c.label, r.item, r.score FROM results r JOIN configs c ON c.id = r.config")}
def delta(label, n): return sum(score[(label, i)] - score[("base", i)] for i in range(n)) / n
for n, lost, kept in ((4, 4, 8), (8, 8, 16)):   # each rung's survivors are at least as good as those it dropped
    dropped = [l for l, k in per.items() if k == lost and l != "base"]
    survived = [l for l, k in per.items() if k >= kept and l != "base"]
    assert min(delta(l, n) for l in survived) >= max(delta(l, n) for l in dropped) - 1e-9, n
PY
kill_after_rows 100 "$T/hk/results.sqlite" "$BIN" sweep "${hargs[@]}" "$T/hk"
"$BIN" sweep "${hargs[@]}" "$T/hk" >/dev/null 2>&1 || r=1
cmp -s <(rows "$T/hk/results.sqlite") <(rows "$T/hv/results.sqlite") || r=1
"$BIN" sweep "${hargs[@]}" "$T/hv" >/dev/null 2>"$T/hv2.err" || r=1
[ "$(grep -c " 0 new rows" "$T/hv2.err")" -eq 3 ] || r=1
check "--search halving: 21 configs on 4 items, the better 11 on 8, the better 6 on 16; killed and resumed, the same rows" $r

# beam and surrogate: within the budget; every config measured once, on every item; killed with SIGKILL half-way and
# resumed, the same rows as an uninterrupted search; run again, nothing new. best_delta: the best mean delta vs base.
best_delta() {
    python3 - "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT c.label, r.probe, r.item, r.score FROM results r JOIN configs c ON c.id = r.config").fetchall()
base = {(p, i): s for l, p, i, s in rows if l == "base"}
d = {}
for l, p, i, s in rows:
    if l != "base": d.setdefault(l, []).append(s - base[(p, i)])
print("%.9f" % max(sum(v) / len(v) for v in d.values()))
PY
}
search_checks() {   # search_checks NAME BUDGET SWEEP-ARGS...
    local name=$1 budget=$2 r=0
    shift 2
    "$BIN" sweep "$@" --budget "$budget" --out "$T/$name" >/dev/null 2>"$T/$name.err" || r=1
    local total
    total=$(python3 - "$T/$name/results.sqlite" "$budget" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
per = dict(db.execute("SELECT c.label, count(*) FROM results r JOIN configs c ON c.id = r.config GROUP BY c.label"))
assert 1 < len(per) <= int(sys.argv[2]) + 1, (len(per), sys.argv[2])
assert len(set(per.values())) == 1, per   # each config once, on every item
print(sum(per.values()))
PY
) || r=1
    kill_after_rows $((total / 2)) "$T/$name-k/results.sqlite" "$BIN" sweep "$@" --budget "$budget" --out "$T/$name-k"
    "$BIN" sweep "$@" --budget "$budget" --out "$T/$name-k" >/dev/null 2>&1 || r=1
    cmp -s <(rows "$T/$name-k/results.sqlite") <(rows "$T/$name/results.sqlite") || r=1
    "$BIN" sweep "$@" --budget "$budget" --out "$T/$name" >/dev/null 2>"$T/$name-2.err" || r=1
    [ "$(grep -c " new rows" "$T/$name-2.err")" -eq "$(grep -c " 0 new rows" "$T/$name-2.err")" ] || r=1
    return $r
}
search_checks beam 30 --probe arith --items 16 --search beam --beam 4 --max-visits 10
check "--search beam: 30 configs at most, each once on every item; killed and resumed, the same rows; rerun, nothing new" $?
search_checks surrogate 61 --probe arith --items 16 --search surrogate --round 8
r=$?
grep -q "Spearman .* on the fifth held out" "$T/surrogate.err" || r=1
check "--search surrogate: 61 configs at most, each once on every item; killed and resumed, the same rows; Spearman printed" $r
# with a budget that covers the grid, from a coarse seed (--stride 2), each finds the grid's best
"$BIN" sweep --probe arith --items 16 --score loglik --out "$T/grid16" >/dev/null 2>&1
want=$(best_delta "$T/grid16/results.sqlite")
r=0
for mode in beam surrogate; do
    "$BIN" sweep --probe arith --items 16 --score loglik --search $mode --stride 2 --max-blocks 1 --max-passes 2 --budget 21 \
        --out "$T/cover-$mode" >/dev/null 2>&1 || r=1
    [ "$(best_delta "$T/cover-$mode/results.sqlite")" = "$want" ] || { echo "$mode: best $(best_delta "$T/cover-$mode/results.sqlite"), grid $want"; r=1; }
done
check "beam and surrogate from a coarse seed, with a budget covering the grid, find the grid's best (delta $want)" $r

# sharded searches: --shard K/N --exchange DIR splits each step's configs over the shards, which trade rows through
# DIR: every shard ends with the rows of the same search run unsharded, having measured a disjoint part of each step
exchange_split() {   # exchange_split DIR N: each shard's step files hold rows, and no config is in two shards' files of a step
    python3 - "$@" <<'PY'
import glob, os, re, sqlite3, sys
d, n = sys.argv[1], int(sys.argv[2])
steps, rows = {}, [0] * n
for f in glob.glob(os.path.join(d, "step-*.sqlite")):
    s, k, of = map(int, re.match(r"step-(\d+)\.shard-(\d+)-of-(\d+)\.sqlite$", os.path.basename(f)).groups())
    assert of == n, f
    db = sqlite3.connect(f)
    labels = {l for (l,) in db.execute("SELECT label FROM configs")}
    rows[k] += db.execute("SELECT count(*) FROM results").fetchone()[0]
    for other, theirs in steps.setdefault(s, {}).items(): assert not labels & theirs, (f, other, labels & theirs)
    steps[s][k] = labels
assert steps and all(len(v) == n for v in steps.values()) and all(rows), (rows, {s: len(v) for s, v in steps.items()})
PY
}
shard_checks() {   # shard_checks NAME N SWEEP-ARGS...: N shards at once against the unsharded run in $T/NAME-one
    local name=$1 n=$2 r=0 k pids=()
    shift 2
    "$BIN" sweep "$@" --out "$T/$name-one" >/dev/null 2>&1 || r=1
    for ((k = 0; k < n; k++)); do
        timeout 300 "$BIN" sweep "$@" --shard $k/$n --exchange "$T/$name-ex" --out "$T/$name-s$k" >/dev/null 2>"$T/$name-s$k.err" &
        pids+=($!)
    done
    for k in "${pids[@]}"; do wait "$k" || r=1; done
    for ((k = 0; k < n; k++)); do cmp -s <(rows "$T/$name-s$k/results.sqlite") <(rows "$T/$name-one/results.sqlite") || { echo "$name shard $k: other rows"; r=1; }; done
    exchange_split "$T/$name-ex" "$n" || r=1
    return $r
}
shard_checks shbeam 2 --probe arith --items 16 --search beam --beam 4 --max-visits 10 --budget 30
check "--search beam in 2 shards: each shard holds the unsharded search's rows, each step split between them" $?
shard_checks shhalving 3 --probe arith --items 16 --search halving
check "--search halving in 3 shards: each shard holds the unsharded search's rows, each rung split between them" $?
shard_checks shsurrogate 3 --probe arith --items 16 --search surrogate --round 8 --budget 61
check "--search surrogate in 3 shards: each shard holds the unsharded search's rows, each round split between them" $?
# a shard killed with SIGKILL half-way (the other waits for it) and started again: both end with the same rows
sargs=(--probe arith --items 16 --search beam --beam 4 --max-visits 10 --budget 30 --exchange "$T/shk-ex")
timeout 300 "$BIN" sweep "${sargs[@]}" --shard 1/2 --out "$T/shk-s1" >/dev/null 2>"$T/shk-s1.err" &
other=$!
kill_after_rows 150 "$T/shk-s0/results.sqlite" "$BIN" sweep "${sargs[@]}" --shard 0/2 --out "$T/shk-s0"
timeout 300 "$BIN" sweep "${sargs[@]}" --shard 0/2 --out "$T/shk-s0" >/dev/null 2>"$T/shk-s0.err"
r=$?
[ $r -eq 0 ] || cat "$T/shk-s0.err"
wait $other || r=1
for k in 0 1; do cmp -s <(rows "$T/shk-s$k/results.sqlite") <(rows "$T/shbeam-one/results.sqlite") || r=1; done
check "a search's shard killed half-way and started again: both shards end with the unsharded search's rows" $r
# The same at chosen points, exactly (this search takes a fraction of a second, so a kill by polling lands where
# it may): shard 0's database as a kill after its first N rows leaves it (rows are committed one by one), its step
# files gone (at worst a half-built .tmp-PID of one left behind, as a kill while writing leaves it), then started
# again: it finds rows ending a step and rewrites that step's file, which must not stop it at the next step.
n0=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM results').fetchone()[0])" "$T/shk-s0/results.sqlite")
r=0
for n in 1 40 150 $((n0 - 1)) $n0; do
    rm -rf "$T/shk-cut" "$T/shk-ex$n" && cp -r "$T/shk-ex" "$T/shk-ex$n" && mkdir "$T/shk-cut" &&
        cp "$T/shk-s0/results.sqlite" "$T/shk-cut/" &&
        python3 -c "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); d.execute('DELETE FROM results WHERE rowid NOT IN (SELECT rowid FROM results ORDER BY rowid LIMIT ?)', (int(sys.argv[2]),)); d.commit()" "$T/shk-cut/results.sqlite" $n || r=1
    f=$(ls "$T/shk-ex$n"/*.shard-0-of-2.sqlite | tail -1)
    head -c 3000 "$f" >"$f.tmp-99999999"   # a half-built file of a killed writer
    rm -f "$T/shk-ex$n"/*.shard-0-of-2.sqlite
    timeout 300 "$BIN" sweep "${sargs[@]/$T\/shk-ex/$T/shk-ex$n}" --shard 0/2 --out "$T/shk-cut" >/dev/null 2>"$T/shk-cut.err" || { echo "after $n rows:"; cat "$T/shk-cut.err"; r=1; }
    cmp -s <(rows "$T/shk-cut/results.sqlite") <(rows "$T/shbeam-one/results.sqlite") || { echo "after $n rows: other rows"; r=1; }
    [ "$(ls "$T/shk-ex$n"/*.shard-0-of-2.sqlite | wc -l)" = "$(ls "$T/shk-ex"/*.shard-0-of-2.sqlite | wc -l)" ] || { echo "after $n rows: other step files"; r=1; }
done
check "shard 0 stopped after 1, 40, 150, all but one and all of the $n0 rows its database ends with (its own and merged), its step files gone and one half-built: started again, it rewrites them and ends with the unsharded rows" $r
# shards given different flags diverge at the step where it matters: refused there, naming the file
timeout 120 "$BIN" sweep --probe arith --items 16 --search beam --beam 4 --budget 30 --shard 0/2 --exchange "$T/shx-ex" --out "$T/shx-s0" >/dev/null 2>"$T/shx-s0.err" &
other=$!
timeout 120 "$BIN" sweep --probe arith --items 16 --search beam --beam 3 --budget 30 --shard 1/2 --exchange "$T/shx-ex" --out "$T/shx-s1" >/dev/null 2>"$T/shx-s1.err"
r1=$?
wait $other
r0=$?
r=0
for k in 0 1; do grep -q "shards were given different flags" "$T/shx-s$k.err" || r=1; done
[ $r0 -eq 1 ] && [ $r1 -eq 1 ] || r=1
check "shards of a search given different flags (--beam 4 and 3): both refuse at the step that differs, naming the file" $r

# a schedule of 2,404 visits is stored whole in the database, never cut at 4,095 bytes
long=$(python3 -c "print(','.join(['0,1'] * 1200) + ',2-5')")
"$BIN" sweep --probe arith --items 1 --configs "$long" --out "$T/long" >/dev/null 2>&1
r=$?
want=$(python3 -c "print(','.join(['0-1'] * 1199) + ',0-5')")   # as the database writes it: range syntax, 1 then 2-5 joined
[ "$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT schedule FROM configs WHERE label != 'base'\").fetchone()[0])" "$T/long/results.sqlite")" = "$want" ] || r=1
check "a schedule of 2,404 visits (${#want} bytes in range syntax) is stored whole" $r

# --prune-by-profile: exactly the grid's blocks inside the profile's reasoning zone; a profile of another model or
# of a repeated schedule is refused
"$BIN" profile -p "12+34=46 7*8=56 99+1=100" --out "$T/prof" >/dev/null 2>&1
"$BIN" sweep --probe arith --items 4 --prune-by-profile "$T/prof" --out "$T/pruned" >/dev/null 2>&1
r=$?
python3 - "$T/prof/profile.json" "$T/pruned/results.sqlite" <<'PY' || r=1
import json, sqlite3, sys
z = json.load(open(sys.argv[1]))["reasoning_zone"]
got = {l for (l,) in sqlite3.connect(sys.argv[2]).execute("SELECT label FROM configs") if l != "base"}
want = {f"rys:{i},{j}" for i in range(z["start"], z["end"]) for j in range(i + 1, z["end"] + 1)}
assert got == want and got, (got, want, z)
PY
check "--prune-by-profile: the grid's blocks inside the profile's reasoning zone, no others" $r
"$BIN" profile -p "12+34=46" --schedule rys:1,3 --out "$T/prof_rys" >/dev/null 2>&1

# Rankings and pictures anchored to base: the ranking's order is the sum over probes of delta / SE (vs base), every
# colour of the combined heatmap is that score's (red only above base), and the ranking ends with who beats base
# beyond noise, or that none does. A probe whose rows all failed is named; names are never cut; each probe's item
# count is said at the start and in the ranking; a jsonl line's max_tokens and --max-tokens set the reply budget.
for i in 1 2 3; do echo '{"prompt": "99*99=", "answer": "9801", "match": "numeric"}'; done >"$T/rys_wins_on_this_long_named_probe_a.jsonl"
for i in 1 2; do echo '{"prompt": "12+35=", "answer": "47", "max_tokens": 1000}'; done >"$T/rys_wins_on_this_long_named_probe_b.jsonl"
"$BIN" sweep --probe "jsonl:$T/rys_wins_on_this_long_named_probe_a.jsonl" --probe "jsonl:$T/rys_wins_on_this_long_named_probe_b.jsonl" \
    --configs "rys:2,4;rys:1,3" --max-tokens 8 --out "$T/anch" >"$T/anch.out" 2>"$T/anch.err"
r=$?
grep -q "^Beats base beyond noise: rys:2,4 on jsonl:rys_wins_on_this_long_named_probe_a.jsonl@[0-9a-f]* (+1.0000 +- 0.0000)$" "$T/anch.out" || r=1
grep -q "^Probe jsonl:rys_wins_on_this_long_named_probe_b.jsonl@[0-9a-f]*: every row failed (6), nothing scored; first reason: the prompt (7 tokens) and its reply (1000) do not fit" "$T/anch.out" || r=1
grep -q "jsonl:rys_wins_on_this_long_named_probe_a.jsonl@[0-9a-f]* (3 items)" "$T/anch.out" || r=1
grep -q "probe jsonl:rys_wins_on_this_long_named_probe_a.jsonl@[0-9a-f]*: 3 item(s), replies of up to 8 tokens" "$T/anch.err" || r=1
[ "$(sed -n 's/^1  *\([^ ]*\) .*/\1/p' "$T/anch.out")" = "rys:2,4" ] || r=1
check "the ranking ends with who beats base beyond noise; the probe whose every row failed is named; item counts and whole names" $r
"$BIN" sweep --probe arith --items 24 --out "$T/anch2" >"$T/anch2.out" 2>"$T/anch2.err"
r=$?
python3 - "$T/anch2" "$T/anch2.out" "${pictures:+png}" <<'PY' || r=1
import json, re, struct, sys, zlib
d, out, png = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
cfgs = {c["config"]: c for c in json.load(open(d + "/summary.json"))["configs"]}
ranked = re.findall(r"^\d+ +(\S+) ", out, re.M)
vs = [cfgs[l]["vs_base"] for l in ranked]
assert ranked and vs == sorted(vs, reverse=True), (ranked, vs)   # ranked by the score against base
beats = [l for l, c in cfgs.items() if l != "base" and any(p["delta"] > 0 and not p["within_noise"] for p in c["probes"].values())]
assert ("No config beats base beyond noise on any probe" in out) == (not beats), beats
if png:   # the combined heatmap: each rys cell red exactly when its vs_base is above 0, blue below
    raw = open(d + "/heatmap_combined.png", "rb").read()
    w, h, depth, ctype = struct.unpack(">IIBB", raw[16:26])
    assert depth == 8 and ctype in (2, 6), (depth, ctype)
    bpp, data, at = 3 if ctype == 2 else 4, b"", 8
    while at < len(raw):
        n, kind = struct.unpack(">I4s", raw[at:at + 8])
        if kind == b"IDAT": data += raw[at + 8:at + 8 + n]
        at += 12 + n
    data, stride, rows, prev = zlib.decompress(data), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a, b, c = line[x - bpp] if x >= bpp else 0, prev[x], prev[x - bpp] if x >= bpp else 0
            pr = a + b - c
            pred = [0, a, b, (a + b) // 2, a if abs(pr - a) <= abs(pr - b) and abs(pr - a) <= abs(pr - c) else b if abs(pr - b) <= abs(pr - c) else c][f]
            line[x] = (line[x] + pred) & 255
        rows.append(line)
        prev = line
    grid = [(c["config"], int(m.group(1)), int(m.group(2))) for c in cfgs.values() if (m := re.fullmatch(r"rys:(\d+),(\d+)", c["config"]))]
    imin, jmin = min(i for _, i, _ in grid), min(j for _, _, j in grid)
    ni, nj = max(i for _, i, _ in grid) - imin + 1, max(j for _, _, j in grid) - jmin + 1
    L, R, T, B = 90, 150, 70, 80
    for label, i, j in grid:
        x, y = int(L + (j - jmin + 0.5) * (w - L - R) / nj), int(T + (i - imin + 0.5) * (h - T - B) / ni)
        px = rows[y][x * bpp:x * bpp + 3]
        red, blue = px[0] > px[2], px[2] > px[0]   # Cairo's RGB24 is written as RGB
        v = cfgs[label]["vs_base"]
        assert (v > 0) == red and (v < 0) == blue, (label, v, list(px))
PY
check "arith: ranked by the score against base; the combined heatmap red only above base, blue below; the last line agrees" $r
"$BIN" sweep --probe arith --items 8 --configs "rys:2,4" --max-tokens 2 --out "$T/mt" >/dev/null 2>"$T/mt.err"
r=$?
python3 -c "import sqlite3,sys; rs=[r for (r,) in sqlite3.connect(sys.argv[1]).execute('SELECT reply FROM results')]; assert len(rs) == 16 and max(map(len, rs)) <= 2, rs" "$T/mt/results.sqlite" || r=1
grep -q "probe arith: 8 item(s), replies of up to 2 tokens" "$T/mt.err" || r=1
for i in $(seq 120); do echo '{"prompt": "1+1=", "answer": "2"}'; done >"$T/p120.jsonl"
"$BIN" sweep --probe "jsonl:$T/p120.jsonl" --configs "rys:2,4" --max-tokens 4 --out "$T/p120" >/dev/null 2>"$T/p120.err" || r=1
grep -q "probe jsonl:p120.jsonl@[0-9a-f]*: 32 item(s) of the 120 it holds (--items 32)" "$T/p120.err" || r=1
check "--max-tokens 2 cuts every reply at 2 tokens; a 120-line file at the default --items says it runs 32 of 120" $r

# 6. errors name their cause
expect_error() {
    local name=$1 text=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qF -- "$text" "$T/err"; then echo "ok   $name"; else echo "FAIL $name (exit $rc: $(head -c 300 "$T/err"))"; fail=1; fi
}
expect_error "unknown probe" "unknown kind" "$BIN" sweep --probe trivia --out "$T/e1"
expect_error "bad range" "--i-range 5:2" "$BIN" sweep --probe arith --out "$T/e2" --i-range 5:2
expect_error "bad shard" "--shard 2/2" "$BIN" sweep --probe arith --out "$T/e3" --shard 2/2
expect_error "bad config" "'9'" "$BIN" sweep --probe arith --out "$T/e4" --configs "rys:1,3;0-2,9"
# a model is known by its content: a copy elsewhere (re-written by export) resumes the sweep, another model is refused
"$BIN" export --schedule base -o "$T/same_model" >/dev/null 2>&1
"$BIN" sweep -m "$T/same_model" --probe arith --items 12 --out "$T/a" >/dev/null 2>"$T/same.err" && grep -q "0 new rows" "$T/same.err"
check "the built-in model copied to another directory resumes its sweep" $?
"$BIN" export --schedule 0-4 -o "$T/other_model" >/dev/null 2>&1   # five of its six layers: another model
expect_error "another model in the same --out" "holds a sweep with model (config.json and tensors)" "$BIN" sweep -m "$T/other_model" --probe arith --items 12 --out "$T/a"
expect_error "other items in the same --out" "holds a sweep with items of probe arith '12 items" "$BIN" sweep --probe arith --items 6 --out "$T/a"
expect_error "another system prompt in the same --out" "holds a sweep with decoding" "$BIN" sweep --probe arith --items 12 --system "Be brief." --out "$T/a"
expect_error "another KV dtype in the same --out" "holds a sweep with kv_dtype 'f32', not 'bf16'" "$BIN" sweep --probe arith --items 12 --out "$T/a" --kv-dtype bf16
# a read-only --out is refused at once, naming it; so is a finished sweep's database that cannot be written, whose
# rows `sweep merge` still reads into a new directory. As root (which ignores permissions) these run as user nobody.
as_user=()
[ "$(id -u)" -eq 0 ] && as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
chmod 755 "$T"
mkdir -p "$T/ro" "$T/w" && chmod 555 "$T/ro" && chmod 777 "$T/w"
"$BIN" sweep --probe arith --items 2 --out "$T/ro_db" >/dev/null 2>&1
chmod 444 "$T/ro_db/results.sqlite" && chmod 777 "$T/ro_db"
if "${as_user[@]}" "$BIN" inspect >/dev/null 2>&1; then
    expect_error "a read-only --out" "--out $T/ro: cannot write there" "${as_user[@]}" "$BIN" sweep --probe arith --items 2 --out "$T/ro"
    expect_error "a sweep database that cannot be written" "ro_db/results.sqlite: cannot write it" "${as_user[@]}" "$BIN" sweep --probe arith --items 2 --out "$T/ro_db"
    chmod 555 "$T/ro_db"
    "${as_user[@]}" "$BIN" sweep merge --out "$T/w/merged" "$T/ro_db/results.sqlite" >/dev/null 2>&1 &&
        cmp -s <(rows "$T/w/merged/results.sqlite") <(rows "$T/ro_db/results.sqlite")
    check "a read-only sweep in a read-only directory merges into a writable one, every row" $?
else
    skip "read-only --out checks: $BIN cannot run as user nobody here (a directory above it is private)"
fi

# --score loglik: each row is the log-probability of the answer after the prompt, as `reprise score` gives it for the
# prompt's ids followed by the answer's (the built-in model's template is BOS + the text: `tokenize -p` gives the ids)
printf '%s\n' '{"prompt": "12+35=", "answer": "47", "match": "exact"}' '{"prompt": "8*7=", "answer": "56", "match": "exact"}' \
    '{"prompt": "31+4=", "answer": "99", "match": "numeric"}' >"$T/ll.jsonl"
"$BIN" sweep --probe "jsonl:$T/ll.jsonl" --score loglik --configs "rys:1,3" --out "$T/ll" >"$T/ll.out" 2>&1
r=$?
for sched in base rys:1,3; do
    for q in "12+35=:47" "8*7=:56" "31+4=:99"; do
        prompt=${q%%:*} answer=${q##*:}
        ids=$("$BIN" tokenize -p "$prompt" --json | tr -d '[] ')
        ans=$("$BIN" tokenize -p "$answer" --no-special --json | tr -d '[] ')
        "$BIN" score --tokens "$ids,$ans" --schedule "$sched" --json 2>/dev/null |
            python3 -c "import json,sys; d=json.load(sys.stdin); print('$sched', '$prompt', sum(d['logprobs'][-len('$ans'.split(',')):]))"
    done
done >"$T/ll.want" || r=1
python3 - "$T/ll/results.sqlite" "$T/ll.want" <<'PY' || r=1
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
got = {(label, item): score for label, item, score in db.execute(
    "SELECT c.label, r.item, r.score FROM results r JOIN configs c ON c.id = r.config")}
probes = {p for (p,) in db.execute("SELECT DISTINCT probe FROM results")}
assert len(probes) == 1 and next(iter(probes)).startswith("loglik:jsonl:"), probes
want = [l.split() for l in open(sys.argv[2])]
assert len(want) == 6 and len(got) == 6, (want, got)
prompts = ["12+35=", "8*7=", "31+4="]
for sched, prompt, ll in want:
    g = got[(sched, str(prompts.index(prompt)))]
    assert g < 0 and abs(g - float(ll)) < 1e-4, (sched, prompt, g, ll)
PY
check "--score loglik: each row is reprise score's log-probability of the answer after the prompt" $r
printf '%s' '{"1": {"prompt": "Tom lost his ball.\nSad: <score>\nHappy: <score>\nAngry: <score>\nCalm: <score>\n",' \
    '"reference_answer": {"emotion1": "Sad", "emotion1_score": 5, "emotion2": "Happy", "emotion2_score": 0, "emotion3": "Angry",' \
    '"emotion3_score": 3, "emotion4": "Calm", "emotion4_score": 2}}}' >"$T/eq_small.json"
expect_error "--score loglik on eq" "has no reference answer text" "$BIN" sweep --probe "eq:$T/eq_small.json" --score loglik --out "$T/e5"
printf '%s\n' '{"prompt": "1+1=", "answer": "[0-9]+", "match": "regex"}' >"$T/re.jsonl"
expect_error "--score loglik on a regex answer" "matched by a regex" "$BIN" sweep --probe "jsonl:$T/re.jsonl" --score loglik --out "$T/e6"
expect_error "bad --score" "--score best: gen or loglik" "$BIN" sweep --probe arith --score best --out "$T/e7"
expect_error "--confirm without --confirm-probe" "go together" "$BIN" sweep --probe arith --out "$T/e8" --confirm 3
expect_error "a number with trailing text" "--batch: '64x'" "$BIN" sweep --probe arith --out "$T/e11" --batch 64x
expect_error "zero items" "--items: '0'" "$BIN" sweep --probe arith --out "$T/e12" --items 0
# probe names that need JSON escaping, and two that share their first 70 bytes: summary.json parses, each has a heatmap
L="$T/probes"
F1='a "quoted" probe file whose name is long enough to share more than seventy bytes with its sibling, one.jsonl'
F2='a "quoted" probe file whose name is long enough to share more than seventy bytes with its sibling, two.jsonl'
mkdir -p "$L"
printf '%s\n' '{"prompt": "1+2=", "answer": "3", "match": "exact"}' '{"prompt": "2+2=", "answer": "4", "match": "exact"}' >"$L/$F1"
printf '%s\n' '{"prompt": "1+3=", "answer": "4", "match": "exact"}' '{"prompt": "2+3=", "answer": "5", "match": "exact"}' >"$L/$F2"
"$BIN" sweep --probe "jsonl:$L/$F1" --probe "jsonl:$L/$F2" --configs "rys:1,3" --score loglik --out "$T/names" >/dev/null 2>&1
r=$?
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['probes']) == 2 and all('\"quoted\"' in p for p in d['probes']), d['probes']" "$T/names/summary.json" || r=1
[ -z "$pictures" ] || [ "$(ls "$T/names"/heatmap_*.png | wc -l)" -eq 3 ] || r=1
check "probe names with quotes in summary.json; two long names sharing their first 100 bytes stay two probes, a heatmap each" $r
# a probe is known by its content: the same file by a relative path, then an absolute one, then a copy in another
# directory resumes the same rows; shards run from different directories merge into one probe
cp "$L/$F1" "$T/copy.jsonl"
(cd "$L" && "$BIN" sweep --probe "jsonl:$F1" --configs "rys:1,3" --score loglik --out "$T/byname" >/dev/null 2>&1)
r=$?
"$BIN" sweep --probe "jsonl:$L/$F1" --configs "rys:1,3" --score loglik --out "$T/byname" >/dev/null 2>"$T/byname.err" || r=1
grep -q " 0 new rows (4 were already done)" "$T/byname.err" || r=1
mkdir -p "$T/elsewhere" && cp "$L/$F1" "$T/elsewhere/$F1"
"$BIN" sweep --probe "jsonl:$T/elsewhere/$F1" --configs "rys:1,3" --score loglik --out "$T/byname" >/dev/null 2>"$T/byname2.err" || r=1
grep -q " 0 new rows (4 were already done)" "$T/byname2.err" || r=1
(cd "$L" && "$BIN" sweep --probe "jsonl:$F1" --configs "rys:1,3;rys:2,4" --score loglik --shard 0/2 --out "$T/sh0" >/dev/null 2>&1) || r=1
(cd "$T/elsewhere" && "$BIN" sweep --probe "jsonl:./$F1" --configs "rys:1,3;rys:2,4" --score loglik --shard 1/2 --out "$T/sh1" >/dev/null 2>&1) || r=1
"$BIN" sweep merge --out "$T/shm" "$T/sh0/results.sqlite" "$T/sh1/results.sqlite" >/dev/null 2>&1 || r=1
[ "$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(DISTINCT probe) FROM results').fetchone()[0])" "$T/shm/results.sqlite")" = 1 ] || r=1
check "a probe file by a relative path, an absolute one, a copy elsewhere, and shards from two directories: one probe" $r
expect_error "--prune-by-profile of a repeated schedule" "the grid needs one of the base schedule" "$BIN" sweep --probe arith --out "$T/e14" --prune-by-profile "$T/prof_rys"
expect_error "--prune-by-profile with --i-range" "give neither" "$BIN" sweep --probe arith --out "$T/e15" --prune-by-profile "$T/prof" --i-range 0:2
expect_error "--prune-by-profile of no profile" "profile.json" "$BIN" sweep --probe arith --out "$T/e16" --prune-by-profile "$T/nothing"
expect_error "--search halving with --shard, no --exchange" "its shards need --exchange DIR" "$BIN" sweep --probe arith --out "$T/e9" --search halving --shard 0/2
expect_error "--search beam with --shard, no --exchange" "beam decides each step" "$BIN" sweep --probe arith --out "$T/e10" --search beam --shard 0/2
expect_error "--exchange on a grid" "--exchange DIR goes with --shard K/N and a --search" "$BIN" sweep --probe arith --out "$T/e10b" --shard 0/2 --exchange "$T/e10x"
expect_error "--search annealing" "--search annealing: grid, halving, beam or surrogate" "$BIN" sweep --probe arith --out "$T/e11" --search annealing
expect_error "a seed over the budget" "21 configs, more than --budget 5" "$BIN" sweep --probe arith --out "$T/e12" --search beam --budget 5
expect_error "--max-passes 1" "--max-passes: '1' is not" "$BIN" sweep --probe arith --out "$T/e13" --search surrogate --max-passes 1

# 7. NaN logits fail the rows of the configs that meet them, never the sweep: a copy of the built-in model with NaN
# weights in layer 2; "0-1,3-5" skips layer 2 and is scored, base and rys:1,3 fail with the reason
"$BIN" export --schedule base -o "$T/nan_model" >/dev/null 2>&1
python3 - "$T/nan_model/model.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "r+b")
n = struct.unpack("<Q", f.read(8))[0]
t = json.loads(f.read(n))["model.layers.2.mlp.down_proj.weight"]
f.seek(8 + n + t["data_offsets"][0])
f.write(struct.pack("<f", float("nan")) * 64)
PY
"$BIN" sweep -m "$T/nan_model" --probe arith --items 4 --configs "0-1,3-5;rys:1,3" --out "$T/nan" >"$T/nan.out" 2>"$T/nan.err"
r=$?
python3 - "$T/nan/summary.json" "$T/nan/results.sqlite" <<'PY' || r=1
import json, sqlite3, sys
f = json.load(open(sys.argv[1]))["failures"]
assert len(f) == 8 and {x["config"] for x in f} == {"base", "rys:1,3"}, f
assert all(x["reason"].startswith("non-finite logits (NaN or infinity)") for x in f), f
n = sqlite3.connect(sys.argv[2]).execute("SELECT count(*) FROM results r JOIN configs c ON c.id = r.config WHERE c.label = '0-1,3-5'").fetchone()[0]
assert n == 4, n
PY
grep -q "no scored item" "$T/nan.out" || r=1
check "NaN logits: the configs that meet them fail with the reason, the others are scored, the sweep completes" $r

S=$SHARED/models/stories260K
if [ -f "$S/config.json" ] && [ -f "$SHARED/probes/rys/math_16.json" ]; then
    printf '%s\n' '{"prompt": "Once upon a time", "answer": ", there", "match": "exact"}' \
        '{"prompt": "Lily and Tom", "answer": "\\w+", "match": "regex"}' >"$T/custom.jsonl"
    printf '%s\n' '{"prompt": "Once upon a time, there was a little", "options": [" girl", " banana"], "answer": 0}' \
        '{"prompt": "The sun was", "options": [" shining", " purple"], "answer": 0}' >"$T/mc.jsonl"
    # RYS's EQ prompts (over 1500 tokens) do not fit stories260K's 512 positions: a short one in the same format
    printf '%s' '{"1": {"prompt": "Tom lost his ball. First pass scores:\nSad: <score>\nHappy: <score>\nAngry: <score>\nCalm: <score>\n",' \
        '"reference_answer": {"emotion1": "Sad", "emotion1_score": 5, "emotion2": "Happy", "emotion2_score": 0, "emotion3": "Angry",' \
        '"emotion3_score": 3, "emotion4": "Calm", "emotion4_score": 2}}}' >"$T/eq.json"
    # an item that cannot run is a failed row with its reason; the sweep goes on, and a rerun does not retry it
    "$BIN" sweep -m "$S" --probe "eq:$SHARED/probes/rys/eq_16.json" --items 2 --configs "rys:1,3" --out "$T/eqlong" \
        >/dev/null 2>"$T/eqlong.err"
    r=$?
    python3 - "$T/eqlong/summary.json" <<'PY' || r=1
import json, sys
f = json.load(open(sys.argv[1]))["failures"]
assert len(f) == 4 and all("do not fit the context of 512" in x["reason"] for x in f), f
assert {x["config"] for x in f} == {"base", "rys:1,3"}, f
PY
    grep -q "4 rows failed and have no score" "$T/eqlong.err" || r=1
    # each item that cannot run is named before the first config runs
    [ "$(grep -n "item 1 cannot run: the prompt (1531 tokens) and its reply (96) do not fit the context of 512" "$T/eqlong.err" | cut -d: -f1)" \
        -lt "$(grep -n "configs (base included)" "$T/eqlong.err" | cut -d: -f1)" ] || r=1
    grep -q "item 2 cannot run" "$T/eqlong.err" || r=1
    "$BIN" sweep -m "$S" --probe "eq:$SHARED/probes/rys/eq_16.json" --items 2 --configs "rys:1,3" --out "$T/eqlong" >/dev/null 2>"$T/eqlong2.err"
    grep -q "0 new rows (4 were already done)" "$T/eqlong2.err" || r=1
    "$BIN" sweep -m "$S" --probe "eq:$SHARED/probes/rys/eq_16.json" --items 2 --configs "rys:1,3" --out "$T/eqlong" \
        --retry-failed >/dev/null 2>"$T/eqlong3.err"
    grep -q -- "--retry-failed: 4 failed rows will run again" "$T/eqlong3.err" || r=1
    check "prompts longer than the context: failed rows with their reason, the sweep completes, not retried unless asked" $r
    "$BIN" sweep -m "$S" --probe "math:$SHARED/probes/rys/math_16.json" --probe "eq:$T/eq.json" \
        --probe "jsonl:$T/custom.jsonl" --probe "mc:$T/mc.jsonl" --items 3 --configs "rys:1,3;rys:2,4;0-1,3-4" \
        --out "$T/st" >"$T/st.out" 2>"$T/st.err"
    r=$?
    python3 - "$T/st/results.sqlite" <<'PY' || r=1
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = dict(db.execute("SELECT probe, count(*) FROM results GROUP BY probe").fetchall())
assert len(n) == 4 and all(v == 4 * (3 if p.startswith("math") else 1 if p.startswith("eq") else 2) for p, v in n.items()), n
base = dict(db.execute("SELECT r.probe, avg(r.score) FROM results r JOIN configs c ON c.id = r.config WHERE c.label = 'base' GROUP BY r.probe"))
mc = [p for p in base if p.startswith("mc:")][0]; js = [p for p in base if p.startswith("jsonl:")][0]
assert base[mc] == 1.0 and base[js] == 1.0, base   # stories continues "Once upon a time" with ", there", prefers " girl"
PY
    [ -z "$pictures" ] || [ -s "$T/st/heatmap_combined.png" ] || r=1
    check "stories260K: RYS math and EQ files, jsonl and mc probes, explicit configs" $r
    "$BIN" profile -m "$S" -p "Once upon a time, there was a girl" --out "$T/st_prof" >/dev/null 2>&1
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); j['model_fingerprint']='0123456789abcdef'; json.dump(j, open(sys.argv[1], 'w'))" "$T/st_prof/profile.json"
    expect_error "stories260K: --prune-by-profile of another model" "a profile of another model" "$BIN" sweep -m "$S" --probe arith \
        --items 2 --out "$T/e17" --prune-by-profile "$T/st_prof"
    # BIG-Bench Hard: a seeded subset of a logical deduction task, generated and by the option letters' log-likelihood;
    # each loglik row is 1 exactly when `reprise score` gives the right letter the highest log-probability
    B=$SHARED/probes/bbh/logical_deduction_three_objects.json
    "$BIN" sweep -m "$S" --probe "bbh:$B" --items 6 --configs "rys:1,3" --out "$T/bbh" >/dev/null 2>&1 &&
        "$BIN" sweep -m "$S" --probe "bbh:$B" --items 6 --configs "rys:1,3" --score loglik --out "$T/bbhll" >/dev/null 2>&1
    r=$?
    python3 - "$BIN" "$S" "$T/bbh/results.sqlite" "$T/bbhll/results.sqlite" <<'PY' || r=1
import json, sqlite3, subprocess, sys
BIN, S, gen, ll = sys.argv[1:]
n = sqlite3.connect(gen).execute("SELECT count(*) FROM results").fetchone()[0]
assert n == 12, n
db = sqlite3.connect(ll)
items = {i: (p, int(a)) for i, p, a in db.execute("SELECT item, prompt, answer FROM items")}
assert len(items) == 6 and sorted(items) != [str(k) for k in range(6)], sorted(items)   # a subset, not the first six
def ids(text, special):
    args = [BIN, "tokenize", "-m", S, "-p", text, "--json"] + ([] if special else ["--no-special"])
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
for (label, sched) in (("base", "base"), ("rys:1,3", "rys:1,3")):
    for item, score in db.execute("SELECT r.item, r.score FROM results r JOIN configs c ON c.id = r.config WHERE c.label = ?", (label,)):
        prompt, right = items[item]
        letters = [l[:3] for l in prompt.split("\n") if l[:1] == "(" and l[2:3] == ")"]
        lls = []
        for opt in letters:
            p, o = ids(prompt, True), ids(opt, False)
            out = subprocess.run([BIN, "score", "-m", S, "--tokens", ",".join(map(str, p + o)), "--schedule", sched, "--json"],
                                 capture_output=True, text=True, check=True).stdout
            lls.append(sum(json.loads(out)["logprobs"][-len(o):]))
        want = 1.0 if max(range(len(lls)), key=lambda k: lls[k]) == right else 0.0
        assert score == want, (label, item, score, lls, right)
PY
    check "stories260K: BBH logical deduction, generated and by the option letters' log-likelihood (each row as reprise score ranks the letters)" $r
    search_checks st-beam 25 -m "$S" --probe "math:$SHARED/probes/rys/math_16.json" --items 4 --score loglik --search beam --beam 3
    check "stories260K: --search beam on RYS math by log-likelihood, in budget, resumed after SIGKILL to the same rows" $?
    search_checks st-surrogate 30 -m "$S" --probe "math:$SHARED/probes/rys/math_16.json" --items 4 --score loglik --search surrogate
    check "stories260K: --search surrogate on RYS math by log-likelihood, in budget, resumed after SIGKILL to the same rows" $?
    # halving: 15 configs on 2 items, the better 8 on 4, the better 4 on all 8; killed half-way and resumed, the same
    # rows; and in 2 shards, each holding those rows
    hs=(-m "$S" --probe "math:$SHARED/probes/rys/math_16.json" --items 8 --score loglik --search halving --halving-items 2)
    "$BIN" sweep "${hs[@]}" --out "$T/st-hv" >/dev/null 2>&1
    r=$?
    python3 - "$T/st-hv/results.sqlite" <<'PY' || r=1
import sqlite3, sys
per = dict(sqlite3.connect(sys.argv[1]).execute("SELECT c.label, count(*) FROM results r JOIN configs c ON c.id = r.config GROUP BY c.label"))
sizes = sorted(v for l, v in per.items() if l != "base")
assert per["base"] == 8 and sizes == [2] * 7 + [4] * 4 + [8] * 4, per
PY
    kill_after_rows 30 "$T/st-hk/results.sqlite" "$BIN" sweep "${hs[@]}" --out "$T/st-hk"
    "$BIN" sweep "${hs[@]}" --out "$T/st-hk" >/dev/null 2>&1 || r=1
    cmp -s <(rows "$T/st-hk/results.sqlite") <(rows "$T/st-hv/results.sqlite") || r=1
    timeout 300 "$BIN" sweep "${hs[@]}" --shard 1/2 --exchange "$T/st-hx" --out "$T/st-hs1" >/dev/null 2>&1 &
    other=$!
    timeout 300 "$BIN" sweep "${hs[@]}" --shard 0/2 --exchange "$T/st-hx" --out "$T/st-hs0" >/dev/null 2>&1 || r=1
    wait $other || r=1
    for k in 0 1; do cmp -s <(rows "$T/st-hs$k/results.sqlite") <(rows "$T/st-hv/results.sqlite") || r=1; done
    check "stories260K: --search halving on RYS math, 15 -> 8 -> 4 configs; killed and resumed, and in 2 shards, the same rows" $r
else
    skip "stories260K sweep: $S or the probe files are absent"
fi
if [ $fail -eq 0 ] && [ $skipped -gt 0 ]; then echo "$skipped part(s) skipped"; exit 77; fi
exit $fail
