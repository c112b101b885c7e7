"""bin/client: line mode through a pipe, its errors, and the load generator.

The peers here are small Python servers run inside the test, so that each
can misbehave on purpose (corrupt a byte, never answer, never accept, pause
once, close early); these tests depend on no other server of the suite.
"""
import contextlib
import json
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import SANITIZER_MARKS, Skip, binary, slow, wait_until

JSON_KEYS = ("conns", "size", "seconds", "msgs", "msgs_per_sec", "p50_us", "p90_us", "p99_us", "p999_us",
             "max_us", "errors", "mismatches", "stalled")


class Peer:
    """A one-thread selectors echo server on 127.0.0.1:0 (or ::1), in one of
    these modes:
      echo      echo everything back
      corrupt   flip the byte at stream position 100 of each connection
      silent    accept and read, never answer
      noaccept  listen (backlog 1) and never accept
      pause     echo, but stop everything once for pause_for seconds,
                pause_after seconds after the first byte arrived
      close     echo the first 200 bytes of a connection, then close it
      reset     on the first byte, reset the connection (RST)
    """

    def __init__(self, mode="echo", host="127.0.0.1", pause_after=0.3, pause_for=0.25):
        self.mode = mode
        self.pause_after = pause_after
        self.pause_for = pause_for
        self.paused = False
        self.first_byte_at = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(1 if mode == "noaccept" else 256)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.address = ("[%s]:%d" if family == socket.AF_INET6 else "%s:%d") % (host, self.port)
        self.selector = selectors.DefaultSelector()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        if self.mode != "noaccept":
            self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(slow(10))
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()
        self.listener.close()
        return False

    def _serve(self):
        while not self.stopping.is_set():
            for key, events in self.selector.select(timeout=0.05):
                if key.data is None:
                    self._accept()
                    continue
                if events & selectors.EVENT_READ:
                    self._readable(key.fileobj, key.data)
                if key.fileobj.fileno() >= 0 and events & selectors.EVENT_WRITE:
                    self._writable(key.fileobj, key.data)

    def _accept(self):
        with contextlib.suppress(BlockingIOError):
            conn, _ = self.listener.accept()
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.selector.register(conn, selectors.EVENT_READ, {"seen": 0, "out": bytearray()})

    def _close(self, conn):
        self.selector.unregister(conn)
        conn.close()

    def _readable(self, conn, state):
        try:
            data = bytearray(conn.recv(65536))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()
        seen = state["seen"]
        state["seen"] += len(data)
        if self.mode == "silent":
            return
        if self.mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._close(conn)
            return
        if self.mode == "corrupt" and seen <= 100 < seen + len(data):
            data[100 - seen] ^= 0xFF
        if self.mode == "pause" and not self.paused and time.monotonic() - self.first_byte_at > self.pause_after:
            self.paused = True
            time.sleep(self.pause_for)  # the stall under test: every connection waits
        if self.mode == "close" and state["seen"] >= 200:
            self._close(conn)
            return
        state["out"] += data
        self._writable(conn, state)

    def _writable(self, conn, state):
        out = state["out"]
        try:
            sent = conn.send(out) if out else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        del out[:sent]
        # Wait for writability only while something is pending; stop reading
        # a peer that does not read its echo (backpressure).
        events = selectors.EVENT_WRITE if len(out) > (1 << 20) else selectors.EVENT_READ
        if out:
            events |= selectors.EVENT_WRITE
        self.selector.modify(conn, events, state)


def run_client(*args, stdin=b"", timeout=20):
    proc = subprocess.run([binary("client")] + [str(a) for a in args], input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=slow(timeout))
    err = proc.stderr.decode(errors="replace")
    assert_no_sanitizer_report(err)
    return proc.returncode, proc.stdout, err


def assert_no_sanitizer_report(err):
    for mark in SANITIZER_MARKS:
        assert mark not in err, "sanitizer report from client: %s" % err[err.index(mark):][:1500]


