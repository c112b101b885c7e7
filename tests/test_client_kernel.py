"""The client on the oldest kernel README promises: without epoll_pwait2
(Linux 5.11), made to fail with ENOSYS by strace's fault injection, the
load generator says so once and runs on epoll_pwait, closed and open loop."""
import os
import re
import shutil
import subprocess

import harness


def bench_without_pwait2(port, *options):
    if shutil.which("strace") is None:
        raise harness.Skip("strace is not installed (it injects the ENOSYS)")
    argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=epoll_pwait2",
            "-e", "inject=epoll_pwait2:error=ENOSYS", harness.binary("client"), "bench",
            "127.0.0.1:%d" % port, "-c", "4", "-s", "64", "--warmup", "0"] + list(options)
    # LeakSanitizer cannot run under ptrace: the sanitized build's leak
    # check is left to the tests without strace.
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=harness.slow(60), env=env)


def test_bench_falls_back_to_epoll_pwait():
    with harness.Server("server-multiplexing", "-q") as srv:
        for options in (["-n", "2000"], ["-d", "0.5", "--rate", "1000"]):
            run = bench_without_pwait2(srv.port, *options)
            what = "client bench %s without epoll_pwait2" % " ".join(options)
            assert run.returncode == 0, "%s: exit %d: %s" % (what, run.returncode, run.stderr[-500:])
            said = re.findall(r"^client: epoll_pwait2: .*epoll_pwait.*$", run.stderr, re.M)
            assert len(said) == 1, "%s: want the fallback said once, got %d: %r" % (what, len(said), run.stderr)
            m = re.search(r"(\d+) echoes", run.stdout)
            assert m and int(m.group(1)) > 0, "%s: no echoes: %r" % (what, run.stdout)
            assert "errors 0, mismatches 0" in run.stdout, "%s: %r" % (what, run.stdout)
