#!/usr/bin/env python3
"""Self-speculative decoding through the command line: generate and chat with --draft print the text and ids of
decoding without it (greedy), on the CPU backend and on the emulated CUDA backend (one GPU and --tp 2); the draft's
acceptance is printed; a bad --draft or --draft-tokens is refused by name; `sweep --score acceptance` ranks drafts
(rows whose scores follow from their counts, resumed, other targets and K kept apart, --timed, the beam and
surrogate searches over skipped blocks).
usage: test_speculative_cli.py REPRISE FIXTURES_DIR SHARED_DIR full|quick [REPRISE_EMU]
quick (under the sanitizers): the emulated CUDA backend on one GPU and the built-in model alone."""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish  # noqa: E402

BIN, FIX, SHARED = sys.argv[1:4]
QUICK = sys.argv[4] == "quick"
EMU = sys.argv[5] if len(sys.argv) > 5 else None
STORIES = os.path.join(SHARED, "models", "stories260K")


def run(binary, *args, stdin=None):
    p = subprocess.run([binary, *args], capture_output=True, text=True, input=stdin, timeout=600)
    return p.returncode, p.stdout, p.stderr


def same_with_draft(binary, label, base_args, drafts, backend=()):
    """generate with each draft (K adapted, and K = 3) prints what generate without one prints."""
    rc, want, e = run(binary, "generate", *base_args, *backend)
    if rc != 0 or not want.strip():
        check(False, "%s: generate without a draft failed (%s)" % (label, e[-300:]))
        return
    for d in drafts:
        for k in ((), ("--draft-tokens", "3")):
            rc, got, e = run(binary, "generate", *base_args, *backend, "--draft", d, *k)
            said = re.search(r"draft of \d+ visits: (\d+) steps, (\d+) tokens proposed, (\d+) accepted", e)
            check(rc == 0 and got == want and said and int(said.group(2)) > 0,
                  "%s, draft %s%s: the same output as without a draft, acceptance said (%s)" %
                  (label, d, " K 3" if k else "", said.group(0) if said else e[-200:]))


GREEDY = ("--temp", "0", "--ignore-eos")
runs = [(BIN, (), "cpu")]
if EMU:   # (the emulation is slow: on it, one draft a model past the built-in one, and --tp 2 on the built-in model)
    runs += [(EMU, ("--backend", "cuda"), "emulated cuda")] + ([] if QUICK else [(EMU, ("--backend", "cuda", "--tp", "2"),
                                                                                   "emulated cuda --tp 2")])
for binary, backend, where in runs:
    same_with_draft(binary, "built-in model, text, " + where, ("-p", "12+35=", "-n", "40", *GREEDY), ["0-3,5", "0,5", "base"],
                    backend)
    if binary == EMU and (QUICK or "--tp" in backend):
        continue
    few = (lambda drafts: drafts[:1]) if binary == EMU else (lambda drafts: drafts)
    same_with_draft(binary, "built-in model under rys:2,4, " + where,
                    ("-p", "7+8=", "-n", "30", "--schedule", "rys:2,4", *GREEDY), ["0-2,4,5"], backend)
    same_with_draft(binary, "qwen3 fixture, ids, " + where,
                    ("-m", os.path.join(FIX, "qwen3"), "--tokens", "1,5,9,13", "-n", "30", *GREEDY), few(["0,2,3", "3"]), backend)
    if os.path.isdir(STORIES):
        same_with_draft(binary, "stories260K, text, " + where,
                        ("-m", STORIES, "-p", "Once upon a time", "-n", "60", *GREEDY), ["0,1,2,4"], backend)

# chat: the same replies turn after turn (the draft follows the conversation's cache)
turns = "1+2=\n30+12=\n7+7=\n"
rc, want, e = run(BIN, "chat", "--temp", "0", stdin=turns)
rc2, got, e2 = run(BIN, "chat", "--temp", "0", "--draft", "0-3,5", stdin=turns)
check(rc == 0 and rc2 == 0 and want and got == want, "chat with --draft gives chat's replies (%s)" % e2[-200:])

# bad input: named
for args, text in [(("--draft", "0-2,9"), "--draft"), (("--draft", "rys:"), "--draft"),
                   (("--draft", "0,1", "--draft-tokens", "17"), "--draft-tokens"),
                   (("--draft", "0,1", "--draft-tokens", "0"), "--draft-tokens")]:
    rc, o, e = run(BIN, "generate", "-p", "1+1=", "-n", "4", *args)
    check(0 < rc < 128 and text in e and not o, "generate %s is refused naming %s (%s)" % (" ".join(args), text, e.strip()[-160:]))

