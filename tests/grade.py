#!/usr/bin/env python3
"""Grades an echo server written in any language (make grade): every
guarantee the project's own echo servers are held to, checked by the same
functions as the test suite's matrix (tests/test_echo.py).

    tests/grade.py 'COMMAND' [--iterative] [-k CHECK]...
    make grade SERVER='python3 my_server.py {port}'

The contract with the server:
- COMMAND is split like a shell would (shlex) and run directly, not through
  a shell, so the process the grader watches is the server itself. `{port}`
  in it is replaced by 0; without `{port}` the grader appends `-p 0` (the
  project's own servers' option). Port 0 means the kernel picks a free port
  when the server binds, so nothing else on the machine can take it first.
- The server listens on 127.0.0.1 (or on every address) on that port.
  Printing `listening on HOST:PORT` on stdout is welcome but not required:
  if the line does not come (a server that prints nothing, or whose output
  sits in a buffer), the grader reads the port the kernel chose from /proc,
  as the TCP socket in LISTEN state among the server's descriptors.
- It echoes every byte it receives, on every connection, until the client
  closes its side; then it finishes the echo and closes.
- --iterative declares a server that serves one client at a time: the
  checks of concurrency are then not applicable (N/A), and the iterative
  lesson (a second client waits) is checked instead. Whether the server
  forks a process per client the grader sees for itself.

Why this contract: the port comes from the kernel, as the suite's own tests
require, and a student needs nothing beyond taking a port argument where 0
is allowed. Picking a free port for the server (bind to 0, close, pass the
number on) could race with any other program on the machine; handing the
server an already listening socket would ask every student to write code
for an inherited descriptor.

Each check starts the server afresh, so one failure does not spoil the
next, and prints one line: PASS, FAIL with the reason, or N/A with why the
guarantee does not apply to this server (never PASS for what was not
checked). Then a summary and two tab-separated rows to paste into a grade
sheet. Exit status 1 if any check failed, 2 on a usage error.
"""
import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_echo as echo  # noqa: E402


class StudentServer:
    """The server under test, in the shape the properties of test_echo.py
    take (a variant): options of the project's own servers that a property
    passes (-q, --max-clients) are not given to it."""

    ours = False

    def __init__(self, command, iterative=False, forks=False):
        self.name = "student"
        self.program = command
        self.command = command
        self.args = []
        self.traits = {"concurrent": not iterative, "forks": forks}

    def server(self, *our_options, nofile=None, env=None, **_):
        return harness.CommandServer(self.command, nofile=nofile, env=env)


def needs_concurrent(server):
    if not server.traits["concurrent"]:
        return "declared iterative: it serves one client at a time"
    return None


def needs_iterative(server):
    if server.traits["concurrent"]:
        return "the iterative server's lesson; this server is concurrent"
    return None


def needs_own_table(server):
    if not server.traits["concurrent"]:
        return "an iterative server holds one client at a time: it never runs out of descriptors"
    if server.traits["forks"]:
        return "the server forks: each child has a table of its own, the parent never runs out"
    return None


def needs_forks(server):
    if not server.traits["forks"]:
        return "the server made no child process"
    return None


