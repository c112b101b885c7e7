"""How the load generator waits, seen with strace. The closed loop waits in
epoll_wait with no timeout: its only clocks are a timerfd and the stop
signals' signalfd among the sockets. The open loop's schedule is the wait's
timeout, in ns with epoll_pwait2 (Linux 5.11); on the oldest kernel README
promises, made to fail with ENOSYS by strace's fault injection, it says so
once and waits in epoll_wait, to the millisecond."""
import os
import re
import shutil
import subprocess
import tempfile

import harness


def bench_under_strace(port, strace_options, *options):
    if shutil.which("strace") is None:
        raise harness.Skip("strace is not installed")
    argv = ["strace", "-f", "-qq"] + strace_options + [harness.binary("client"), "bench",
            "127.0.0.1:%d" % port, "-c", "4", "-s", "64", "--warmup", "0"] + list(options)
    # LeakSanitizer cannot run under ptrace: the sanitized build's leak
    # check is left to the tests without strace.
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=harness.slow(60), env=env)


def assert_clean_run(run, what):
    assert run.returncode == 0, "%s: exit %d: %s" % (what, run.returncode, run.stderr[-500:])
    m = re.search(r"(\d+) echoes", run.stdout)
    assert m and int(m.group(1)) > 0, "%s: no echoes: %r" % (what, run.stdout)
    assert "errors 0, mismatches 0" in run.stdout, "%s: %r" % (what, run.stdout)


def test_closed_loop_waits_with_no_timeout():
    with harness.Server("server-multiplexing", "-q") as srv, tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "waits")
        run = bench_under_strace(srv.port, ["-o", trace, "-e", "trace=epoll_wait,epoll_pwait,epoll_pwait2"],
                                 "-n", "2000")
        assert_clean_run(run, "client bench -n 2000 under strace")
        with open(trace) as f:
            waits = [line for line in f if "epoll_" in line and "resumed>" not in line]
    assert len(waits) >= 10, "too few waits traced to judge: %r" % waits
    timed = [w for w in waits if not re.search(r"^(\S+\s+)?epoll_wait\(\d+, .*, -1(\)|\s*<unfinished)", w)]
    assert not timed, "%d of %d waits were not epoll_wait(..., -1): %r" % (len(timed), len(waits), timed[:3])


def test_bench_falls_back_to_epoll_wait():
    inject = ["-o", "/dev/null", "-e", "trace=epoll_pwait2", "-e", "inject=epoll_pwait2:error=ENOSYS"]
    with harness.Server("server-multiplexing", "-q") as srv:
        for options, said_times in ((["-n", "2000"], 0), (["-d", "0.5", "--rate", "1000"], 1)):
            run = bench_under_strace(srv.port, inject, *options)
            what = "client bench %s without epoll_pwait2" % " ".join(options)
            assert_clean_run(run, what)
            said = re.findall(r"^client: epoll_pwait2: .*epoll_wait.*$", run.stderr, re.M)
            assert len(said) == said_times, "%s: want the fallback said %d times, got %d: %r" % (
                what, said_times, len(said), run.stderr)
