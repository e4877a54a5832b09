#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, online or not: build reprise for it, run the CUDA backend's tests on the device,
# compare the CPU and CUDA backends through the command line, check the memory plan against the device, and run
# bench_gpu. Full logs go under --out; a short table is printed last.
# usage: bash tests/run_gpu.sh [--out DIR] [--bundle DIR] [--build DIR] [--arch ARCH] [--shared DIR]
#   --bundle DIR  the libraries from tools/offline_bundle.sh (for a machine without Debian's -dev packages)
#   --arch ARCH   CUDA architecture (default: native, the GPU present; 90a for an H100/H200 build elsewhere)
#   --shared DIR  reprise's shared test data (stories260K) where it is not at ../shared
set -uo pipefail
cd "$(dirname "$0")/.."
out=gpu-logs build=build-gpu arch=native bundle="" shared=../shared
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --bundle) bundle=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --shared) shared=$2; shift 2 ;;
    *) echo "usage: bash tests/run_gpu.sh [--out DIR] [--bundle DIR] [--build DIR] [--arch ARCH] [--shared DIR]" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
rows=() failed=0
# step NAME COMMAND...: runs it with its output in $out/NAME.log, and records ok/FAIL and the seconds it took
step() {
    local name=$1 t0=$SECONDS
    shift
    if "$@" >"$out/$name.log" 2>&1; then rows+=("$name|ok|$((SECONDS - t0))|$(note_of "$name")")
    else rows+=("$name|FAIL|$((SECONDS - t0))|see $name.log"); failed=1; fi
}
note_of() { [ -f "$out/$1.note" ] && cat "$out/$1.note" || true; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$out/device.log" 2>&1 ||
    { echo "run_gpu.sh: nvidia-smi sees no GPU (see $out/device.log)"; exit 1; }
gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1 | tr -d ' ')

configure() {
    local prefix_flag=()
    if [ -n "$bundle" ]; then
        prefix=$(bash tools/offline_bundle.sh unpack "$bundle") || return 1
        prefix_flag=(-DREPRISE_DEPS_PREFIX="$prefix")
    fi
    cmake -S . -B "$build" -DREPRISE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" -DREPRISE_NVCC=OFF \
        -DREPRISE_SHARED_DIR="$(cd "$shared" 2>/dev/null && pwd || echo "$shared")" "${prefix_flag[@]}" &&
        cmake --build "$build" -j "$(nproc)"
}
step build configure

