#!/usr/bin/env bash
# Installs the Debian 12 packages reprise builds and tests with (the README's first command and CI use it).
# Works as root and as a user with sudo; fetches the package lists first, so a fresh machine or container works.
set -euo pipefail
packages=(build-essential cmake pkg-config libcjson-dev libpcre2-dev libutf8proc-dev libsqlite3-dev libcairo2-dev libmicrohttpd-dev libcurl4-openssl-dev libxgboost-dev python3 python3-numpy)
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install_deps.sh: not root and no sudo: install as root: apt-get install ${packages[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "install_deps.sh: installed ${packages[*]}" >&2
# the official openai npm client, for the server's tests (tests/test_serve.py skips that part without it)
if command -v npm >/dev/null; then
    (cd "$(dirname "$0")/../tests/openai_client" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) &&
        echo "install_deps.sh: installed the openai npm client for the tests" >&2 ||
        echo "install_deps.sh: npm ci in tests/openai_client failed: the server test will skip the openai client" >&2
fi
