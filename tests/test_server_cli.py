"""The command line and the log of every echo server variant (the contract
every server shares): usage errors, --help and --version, the
readiness line, IPv6, the event log at its three levels, and how SIGTERM and
SIGINT stop a server with its summary.

Each property below becomes one test per variant, test_<property>__<variant>
(harness.per_variant), so a failure names both.
"""
import fcntl
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import echo_roundtrip, payload, per_variant

# The model's own option with a value it must refuse, per program.
MODEL_BAD_VALUES = {
    "server-blocking": [["--concurrency", "nope"]],
    "server-nonblocking": [["--wait", "nope"], ["--sleep-us", "soon"]],
    "server-multiplexing": [["--api", "nope"], ["--trigger", "nope"]],
    "server-async": [["--engine", "nope"]],
}

# The model's option that --help must document.
MODEL_OPTION = {
    "server-blocking": "--concurrency",
    "server-nonblocking": "--wait",
    "server-multiplexing": "--api",
    "server-async": "--engine",
}

SUMMARY = re.compile(r"^summary: (\d+) connections?, (\d+) messages?, (\d+) bytes", re.M)


def run(variant, *extra, timeout=10):
    """Runs the program to completion (it must not start serving)."""
    argv = [harness.binary(variant.program)] + variant.args + list(extra)
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=harness.slow(timeout), text=True, errors="replace")


def accepted_fd(srv, sock):
    """The server's descriptor for our socket, from its `accepted fd N from ADDR:PORT` line."""
    port = sock.getsockname()[1]
    return int(srv.wait_for_log_match(r"^accepted fd (\d+) from 127\.0\.0\.1:%d$" % port).group(1))


def usage_errors(variant):
    """Unknown option, bad values, a positional argument: exit 2, the first
    stderr line names the problem, the usage follows on stderr."""
    cases = [
        (["--no-such-option"], ["--no-such-option"]),
        (["-p", "99999"], ["99999"]),
        (["--max-clients", "0"], ["max-clients", "0"]),
        (["stray-argument"], ["stray-argument"]),
    ] + [(bad, bad) for bad in MODEL_BAD_VALUES[variant.program]]
    for argv, named in cases:
        result = run(variant, *argv)
        what = "%s %s" % (variant.program, " ".join(variant.args + argv))
        assert result.returncode == 2, "%s: exit %d, want 2; stderr: %r" % (what, result.returncode, result.stderr[:300])
        assert "listening on" not in result.stdout, "%s: started serving" % what
        lines = result.stderr.splitlines()
        assert lines, "%s: nothing on stderr" % what
        first = lines[0]
        for word in named:
            assert word in first, "%s: first stderr line %r does not name %r" % (what, first, word)
        assert not first.lower().startswith("usage"), "%s: the error must come before the usage" % what
        assert "usage" in result.stderr[len(first):].lower(), "%s: no usage after the error on stderr" % what


# A value other than the default for one model option of each program, so
# that the usage after it must still state the default.
MODEL_OTHER_VALUE = {
    "server-blocking": ["--concurrency", "thread"],
    "server-nonblocking": ["--sleep-us", "7"],
    "server-multiplexing": ["--api", "select"],
    "server-async": ["--engine", "posix-aio"],
}


