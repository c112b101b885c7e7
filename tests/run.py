#!/usr/bin/env python3
"""The test runner behind `make test` and `make check`.

Runs the C unit tests (build/unit-tests), then every test_* function of every
tests/test_*.py module, each under a time limit, and ends with the line
`N passed, N failed, N skipped`. Exit status 1 if anything failed.

    tests/run.py [--bin DIR] [--build DIR] [--sanitized] [-k SUBSTRING] [-j JOBS] [-x]
    tests/run.py --grade 'COMMAND' [--iterative]

With --grade it runs the echo-server checks against a server in any
language instead, as `make grade` does (tests/grade.py says how).
"""
import argparse
import concurrent.futures
import importlib
import inspect
import os
import pathlib
import re
import subprocess
import sys
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402


def run_unit_tests(selector):
    exe = harness.BUILD_DIR / "unit-tests"
    if selector and "unit" not in selector:
        return 0, 0
    if not exe.exists():
        print("FAIL unit-tests: %s was not built" % exe, flush=True)
        return 0, 1
    proc = subprocess.run([str(exe)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)
    out = proc.stdout
    sys.stdout.write(out)
    m = re.search(r"^(?:\w+: )?(\d+) passed, (\d+) failed", out, re.M)
    if not m:
        print("FAIL unit-tests: no summary line (exit %d)" % proc.returncode, flush=True)
        return 0, 1
    passed, failed = int(m.group(1)), int(m.group(2))
    if proc.returncode != 0 and failed == 0:
        failed = 1
    return passed, failed


def discover(selector):
    tests = []
    for path in sorted(HERE.glob("test_*.py")):
        module = importlib.import_module(path.stem)
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test_") and fn.__module__ == module.__name__:
                full = "%s.%s" % (path.stem, name)
                if not selector or selector in full:
                    tests.append((full, fn))
    # Keep source order inside a module: it reads like a lesson plan.
    tests.sort(key=lambda t: (t[0].split(".")[0], t[1].__code__.co_firstlineno))
    return tests


def run_one(name, fn):
    started = time.monotonic()
    try:
        with harness.time_limit(getattr(fn, "time_limit", harness.DEFAULT_TEST_SECONDS)):
            fn()
        return name, "ok", "", time.monotonic() - started
    except harness.Skip as skip:
        return name, "skipped", str(skip), time.monotonic() - started
    except Exception as exc:  # noqa: BLE001 - a test's failure is data here
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f for f in reversed(tb) if "tests/test_" in f.filename), None)
        if where:
            detail += " (%s:%d)" % (pathlib.Path(where.filename).name, where.lineno)
        return name, "FAIL", detail, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="bin", help="directory of the built programs")
    parser.add_argument("--build", help="where make put unit-tests and shims/ (default: the one beside --bin)")
    parser.add_argument("--sanitized", action="store_true", help="binaries built with ASan+UBSan")
    parser.add_argument("-k", dest="selector", help="run only tests whose name contains this")
    parser.add_argument("-j", dest="jobs", type=int, default=1, help="tests run at once (default 1)")
    parser.add_argument("-x", dest="exitfirst", action="store_true", help="stop at the first failure")
    parser.add_argument("--grade", metavar="COMMAND", help="grade this echo server command instead (tests/grade.py)")
    parser.add_argument("--iterative", action="store_true", help="with --grade: a one-client-at-a-time server")
    args = parser.parse_args()
    if args.grade:
        import grade
        results = grade.grade(args.grade, args.iterative, [args.selector] if args.selector else None)
        return 1 if any(status == harness.FAIL for _, status, _ in results) else 0

    harness.configure(bin_dir=args.bin, sanitized=args.sanitized, build_dir=args.build)
    passed, failed = run_unit_tests(args.selector)
    skipped = 0
    failures = []

    tests = discover(args.selector)
    if args.jobs > 1:
        # Tests in worker threads get no alarm; each bounds its own waits.
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
        results = (f.result() for f in [pool.submit(run_one, n, f) for n, f in tests])
    else:
        results = (run_one(n, f) for n, f in tests)
    for name, status, detail, seconds in results:
        line = "%-7s %s (%.1fs)" % (status, name, seconds)
        if detail:
            line += ": " + detail
        print(line, flush=True)
        if status == "ok":
            passed += 1
        elif status == "skipped":
            skipped += 1
        else:
            failed += 1
            failures.append(name)
            if args.exitfirst:
                break

    if failures:
        print("\nfailed: " + " ".join(failures))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
