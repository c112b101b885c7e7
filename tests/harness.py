"""What every integration test needs: start a server on a kernel-chosen port,
wait for its readiness line, talk to it on loopback, stop it and read its log.

Nothing here sleeps to synchronise: a server is ready when it has printed
`listening on ADDR:PORT`; everything else is a bounded wait on a socket, a
process, or a state in /proc that the test can observe.
"""
import contextlib
import ctypes
import os
import pathlib
import re
import resource
import select
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN_DIR = ROOT / "bin"
BUILD_DIR = ROOT / "build"
SANITIZED = False
DEFAULT_TEST_SECONDS = 90
SIGTERM = signal.SIGTERM


class Skip(Exception):
    """Raised by a test that cannot run here; the runner counts it apart."""


def configure(bin_dir, sanitized, build_dir=None):
    """build_dir holds what make builds for the tests only (unit-tests,
    shims/); by default the one that goes with bin_dir: build/ for bin/,
    build/san/ for build/san/bin/."""
    global BIN_DIR, BUILD_DIR, SANITIZED
    BIN_DIR = (ROOT / bin_dir) if not os.path.isabs(bin_dir) else pathlib.Path(bin_dir)
    if build_dir is not None:
        BUILD_DIR = (ROOT / build_dir) if not os.path.isabs(build_dir) else pathlib.Path(build_dir)
    else:
        BUILD_DIR = ROOT / "build" if BIN_DIR.parent == ROOT else BIN_DIR.parent
    SANITIZED = sanitized


def slow(seconds):
    """A time bound, stretched for the sanitized build, which runs slower."""
    return seconds * (4 if SANITIZED else 1)


def recv_all(sock, timeout=20):
    """Everything the peer sends until it closes (a data connection's whole transfer)."""
    sock.settimeout(slow(timeout))
    chunks = []
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def binary(name):
    """A program of scripts/variants.txt: in BIN_DIR, or a path from the root if it has a slash."""
    path = ROOT / name if "/" in name else BIN_DIR / name
    if not path.exists():
        raise AssertionError("%s was not built" % path)
    return str(path)


