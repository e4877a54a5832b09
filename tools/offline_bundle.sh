#!/usr/bin/env bash
# The libraries reprise builds with, for a machine without network or Debian -dev packages (a GPU box):
#   bash tools/offline_bundle.sh make DIR     on a networked Debian 12 machine: downloads the .deb files into DIR
#   bash tools/offline_bundle.sh unpack DIR   on the offline machine: unpacks them into DIR/prefix, prints it
# then build with cmake -DREPRISE_DEPS_PREFIX=DIR/prefix (tests/run_gpu.sh --bundle DIR does all of it). Only
# Debian's packages, unpacked; no source is copied. Cairo is left out: without it a sweep writes no PNGs.
set -euo pipefail
packages=(libcjson-dev libcjson1 libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
          libutf8proc-dev libutf8proc2 libsqlite3-dev libsqlite3-0 libmicrohttpd-dev libmicrohttpd12)
cmd=${1:-} dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: offline_bundle.sh make|unpack DIR" >&2; exit 2; }
case "$cmd" in
make)
    mkdir -p "$dir/debs"
    if ! (cd "$dir/debs" && apt-get download "${packages[@]}" >/dev/null 2>"$dir/download.err"); then
        SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
        "${SUDO[@]}" apt-get update -qq   # empty package lists: fetch them once, then try again
        (cd "$dir/debs" && apt-get download "${packages[@]}" >/dev/null) || { cat "$dir/download.err" >&2; exit 1; }
    fi
    rm -f "$dir/download.err"
    echo "offline_bundle.sh: $(ls "$dir/debs" | wc -l) packages in $dir/debs ($(du -sh "$dir/debs" | cut -f1))" >&2
    ;;
unpack)
    ls "$dir"/debs/*.deb >/dev/null 2>&1 || { echo "offline_bundle.sh: no .deb files in $dir/debs (run make first)" >&2; exit 1; }
    mkdir -p "$dir/prefix"
    for deb in "$dir"/debs/*.deb; do
        if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$deb" "$dir/prefix"
        else   # not a Debian system: a .deb is an ar archive holding data.tar.*
            (cd "$dir/prefix" && ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -x -f - --auto-compress 2>/dev/null ||
             ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -x -J -f -)
        fi
    done
    cd "$dir/prefix" && pwd
    ;;
*) echo "usage: offline_bundle.sh make|unpack DIR" >&2; exit 2 ;;
esac