def bench(address, *args, timeout=20):
    """Runs `client bench ADDRESS ARGS --json`; returns (status, report, stderr, wall seconds)."""
    started = time.monotonic()
    status, out, err = run_client("bench", address, *args, "--json", timeout=timeout)
    wall = time.monotonic() - started
    lines = out.decode().splitlines()
    assert len(lines) == 1, "expected one JSON line, got %r (stderr %r)" % (out, err)
    report = json.loads(lines[0])
    missing = [k for k in JSON_KEYS if k not in report]
    assert not missing, "JSON lacks %s: %s" % (missing, lines[0])
    return status, report, err, wall


def assert_sane_latencies(r):
    assert 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"], r


def refusing_port():
    """A bound socket that does not listen: connecting to it is refused, and
    no other process can take the port while the socket is held."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


# -- line mode ----------------------------------------------------------------

def test_pipe_mode_echoes_everything():
    lines = b"alpha\nbeta\n\n" + b"x" * 100_000 + b"\n" + bytes(range(256)) * 4 + b"\nno newline at the end"
    with Peer() as peer:
        status, out, err = run_client(peer.address, stdin=lines)
    assert status == 0, err
    assert out == lines, "echo differs: %d bytes back of %d" % (len(out), len(lines))
    assert err == ""


def test_pipe_mode_empty_input_and_ipv6():
    try:
        peer = Peer(host="::1")
    except OSError as exc:
        raise Skip("no IPv6 loopback: %s" % exc)
    with peer:
        status, out, err = run_client(peer.address, stdin=b"")
        assert (status, out) == (0, b""), err
        status, out, err = run_client(peer.address, stdin=b"over six\n")
        assert (status, out) == (0, b"over six\n"), err


def test_refused_connection_is_one_line_and_exit_1():
    with contextlib.closing(refusing_port()) as sock:
        port = sock.getsockname()[1]
        status, out, err = run_client(port, stdin=b"hello\n")
    assert status == 1
    assert err == "client: connect to 127.0.0.1:%d: Connection refused\n" % port, err
    assert out == b""


def test_reset_connection_is_one_line_and_exit_1():
    with Peer("reset") as peer:
        status, out, err = run_client(peer.address, stdin=b"hello\n")
    assert status == 1, (status, err)
    assert len(err.splitlines()) == 1 and "reset" in err.lower(), err


def test_usage_errors_exit_2():
    with contextlib.closing(refusing_port()) as sock:
        port = str(sock.getsockname()[1])
        bad = [
            [],
            ["--bogus", port],
            [port, "extra"],
            ["no-port-here"],
            ["127.0.0.1:99999"],
            ["bench"],
            ["bench", port, "-c", "1", "-s", "64"],  # neither -d nor -n
            ["bench", port, "-c", "1", "-s", "64", "-d", "1", "-n", "5"],  # both
            ["bench", port, "-c", "0", "-s", "64", "-n", "5"],
            ["bench", port, "-c", "1", "-s", "lots", "-n", "5"],
            ["bench", port, "-c", "1", "-s", "64", "-d", "-1"],
            ["bench", port, "-c", "1", "-s", "64", "-n", "5", "--rate", "0"],
            ["bench", port, "-c", "1", "-s", "64", "-n", "5", "--warmup"],
            ["bench", port, "-c", "1", "-s", "64", "-n", "5", "--nope"],
        ]
        for args in bad:
            status, out, err = run_client(*args)
            assert status == 2, "%s: exit %d, %r" % (args, status, err)
            assert err.startswith("client: ") and "usage:" in err, "%s: %r" % (args, err)
            assert out == b""
    for args in (["-h"], ["--help"], ["bench", "--help"]):
        status, out, err = run_client(*args)
        assert status == 0 and b"usage:" in out and b"bench" in out, (args, err)


# -- bench ----------------------------------------------------------------------

def test_bench_counts_exactly_n_messages():
    with Peer() as peer:
        status, r, err, _ = bench(peer.address, "-c", 4, "-s", 64, "-n", 500, "--warmup", 0)
    assert status == 0, err
    assert (r["conns"], r["size"], r["msgs"]) == (4, 64, 500), r
    assert (r["errors"], r["mismatches"], r["stalled"]) == (0, 0, 0), r
    assert r["seconds"] > 0 and r["msgs_per_sec"] > 0
    assert_sane_latencies(r)


def delaying_server(size, delay_of):
    """A one-connection echo server on 127.0.0.1:0 that holds back the
    echo of message i (each `size` bytes) by delay_of(i) seconds: a known
    distribution of round trips. Returns (listening socket, thread)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                i = 0
                while True:
                    data = b""
                    while len(data) < size:
                        chunk = conn.recv(size - len(data))
                        if not chunk:
                            return
                        data += chunk
                    time.sleep(delay_of(i))  # the latency under test, not a synchronisation
                    conn.sendall(data)
                    i += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_bench_percentiles_match_a_known_distribution():
    """300 round trips, one connection: 239 answered at once, 45 after 10 ms,
    15 after 40 ms, one after 120 ms. In order, message 150 is fast, message
    270 takes 10 ms, 297 takes 40 ms and the last 120 ms, so p50, p90 and
    p99 each fall in a band of their own: a p99 that reports p90, or p90
    that reports p50, lands in the wrong band."""
    def delay_of(i):
        if i == 151:
            return 0.120
        if i % 20 == 10:
            return 0.040
        if i % 20 in (3, 6, 15):
            return 0.010
        return 0.0

    listener, thread = delaying_server(64, delay_of)
    with listener:
        status, r, err, _ = bench("127.0.0.1:%d" % listener.getsockname()[1], "-c", 1, "-s", 64, "-n", 300,
                                  "--warmup", 0, timeout=30)
    thread.join(slow(5))
    assert status == 0 and r["msgs"] == 300, (err, r)
    ms = {k: r[k] / 1000 for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")}
    assert ms["p50_us"] < 9, "p50 %.1f ms: expected a message answered at once" % ms["p50_us"]
    assert 9.5 <= ms["p90_us"] < 35, "p90 %.1f ms: expected the 10 ms band" % ms["p90_us"]
    assert 38 <= ms["p99_us"] < 110, "p99 %.1f ms: expected the 40 ms band" % ms["p99_us"]
    assert ms["p999_us"] >= 38 and ms["max_us"] >= 118, "p99.9 %.1f ms, max %.1f ms: expected the 120 ms message" % (
        ms["p999_us"], ms["max_us"])


def test_bench_runs_for_a_duration():
    with Peer() as peer:
        status, r, err, wall = bench(peer.address, "-c", 3, "-s", 100, "-d", 0.5, "--warmup", 0.2)
        assert status == 0, err
        assert r["msgs"] > 0 and (r["errors"], r["mismatches"], r["stalled"]) == (0, 0, 0), r
        assert 0.45 <= r["seconds"] <= 0.55, r
        assert abs(r["msgs_per_sec"] * r["seconds"] - r["msgs"]) <= 0.01 * r["msgs"] + 1, r
        assert_sane_latencies(r)
        assert wall >= 0.7, "the warm-up and the measured half second cannot take %.2fs" % wall
        # without --json: the human summary
        status, out, err = run_client("bench", peer.address, "-c", 1, "-s", 8, "-d", 0.2, "--warmup", 0)
        assert status == 0 and b"msgs/s" in out and b"p99.9" in out, (out, err)


def test_bench_large_messages():
    with Peer() as peer:
        status, r, err, _ = bench(peer.address, "-c", 2, "-s", 4 << 20, "-n", 6, "--warmup", 0)
    assert status == 0, err
    assert r["msgs"] == 6 and r["mismatches"] == 0 and r["errors"] == 0, r


def test_bench_catches_a_corrupted_byte():
    with Peer("corrupt") as peer:
        status, r, err, _ = bench(peer.address, "-c", 2, "-s", 64, "-d", 2, "--warmup", 0)
    assert status == 1
    assert r["mismatches"] >= 1, r
    assert "differs" in err


def test_bench_counts_a_server_that_closes_early():
    with Peer("close") as peer:
        status, r, err, _ = bench(peer.address, "-c", 2, "-s", 64, "-d", 2, "--warmup", 0)
    assert status == 1
    assert r["errors"] == 2 and r["mismatches"] == 0, r
    assert "closed by the server" in err


def test_bench_stalled_servers_end_on_time():
    for mode in ("silent", "noaccept"):
        with Peer(mode) as peer:
            status, r, err, wall = bench(peer.address, "-c", 4, "-s", 64, "-d", 0.5, "--warmup", 0)
        assert status == 0, (mode, err)
        assert (r["stalled"], r["msgs"], r["errors"]) == (4, 0, 0), (mode, r)
        assert wall < slow(5), "%s: a 0.5 s run took %.1fs" % (mode, wall)


def test_bench_n_gives_up_on_a_silent_server():
    # With -n there is no end time: the run ends after 5 s without an echo,
    # in the closed loop (whose only clock is the timer) as in the open one.
    # The open loop keeps releasing messages meanwhile; that is not progress.
    for loop in ((), ("--rate", 100)):
        with Peer("silent") as peer:
            status, r, err, wall = bench(peer.address, "-c", 2, "-s", 64, "-n", 10, "--warmup", 0, *loop)
        assert status == 0, (loop, err)
        assert (r["stalled"], r["msgs"], r["errors"]) == (2, 0, 0), (loop, r)
        assert "giving up" in err, loop
        assert wall < slow(10), "%s: gave up only after %.1fs" % (loop, wall)


def test_bench_open_loop_keeps_the_rate():
    with Peer() as peer:
        status, r, err, _ = bench(peer.address, "-c", 2, "-s", 64, "-d", 1, "--warmup", 0.2, "--rate", 400)
    assert status == 0, err
    assert r["rate_requested"] == 400, r
    assert 300 <= r["rate_achieved"] <= 500 and 300 <= r["msgs"] <= 500, r
    assert_sane_latencies(r)


def test_open_loop_charges_a_stall_that_closed_loop_hides():
    # The peer stops everything once for 250 ms. The closed loop sends nothing
    # while it waits, so the stall is one slow sample per connection; the open
    # loop keeps its schedule, so every message due during the stall is late.
    args = ("-c", 2, "-s", 64, "-d", 1.2, "--warmup", 0)
    with Peer("pause") as peer:
        status, closed, err, _ = bench(peer.address, *args)
    assert status == 0, err
    with Peer("pause") as peer:
        status, opened, err, _ = bench(peer.address, *args, "--rate", 1000)
    assert status == 0, err
    assert closed["max_us"] >= 150_000, closed
    assert closed["p99_us"] < 100_000, "closed loop: %d msgs, p99 %.0f us" % (closed["msgs"], closed["p99_us"])
    assert opened["p99_us"] >= 100_000, "open loop hid the stall: %s" % opened


def test_open_loop_charges_messages_that_never_came_back():
    # A server that never answers must not look fast: every message due in
    # the measured second is charged the time it had waited when the run
    # ended (0 to 1 s, so p50 near 0.5 s), not left out of the latencies.
    with Peer("silent") as peer:
        status, r, err, _ = bench(peer.address, "-c", 2, "-s", 64, "-d", 1, "--warmup", 0, "--rate", 200)
    assert status == 0, err
    assert (r["msgs"], r["stalled"]) == (0, 2), r
    assert 150 <= r.get("unanswered", 0) <= 250, r
    assert 300_000 <= r["p50_us"] <= 700_000 and r["max_us"] >= 800_000, r


def test_bench_ctrl_c_ends_the_run_with_a_report():
    # A silent server sends nothing that would wake the client: only the
    # signal can end its wait.
    for mode in ("echo", "silent"):
        with Peer(mode) as peer:
            proc = subprocess.Popen([binary("client"), "bench", peer.address, "-c", "2", "-s", "64", "-d", "60",
                                     "--warmup", "0", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                wait_until(lambda: peer.first_byte_at is not None, 10, "the first message")
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=slow(10))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert_no_sanitizer_report(err.decode(errors="replace"))
        assert proc.returncode == 0, (mode, err)
        report = json.loads(out.decode())
        assert report["seconds"] < 30 and report["errors"] == 0 and report["mismatches"] == 0, (mode, report)