@contextlib.contextmanager
def time_limit(seconds):
    """Fails the test (instead of hanging the run) after seconds; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signo, frame):
        raise TimeoutError("test took longer than %ds" % seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(int(slow(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def wait_until(predicate, timeout, what):
    """Polls an observable state (a /proc file, a log) until it holds."""
    deadline = time.monotonic() + slow(timeout)
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out after %.1fs waiting for %s" % (slow(timeout), what))


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class Server:
    """A server process under test. Use as a context manager:

        with Server("server-multiplexing", "--api", "poll") as srv:
            sock = srv.connect()
    """

    def __init__(self, program, *args, port=0, nofile=None, env=None, ready=True, cwd=None):
        self.program = program
        self.args = [str(a) for a in args]
        self.port_arg = port
        self.nofile = nofile
        self.env = env
        self.cwd = cwd
        self.wait_ready = ready
        self.proc = None
        self.host = None
        self.port = None
        self.returncode = None
        self._stderr = tempfile.NamedTemporaryFile(prefix="iomodels-stderr-", delete=False)

    # -- life cycle ---------------------------------------------------------
    def start(self):
        argv = [binary(self.program)]
        if self.port_arg is not None:
            argv += ["-p", str(self.port_arg)]
        argv += self.args
        nofile = self.nofile

        def limits():
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
                                     preexec_fn=limits, env=env, cwd=self.cwd)
        if self.wait_ready:
            line = self.read_stdout_line(timeout=10)
            if not line.startswith("listening on "):
                self.kill()
                raise AssertionError("%s did not get ready: %r; stderr: %s" % (self.program, line, self.stderr()[-2000:]))
            self.host, self.port = parse_address(line[len("listening on "):].strip())
        return self

    def read_stdout_line(self, timeout):
        deadline = time.monotonic() + slow(timeout)
        data = b""
        fd = self.proc.stdout.fileno()
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # poll, not select: a test may already hold descriptors above 1023.
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if not poller.poll(left * 1000):
                break
            chunk = os.read(fd, 1)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.kill()
        self.close_files()
        return False

    def close_files(self):
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        self._stderr.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._stderr.name)

    def kill(self):
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(timeout=10)

    def signal(self, signo):
        self.proc.send_signal(signo)

    # (Inside this class `signal` is the method above, not the module: the
    # default below is the module-level SIGTERM.)
    def stop(self, signo=SIGTERM, timeout=10):
        """Sends signo, waits for the exit, returns (status, stderr text).
        Fails if it does not exit in time or a sanitizer reported anything."""
        self.proc.send_signal(signo)
        try:
            self.returncode = self.proc.wait(timeout=slow(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit within %ds of signal %d" % (self.program, slow(timeout), signo))
        text = self.stderr()
        self.check_sanitizers(text)
        return self.returncode, text

    def check_sanitizers(self, text=None):
        text = self.stderr() if text is None else text
        for mark in SANITIZER_MARKS:
            if mark in text:
                start = text.index(mark)
                raise AssertionError("sanitizer report from %s: %s" % (self.program, text[start:start + 1500]))

    def alive(self):
        return self.proc.poll() is None

    # -- observation --------------------------------------------------------
    def stderr(self):
        with open(self._stderr.name, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for_log(self, text, timeout=5):
        return wait_until(lambda: text in self.stderr(), timeout, "%r in the log of %s" % (text, self.program))

    def wait_for_log_match(self, pattern, timeout=5):
        """Like wait_for_log, for a regular expression; returns the match."""
        regex = re.compile(pattern, re.M)
        return wait_until(lambda: regex.search(self.stderr()), timeout,
                          "/%s/ in the log of %s" % (pattern, self.program))

    def wait_until_idle(self, base_fds, timeout=10):
        """Waits until every connection is gone: the descriptor count is back
        to base_fds and no child process is left (the fork variant's)."""
        def idle():
            if not self.alive():
                raise AssertionError("%s exited with status %s" % (self.program, self.proc.returncode))
            return self.fd_count() == base_fds and not self.children()
        try:
            wait_until(idle, timeout, "connections of %s to be gone" % self.program)
        except AssertionError as exc:
            raise AssertionError("%s: %d descriptors (%d at start), children %s" % (
                exc, self.fd_count(), base_fds, self.children())) from None

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def cpu_seconds(self):
        """User + system CPU time of the server (its threads included)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def children(self):
        """The server's child processes (those any of its threads made)."""
        return child_pids(self.proc.pid)

    def socket_inodes(self):
        """The inodes of the sockets the server and its children hold open."""
        inodes = set()
        for pid in [self.proc.pid] + self.children():
            inodes |= socket_inodes(pid)
        return inodes

    def connect(self, timeout=5):
        try:
            return connect(self.port, self.host, timeout)
        except ConnectionRefusedError:
            self.explain_refusal()
            raise

    def explain_refusal(self):
        """After a refused connect: fails saying how the server ended, if it
        has (a dying process closes its listener just before it exits)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        status = self.proc.poll()
        if status is not None:
            how = "was killed by %s" % signal.Signals(-status).name if status < 0 else \
                "had exited with status %d" % status
            raise AssertionError("connection refused: the server %s" % how) from None


def child_pids(pid):
    """The children of pid, made by any of its threads; [] once it is gone."""
    pids = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                    pids += [int(p) for p in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return pids


def socket_inodes(pid):
    """The inodes of the sockets among pid's descriptors (empty once it is gone)."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in os.listdir("/proc/%d/fd" % pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def listening_addresses(pid, inodes):
    """(host, port) of the TCP sockets in LISTEN state among inodes, as seen
    in pid's network namespace; IPv4 first."""
    found = []
    for table, v6 in (("tcp", False), ("tcp6", True)):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                next(f)
                for row in f:
                    fields = row.split()
                    if fields[3] != "0A" or int(fields[9]) not in inodes:  # 0A: TCP_LISTEN
                        continue
                    addr, port = fields[1].split(":")
                    raw = bytes.fromhex(addr)
                    # The kernel prints each 32-bit word of the address in host order.
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                    host = socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw)
                    found.append((host, int(port, 16)))
    return found


