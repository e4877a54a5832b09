#!/usr/bin/env python3
"""Speed gates of the forward's GEMM (kernels/gemm_mma.cu) at every decode weight of the three model shapes issue 29
names - bench_gpu's 0.79B model, Llama-3-8B, Qwen2-72B over two GPUs - counted under the emulation's perf build
(counts, never times): bench_gpu_emu's GEMM table at 1 and 16 rows, one CTA in 64 of grids of 256 CTAs or more.
Each decode GEMM must: run at least 2 CTAs for each of the 132 SMs, and fit 2 on an SM (ptxas's registers and shared
memory); read at least 90% of its bytes in 16-byte loads; read each weight byte once per row block (its loads within
3% of the weights once a row block - from 9 rows a feature block's two row blocks are neighbours in the grid, so the
second reads from L2 - the activations once per 64 features, the K segments' partials once where no CTA was left out); keep at least 32 KB of weights
in flight on each SM (its threads' cp.async copies at their waits, times the threads resident on an SM).
usage: test_gemm_gates.py BENCH_GPU_EMU"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import attempt, check, finish  # noqa: E402

BENCH = sys.argv[1]
SMS = 132
MMA_VARIANT = 3   # bench_gpu's number for gemm_mma.cu (engine/backends/cuda/timing.cu)
GATES = {"CTAs per SM in the grid": 2, "CTAs resident per SM": 2, "16-byte share": 0.90,
         "loads over the weights read once": 1.03, "KB of copies in flight per SM": 32}

path = tempfile.mktemp(prefix="reprise-gemm-gates-", suffix=".jsonl")
env = dict(os.environ, REPRISE_EMU_PERF_SAMPLE="64", REPRISE_EMU_PERF_SAMPLE_FROM="256")
out = subprocess.run([BENCH, "-m", "all", "--gemm", "1", "--gemm-rows", "1,16", "--gemm-variant", str(MMA_VARIANT),
                      "--counters", path], capture_output=True, text=True, timeout=1800, env=env)
check(out.returncode == 0, "bench_gpu_emu counts the GEMM at the three shapes' decode weights (%s)" % out.stderr.strip()[-300:])
launches = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
launches = [r for r in launches if r.get("launch") == "counters"]
if os.path.exists(path):
    os.unlink(path)
# the table's rows, in the order of the launches: shape title, then gemm R N K variant CTAs /SM ...
rows, title = [], None
for line in out.stdout.splitlines():
    if line.startswith("PREDICTED"):
        title = line.split("the GEMM alone, ")[-1].split(" (")[0]
    m = re.match(r"(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s", line)
    if m and title:
        rows.append(dict(shape=title, gemm=m.group(1), R=int(m.group(2)), N=int(m.group(3)), K=int(m.group(4)),
                         ctas=int(m.group(6)), per_sm=int(m.group(7))))
check(len(rows) == 30 and len(launches) == len(rows),
      "30 decode GEMMs counted (3 shapes, 5 weights, 2 row counts): %d rows, %d launches" % (len(rows), len(launches)))


def each(test):
    bad = []
    for row, c in zip(rows, launches):
        msg = test(row, c, c["ctas"] / c["ctas_run"])
        if msg:
            bad.append("%s %s (%d x %d) at %d rows: %s" % (row["shape"], row["gemm"], row["N"], row["K"], row["R"], msg))
    assert not bad, "; ".join(bad[:4]) + (" (and %d more)" % (len(bad) - 4) if len(bad) > 4 else "")


def grid(row, c, scale):
    if c["ctas"] < GATES["CTAs per SM in the grid"] * SMS:
        return "%d CTAs" % c["ctas"]
    if row["per_sm"] < GATES["CTAs resident per SM"]:
        return "%d CTAs fit an SM" % row["per_sm"]


def wide(row, c, scale):
    share = c["wide_bytes"] / max(1, c["load_bytes"])
    if share < GATES["16-byte share"]:
        return "%.3f of the bytes in 16-byte loads" % share


def read_once(row, c, scale):
    N, K, R = row["N"], row["K"], row["R"]
    S = c["grid"][1]   # a decode launch's grid: (feature blocks x row blocks, K segments)
    row_blocks = c["grid"][0] // ((N + 63) // 64)   # from 9 rows, 2: neighbours in the grid, L2 serves the second
    # the partials are read by the last CTA of a feature block to finish: under sampling, whose other CTAs do not run,
    # none is ever last
    sampled = c["ctas_run"] < c["ctas"]
    want = row_blocks * 2 * N * K + (N + 63) // 64 * R * K * 2 + (S * R * N * 4 if S > 1 and not sampled else 0)
    ratio = c["load_bytes"] * scale / want
    if not 1 / GATES["loads over the weights read once"] <= ratio <= GATES["loads over the weights read once"]:
        return "loads %.3f x the weights read once" % ratio


def in_flight(row, c, scale):
    copies = c["async_peak"] / max(1, c["async_threads"])   # a thread's copies in flight at a wait (16 bytes each)
    threads = c["block"][0] * c["block"][1] * c["block"][2]
    resident = min(row["per_sm"], c["ctas"] / SMS)
    kb = copies * 16 * threads * resident / 1024
    if kb < GATES["KB of copies in flight per SM"]:
        return "%.0f KB in flight on an SM (%.1f copies a thread)" % (kb, copies)


attempt("every decode GEMM: at least %d CTAs per SM in its grid and %d resident on an SM"
        % (GATES["CTAs per SM in the grid"], GATES["CTAs resident per SM"]), lambda: each(grid))
attempt("every decode GEMM reads at least %.0f%% of its bytes in 16-byte loads" % (100 * GATES["16-byte share"]),
        lambda: each(wide))
attempt("every decode GEMM reads each weight byte once per row block (loads within %.0f%% of the weights once a row block, "
        "activations and partials once)"
        % (100 * (GATES["loads over the weights read once"] - 1)), lambda: each(read_once))
attempt("every decode GEMM keeps at least %d KB of copies in flight on each SM" % GATES["KB of copies in flight per SM"],
        lambda: each(in_flight))
finish()
