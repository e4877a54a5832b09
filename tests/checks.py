"""The Python tests' check counter: `check(cond, what)` prints ok/FAIL as it goes; `finish()` prints the totals and
exits 1 when any check failed."""
import sys

failures = checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
    print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)


def finish():
    print("%d passed, %d failed" % (checks - failures, failures))
    sys.exit(1 if failures else 0)