def loopback_for(host):
    """The address a loopback client dials for a server listening on host:
    a wildcard address (0.0.0.0, ::, on Linux dual-stack by default) is
    reached at 127.0.0.1."""
    if host in ("0.0.0.0", "::", "::ffff:0.0.0.0", "", "*"):
        return "127.0.0.1"
    if host.startswith("::ffff:"):
        return host[len("::ffff:"):]
    return host


class CommandServer(Server):
    """A server given as a command line, in any language (make grade): the
    grader's contract with it.

    - The command is split like a shell would (shlex) and run directly, so
      the process watched is the server itself. `{port}` in it is replaced
      by 0; a command without `{port}` gets `-p 0` appended (the project's
      own convention). Port 0 means the kernel chooses a free port when the
      server binds: nothing can take it first.
    - The server is ready when it prints `listening on HOST:PORT` on stdout
      or, if it prints nothing (or its output is buffered), as soon as
      /proc shows a TCP socket in LISTEN state among its descriptors: the
      grader reads the port the kernel chose from there.
    - stdout and stderr go to files, so a server that writes a lot never
      blocks on an undrained pipe.
    """

    def __init__(self, command, nofile=None, env=None, cwd=None):
        super().__init__(command, nofile=nofile, env=env, cwd=cwd)
        self.command = command
        self._stdout = tempfile.NamedTemporaryFile(prefix="iomodels-stdout-", delete=False)

    def argv(self):
        words = shlex.split(self.command)
        if any("{port}" in w for w in words):
            return [w.replace("{port}", "0") for w in words]
        return words + ["-p", "0"]

    def start(self):
        nofile = self.nofile

        def limits():
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=self._stdout, stderr=self._stderr,
                                         stdin=subprocess.DEVNULL, preexec_fn=limits, env=env, cwd=self.cwd)
        except OSError as exc:
            raise AssertionError("cannot run %r: %s" % (self.command, exc)) from None
        try:
            self.host, self.port = wait_until(self.listening, 10, "%r to listen" % self.command)
        except AssertionError:
            self.kill()
            raise
        return self

    def listening(self):
        """(host, port) once the server listens, else None; fails if it exited."""
        with open(self._stdout.name, "rb") as f:
            m = re.search(rb"^listening on (\S+)\r?$", f.read(), re.M)
        if m:
            host, port = parse_address(m.group(1).decode(errors="replace"))
            return loopback_for(host), port
        if self.proc.poll() is not None:
            raise AssertionError("%r exited with status %d before listening; stderr: %s" % (
                self.command, self.proc.returncode, one_line(self.stderr()[-500:])))
        found = []
        for pid in [self.proc.pid] + self.children():
            found += listening_addresses(pid, socket_inodes(pid))
        if found:
            host, port = found[0]
            return loopback_for(host), port
        return None

    def kill(self):
        """Kills the server and the children it left (a forking server's)."""
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        super().kill()

    def close_files(self):
        super().close_files()
        self._stdout.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._stdout.name)


def parse_address(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def connect(port, host="127.0.0.1", timeout=5):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(slow(timeout))
    sock.connect((host, port))
    return sock


def recv_exactly(sock, n, timeout=10):
    """Reads exactly n bytes or fails: EOF or the deadline is an error."""
    deadline = time.monotonic() + slow(timeout)
    chunks, got = [], 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out with %d of %d bytes" % (got, n))
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(n - got, 1 << 20))
        except socket.timeout:
            raise AssertionError("timed out with %d of %d bytes" % (got, n)) from None
        if not chunk:
            raise AssertionError("connection closed after %d of %d bytes" % (got, n))
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def expect_eof(sock, timeout=5):
    sock.settimeout(slow(timeout))
    data = sock.recv(1)
    if data:
        raise AssertionError("expected EOF, got %r" % data)