# sweep --score acceptance: the grid's blocks skipped (--repeat 0), each a draft for the target
T = tempfile.mkdtemp(prefix="reprise-spec-")


def rows(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT c.label, r.probe, r.item, r.score, r.reply FROM results r JOIN configs c ON c.id = r.config "
                         "ORDER BY 1, 2, 3").fetchall()


def visits(label, n_layers=6):
    if label == "base":
        return n_layers
    skipped = sum(int(j) - int(i) for i, j in re.findall(r"(\d+),(\d+),0", label))
    return n_layers - skipped


def scores_follow_counts(rs, target_visits):
    bad = []
    for label, probe_key, item, score, text in rs:
        m = re.match(r"(\d+) of (\d+) proposals accepted in (\d+) speculative steps", text or "")
        if not m:
            bad.append((label, text))
            continue
        a, p, st = map(int, m.groups())
        want = (a + st) * target_visits / (p * visits(label) + st * target_visits) if st else 1.0
        if abs(score - want) > 1e-9:
            bad.append((label, item, score, want))
    return bad


SWEEP = ("sweep", "--probe", "arith", "--items", "6", "--score", "acceptance", "--repeat", "0", "-t", "2")
rc, o, e = run(BIN, *SWEEP, "--out", T + "/a")
got = rows(T + "/a/results.sqlite") if rc == 0 else []
check(rc == 0 and len(got) == 21 * 6 and {r[1] for r in got} == {"accept[base,0]:arith"} and
      "rys:4,6,0" in o and not scores_follow_counts(got, 6),
      "sweep --score acceptance: a row per (draft, item), each score (accepted + steps) x T / (proposed x D + steps x T) "
      "of its counts (%s)" % (scores_follow_counts(got, 6)[:3] or e[-300:]))
check(all(abs(r[3] - 1) < 1e-12 for r in got if r[0] == "base"), "the target's own schedule as the draft scores 1 (no gain)")
best = re.search(r"^1 +(\S+)", o, re.M)
check(best is not None, "the ranking names the best draft: %s" % (best.group(1) if best else o[-300:]))
rc, o, e = run(BIN, *SWEEP, "--out", T + "/a")
check(rc == 0 and "0 new rows (126 were already done)" in e, "the same command resumes: nothing runs again (%s)" % e[-200:])
rc, o, e = run(BIN, *SWEEP, "--out", T + "/a", "--target", "rys:2,4", "--draft-tokens", "3")
other = [r for r in rows(T + "/a/results.sqlite") if r[1] == "accept[rys:2,4,3]:arith"]
check(rc == 0 and len(other) == 126 and not scores_follow_counts(other, 8),
      "--target rys:2,4 --draft-tokens 3: rows of their own (accept[rys:2,4,3]:arith), scored against 8 visits")
rc, o, e = run(BIN, *SWEEP, "--out", T + "/t", "--timed", "--i-range", "3:5", "--j-range", "4:6")
timed = rows(T + "/t/results.sqlite") if rc == 0 else []
check(rc == 0 and timed and all(r[1] == "accept[base,0,timed]:arith" and r[3] > 0 for r in timed),
      "--timed: measured speed-ups, rows apart (%s)" % e[-200:])
for search in ("beam", "surrogate"):
    rc, o, e = run(BIN, *SWEEP, "--out", T + "/" + search, "--search", search, "--budget", "28")
    labels = {r[0] for r in rows(T + "/" + search + "/results.sqlite")} if rc == 0 else set()
    check(rc == 0 and len(labels) == 29 and any("+" in l for l in labels) and all(l == "base" or l.endswith(",0") or ",0+" in l
                                                                                   for l in labels),
          "--search %s proposes drafts beyond the grid, skipped blocks alone (%s)" % (search, sorted(labels)[-3:]))
for args, text in [(("--timed",), "--timed"), (("--score", "acceptance", "--confirm", "2", "--confirm-probe", "arith"), "--confirm"),
                   (("--score", "acceptance", "--target", "0-9"), "--target")]:
    rc, o, e = run(BIN, "sweep", "--probe", "arith", "--items", "2", "--out", T + "/bad", *args)
    check(0 < rc < 128 and text in e, "sweep %s is refused naming %s (%s)" % (" ".join(args), text, e.strip()[-160:]))
shutil.rmtree(T, ignore_errors=True)

finish()
