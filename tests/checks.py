"""The Python tests' check counter: `check(cond, what)` prints ok/FAIL as it goes; `attempt(what, fn)` is one check
of fn's assertions (failing with the first one's reason); `skip(why)` says that a part cannot run here; `finish()`
prints the totals and exits 1 when any check failed, else 77 (ctest: skipped) when a part was skipped, else 0."""
import sys

failures = checks = skips = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
    print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)


def attempt(what, fn):
    try:
        fn()
        check(True, what)
    except Exception as e:  # an assertion, a missing file, a database error: the check fails with its reason
        check(False, "%s (%s: %s)" % (what, type(e).__name__, str(e)[:300]))


def skip(why):
    global skips
    skips += 1
    print("skip %s" % why, flush=True)


def finish():
    print("%d passed, %d failed%s" % (checks - failures, failures, ", %d part(s) skipped" % skips if skips else ""))
    sys.exit(1 if failures else 77 if skips else 0)