if [ -x "$build/reprise" ]; then
    B=$build/reprise
    # the CUDA backend's tests on the device: kernels against CPU references, whole forwards against the CPU backend
    # (the note: what the forward's GEMM runs at prefill rows here - wgmma where its bits equal mma.sync's)
    gpu_tests() {
        "$build/tests/test_cuda_backend_gpu" || return 1
        grep -o "gemm at prefill rows on this GPU.*" "$out/gpu_tests.log" >"$out/gpu_tests.note" || true
    }
    step gpu_tests gpu_tests
    # kernels/ptx.h's instructions on the device: mma.sync fragments, cp.async groups, the copy engine's boxes in each
    # swizzle mode as the emulation lays them, wgmma through its descriptors (an undocumented layout would show here
    # first), and whether mma.sync and wgmma give the same bits for the same sums (the note)
    ptx_tests() {
        "$build/tests/test_ptx_gpu" || return 1
        grep -o "mma.sync vs wgmma.*" "$out/ptx_tests.log" >"$out/ptx_tests.note" || true
    }
    step ptx_tests ptx_tests
    # the engine's CPU-side tests (the CLI and sweep tests assume the CPU backend's exact outputs: not run here), and
    # reprise serve's test, which runs on the device here (--backend auto): its texts are compared with generate's there
    step cpu_tests ctest --test-dir "$build" --output-on-failure -j "$(nproc)" -E "^(sweep|cli|cuda_emu|cuda_backend|cuda_cli|cuda_backend_gpu)$"

    # the command line on both backends: greedy text on the built-in model, and stories260K when present
    compare_cli() {
        local a b ok=0
        a=$("$B" generate -p "12+35=" -n 8 --temp 0 --backend cpu 2>/dev/null)
        b=$("$B" generate -p "12+35=" -n 8 --temp 0 --backend cuda 2>>"$out/cli_compare.err")
        echo "built-in model 12+35=: cpu '$a', cuda '$b'"
        [ "$a" = "$b" ] || ok=1
        if [ -f "$shared/models/stories260K/config.json" ]; then
            a=$("$B" generate -m "$shared/models/stories260K" -p "Once upon a time" -n 60 --temp 0 --backend cpu 2>/dev/null)
            b=$("$B" generate -m "$shared/models/stories260K" -p "Once upon a time" -n 60 --temp 0 --backend cuda 2>/dev/null)
            printf 'stories260K cpu:  %s\nstories260K cuda: %s\n' "$a" "$b"
            [ "$a" = "$b" ] || ok=1
            b=$("$B" generate -m "$shared/models/stories260K" -p "Once upon a time" -n 60 --temp 0 --backend cuda --tp 2 2>/dev/null)
            printf 'stories260K cuda --tp 2: %s\n' "$b"
            [ "$a" = "$b" ] || ok=1
        fi
        a=$("$B" generate -p "12+35=" -n 8 --temp 0 --backend cpu --weights fp8 2>/dev/null)
        b=$("$B" generate -p "12+35=" -n 8 --temp 0 --backend cuda --weights fp8 2>>"$out/cli_compare.err")
        echo "built-in model 12+35=, --weights fp8: cpu '$a', cuda '$b'"
        [ "$a" = "$b" ] || ok=1
        echo "greedy text equal on cpu, cuda and cuda --tp 2 (and in FP8 on cpu and cuda)" >"$out/cli_compare.note"
        return $ok
    }
    step cli_compare compare_cli

    # a sweep of the built-in model on both backends: how many rows agree (BF16 on the GPU: not all must)
    compare_sweep() {
        rm -rf "$out/sweep_cpu" "$out/sweep_cuda"
        "$B" sweep --probe arith --items 64 --out "$out/sweep_cpu" --backend cpu >/dev/null &&
            "$B" sweep --probe arith --items 64 --out "$out/sweep_cuda" --backend cuda >/dev/null || return 1
        python3 - "$out/sweep_cpu/results.sqlite" "$out/sweep_cuda/results.sqlite" >"$out/sweep_compare.note" <<'PY'
import sqlite3, sys
rows = [dict(((r[0], r[1], r[2]), r[3]) for r in sqlite3.connect(p).execute(
    "SELECT c.label, r.probe, r.item, r.score FROM results r JOIN configs c ON c.id = r.config")) for p in sys.argv[1:]]
same = sum(rows[0][k] == rows[1].get(k) for k in rows[0])
print("%d of %d sweep rows score the same on cpu and cuda" % (same, len(rows[0])))
PY
        rm -rf "$out/sweep_cpu" "$out/sweep_cuda"
    }
    step sweep_compare compare_sweep

    # the memory plan against the device: RYS-XLarge's shapes (headers over a sparse file) at 32768 positions need
    # more than one GPU holds, and are refused before any weight is read
    plan_check() {
        local q='"model_type":"qwen2","architectures":["Qwen2ForCausalLM"],"vocab_size":152064,"max_position_embeddings":32768,"rms_norm_eps":1e-6,"rope_theta":1000000.0,"tie_word_embeddings":false,"hidden_size":8192,"intermediate_size":29568,"num_hidden_layers":80,"num_attention_heads":64,"num_key_value_heads":8'
        local dir; dir=$(mktemp -d)
        python3 tests/sparse_checkpoint.py "$dir" "{$q}" || return 1
        "$B" inspect -m "$dir" --schedule rys:45,52 -c 32768 --gpu-memory "$((gpu_mib / 1024))"
        local t0=$SECONDS
        "$B" generate -m "$dir" --schedule rys:45,52 -c 32768 --tokens 1 -n 1 --backend cuda 2>"$out/plan_refusal.txt" && return 1
        cat "$out/plan_refusal.txt"
        rm -rf "$dir"
        grep -q "of GPU memory" "$out/plan_refusal.txt" &&
            echo "72B at 32768 positions refused in $((SECONDS - t0)) s, before any upload" >"$out/plan_check.note"
    }
    step plan_check plan_check

    # a sweep at Qwen2-7B's shapes (random BF16 weights, the built-in tokenizer): configs per hour of reprise sweep
    # against --naive (one config at a time, nothing shared) in the same run, on the same GPU
    sweep_qwen7b() {
        "$build/bench_sweep" --shape qwen2-7b --backend cuda --no-duplicated --items 16 \
            --configs "rys:8,12;rys:10,14;rys:12,16;rys:14,18;rys:9,15;rys:11,17;rys:13,19" || return 1
        grep -o "reprise sweep vs naive: [0-9.]*x configs/hour" "$out/sweep_qwen7b.log" >"$out/sweep_qwen7b.note"
    }
    step sweep_qwen7b sweep_qwen7b
    step bench_gpu "$build/bench_gpu"
    # FP8 weights (W8A16): the same bench with the projections quantized at load, its roofline at a byte a weight; the
    # note: FP8's batch-1 decode of base over BF16's, both measured in this run on this GPU (the target: 1.6x)
    bench_fp8() {
        "$build/bench_gpu" --weights fp8 --gemm 0 || return 1
        local a b
        a=$(awk '$1 == "base" && $2 == "decode" && $3 == 1 {print $4}' "$out/bench_gpu.log")
        b=$(awk '$1 == "base" && $2 == "decode" && $3 == 1 {print $4" "$6}' "$out/bench_fp8.log")
        [ -n "$a" ] && [ -n "$b" ] && echo "$a $b" | awk '{printf "base b1: fp8 %s tok/s (%s%% of its roofline), bf16 %s: %.2fx\n", $2, $3, $1, $2 / $1}' >"$out/bench_fp8.note"
    }
    step bench_fp8 bench_fp8
    # what FP8 costs in accuracy on this GPU: stored against --weights fp8 (greedy agreement, mean |dlogprob|, RYS
    # deltas' signs)
    fp8_accuracy() {
        python3 bench/fp8_accuracy.py "$B" --backend cuda --shared "$shared" --items 64 || return 1
        grep -E "^every config|flipped sign" "$out/fp8_accuracy.log" >"$out/fp8_accuracy.note"
    }
    step fp8_accuracy fp8_accuracy
    # what programmatic dependent launch brings: the same decode bench with it off (the speed model assumes 1 us a
    # launch after a kernel instead of 2.3: bench/GPU_NOTES.md)
    bench_no_pdl() {
        REPRISE_PDL=0 "$build/bench_gpu" --gemm 0 || return 1
        grep -E "^(base|rys)" "$out/bench_no_pdl.log" | awk '{print $1" b"$3": "$4" tok/s"}' | paste -sd ';' >"$out/bench_no_pdl.note"
    }
    step bench_no_pdl bench_no_pdl
    # the split over 2 ranks (on one GPU they share it: the sharded kernels, the all-reduce through device copies)
    step bench_gpu_tp2 "$build/bench_gpu" --tp 2 --gemm 0
    # reprise bench on the device: base and a repeated block side by side, with the measured bandwidth's roofline
    reprise_bench() {
        local dir; dir=$(mktemp -d)
        "$build/bench_cpu" --write-model "$dir" || return 1
        "$B" bench -m "$dir" --backend cuda -p 512 -n 128 -b 1,16 -r 3 --schedule "base;rys:4,8"
        local rc=$?
        # self-speculative decoding on the device: a draft that skips layers 4-7 and one that skips 8-11 beside no
        # draft (random weights: the acceptance is whatever they give; the time per verifying pass of K + 1 rows
        # against a step of one is the figure a real model's gain rests on)
        "$B" bench -m "$dir" --backend cuda -n 128 -r 3 --draft "rys:4,8,0" --draft-tokens 4 || rc=1
        "$B" bench -m "$dir" --backend cuda -n 128 -r 3 --draft "rys:8,12,0" || rc=1
        rm -rf "$dir"
        return $rc
    }
    step reprise_bench reprise_bench
    # where a decode step's time goes, kernel by kernel (Nsight Compute, where the machine has it): each launch's time,
    # as CSV for the speed model's side by side below
    kernel_profile() {
        local ncu; ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
        [ -n "$ncu" ] || { echo "no ncu here"; return 0; }
        REPRISE_CUDA_GRAPHS=0 timeout 240 "$ncu" --profile-from-start off --metrics gpu__time_duration.sum --csv \
            --log-file "$out/ncu.csv" "$build/bench_gpu" --gemm 0 --decode 8 --profile 1
    }
    step kernel_profile kernel_profile
    # the planted kernels: the speed model's predicted times (under the emulation, built here too) beside the device's
    planted() {
        "$build/tests/test_emu_perf" | grep "predicted:" && "$build/tests/time_planted_gpu" || return 1
        { grep -o "strided [0-9.]* us ([0-9.]*x" "$out/planted.log" | paste -sd ' ' ; } >"$out/planted.note" 2>/dev/null || true
    }
    step planted planted
    # the speed model beside the device: the same decode step counted under the emulation (CPU only), each kernel's
    # predicted time beside ncu's, and the model's constants refitted to them (tools/bench/gpu_fit.c); last, as it
    # takes a minute or two of CPU
    model_fit() {
        [ -s "$out/ncu.csv" ] || { echo "no ncu.csv (kernel_profile): nothing to fit"; return 0; }
        local kind=h100
        grep -q H200 "$out/device.log" && kind=h200
        "$build/bench_gpu_emu" -m bench --prompt 512 --gpu "$kind" --measured "$out/ncu.csv" || return 1
        grep -o "rms log error: [0-9.]* with [a-z0-9]*'s constants, [0-9.]* refitted" "$out/model_fit.log" >"$out/model_fit.note"
    }
    grep -E "^(base|rys)" "$out/bench_gpu.log" | awk '{print $1" "$2" b"$3": "$4" tok/s ("$6"% of roofline)"}' |
        paste -sd ';' >"$out/bench_gpu.note"
    step model_fit model_fit
fi

echo
echo "device: $(cat "$out/device.log")"
echo "logs:   $out"
printf '%-14s %-5s %6s  %s\n' step result sec note
for r in "${rows[@]}"; do
    IFS='|' read -r name status secs note <<<"$r"
    printf '%-14s %-5s %6s  %s\n' "$name" "$status" "$secs" "$note"
done
exit $failed
