#!/usr/bin/env python3
"""Rewrites the README's `reprise CMD --help` blocks from the built binary, so the reference never drifts from the
code (tests/test_cli.py fails while they differ). usage: python3 tools/update_readme_help.py [build/reprise]"""
import os
import re
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build", "reprise")
path = os.path.join(root, "README.md")
text = open(path).read()


def current(match):
    cmd = match.group(1)
    out = subprocess.run([binary, *cmd.split(), "--help"], capture_output=True, text=True, check=True).stdout
    return "```text\n$ reprise %s --help\n%s```" % (cmd, out if out.endswith("\n") else out + "\n")


new = re.sub(r"```text\n\$ reprise ([a-z ]+?) --help\n.*?```", current, text, flags=re.S)
if new != text:
    open(path, "w").write(new)
    print("README.md: help blocks updated")
