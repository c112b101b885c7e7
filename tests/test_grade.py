"""The echo grader (tests/grade.py, `make grade`) judged as a tool: it passes
correct servers, ours and one in Python, and it fails a deliberately broken
server (tests/broken/echo_server.py --bug NAME) on the very guarantee each
bug breaks. A guarantee that does not apply is N/A, never PASS.
"""
import re
import subprocess
import sys

import harness

GRADER = str(harness.ROOT / "tests" / "grade.py")
MODEL = "%s %s {port}" % (sys.executable, harness.ROOT / "tests" / "broken" / "echo_server.py")
LINE = re.compile(r"^(PASS|FAIL|N/A) +([a-z-]+)(?:: (.*))?$")


def grade(command, *options, timeout=240):
    """Runs the grader; returns ({check: (status, reason)}, exit status, report)."""
    proc = subprocess.run([sys.executable, GRADER, command] + list(options), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=harness.slow(timeout))
    results = {}
    for line in proc.stdout.splitlines():
        m = LINE.match(line)
        if m:
            results[m.group(2)] = (m.group(1), m.group(3) or "")
    assert re.search(r"^summary: \d+ of \d+ applicable checks passed", proc.stdout, re.M), proc.stdout[-2000:]
    return results, proc.returncode, proc.stdout


def assert_all_pass(results, status, report, not_applicable):
    failed = {n: r for n, r in results.items() if r[0] == "FAIL"}
    assert not failed and status == 0, "the grader failed a correct server: %s" % report
    na = {n for n, r in results.items() if r[0] == "N/A"}
    assert na == set(not_applicable), "N/A for %s, expected for %s" % (sorted(na), sorted(not_applicable))


def our(program, *args):
    return " ".join([str(harness.BIN_DIR / program)] + list(args))


def test_passes_multiplexing_epoll():
    """Every check on bin/server-multiplexing: all pass, and only the
    iterative lesson and the fork checks are N/A."""
    assert_all_pass(*grade(our("server-multiplexing", "--api", "epoll")),
                    not_applicable={"second-client-waits", "no-zombies"})


test_passes_multiplexing_epoll.time_limit = 240


def test_passes_blocking_fork():
    """A server that forks per client: the grader sees the children, checks
    the reaping, and calls the exhaustion check N/A (the parent never runs out)."""
    checks = ("no-zombies", "descriptor-exhaustion", "no-descriptor-leaks", "slow-reader", "stop-and-continue")
    results, status, report = grade(our("server-blocking", "--concurrency", "fork"),
                                    *[a for c in checks for a in ("-k", c)])
    assert_all_pass(results, status, report, not_applicable={"descriptor-exhaustion"})


def test_passes_python_model():
    """The Python model in tests/broken, with no bug: a server of another
    language passes every applicable check."""
    assert_all_pass(*grade(MODEL), not_applicable={"second-client-waits", "no-zombies"})


test_passes_python_model.time_limit = 240


def test_iterative_is_not_applicable_never_passed():
    """Declared iterative: the concurrency checks are N/A (not PASS) and the
    iterative lesson is checked."""
    results, status, report = grade(MODEL + " --model iterative", "--iterative",
                                    "-k", "concurrent-clients", "-k", "simultaneous-sends",
                                    "-k", "descriptor-exhaustion", "-k", "second-client-waits")
    for name in ("concurrent-clients", "simultaneous-sends", "descriptor-exhaustion"):
        assert results[name][0] == "N/A", report
    assert results["second-client-waits"][0] == "PASS", report
    assert status == 0, report


def test_port_found_without_the_line():
    """A server that never prints `listening on` is found in /proc."""
    results, status, report = grade(MODEL + " --no-line", "-k", "echo-sizes")
    assert results == {"echo-sizes": ("PASS", "")}, report


def test_server_that_does_not_start():
    """A command that exits at once: every check FAILs, saying why; the
    grader itself neither crashes nor hangs."""
    results, status, report = grade("%s -c 'raise SystemExit(3)'" % sys.executable, "-k", "echo-sizes",
                                    "-k", "half-close")
    assert status == 1, report
    for name in ("echo-sizes", "half-close"):
        assert results[name][0] == "FAIL" and "status 3" in results[name][1], report


# bug -> (the check that must fail, a word its reason must contain, model)
BUGS = {
    "overwrite": ("split-sends", "bytes", "loop"),
    "close-on-eof": ("half-close", "closed", "loop"),
    "unbounded": ("slow-reader", "resident set grew", "loop"),
    "spin": ("slow-reader", "busy loop", "loop"),
    "sigpipe": ("no-sigpipe", "SIGPIPE", "loop"),
    "reset-crash": ("reset-mid-transfer", "exited", "loop"),
    "leak-fds": ("no-descriptor-leaks", "descriptors", "loop"),
    "emfile-spin": ("descriptor-exhaustion", "busy loop", "loop"),
    "serial": ("concurrent-clients", "timed out", "loop"),
    "zombies": ("no-zombies", "'Z'", "fork"),
}


def fails_for_its_reason(bug):
    check, word, model = BUGS[bug]
    results, status, report = grade("%s --model %s --bug %s" % (MODEL, model, bug), "-k", check)
    assert status == 1, "the grader passed a server with bug %s: %s" % (bug, report)
    verdict, reason = results[check]
    assert verdict == "FAIL" and word in reason, "bug %s: expected FAIL %s (%s), got: %s" % (
        bug, check, word, report)


def make_bug_test(bug):
    def test():
        fails_for_its_reason(bug)
    test.__name__ = test.__qualname__ = "test_fails_bug_%s" % bug.replace("-", "_")
    test.__doc__ = "The grader FAILs %s for a server with the %s bug." % (BUGS[bug][0], bug)
    test.__code__ = test.__code__.replace(co_firstlineno=fails_for_its_reason.__code__.co_firstlineno)
    return test


for _bug in BUGS:
    _test = make_bug_test(_bug)
    globals()[_test.__name__] = _test
