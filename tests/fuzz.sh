#!/usr/bin/env bash
# Runs every fuzz target under libFuzzer (clang, ASan + UBSan) for SECONDS each (default 60), starting from its seed
# corpus and regression inputs, and prints executions, corpus size, peak memory and crashes per target. An input
# that crashes, leaks, times out (over 1 s) or takes over 1 GB is kept in tests/fuzz/regressions/NAME/, where the
# deterministic driver (ctest's fuzz_NAME) runs it ever after.
# With --runs N a target stops at N executions or SECONDS, whichever comes first (the issue's campaign: --runs
# 10000000 3600). Each target's full libFuzzer log is kept in build-fuzz/logs/NAME.log.
# usage: bash tests/fuzz.sh [--runs N] [SECONDS] [TARGET ...]     (needs clang; builds into build-fuzz/)
set -u
cd "$(dirname "$0")/.."
runs=-1
if [ "${1:-}" = "--runs" ]; then
    case "${2:-}" in ''|*[!0-9]*) echo "fuzz.sh: --runs needs a whole number of executions" >&2; exit 2;; esac
    runs=$2; shift 2
fi
secs=${1:-60}
case "$secs" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$secs'" >&2; exit 2;; esac
shift || true
targets=${*:-"safetensors config chat_template probe schedule sweep_db tokenizer serve_request"}
command -v clang >/dev/null || { echo "fuzz.sh: needs clang (apt-get install clang)" >&2; exit 2; }
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DREPRISE_FUZZ=ON -DREPRISE_NVCC=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
libfuzzer_targets=""
for t in $targets; do libfuzzer_targets="$libfuzzer_targets fuzz_${t}_libfuzzer"; done
cmake --build build-fuzz -j "$(nproc)" --target $libfuzzer_targets >/dev/null || exit 1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
mkdir -p build-fuzz/logs
printf '%-16s %12s %8s %10s %8s %8s\n' target executions seconds corpus peak_MB crashes >"$work/table"
for t in $targets; do
    seeds=tests/fuzz/corpus/$t regress=tests/fuzz/regressions/$t
    [ -d "$seeds" ] || seeds=""
    mkdir -p "$regress" "$work/$t"
    [ -n "$seeds" ] && cp "$seeds"/* "$work/$t/" 2>/dev/null
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp ./build-fuzz/tests/fuzz_${t}_libfuzzer "$work/$t" $(ls -A "$regress" | grep -v '^\.' >/dev/null && echo "$regress") \
        -max_total_time="$secs" -runs="$runs" -timeout=1 -rss_limit_mb=1024 -artifact_prefix="$regress/" -print_final_stats=1 \
        >"$work/$t.log" 2>&1
    rc=$?
    cp "$work/$t.log" "build-fuzz/logs/$t.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/$t.log" | tail -1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$work/$t.log" | tail -1)
    crashes=$(ls -A "$regress" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | wc -l)
    printf '%-16s %12s %8s %10s %8s %8s\n' "$t" "${execs:-?}" "${took:-$secs}" "$(ls "$work/$t" | wc -l)" "${peak:-?}" "$crashes" >>"$work/table"
    if [ $rc -ne 0 ]; then status=1; echo "fuzz.sh: $t stopped (exit $rc); the input is in $regress/; log:" >&2; tail -30 "$work/$t.log" >&2; fi
done
cat "$work/table"
exit $status
