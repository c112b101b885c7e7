"""What is particular to the async server: which engine it picks
and why, io_uring's completion queue under a burst, --sqpoll, the one-shot
fallback, POSIX AIO's thread pool, and what strace shows of each engine.

The properties every echo server shares run against both engines in
test_echo.py; these are the ones only bin/server-async has. Where io_uring
cannot be used here, its tests say `skipped: io_uring unavailable (reason)`.
"""
import contextlib
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import time

import harness
from harness import echo_roundtrip, expect_eof, payload, recv_exactly, slow, wait_until

PROGRAM = "server-async"


def needs_uring():
    reason = harness.io_uring_unavailable()
    if reason:
        raise harness.Skip("io_uring unavailable (%s)" % reason)


def needs_strace():
    path = shutil.which("strace")
    if not path:
        raise harness.Skip("strace is not installed")
    return path


@contextlib.contextmanager
def traced(strace_args, *server_args):
    """bin/server-async run under strace. The Server's process is strace
    itself, so the server is its child; LeakSanitizer cannot run under
    ptrace, so it is off here."""
    argv = list(strace_args) + [harness.binary(PROGRAM), "-p", "0"] + [str(a) for a in server_args]
    srv = harness.Server(needs_strace(), *argv, port=None, env={"ASAN_OPTIONS": "detect_leaks=0"})
    try:
        yield srv.start()
    finally:
        # Killing strace would only detach it: the server goes on its own.
        if srv.proc and srv.proc.poll() is None:
            for pid in srv.children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        srv.__exit__(None, None, None)


def stop_traced(srv, timeout=10):
    """SIGTERM to the server (strace's child); strace exits with its status."""
    children = srv.children()
    assert children, "no server process under strace"
    os.kill(children[0], signal.SIGTERM)
    status = srv.proc.wait(timeout=slow(timeout))
    return status, srv.stderr()


def engine_line(srv):
    return srv.wait_for_log_match(r"^async with .*$").group(0)


@contextlib.contextmanager
def start_or_skip(*args, **kwargs):
    """A running server, or Skip if this kernel refuses what args ask for
    (--sqpoll, a --task-run mode): exit 1 with a clear message."""
    srv = harness.Server(PROGRAM, *args, ready=False, **kwargs)
    try:
        srv.start()
        line = srv.read_stdout_line(timeout=10)
        if not line.startswith("listening on "):
            srv.proc.wait(timeout=slow(10))
            log = srv.stderr()
            refused = re.search(r"^server-async: (--sqpoll is not permitted here|--task-run \S+ is refused).*$",
                                log, re.M)
            assert srv.proc.returncode == 1 and refused, \
                "no readiness line, exit %s: %s" % (srv.proc.returncode, log[-500:])
            raise harness.Skip(refused.group(0))
        srv.host, srv.port = harness.parse_address(line[len("listening on "):].strip())
        yield srv
    finally:
        srv.__exit__(None, None, None)