def echo_roundtrip(sock, payload, timeout=10):
    """Sends payload (from a thread, so a large one cannot deadlock against
    the echo filling our receive buffer) and checks the echo byte for byte."""
    sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
    sender.start()
    echoed = recv_exactly(sock, len(payload), timeout)
    sender.join(slow(timeout))
    if echoed != payload:
        first = next(i for i, (a, b) in enumerate(zip(echoed, payload)) if a != b)
        raise AssertionError("echo differs at byte %d of %d" % (first, len(payload)))


def payload(n, seed=0):
    """n bytes that differ by position and seed, so reordering or mixing shows."""
    pattern = bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(min(n, 65536) or 1))
    return (pattern * (n // len(pattern) + 1))[:n]


IO_URING_SETUP = 425  # the system call's number, the same on every architecture
IO_URING_PARAMS_SIZE = 120


def io_uring_unavailable():
    """None if io_uring can be used here, else the reason: the sysctl, and a
    real io_uring_setup (a seccomp profile, as in containers, refuses it)."""
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            if f.read().strip() not in ("0", ""):
                return "kernel.io_uring_disabled is set"
    except FileNotFoundError:
        pass
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(IO_URING_PARAMS_SIZE)
    fd = libc.syscall(IO_URING_SETUP, 1, params)
    if fd < 0:
        return "io_uring_setup: %s" % os.strerror(ctypes.get_errno())
    os.close(fd)
    return None


def read_variants(path=None):
    """The echo variants of scripts/variants.txt (the one table the tests and
    the scripts share), as (name, program, args, traits) tuples; traits maps
    each trait named there (concurrent, forks, spins, needs_uring, extra, sketch) to True."""
    path = path or ROOT / "scripts" / "variants.txt"
    table = []
    for line in pathlib.Path(path).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, traits, program, *args = line.split()
        table.append((name, program, args, {t: True for t in traits.split(",") if t != "-"}))
    return table


# The tests' matrix: every variant but the extra modes of another one and
# the teaching sketches (tests/test_selectors_echo.py covers the Python one).
ECHO_VARIANTS = [v for v in read_variants() if not (v[3].get("extra") or v[3].get("sketch"))]


def variants(concurrent=None, built_only=False):
    """The echo variants; built_only=True leaves out programs not built (for -k runs while developing)."""
    chosen = []
    for name, program, args, traits in ECHO_VARIANTS:
        if built_only and not (BIN_DIR / program).exists():
            continue
        if concurrent is not None and bool(traits.get("concurrent")) != concurrent:
            continue
        chosen.append((name, program, args, traits))
    return chosen


def skip_unless_usable(traits):
    if traits.get("needs_uring"):
        reason = io_uring_unavailable()
        if reason:
            raise Skip("io_uring unavailable (%s)" % reason)


def process_state(pid):
    """The state letter of /proc/PID/stat (R, S, T, Z...), or None once the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def raise_own_fd_limit(wanted):
    """Raises this process's soft RLIMIT_NOFILE to its hard limit, for a test that
    holds many sockets; skips the test if even the hard limit is below wanted."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise Skip("RLIMIT_NOFILE hard limit is %d, this test needs %d" % (hard, wanted))
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class EchoVariant:
    """One entry of ECHO_VARIANTS, able to start its server. (tests/grade.py
    has the same shape for a student's server, with ours = False.)"""

    ours = True  # one of the project's servers: its options and log lines may be used

    def __init__(self, name, program, args, traits):
        self.name, self.program, self.args, self.traits = name, program, list(args), dict(traits)

    def server(self, *extra, **kwargs):
        return Server(self.program, *(self.args + [str(a) for a in extra]), **kwargs)


def per_variant(namespace, prop, applies=None, time_limit=None):
    """Makes one test per echo variant out of prop(variant), named
    test_<prop>__<variant>, in namespace (a test module's globals()), so a
    failure names both the property and the server. applies(variant) picks
    the variants; io_uring variants are skipped where io_uring is unusable.
    The tests keep prop's place in the module's source order."""
    for entry in ECHO_VARIANTS:
        variant = EchoVariant(*entry)
        if applies is not None and not applies(variant):
            continue

        def test(variant=variant):
            skip_unless_usable(variant.traits)
            prop(variant)

        name = "test_%s__%s" % (prop.__name__.strip("_"), variant.name.replace("-", "_"))
        test.__name__ = test.__qualname__ = name
        test.__module__ = namespace["__name__"]
        test.__doc__ = prop.__doc__
        # The runner orders a module's tests by source line: take prop's.
        test.__code__ = test.__code__.replace(co_firstlineno=prop.__code__.co_firstlineno)
        if time_limit is not None:
            test.time_limit = time_limit
        namespace[name] = test


# -- grade reports (make grade, make grade-ftp) ----------------------------------
# One line per guarantee, then a summary a teacher can paste into a grade sheet:
#
#   PASS  echo-sizes
#   FAIL  half-close: connection closed after 0 of 98304 bytes
#   N/A   no-zombies: the server made no child process
#   ...
#   summary: 9 of 10 applicable checks passed, 1 failed, 2 not applicable
#   sheet:	echo-sizes	half-close	...	score
#   sheet:	PASS	FAIL	...	9/10
#
# The two sheet: lines are tab-separated, so pasted into a spreadsheet they
# fill a header row and a row of results.

PASS, FAIL, NOT_APPLICABLE = "PASS", "FAIL", "N/A"


class NotApplicable(Skip):
    """Raised by a check whose guarantee does not apply to the server graded
    (its declared design, or what the grader can observe of it): reported
    N/A, never PASS."""


def run_check(check):
    """Runs check() and returns (status, reason): PASS; FAIL with the
    assertion's message (or the unexpected exception); N/A when it raised
    Skip or NotApplicable."""
    try:
        check()
    except Skip as skip:
        return NOT_APPLICABLE, str(skip) or "does not apply"
    except AssertionError as exc:
        return FAIL, one_line(str(exc)) or "assertion failed"
    except Exception as exc:  # noqa: BLE001 - any other error is the check failing
        return FAIL, one_line("%s: %s" % (type(exc).__name__, exc))
    return PASS, ""


def one_line(text, limit=300):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def report_line(name, status, reason=""):
    """`PASS  name`, `FAIL  name: reason` or `N/A   name: reason`."""
    line = "%-5s %s" % (status, name)
    return line + (": " + reason if reason and status != PASS else "")


def report(results, name, status, reason, out):
    """Records one check's result and prints its line at once, so a teacher sees progress."""
    results.append((name, status, reason))
    print(report_line(name, status, reason), file=out, flush=True)


def print_summary(results, out):
    for line in report_summary(results):
        print(line, file=out, flush=True)


def report_summary(results):
    """The closing lines of a grade report for results, a list of
    (name, status, reason): a sentence, then the two tab-separated sheet rows."""
    passed = sum(1 for _, s, _ in results if s == PASS)
    failed = sum(1 for _, s, _ in results if s == FAIL)
    na = sum(1 for _, s, _ in results if s == NOT_APPLICABLE)
    applicable = passed + failed
    return ["summary: %d of %d applicable checks passed, %d failed, %d not applicable" % (
                passed, applicable, failed, na),
            "\t".join(["sheet:"] + [n for n, _, _ in results] + ["score"]),
            "\t".join(["sheet:"] + [s for _, s, _ in results] + ["%d/%d" % (passed, applicable)])]
