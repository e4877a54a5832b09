#!/usr/bin/env python3
"""reprise bench (offline): every output format parses and holds llama-bench's fields and reprise's, figures are
positive, -r gives that many samples, schedules sit side by side, --gpu prints rooflines alone, bad input is refused.
Timing values are never compared with anything. usage: test_bench.py REPRISE"""
import csv
import io
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish  # noqa: E402

REPRISE = sys.argv[1]


def bench(*args):
    return subprocess.run([REPRISE, "bench", *args], capture_output=True, text=True, timeout=600)


FIELDS = {"n_prompt", "n_gen", "n_depth", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "schedule", "visits",
          "backend", "tp", "n_seqs", "roofline_ts", "roofline_pct", "time_vs_base", "p50_ms", "p90_ms", "p99_ms"}
common = ["-p", "8", "-n", "4", "-pg", "4,2", "-d", "0,8", "-b", "1,2", "-r", "3", "--schedule", "base;rys:2,4", "-t", "2"]

out = bench(*common, "-o", "json")
check(out.returncode == 0, "json: runs (%s)" % out.stderr[-300:])
rows = json.loads(out.stdout)
check(len(rows) == 2 * 2 * 2 * 3, "json: a row per schedule x depth x sequences x test: %d" % len(rows))
check(all(FIELDS <= set(r) for r in rows), "json: every row holds the fields")
check(all(len(r["samples_ns"]) == 3 and r["avg_ns"] > 0 and r["avg_ts"] > 0 for r in rows), "json: -r 3 gives 3 samples, figures positive")
check({r["test"] for r in rows} == {"pp8", "tg4", "pp4+tg2", "pp8 @ d8", "tg4 @ d8", "pp4+tg2 @ d8"}, "json: llama-bench's test names")
check(all(r["visits"] == (8 if r["schedule"] == "rys:2,4" else 6) for r in rows), "json: visits per schedule")
check(all(r["time_vs_base"] == 1 for r in rows if r["schedule"] == "base") and
      all(r["time_vs_base"] > 0 for r in rows), "json: time vs base (base itself 1)")
check(all(r["roofline_ts"] > 0 and r["roofline_pct"] > 0 for r in rows), "json: a roofline beside every figure")
check(all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in rows if r["n_gen"]), "json: generation percentiles")

out = bench(*common[:2], "-r", "2", "-o", "jsonl")
lines = [json.loads(l) for l in out.stdout.splitlines()]
check(out.returncode == 0 and len(lines) == 1 and FIELDS <= set(lines[0]) and len(lines[0]["samples_ns"]) == 2, "jsonl: an object a line")

out = bench("-p", "8", "-n", "4", "-r", "2", "-o", "csv")
table = list(csv.DictReader(io.StringIO(out.stdout)))
check(out.returncode == 0 and len(table) == 2 and FIELDS <= set(table[0]) and
      all(float(r["avg_ts"]) > 0 and len(r["samples_ns"].split(";")) == 2 for r in table), "csv: a header and a row per test")

out = bench("-p", "8", "-n", "4", "-r", "2", "--schedule", "base;0-3,2-5")
md = [l for l in out.stdout.splitlines() if l.startswith("| ")]
check(out.returncode == 0 and len(md) == 2 + 4 and "| 0-3,2-5 | 8 |" in out.stdout and "roofline" in md[0] and "bandwidth" in out.stdout,
      "md (default): a table with the schedules side by side, the measured bandwidth above it")

out = bench("--gpu", "h100", "-p", "16", "-n", "8", "--schedule", "base;rys:2,4", "-o", "json")
rows = json.loads(out.stdout[out.stdout.index("["):])
check(out.returncode == 0 and len(rows) == 4 and all(r["roofline_ts"] > 0 and r["samples_ns"] == [] for r in rows),
      "--gpu h100: rooflines alone, nothing measured")
slower = {r["test"]: r["roofline_ts"] for r in rows if r["schedule"] == "rys:2,4"}
check(all(slower[r["test"]] < r["roofline_ts"] for r in rows if r["schedule"] == "base"), "a repeated block lowers the roofline")

# --draft: each generation test again with the draft, beside its row, with the draft's counters (greedy: the same ids)
out = bench("-p", "8", "-n", "12", "-pg", "4,6", "-r", "2", "--schedule", "base;rys:2,4", "--draft", "0-3,5", "--draft-tokens", "3",
            "-o", "json")
rows = json.loads(out.stdout) if out.returncode == 0 else []
drafted = [r for r in rows if "draft" in r]
check(out.returncode == 0 and len(rows) == 2 * 5 and len(drafted) == 4 and
      all(r["schedule"].endswith(" + draft 0-3,5") and r["draft_proposed"] > 0 and
          0 <= r["draft_accepted"] <= r["draft_proposed"] and r["draft_steps"] > 0 and
          abs(r["draft_acceptance"] - r["draft_accepted"] / r["draft_proposed"]) < 1e-6 and r["draft_ids_per_step"] >= 1 and
          r["time_vs_base"] > 0 and r["p50_ms"] > 0 for r in drafted),
      "--draft: a drafted row after each generation test's, with its acceptance and ids a step (%s)" % out.stderr[-200:])
order = [r["schedule"] for r in rows]
check(order[:5] == ["base", "base", "base + draft 0-3,5", "base", "base + draft 0-3,5"], "--draft: each drafted row right after its own: %s" % order[:5])
out = bench("-n", "4", "-r", "1", "--draft", "0-9")
check(out.returncode != 0 and "--draft" in out.stderr, "refused: --draft 0-9 (%s)" % out.stderr.strip()[-120:])

for args, words in [(["-p", "100"], "max_position_embeddings 64"), (["-p", "x"], "not a comma-separated list"),
                    (["--schedule", "base;0-9"], "layer"), (["-o", "xml"], "md, csv, json or jsonl"), (["--gpu", "v100"], "h100, h200 or a100"),
                    (["-pg", "4"], "not N,M"), (["--frobnicate", "1"], "unknown option")]:
    out = bench(*args)
    check(out.returncode != 0 and words in out.stderr and not out.stdout.strip(), "refused: %s: %s" % (" ".join(args), out.stderr.strip()[-120:]))

finish()