# name, what it guarantees, the property, when it does not apply, time limit (s)
CHECKS = [
    ("echo-sizes", "byte-exact echo of 1 B, 1 KiB, 64 KiB and 4 MiB", echo.echo_sizes, None, 60),
    ("split-sends", "the echo is right however the stream is split", echo.split_sends, None, 60),
    ("concurrent-clients", "100 clients at once, interleaved, each echo its own",
     echo.concurrent_clients, needs_concurrent, 60),
    ("second-client-waits", "iterative: a second client is served once the first leaves",
     echo.second_client_waits, needs_iterative, 30),
    ("slow-reader", "a client that does not read: bounded memory, no busy loop, others served, nothing lost",
     echo.slow_reader, None, 90),
    ("half-close", "after the client's shutdown(SHUT_WR) the whole echo comes back, then EOF",
     echo.half_close, None, 60),
    ("reset-mid-transfer", "a client's RST mid-transfer: the server closes its end and goes on",
     echo.reset_mid_transfer, None, 60),
    ("no-sigpipe", "writing to a client that has gone does not kill the server",
     echo.no_sigpipe, None, 60),
    ("interrupted-reads", "a read failing with EINTR is retried (strace fault injection)",
     echo.interrupted_reads, None, 30),
    ("stop-and-continue", "SIGSTOP/SIGCONT while a client is connected: the echo goes on",
     echo.stop_and_continue, None, 30),
    ("descriptor-exhaustion", "out of descriptors (EMFILE): no crash, no busy loop, service resumes",
     echo.descriptor_exhaustion, needs_own_table, 90),
    ("no-descriptor-leaks", "50 connections come and go: the descriptor count comes back",
     echo.no_descriptor_leaks, None, 60),
    ("no-zombies", "a process per client: every child reaped",
     echo.no_zombies, needs_forks, 30),
    # 500, not the matrix's 2000: a default cap such as our servers' 1000
    # clients is a fair policy, and a class's servers need not be tuned.
    ("connection-storm", "500 clients connect at once, every echo right",
     functools.partial(echo.connection_storm, clients=500), None, 120),
    ("simultaneous-sends", "50 idle clients send at the same moment: every one answered",
     echo.simultaneous_sends, needs_concurrent, 30),
]


def probe(command):
    """Starts the server once and echoes through it: (None, whether it
    forks: a child is there while the client is), or (the reason it could
    not be used, False)."""
    try:
        with harness.time_limit(30), harness.CommandServer(command) as srv:
            with srv.connect() as first:
                first.settimeout(harness.slow(5))
                first.sendall(b"probe")
                got = b""
                while len(got) < 5:
                    chunk = first.recv(5 - len(got))
                    if not chunk:
                        break
                    got += chunk
                if got != b"probe":
                    return "no echo on a first connection (got %r)" % got, False
                return None, bool(srv.children())
    except (AssertionError, OSError, TimeoutError) as exc:
        return harness.one_line(str(exc)), False


def grade(command, iterative=False, only=None, out=sys.stdout):
    """Runs the checks against command; prints the report; returns the results."""
    print("grading: %s%s" % (command, " (declared iterative)" if iterative else ""), file=out, flush=True)
    problem, forks = probe(command)
    student = StudentServer(command, iterative=iterative, forks=forks)
    results = []
    for name, _, prop, applies, seconds in CHECKS:
        if only and name not in only:
            continue
        if problem:
            status, reason = harness.FAIL, "the server did not start or echo: " + problem
        else:
            why_not = applies(student) if applies else None
            if why_not:
                status, reason = harness.NOT_APPLICABLE, why_not
            else:
                def run(prop=prop, seconds=seconds):
                    with harness.time_limit(seconds):
                        prop(student)
                status, reason = harness.run_check(run)
        harness.report(results, name, status, reason, out)
    harness.print_summary(results, out)
    return results


def main():
    parser = argparse.ArgumentParser(
        description="Grade an echo server in any language against every guarantee of the suite's echo servers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The contract: COMMAND may contain {port}, replaced by 0 (without it the grader appends -p 0);\n"
               "the server listens on that port, 0 meaning the kernel picks one. Printing\n"
               "'listening on HOST:PORT' on stdout is optional: without it the grader finds the\n"
               "port in /proc. Use --iterative for a server that serves one client at a time.\n\n"
               "checks:\n" + "\n".join("  %-22s %s" % (n, what) for n, what, _, _, _ in CHECKS))
    parser.add_argument("command", help="the server's command line, quoted as one argument")
    parser.add_argument("--iterative", action="store_true", help="the server serves one client at a time, by design")
    parser.add_argument("-k", dest="only", action="append", metavar="CHECK", help="run only this check (repeatable)")
    args = parser.parse_args()
    unknown = set(args.only or []) - {c[0] for c in CHECKS}
    if unknown:
        parser.error("no such check: %s" % ", ".join(sorted(unknown)))
    results = grade(args.command, args.iterative, args.only)
    sys.exit(1 if any(status == harness.FAIL for _, status, _ in results) else 0)


if __name__ == "__main__":
    main()
