#!/usr/bin/env bash
# The test command: builds reprise twice (optimised, and with ASan + UBSan) and runs every test in both.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
for cfg in "build:-DREPRISE_SANITIZE=OFF" "build-asan:-DREPRISE_SANITIZE=ON"; do
    dir=${cfg%%:*} flags=${cfg#*:}
    echo "== $dir ($flags)"
    cmake -S . -B "$dir" $flags >/dev/null
    cmake --build "$dir" -j "$jobs"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
        ctest --test-dir "$dir" --output-on-failure -j "$jobs"
done