def assert_usage_states_defaults(program, options):
    """The usage that follows an error, after options other than the
    defaults, is the --help text: it states the defaults, not the values
    parsed before the error."""
    binary = harness.binary(program)
    help_text = subprocess.run([binary, "--help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=harness.slow(10), text=True).stdout
    result = subprocess.run([binary] + options + ["--bogus"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=harness.slow(10), text=True)
    what = "%s %s --bogus" % (program, " ".join(options))
    assert result.returncode == 2, "%s: exit %d, want 2" % (what, result.returncode)
    usage = result.stderr.split("\n\n", 1)[-1]
    assert "(default" in help_text, "%s --help states no default" % program
    assert usage == help_text, "%s: the usage differs from --help's:\n%s" % (
        what, "\n".join(line for line in usage.splitlines() if line not in help_text.splitlines()))


def usage_states_defaults(variant):
    """`server-multiplexing --api poll --bogus` must say "(default epoll)",
    not "(default poll)": the same for every option of every server."""
    assert_usage_states_defaults(variant.program, variant.args + MODEL_OTHER_VALUE[variant.program] + [
        "-H", "::1", "-p", "1234", "--max-clients", "7", "-q"])


def test_ftpd_usage_states_defaults():
    """ftpd's usage after its own options states its defaults, and never
    the --user (with its password) given before the error."""
    assert_usage_states_defaults("ftpd", ["--root", "/tmp", "--api", "poll", "--idle-timeout", "9", "--read-only",
                                          "--user", "alice:secret", "-p", "21"])


def help_and_version(variant):
    """--help: exit 0, the usage (with the model's options) on stdout; --version: exit 0, one line."""
    result = run(variant, "--help")
    assert result.returncode == 0, "--help: exit %d" % result.returncode
    assert "usage" in result.stdout.lower(), "--help: no usage on stdout: %r" % result.stdout[:200]
    for option in (MODEL_OPTION[variant.program], "--max-clients", "--port"):
        assert option in result.stdout, "--help does not mention %s" % option
    result = run(variant, "--version")
    assert result.returncode == 0, "--version: exit %d" % result.returncode
    assert re.search(r"\d", result.stdout) and len(result.stdout.strip().splitlines()) == 1, \
        "--version printed %r" % result.stdout


def readiness_line(variant):
    """With -p 0 the readiness line is exactly `listening on 127.0.0.1:PORT`
    with the port the kernel chose, and that port answers."""
    srv = variant.server(ready=False)
    with srv:
        line = srv.read_stdout_line(timeout=10)
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        assert m, "readiness line %r" % line
        port = int(m.group(1))
        assert 0 < port < 65536, "port %d" % port  # -p 0 must be resolved to the real port
        with harness.connect(port) as sock:
            echo_roundtrip(sock, b"ready")


def ipv6_loopback(variant):
    """-H ::1 listens on IPv6 loopback and echoes there."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        raise harness.Skip("no IPv6 loopback here (%s)" % exc)
    with variant.server("-H", "::1") as srv:
        assert srv.host == "::1", "readiness line names %r, not ::1" % srv.host
        with srv.connect() as sock:
            assert sock.family == socket.AF_INET6
            echo_roundtrip(sock, payload(3000, 6))


def event_log(variant):
    """By default: `accepted fd N from 127.0.0.1:PORT` (our port) and
    `closing fd N`; no per-message lines."""
    with variant.server() as srv:
        with srv.connect() as sock:
            fd = accepted_fd(srv, sock)
            echo_roundtrip(sock, b"hello")
        srv.wait_for_log_match(r"^closing fd %d(: .*)?$" % fd)
        assert "echoing" not in srv.stderr(), "per-message lines without -v"


def quiet_log(variant):
    """-q: no accepted / closing / echoing lines, but still the summary."""
    with variant.server("-q") as srv:
        base = srv.fd_count()
        with srv.connect() as sock:
            echo_roundtrip(sock, b"shh")
        srv.wait_until_idle(base)  # the close has been handled, so its line would be there by now
        status, text = srv.stop(signal.SIGTERM)
    for word in ("accepted fd", "closing fd", "echoing"):
        assert word not in text, "-q logged %r: %r" % (word, text[:300])
    m = SUMMARY.search(text)
    assert m and int(m.group(1)) == 1, "-q: summary %r" % text[-300:]


def verbose_log(variant):
    """-v adds `echoing N bytes to fd N` to the event log."""
    with variant.server("-v") as srv:
        with srv.connect() as sock:
            fd = accepted_fd(srv, sock)
            echo_roundtrip(sock, b"hello")
            srv.wait_for_log_match(r"^echoing 5 bytes to fd %d$" % fd)
        srv.wait_for_log_match(r"^closing fd %d(: .*)?$" % fd)


def stop_with_summary(variant, signo):
    """Three clients come and go, a fourth stays connected and idle; the
    signal makes the server exit 0 with a summary whose counts match."""
    sizes = [1, 100, 5000]
    with variant.server() as srv:
        base = srv.fd_count()
        for seed, size in enumerate(sizes):
            with srv.connect() as sock:
                echo_roundtrip(sock, payload(size, seed))
        srv.wait_until_idle(base)  # their bytes are counted once they are closed
        idle = srv.connect()
        try:
            accepted_fd(srv, idle)  # counted as a connection
            status, text = srv.stop(signo)
        finally:
            idle.close()
    assert status == 0, "exit status %d after signal %d" % (status, signo)
    found = SUMMARY.findall(text)
    assert len(found) == 1, "want one summary line, got %d: %r" % (len(found), text[-500:])
    connections, messages, echoed = (int(x) for x in found[0])
    assert connections == len(sizes) + 1, "summary counts %d connections, the test made %d" % (
        connections, len(sizes) + 1)
    assert echoed == sum(sizes), "summary counts %d bytes echoed, the test got %d" % (echoed, sum(sizes))
    assert len(sizes) <= messages <= sum(sizes), "summary counts %d messages" % messages


def sigterm_summary(variant):
    stop_with_summary(variant, signal.SIGTERM)


def sigint_summary(variant):
    stop_with_summary(variant, signal.SIGINT)


class StderrPipe:
    """A server whose stderr is a one-page pipe that the test reads only
    when it chooses: a terminal or pipe nobody drains."""

    def __init__(self, argv):
        self.read_fd, write_fd = os.pipe()
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)  # the smallest: fills after a few dozen lines
        env = dict(os.environ, ASAN_OPTIONS="abort_on_error=0:detect_leaks=1")
        self.proc = subprocess.Popen(argv + ["-p", "0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=write_fd, env=env)
        os.close(write_fd)
        line = self.proc.stdout.readline().decode(errors="replace")  # bounded by the test's time limit
        assert line.startswith("listening on "), "not ready: %r" % line
        self.port = harness.parse_address(line[len("listening on "):].strip())[1]

    def drain(self):
        """Everything written to the pipe, up to the server's exit."""
        chunks = []
        while True:
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                return b"".join(chunks).decode(errors="replace")
            chunks.append(chunk)

    def stop_and_drain(self, seconds):
        """SIGTERM, then read stderr while the server exits; fails if it
        takes longer than seconds. Returns the log."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        text = []
        reader = threading.Thread(target=lambda: text.append(self.drain()), daemon=True)
        reader.start()
        try:
            status = self.proc.wait(timeout=harness.slow(seconds))
        except subprocess.TimeoutExpired:
            raise AssertionError("still running %.0f s after SIGTERM" % harness.slow(seconds)) from None
        reader.join(harness.slow(10))
        assert status == 0, "exit status %d after SIGTERM" % status
        assert text, "stderr still open after the exit"
        return text[0], time.monotonic() - started

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()
        os.close(self.read_fd)


def assert_keeps_serving(argv, one_session, sessions=300):
    """The server logs more than its stderr pipe holds: every session is
    still served, SIGTERM still stops it at once, and the summary says how
    many lines were dropped."""
    srv = StderrPipe(argv)
    try:
        for i in range(sessions):
            with harness.connect(srv.port) as sock:
                one_session(sock, i)
        text, took = srv.stop_and_drain(seconds=3)
    finally:
        srv.close()
    for mark in harness.SANITIZER_MARKS:
        assert mark not in text, "sanitizer report: %s" % text[text.index(mark):][:1500]
    m = re.search(r"^summary: .*, (\d+) log lines dropped$", text, re.M)
    assert m and int(m.group(1)) > 0, "no count of dropped lines in the summary: %r" % text[-300:]


def echo_one(sock, i):
    message = b"message %d\n" % i
    sock.sendall(message)
    assert harness.recv_exactly(sock, len(message), timeout=5) == message


def log_never_blocks(variant):
    """With -v and a stderr pipe nobody reads, a blocking write of a log
    line would stop the server for every client: lines that do not fit
    are dropped and counted instead."""
    assert_keeps_serving([harness.binary(variant.program)] + variant.args + ["-v"], echo_one)


def test_ftpd_log_never_blocks():
    """ftpd with -v and a stderr pipe nobody reads: every session still
    gets its greeting and its goodbye."""

    def greet_and_quit(sock, i):
        assert sock.recv(1024).startswith(b"220"), "no greeting in session %d" % i
        sock.sendall(b"QUIT\r\n")
        assert harness.recv_exactly(sock, 3, timeout=5) == b"221"

    with tempfile.TemporaryDirectory(prefix="iomodels-ftp-") as root:
        assert_keeps_serving([harness.binary("ftpd"), "-v", "--root", root], greet_and_quit)


def test_stop_with_stderr_never_read():
    """A full stderr that is never read: SIGTERM stops the server within
    the second its summary may wait for room."""
    for argv in (["server-multiplexing"], ["server-blocking"], ["server-nonblocking", "--wait", "sigio"]):
        srv = StderrPipe([harness.binary(argv[0])] + argv[1:] + ["-v"])
        try:
            for i in range(100):
                with harness.connect(srv.port) as sock:
                    echo_one(sock, i)
            srv.proc.send_signal(signal.SIGTERM)
            try:
                srv.proc.wait(timeout=harness.slow(3))
            except subprocess.TimeoutExpired:
                raise AssertionError("%s: still running 3 s after SIGTERM" % argv[0]) from None
        finally:
            srv.close()


per_variant(globals(), usage_errors, time_limit=30)
per_variant(globals(), usage_states_defaults, time_limit=30)
per_variant(globals(), help_and_version, time_limit=30)
per_variant(globals(), readiness_line, time_limit=30)
per_variant(globals(), ipv6_loopback, time_limit=30)
per_variant(globals(), event_log, time_limit=30)
per_variant(globals(), quiet_log, time_limit=30)
per_variant(globals(), verbose_log, time_limit=30)
per_variant(globals(), log_never_blocks, time_limit=60)
per_variant(globals(), sigterm_summary, time_limit=30)
per_variant(globals(), sigint_summary, time_limit=30)
