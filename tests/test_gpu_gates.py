#!/usr/bin/env python3
"""Speed gates of the CUDA backend's decode step, counted under the emulation's perf build (counts, never times):
bench_gpu_emu counts one decode step of bench_gpu's 0.79B model's shapes on 1 and 2 layers; the difference is one layer visit.
Each gate holds today's value (issue 28's baseline); the kernel issues tighten them, and a change that makes one worse
fails here before any GPU sees it. usage: test_gpu_gates.py BENCH_GPU_EMU"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import attempt, check, finish  # noqa: E402

BENCH = sys.argv[1]
PROMPT = 64
# today's values (2026-12-06: the forward's GEMM on mma.sync, issue 29; issue 30's steps: one-kernel decode attention
# doing bias + q/k norm + RoPE + KV append itself, both RMSNorms folded into the GEMMs after them, the residual adds
# and SwiGLU in the GEMMs' epilogues, rows in place and a step's row metadata in one copy): what the kernel issues
# improve on. The 16-byte share is of all the GEMMs' loads: the weights and activations come in 16-byte cp.async
# copies, and the split's last CTA reads the segment partials by the float (about 0.1% of the bytes).
GATES = {
    "kernels per layer visit": 5,
    "memcpy nodes per layer visit": 0,
    "decode GEMMs over 8 MB with fewer than 2 CTAs per SM, in a step": 0,
    "share of the GEMMs' global loads in 16-byte loads (at least)": 0.99,
    "compulsory DRAM bytes of a visit over its minimum": 1.02,
    "GEMM shared-memory wavefronts over the fewest": 1.01,
    "kernels of a visit not launched early (programmatic dependent launch)": 0,
    "global accesses before a programmatic dependent launch's wait": 0,
}
SMS = 132
DIM, HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 2048, 5632, 16, 4, 128

path = tempfile.mktemp(prefix="reprise-gates-", suffix=".jsonl")
out = subprocess.run([BENCH, "-m", "bench", "--prompt", str(PROMPT), "--counters", path], capture_output=True, text=True,
                     timeout=1200)
check(out.returncode == 0, "bench_gpu_emu counts a decode step of 1 and of 2 layers (%s)" % out.stderr.strip()[-300:])
lines = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
if os.path.exists(path):
    os.unlink(path)
# the two counted steps, one after the other: each ends with its sampling kernel
ends = [i for i, r in enumerate(lines) if r.get("launch") == "counters" and r["name"] == "sample_pick_kernel"]
steps = [lines[:ends[0] + 1], lines[ends[0] + 1:ends[1] + 1]] if len(ends) == 2 else [[], []]


def launches(step, kind):
    """Kernel launches or copy nodes of a step, eager or in a graph (a graph's own line is not one)."""
    return [r for r in step if r.get("launch", "").startswith(kind) and r.get("launch") != "counters"]


def counters(step):
    return [r for r in step if r.get("launch") == "counters"]


def scale(r):
    return r["ctas"] / r["ctas_run"]


def gemms(step):
    return [r for r in counters(step) if "gemm" in r["name"]]


def per_visit(fn):
    return fn(steps[1]) - fn(steps[0])


def kernels_per_visit():
    n = per_visit(lambda s: len(launches(s, "kernel")))
    assert n <= GATES["kernels per layer visit"], n
    print("  kernels per layer visit: %d (gate %d)" % (n, GATES["kernels per layer visit"]))


def copies_per_visit():
    n = per_visit(lambda s: len(launches(s, "memcpy")))
    assert n <= GATES["memcpy nodes per layer visit"], n
    print("  memcpy nodes per layer visit: %d (gate %d)" % (n, GATES["memcpy nodes per layer visit"]))


# the weights of one visit: q, k, v, o; gate and up; down (BF16)
VISIT_WEIGHTS = 2 * (DIM * (HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM * DIM + 3 * DIM * HIDDEN)


def thin_gemms():
    # a GEMM's weight bytes: its compulsory DRAM bytes less its activations' (R = 1: a row of K and of N)
    def thin(step):
        return sum(1 for r in gemms(step) if r["dram_sectors"] * 32 * scale(r) > 8e6 and r["ctas"] < 2 * SMS)
    n = thin(steps[1])   # the whole step: the LM head too
    assert n <= GATES["decode GEMMs over 8 MB with fewer than 2 CTAs per SM, in a step"], n
    print("  thin GEMMs in a step: %d" % n)


def wide_share():
    g = gemms(steps[1])
    share = sum(r["wide_bytes"] for r in g) / max(1, sum(r["load_bytes"] for r in g))
    assert share >= GATES["share of the GEMMs' global loads in 16-byte loads (at least)"] - 1e-9, share
    print("  16-byte share of the GEMMs' loads: %.3f" % share)


def compulsory_bytes():
    kv = 2 * PROMPT * KV_HEADS * HEAD_DIM * 2   # keys and values of the visit's cache, BF16
    got = per_visit(lambda s: sum(r["dram_sectors"] * 32 * scale(r) for r in counters(s)))
    ratio = got / (VISIT_WEIGHTS + kv)
    assert 1 <= ratio <= GATES["compulsory DRAM bytes of a visit over its minimum"], ratio
    print("  compulsory DRAM bytes of a visit: %.0f, %.3f x the minimum %d" % (got, ratio, VISIT_WEIGHTS + kv))


def bank_conflicts():
    g = gemms(steps[1])
    degree = sum(r["shared_wavefronts"] for r in g) / max(1, sum(r["shared_ideal"] for r in g))
    assert degree <= GATES["GEMM shared-memory wavefronts over the fewest"], degree
    print("  GEMM shared-memory wavefronts over the fewest: %.3f" % degree)


def early_launches():
    # every kernel of a visit follows a kernel and is launched early; no thread of such a launch touches global
    # memory before its pdl_wait (on a GPU: a race with the kernel before it)
    ordinary = per_visit(lambda s: sum(1 for r in counters(s) if not r.get("pdl")))
    early = sum(r.get("pdl_early", 0) for r in counters(steps[0]) + counters(steps[1]))
    assert ordinary <= GATES["kernels of a visit not launched early (programmatic dependent launch)"], ordinary
    assert early <= GATES["global accesses before a programmatic dependent launch's wait"], early
    print("  a visit's kernels not launched early: %d; global accesses before a wait: %d" % (ordinary, early))


attempt("kernels per decode layer visit at most %d" % GATES["kernels per layer visit"], kernels_per_visit)
attempt("memcpy nodes per decode layer visit at most %d" % GATES["memcpy nodes per layer visit"], copies_per_visit)
attempt("decode GEMMs over 8 MB of weights with fewer than 2 CTAs for each of the %d SMs: at most %d a step"
        % (SMS, GATES["decode GEMMs over 8 MB with fewer than 2 CTAs per SM, in a step"]), thin_gemms)
attempt("the GEMMs read at least %.2f of their bytes in 16-byte loads" % GATES["share of the GEMMs' global loads in 16-byte loads (at least)"],
        wide_share)
attempt("a visit's compulsory DRAM bytes within %.2f x its weights and KV" % GATES["compulsory DRAM bytes of a visit over its minimum"],
        compulsory_bytes)
attempt("GEMM shared-memory bank conflicts at most %.2f x the fewest wavefronts" % GATES["GEMM shared-memory wavefronts over the fewest"],
        bank_conflicts)
attempt("every kernel of a decode visit launched early (programmatic dependent launch), none touching global memory "
        "before its wait", early_launches)
finish()