def thread_count(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^Threads:\s*(\d+)", f.read(), re.M).group(1))


# -- choosing the engine ------------------------------------------------------

def test_auto_picks_uring_and_says_so():
    needs_uring()
    with harness.Server(PROGRAM) as srv:
        line = engine_line(srv)
        # Which of them depends on the kernel: multishot from 5.19 and 6.0.
        assert re.match(r"async with io_uring: (multishot|one-shot) accept, (multishot|one-shot) recv", line), line
        with srv.connect() as sock:
            echo_roundtrip(sock, payload(100000, 1))
        status, log = srv.stop()
        assert status == 0, log[-500:]


def test_auto_falls_back_to_posix_aio_with_the_reason():
    """io_uring_setup failing as it does without io_uring (ENOSYS) or under a
    seccomp profile (EPERM), simulated with strace's fault injection: auto
    says why in one line and serves with posix-aio."""
    for err, words in (("ENOSYS", "Function not implemented"), ("EPERM", "Operation not permitted")):
        with traced(["-f", "-o", os.devnull, "-e", "inject=io_uring_setup:error=" + err]) as srv:
            line = engine_line(srv)
            assert line.startswith("async with posix-aio, as io_uring is unavailable: io_uring_setup: " + words), line
            with srv.connect() as sock:
                echo_roundtrip(sock, payload(70000, 2))
            status, log = stop_traced(srv)
            assert status == 0, "%s: exit %d: %s" % (err, status, log[-500:])
            assert re.search(r"^summary: 1 connection", log, re.M), log[-500:]
            assert len(re.findall(r"^async with ", log, re.M)) == 1, "one engine line expected: %s" % log[:500]


def test_engine_uring_where_unavailable_exits_1():
    strace = needs_strace()
    argv = [strace, "-f", "-o", os.devnull, "-e", "inject=io_uring_setup:error=ENOSYS",
            harness.binary(PROGRAM), "-p", "0", "--engine", "uring"]
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, timeout=slow(10), env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    assert result.returncode == 1, "exit %d: %s" % (result.returncode, result.stderr[-500:])
    assert "listening on" not in result.stdout, "it started serving"
    assert "server-async: io_uring is unavailable: io_uring_setup: Function not implemented" in result.stderr, \
        result.stderr[-500:]


def test_sqpoll_serves_or_says_why_not():
    needs_uring()
    with start_or_skip("--engine", "uring", "--sqpoll") as srv:
        assert "submission queue polled" in engine_line(srv)
        with srv.connect() as a, srv.connect() as b:
            for i in range(20):
                echo_roundtrip(a, payload(3000 + i, i))
                echo_roundtrip(b, payload(10, i))
            echo_roundtrip(a, payload(4 << 20, 7), timeout=30)
        status, log = srv.stop()
        assert status == 0, log[-500:]


# -- out of descriptors -------------------------------------------------------

EXHAUSTION_MODES = (("--engine", "uring"), ("--engine", "uring", "--sqpoll"), ("--engine", "uring", "--oneshot"),
                    ("--engine", "uring", "--task-run", "cooperative"),
                    ("--engine", "uring", "--task-run", "interrupting"), ("--engine", "posix-aio"))


def cpu_share(srv, seconds):
    """The server's CPU time (all its threads, the SQPOLL thread included:
    /proc/PID/stat) over a window of the given length, as a share of one CPU."""
    cpu, start = srv.cpu_seconds(), time.monotonic()
    time.sleep(seconds)  # a measurement window, not a synchronisation
    return (srv.cpu_seconds() - cpu) / (time.monotonic() - start)


def test_out_of_descriptors_every_mode_uses_next_to_no_cpu():
    """Under a descriptor limit with more clients than it can hold, a server
    in every engine and mode goes quiet until a descriptor frees up, then
    serves the clients that waited. With --sqpoll the kernel's polling
    thread spins for its idle time (1 s) after each submission, so a server
    that retried accept more often than that would keep it spinning."""
    nofile = 48
    for mode in EXHAUSTION_MODES:
        if "uring" in mode and harness.io_uring_unavailable():
            continue
        with start_or_skip("-q", *mode, nofile=nofile) as srv:
            clients = []
            try:
                for _ in range(nofile + 8):
                    clients.append(srv.connect())
                wait_until(lambda: srv.fd_count() >= nofile - 4, 10, "%s to run out of descriptors" % (mode,))
                srv.wait_for_log("pausing new connections")
                # Bounded wait for the first quiet half second: the polling
                # thread's idle time runs out within about a second.
                shares = []
                deadline = time.monotonic() + slow(5)
                while not shares or (shares[-1] >= 0.1 and time.monotonic() < deadline):
                    shares.append(cpu_share(srv, 0.5))
                assert shares[-1] < 0.1, "%s: busy while out of descriptors: %s of a CPU in each 0.5 s" % (
                    " ".join(mode), ", ".join("%.2f" % x for x in shares))
                share = cpu_share(srv, 1.0)
                assert share < 0.1, "%s: %.2f of a CPU over 1 s while out of descriptors" % (" ".join(mode), share)
                for sock in clients[:len(clients) // 2]:
                    sock.close()
                for i, sock in enumerate(clients[len(clients) // 2:]):
                    echo_roundtrip(sock, b"waited %d" % i, timeout=10)
            finally:
                for sock in clients:
                    sock.close()
            status, log = srv.stop()
            assert status == 0, "%s: %s" % (" ".join(mode), log[-500:])
            assert log.count("pausing new connections") == 1, "%s: one log line per episode: %s" % (
                " ".join(mode), log[-500:])


# -- io_uring under a burst ---------------------------------------------------

def burst(srv, n, size):
    """n clients connect and are accepted; the server is stopped while every
    one of them sends, then continued: all n messages are waiting for it at
    once. Then each sends once more. Returns {client: outcome}."""
    sel = selectors.DefaultSelector()
    socks = []
    base_fds = srv.fd_count()
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            sock.connect_ex((srv.host, srv.port))
        wait_until(lambda: srv.fd_count() >= base_fds + n, 60, "the server to accept %d clients" % n)
        srv.signal(signal.SIGSTOP)
        wait_until(lambda: harness.process_state(srv.proc.pid) == "T", 5, "the server to stop")
        messages = []
        for i, sock in enumerate(socks):
            msg = (b"%05d|" % i) + payload(size - 6, i)
            messages.append(msg)
            assert sock.send(msg) == len(msg), "client %d: short send to a stopped server" % i
        srv.signal(signal.SIGCONT)

        outcome, got = {}, {i: bytearray() for i in range(n)}
        for i, sock in enumerate(socks):
            sel.register(sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + slow(60)
        while len(outcome) < n and time.monotonic() < deadline:
            for key, _ in sel.select(0.2):
                i = key.data
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionError as exc:
                    data, outcome[i] = b"", "error: %s" % exc
                if not data:
                    outcome.setdefault(i, "eof after %d bytes" % len(got[i]))
                    sel.unregister(key.fileobj)
                    continue
                got[i] += data
                if len(got[i]) >= size:
                    outcome[i] = "ok" if got[i] == messages[i] else "mismatch"
                    sel.unregister(key.fileobj)
        for i in range(n):
            outcome.setdefault(i, "no echo in time")
        # A second message on every connection: each must still be received
        # (a multishot recv that the burst ended has to be re-armed).
        for i, sock in enumerate(socks):
            if outcome[i] == "ok":
                sock.setblocking(True)
                sock.settimeout(slow(20))
                sock.sendall(b"again %05d" % i)
        for i, sock in enumerate(socks):
            if outcome[i] == "ok" and recv_exactly(sock, 11, timeout=20) != b"again %05d" % i:
                outcome[i] = "second echo garbled"
        return outcome
    finally:
        sel.close()
        for sock in socks:
            sock.close()


def test_burst_of_3000_clients_all_echoed():
    """3000 clients send while the server is stopped; once continued, all
    their messages are due at once: every client gets its echo."""
    needs_uring()
    n = 3000
    harness.raise_own_fd_limit(n + 200)
    with harness.Server(PROGRAM, "-q", "--engine", "uring", "--max-clients", n + 100, nofile=n + 300) as srv:
        outcome = burst(srv, n, 100)
        bad = {i: r for i, r in outcome.items() if r != "ok"}
        assert not bad, "%d of %d without their echo, e.g. %s" % (len(bad), n, sorted(bad.items())[:5])
        with srv.connect() as sock:
            echo_roundtrip(sock, b"after the burst")
        status, log = srv.stop(timeout=20)
        assert status == 0, log[-500:]


def test_completion_queue_overflow_loses_nothing():
    """The same burst with --task-run cooperative: continued, our thread
    runs all the pending work at once, far more completions than the CQ
    holds (1024). The kernel keeps the overflow (the log says so), the
    multishot requests it ended are re-armed, and no echo is lost. (With
    the default deferred task running the kernel posts only about as many
    as we wait for, so the CQ does not overflow there.)"""
    needs_uring()
    n = 3000
    harness.raise_own_fd_limit(n + 200)
    with start_or_skip("--engine", "uring", "--task-run", "cooperative", "--max-clients", n + 100,
                       nofile=n + 300) as srv:
        outcome = burst(srv, n, 100)
        bad = {i: r for i, r in outcome.items() if r != "ok"}
        assert not bad, "%d of %d without their echo, e.g. %s" % (len(bad), n, sorted(bad.items())[:5])
        assert srv.alive(), "the server exited"
        assert "completion queue overflowed" in srv.stderr(), \
            "the burst did not overflow the CQ: this test no longer tests overflow"
        with srv.connect() as sock:
            echo_roundtrip(sock, b"after the burst")
        status, log = srv.stop(timeout=20)
        assert status == 0, log[-500:]


def test_clients_that_never_read_cannot_starve_a_new_one():
    """100 clients send without reading until the server stops taking their
    bytes. Each may hold 64 KiB of ring buffers, and the shared pool has
    --max-clients x 17: a connection that took more than its share (a
    multishot recv runs until its cancel lands) could empty the pool, and a
    new client would wait on ENOBUFS for ever."""
    needs_uring()
    n = 100
    with harness.Server(PROGRAM, "-q", "--engine", "uring", "--max-clients", n + 1) as srv:
        hogs = []
        try:
            for _ in range(n):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                hogs.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
                sock.connect((srv.host, srv.port))
                sock.setblocking(False)
            chunk = payload(65536, 11)
            started = last_progress = time.monotonic()
            while time.monotonic() - last_progress < 0.5 and time.monotonic() - started < slow(20):
                for sock in hogs:
                    try:
                        sock.send(chunk)
                        last_progress = time.monotonic()
                    except BlockingIOError:
                        pass
                time.sleep(0.005)
            with srv.connect() as sock:
                echo_roundtrip(sock, payload(4000, 12), timeout=5)
        finally:
            for sock in hogs:
                sock.close()
        status, log = srv.stop(timeout=20)
        assert status == 0, log[-500:]


def test_task_run_modes_fall_back_on_einval():
    """An older kernel refuses DEFER_TASKRUN, then COOP_TASKRUN, with EINVAL
    (injected here with strace): the ring is set up with the next mode."""
    needs_uring()
    with start_or_skip("--engine", "uring", "--task-run", "deferred") as srv:
        srv.stop()  # this kernel has every mode, so the refusals below are the injected ones
    for refusals, mode in ((1, "cooperative task running"), (2, "task running by interruption")):
        inject = "inject=io_uring_setup:error=EINVAL:when=1..%d" % refusals
        with traced(["-f", "-o", os.devnull, "-e", inject], "--engine", "uring") as srv:
            line = engine_line(srv)
            assert re.search(r", %s(,|$)" % mode, line), "after %d refusals: %s" % (refusals, line)
            with srv.connect() as sock:
                echo_roundtrip(sock, payload(20000, refusals))
            status, log = stop_traced(srv)
            assert status == 0, log[-500:]


# -- the fallback without multishot or buffer ring ----------------------------

def test_oneshot_engine_echoes_like_the_others():
    """--oneshot runs what kernels before 5.19 get: one request per accept
    and per recv, into each connection's own buffer. Sizes up to 4 MiB,
    half-close, a reset, and a client that never reads (bounded, not
    blocking anyone)."""
    needs_uring()
    echoes_like_the_others(["--oneshot"], "one-shot accept, one-shot recv into each connection's 65536-byte buffer")


def test_each_io_uring_feature_switched_off_or_on_echoes_like_the_others():
    """The switches the ladder in docs/async.md climbs: a one-shot recv from
    the buffer ring, the ring's descriptor not registered, batched waits.
    Each serves the same traffic; what it is shows in the engine line."""
    needs_uring()
    for args, says in ((["--oneshot-recv"], "one-shot recv into 4096-byte buffers from a ring"),
                       (["--registered-ring", "off", "--wait-batch", "off"], "deferred task running\n"),
                       (["--wait-batch", "100"], "batches (at most 100 us)"),
                       ([], "batches while nearly every connection is busy (at most 50 us)")):
        echoes_like_the_others(args, says)


def batched_waits(log):
    """(batched, all) from the closing line of a batching server."""
    m = re.search(r"io_uring: (\d+) of (\d+) waits were batched", log)
    assert m, "no line on batched waits: %s" % log[-800:]
    return int(m.group(1)), int(m.group(2))


def needs_min_wait(srv):
    if "no minimum wait for completions" in srv.stderr():
        raise harness.Skip("this kernel has no minimum wait for completions (Linux 6.12)")


def test_waits_are_batched_only_while_nearly_every_connection_is_busy():
    """By default the engine waits for one completion at a time, so a few
    clients' round trips never wait for a timer, however busy each is. Once
    32 connections each send a message within a millisecond, round after
    round, it waits for several at once; it says how often when it stops."""
    needs_uring()

    def rounds(srv, conns, count):
        socks = [srv.connect() for _ in range(conns)]
        try:
            for seed in range(count):
                message = payload(64, seed)
                for sock in socks:
                    sock.sendall(message)
                for sock in socks:
                    assert recv_exactly(sock, 64) == message
        finally:
            for sock in socks:
                sock.close()
        status, log = srv.stop()
        assert status == 0, log[-500:]
        return batched_waits(log)

    with start_or_skip("--engine", "uring") as srv:
        needs_min_wait(srv)
        batched, waits = rounds(srv, 8, 100)
        assert waits >= 100 and batched == 0, "8 busy connections: %d of %d waits batched" % (batched, waits)
    with start_or_skip("--engine", "uring") as srv:
        batched, waits = rounds(srv, 32, 100)
        assert batched > 0, "32 busy connections: %d of %d waits batched" % (batched, waits)

    with start_or_skip("--engine", "uring", "--wait-batch", "off") as srv:
        with srv.connect() as sock:
            echo_roundtrip(sock, payload(64))
        status, log = srv.stop()
        assert status == 0 and "waits were batched" not in log, log[-500:]


def echoes_like_the_others(args, says):
    with start_or_skip("--engine", "uring", *args) as srv:
        line = engine_line(srv) + "\n"
        assert says in line, "%s: %s" % (" ".join(args), line)
        with srv.connect() as sock:
            for seed, size in enumerate((1, 1024, 65536, 4 << 20)):
                echo_roundtrip(sock, payload(size, seed), timeout=30)
        with srv.connect() as sock:
            sock.sendall(payload(300000, 5))
            sock.shutdown(socket.SHUT_WR)
            assert recv_exactly(sock, 300000) == payload(300000, 5)
            expect_eof(sock)
        with srv.connect() as hog, srv.connect() as other:
            hog.setblocking(False)
            try:
                for _ in range(400):  # up to 100 MiB, far beyond what the kernel buffers
                    hog.send(payload(256 * 1024, 6))
            except BlockingIOError:
                pass
            echo_roundtrip(other, payload(5000, 7))
        status, log = srv.stop()
        assert status == 0, log[-500:]


def test_registered_ring_refused_falls_back_in_one_line():
    """A kernel that cannot register the ring's descriptor (before 5.18;
    EINVAL injected here with strace) gets one log line, and the server
    enters the ring by its plain descriptor."""
    needs_uring()
    with traced(["-f", "-o", os.devnull, "-e", "inject=io_uring_register:error=EINVAL:when=1"],
                "--engine", "uring") as srv:
        line = engine_line(srv)
        assert "registered ring descriptor" not in line, line
        with srv.connect() as sock:
            echo_roundtrip(sock, payload(70000, 3))
        status, log = stop_traced(srv)
        assert status == 0, log[-500:]
        assert len(re.findall(r"cannot register the ring's descriptor", log)) == 1, log[-800:]


def test_without_buffer_ring_each_connection_uses_its_own_buffer():
    """A kernel that refuses the buffer ring (injected EINVAL on
    io_uring_register): the server says so and receives into each
    connection's buffer instead."""
    needs_uring()
    with traced(["-f", "-o", os.devnull, "-e", "inject=io_uring_register:error=EINVAL"], "--engine", "uring") as srv:
        assert "recv into each connection's 65536-byte buffer" in engine_line(srv)
        with srv.connect() as sock:
            echo_roundtrip(sock, payload(200000, 8))
        status, log = stop_traced(srv)
        assert status == 0, log[-500:]


# -- POSIX AIO ------------------------------------------------------------------

def test_posix_aio_serves_a_new_client_past_500_idle_ones():
    """Each idle connection has a glibc helper thread blocked in read; with
    glibc's default of 20 threads the 501st client would wait for ever. The
    pool is sized from --max-clients, so it is served."""
    n = 500
    harness.raise_own_fd_limit(n + 100)
    with harness.Server(PROGRAM, "-q", "--engine", "posix-aio", nofile=n + 200) as srv:
        idle = []
        try:
            for _ in range(n):
                idle.append(srv.connect())
            wait_until(lambda: thread_count(srv.proc.pid) > n, 30, "a helper thread per idle connection")
            with srv.connect() as sock:
                echo_roundtrip(sock, payload(5000, 9), timeout=10)
            echo_roundtrip(idle[0], b"the first idle one too")
        finally:
            for sock in idle:
                sock.close()
        status, log = srv.stop(timeout=30)
        assert status == 0, log[-500:]


def test_posix_aio_completion_whose_signal_is_lost_does_not_hang_its_connection():
    """RLIMIT_SIGPENDING 0: no completion signal can be queued, and glibc
    marks each request failed (EAGAIN) instead. No signal wakes the loop for
    it; the once-a-second sweep (aio_error on every request in flight) finds
    it, so the connection is closed with a log line rather than waiting for
    ever, and the server goes on."""
    prlimit = shutil.which("prlimit")
    if not prlimit:
        raise harness.Skip("prlimit is not installed")
    with harness.Server(prlimit, "--sigpending=0:0", harness.binary(PROGRAM), "-p", "0",
                        "--engine", "posix-aio", port=None) as srv:
        for _ in range(2):
            with srv.connect() as sock:
                sock.sendall(b"a message whose completion signal cannot be queued")
                expect_eof(sock, timeout=10)
        log = srv.wait_for_log_match(r"completion signal never came.*").group(0)
        assert "RLIMIT_SIGPENDING" in log
        srv.wait_for_log_match(r"closing fd \d+: Resource temporarily unavailable")
        status, log = srv.stop()
        assert status == 0, log[-500:]


# -- what strace shows ------------------------------------------------------------

READS = ("read", "readv", "pread64", "recvfrom", "recvmsg", "recv")


def syscalls_on(trace_text, fds):
    """(pid, name, fd) of every read-like call on one of fds in an strace -f log."""
    found = []
    for line in trace_text.splitlines():
        m = re.match(r"^(\d+)\s+(\w+)\((\d+),", line)
        if m and m.group(2) in READS and int(m.group(3)) in fds:
            found.append((int(m.group(1)), m.group(2), int(m.group(3))))
    return found


def traced_echo(engine, trace_path):
    """Echo traffic on two clients under strace -f; returns (server pid, its
    client fds, the trace)."""
    with traced(["-f", "-o", trace_path, "-e", "trace=%s,io_uring_enter" % ",".join(READS)],
                "--engine", engine) as srv:
        with srv.connect() as a, srv.connect() as b:
            fds = {int(srv.wait_for_log_match(r"^accepted fd (\d+) from 127\.0\.0\.1:%d$" % s.getsockname()[1]).group(1))
                   for s in (a, b)}
            for i in range(10):
                echo_roundtrip(a, payload(1000 + i, i))
                echo_roundtrip(b, payload(100000, i))
        pid = srv.children()[0]
        status, log = stop_traced(srv)
        assert status == 0, log[-500:]
    with open(trace_path) as f:
        return pid, fds, f.read()


def test_uring_never_reads_its_client_sockets():
    """Under strace -f the io_uring server makes no read, recv or recvfrom on
    its clients' sockets at all: the kernel receives for it."""
    needs_uring()
    path = "/tmp/iomodels-strace-uring-%d.txt" % os.getpid()
    try:
        pid, fds, trace = traced_echo("uring", path)
        assert re.search(r"io_uring_enter\(", trace), "strace saw no io_uring_enter: the trace is empty?"
        reads = syscalls_on(trace, fds)
        assert not reads, "the io_uring server read its sockets itself: %s" % reads[:5]
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_posix_aio_reads_on_helper_threads():
    """The contrast: under strace -f the posix-aio server's sockets are read
    with plain read calls, by threads other than the main one (glibc's
    helpers blocking in read on our behalf)."""
    path = "/tmp/iomodels-strace-aio-%d.txt" % os.getpid()
    try:
        pid, fds, trace = traced_echo("posix-aio", path)
        reads = syscalls_on(trace, fds)
        assert reads, "no read on the client sockets in the trace"
        assert all(tid != pid for tid, _, _ in reads), "the main thread read a socket itself"
    finally:
        if os.path.exists(path):
            os.unlink(path)


for _name, _limit in (("test_burst_of_3000_clients_all_echoed", 120),
                      ("test_completion_queue_overflow_loses_nothing", 120),
                      ("test_oneshot_engine_echoes_like_the_others", 90),
                      ("test_each_io_uring_feature_switched_off_or_on_echoes_like_the_others", 180),
                      ("test_posix_aio_serves_a_new_client_past_500_idle_ones", 120),
                      ("test_auto_falls_back_to_posix_aio_with_the_reason", 60),
                      ("test_out_of_descriptors_every_mode_uses_next_to_no_cpu", 120)):
    globals()[_name].time_limit = _limit
