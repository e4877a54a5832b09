#!/usr/bin/env bash
# Runs a Python test with an interpreter that has numpy (Debian's python3-numpy is for /usr/bin/python3, which a
# pyenv or venv python3 earlier on PATH does not see); exits 77 (skipped) when none has it.
for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c "import numpy" 2>/dev/null; then exec "$py" "$@"; fi
done
echo "skip: no python3 with numpy (apt-get install python3-numpy)"
exit 77
