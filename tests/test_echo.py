"""What every echo server must get right, tested on every variant of
harness.ECHO_VARIANTS from the outside: its sockets, /proc, and the kernel's
view of its end of a connection (sock_diag).

Each property below becomes one test per variant it applies to,
test_<property>__<variant> (harness.per_variant), so a failure names both.
The same functions grade a student's server (tests/grade.py, `make grade`):
a property uses only what any echo server has (no option, no log line of
ours) unless the variant says it is one of ours (variant.ours).
Loopback only; every wait is bounded; nothing sleeps to synchronise.
"""
import errno
import fcntl
import os
import re
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import harness
from harness import echo_roundtrip, expect_eof, payload, per_variant, recv_exactly, slow, wait_until

MiB = 1 << 20


# The tests that hold thousands of sockets take turns under `run.py -j`:
# their sockets all count against this one process's RLIMIT_NOFILE.
MANY_SOCKETS = threading.Lock()


def concurrent(variant):
    return bool(variant.traits.get("concurrent"))


def iterative(variant):
    return not concurrent(variant)


def forks(variant):
    return bool(variant.traits.get("forks"))


# -- helpers ------------------------------------------------------------------

def message(client, rnd, size):
    """A payload that says whose it is, so a mix-up between clients shows."""
    head = b"client %05d round %d|" % (client, rnd)
    return head + payload(max(size - len(head), 0), client + rnd)


def poll_for(sock, events, timeout):
    poller = select.poll()
    poller.register(sock, events)
    return bool(poller.poll(timeout * 1000))


def wait_writable(sock, timeout):
    return poll_for(sock, select.POLLOUT, timeout)


def readable_within(sock, timeout):
    return poll_for(sock, select.POLLIN, timeout)


def flood(sock, data, stall=0.3):
    """Sends data without reading, until it is all sent or the socket has
    said EAGAIN for `stall` seconds (the server stopped reading: backpressure).
    Returns how many bytes went out."""
    view = memoryview(data)
    sent = 0
    sock.setblocking(False)
    deadline = time.monotonic() + slow(30)
    try:
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += sock.send(view[sent:sent + 256 * 1024])
            except BlockingIOError:
                if not wait_writable(sock, slow(stall)):
                    break
    finally:
        sock.settimeout(slow(5))
    return sent


def poll_until(predicate, timeout):
    """A tight poll of a kernel state for short waits: True once it holds,
    False if it did not within timeout (stretched for sanitized builds)."""
    deadline = time.monotonic() + slow(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def rss_kib(pid):
    """VmRSS of pid; 0 if it has just exited (a fork child whose client left)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def scheduling(pid):
    """(seconds runnable, times it went to sleep) of pid's threads so far.
    Runnable is on a CPU or on a run queue waiting for one
    (/proc/PID/task/TID/schedstat); a sleep is a voluntary context switch
    (/proc/PID/task/TID/status)."""
    runnable, sleeps = 0, 0
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                on_cpu, queued = f.read().split()[:2]
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                m = re.search(r"^voluntary_ctxt_switches:\s*(\d+)", f.read(), re.M)
        except (FileNotFoundError, ProcessLookupError):
            continue
        runnable += int(on_cpu) + int(queued)
        sleeps += int(m.group(1)) if m else 0
    return runnable / 1e9, sleeps


def assert_not_busy(srv, variant, what, children=True, window=1.0):
    """Watches the server (and its children) over a window while nothing can
    be done for its clients: a loop that keeps polling a socket it cannot
    serve, or retrying an accept that fails, is runnable all the time and
    never sleeps. Runnable time, unlike CPU time, does not shrink when a
    loaded machine gives the loop a smaller share of the cores. A loop that
    sleeps between polls (the sleep variant) wakes often and waits for a
    CPU each time on a loaded machine, but it does sleep. (Not for a server
    that spins by design.)"""
    def sample():
        pids = [srv.proc.pid] + (srv.children() if children else [])
        runnable, sleeps = zip(*[scheduling(pid) for pid in pids])
        return sum(runnable), sum(sleeps)
    (runnable, sleeps), start = sample(), time.monotonic()
    time.sleep(window)  # a measurement window, not a synchronisation
    (runnable_after, sleeps_after), elapsed = sample(), time.monotonic() - start
    busy, slept = runnable_after - runnable, sleeps_after - sleeps
    assert_alive(srv)
    if not variant.traits.get("spins"):
        assert busy < 0.5 * elapsed or slept >= 100 * elapsed, \
            "runnable for %.2f s of %.2f s, sleeping %d times, while %s: a busy loop" % (busy, elapsed, slept, what)


def largest_rss_kib(srv):
    """The largest resident set among the server and its children (the fork
    variant holds a connection's buffer in the child)."""
    return max([srv.rss_kib()] + [rss_kib(pid) for pid in srv.children()])


def assert_alive(srv):
    status = srv.proc.poll()
    if status is not None:
        how = "killed by %s" % signal.Signals(-status).name if status < 0 else "exited with status %d" % status
        log = srv.stderr()[-500:]
        raise AssertionError("the server %s%s" % (how, "; log: " + log if log.strip() else ""))


def wait_accepted(srv, socks, timeout=10):
    """Waits until the server (or a child of it) holds the descriptor of
    each connection in socks: it has accepted them all. Fails at once if it died."""
    def accepted():
        assert_alive(srv)
        inodes = {server_side(sock)[3] for sock in socks}
        return 0 not in inodes and None not in inodes and inodes <= srv.socket_inodes()
    wait_until(accepted, timeout, "the server to accept %d connections" % len(socks))


def wait_released(srv, inode, timeout=10):
    """Waits until no process of the server holds the socket inode any more:
    it has closed its end of that connection. Fails at once if it died."""
    def released():
        assert_alive(srv)
        return inode not in srv.socket_inodes()
    wait_until(released, timeout, "the server to close its end of a connection")


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLMSG_ERROR, INET_DIAG_INFO = 4, 20, 2, 2
TCP_STATES = {1: "ESTABLISHED", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK"}


def server_side(sock):
    """(state, bytes the server has written to us in all, bytes it has not
    read yet, inode) of the server's end of our IPv4 connection, asked of the
    kernel with one sock_diag request (reading /proc/net/tcp is slow on a
    busy machine); (None, 0, 0, None) once that end is gone."""
    (our_addr, our_port), (their_addr, their_port) = sock.getsockname(), sock.getpeername()
    sockid = (struct.pack("!HH", their_port, our_port) + socket.inet_aton(their_addr) + bytes(12)
              + socket.inet_aton(our_addr) + bytes(12) + struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF))
    want_info = 1 << (INET_DIAG_INFO - 1)
    request = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, want_info, 0, 0xFFFFFFFF) + sockid
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, 1, 1, 0)  # NLM_F_REQUEST
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(5)
        nl.send(header + request)
        reply = nl.recv(65536)
    length, kind = struct.unpack_from("=IH", reply, 0)
    if kind == NLMSG_ERROR:
        return None, 0, 0, None
    state = reply[16 + 1]
    unread, unacked, _, inode = struct.unpack_from("=IIII", reply, 16 + 4 + 48 + 4)
    written = None
    at = 16 + 72  # attributes follow struct inet_diag_msg
    while at + 4 <= length:
        attr_len, attr_type = struct.unpack_from("=HH", reply, at)
        if attr_len < 4:
            break
        if attr_type == INET_DIAG_INFO:
            # struct tcp_info: tcpi_bytes_acked is the u64 at offset 120;
            # acked + unacked = everything the server's writes handed over.
            written = struct.unpack_from("=Q", reply, at + 4 + 120)[0] + unacked
        at += (attr_len + 3) & ~3
    if written is None:
        raise AssertionError("sock_diag gave no tcp_info")
    return TCP_STATES.get(state, state), written, unread, inode


def server_inode(sock, timeout=10):
    """The inode of the server's end of our connection (its socket in
    /proc/PID/fd). A connection still in the accept queue has none (0):
    this waits for the accept."""
    def accepted():
        inode = server_side(sock)[3]
        if inode is None:
            raise AssertionError("the server's end of the connection is gone")
        return inode
    return wait_until(accepted, timeout, "the server to accept a connection")


SIOCOUTQNSD = 0x894B  # linux/sockios.h: bytes in our send queue not sent yet


def unsent(sock):
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, struct.pack("i", 0)))[0]


def half_close_reaching(sock, timeout=10):
    """shutdown(SHUT_WR) and wait until the server's end is in CLOSE_WAIT:
    our FIN has reached its kernel. It can, because stuff_server leaves
    nothing unsent ahead of it (a FIN alone is taken even by a full
    receive window)."""
    sock.shutdown(socket.SHUT_WR)
    wait_until(lambda: server_side(sock)[0] in ("CLOSE_WAIT", "LAST_ACK", None), timeout,
               "our EOF to reach the server (CLOSE_WAIT)")


def stuff_server(srv):
    """Connects a client with a small receive buffer and sends, without
    reading, until the server holds echo bytes in its own buffer that it
    cannot write (its send queue to us is full). Returns (socket, what was sent).

    We send in steps smaller than the server's buffer and ask the kernel
    after each: once the server has read a step but not written all of it
    on, the rest is in the server's buffer. Every byte sent has then left
    our socket (none waits for window behind a FIN we send next)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.settimeout(slow(10))
    try:
        sock.connect((srv.host, srv.port))
    except ConnectionRefusedError:
        sock.close()
        srv.explain_refusal()
        raise
    step, data = 32 * 1024, payload(16 * MiB, 2)
    for k in range(len(data) // step):
        before = server_side(sock)[1]
        sock.sendall(data[k * step:(k + 1) * step])
        if not (poll_until(lambda: server_side(sock)[2] == 0, 0.5)  # the server read it
                and poll_until(lambda: server_side(sock)[1] - before >= step, 0.05)):  # and wrote it
            wait_until(lambda: unsent(sock) == 0, 10, "our last bytes to reach the server")
            return sock, data[:(k + 1) * step]
    return sock, data


def reset_close(sock):
    """close() with SO_LINGER {1, 0}: the peer gets an RST, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Crowd:
    """Many non-blocking client sockets driven from one thread by epoll
    (Python's select() cannot take descriptors above 1023)."""

    def __init__(self, host, port, n):
        self.socks = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            for _ in range(n):
                sock = socket.socket(family, socket.SOCK_STREAM)
                self.socks.append(sock)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                err = sock.connect_ex((host, port))
                if err not in (0, errno.EINPROGRESS):
                    raise AssertionError("connect %d of %d: %s" % (len(self.socks), n, os.strerror(err)))
        except BaseException:
            self.close()
            raise

    def wait_connected(self, timeout):
        """Waits until every connect has completed; fails on any error."""
        sel = selectors.DefaultSelector()
        try:
            for i, sock in enumerate(self.socks):
                sel.register(sock, selectors.EVENT_WRITE, i)
            left = len(self.socks)
            deadline = time.monotonic() + slow(timeout)
            while left and time.monotonic() < deadline:
                for key, _ in sel.select(0.2):
                    err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise AssertionError("client %d: connect failed: %s" % (key.data, os.strerror(err)))
                    sel.unregister(key.fileobj)
                    left -= 1
            if left:
                raise AssertionError("%d of %d connects still pending after %ds" % (
                    left, len(self.socks), slow(timeout)))
        finally:
            sel.close()

    def exchange(self, which, size, timeout, close_when_done=False):
        """Each client in `which` sends its own message (as soon as its connect
        completes) and reads the echo. Returns {index: outcome}: "ok",
        "eof after N bytes", "reset", "mismatch", "connect failed: ..." or
        "no echo in time"."""
        sel = selectors.DefaultSelector()
        outcome, state = {}, {}
        for i in which:
            msg = message(i, 0, size)
            state[i] = [msg, 0, bytearray()]
            sel.register(self.socks[i], selectors.EVENT_WRITE, i)
        deadline = time.monotonic() + slow(timeout)

        def finish(i, result):
            outcome[i] = result
            sel.unregister(self.socks[i])
            if close_when_done:
                self.socks[i].close()

        try:
            while len(outcome) < len(state) and time.monotonic() < deadline:
                for key, mask in sel.select(0.2):
                    i, sock = key.data, key.fileobj
                    msg, sent, got = state[i]
                    try:
                        if mask & selectors.EVENT_WRITE:
                            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                            if err:
                                finish(i, "connect failed: %s" % os.strerror(err))
                                continue
                            sent += sock.send(msg[sent:])
                            state[i][1] = sent
                            if sent == len(msg):
                                sel.modify(sock, selectors.EVENT_READ, i)
                        if mask & selectors.EVENT_READ:
                            data = sock.recv(65536)
                            if not data:
                                finish(i, "eof after %d bytes" % len(got))
                                continue
                            got += data
                            if len(got) >= len(msg):
                                finish(i, "ok" if got == msg else "mismatch")
                    except BlockingIOError:
                        pass
                    except (ConnectionResetError, BrokenPipeError):
                        finish(i, "reset")
        finally:
            sel.close()
        for i in state:
            outcome.setdefault(i, "no echo in time")
        return outcome

    def close(self):
        for sock in self.socks:
            sock.close()


def summarize(outcome):
    """'3 of 2000 failed: client 17: reset; ...' for an assertion message."""
    bad = [(i, r) for i, r in sorted(outcome.items()) if r != "ok"]
    return "%d of %d failed: %s" % (len(bad), len(outcome), "; ".join("client %d: %s" % b for b in bad[:5]))


# -- the properties -----------------------------------------------------------

def echo_sizes(variant):
    """Byte-exact echo of 1 B, 1 KiB, 64 KiB and 4 MiB, one after another on one connection."""
    with variant.server() as srv, srv.connect() as sock:
        for seed, size in enumerate((1, 1024, 64 * 1024, 4 * MiB)):
            echo_roundtrip(sock, payload(size, seed), timeout=30)


def split_sends(variant):
    """However the peer splits the stream: a short message byte by byte,
    then 1 MiB in odd-sized chunks sent without a pause."""
    with variant.server() as srv, srv.connect() as sock:
        short = b"one byte at a time, each in a segment of its own\n"
        for i in range(len(short)):
            sock.sendall(short[i:i + 1])
        assert recv_exactly(sock, len(short)) == short, "byte-by-byte message garbled"

        data = payload(MiB + 13, 3)
        sizes = (1, 7, 1000, 4093, 65537, 3, 131071, 2)

        def send_odd_chunks():
            at, k = 0, 0
            while at < len(data):
                n = sizes[k % len(sizes)]
                sock.sendall(data[at:at + n])
                at, k = at + n, k + 1

        sender = threading.Thread(target=send_odd_chunks, daemon=True)
        sender.start()
        echoed = recv_exactly(sock, len(data), timeout=30)
        sender.join(slow(10))
        assert echoed == data, "odd-chunked stream garbled"


def concurrent_clients(variant):
    """100 clients connected at once, sends interleaved across them, every echo byte-exact."""
    with variant.server("-q") as srv:
        socks = []
        try:
            for _ in range(100):
                socks.append(srv.connect())
            for rnd in range(3):
                msgs = [message(i, rnd, 200 + 97 * i) for i in range(len(socks))]
                for sock, msg in zip(socks, msgs):
                    sock.sendall(msg)
                for i, (sock, msg) in enumerate(zip(socks, msgs)):
                    assert recv_exactly(sock, len(msg)) == msg, "client %d round %d: echo garbled" % (i, rnd)
        finally:
            for sock in socks:
                sock.close()


def second_client_waits(variant):
    """The iterative server's lesson: while A is connected, B's echo does not
    come; it comes once A has gone."""
    with variant.server() as srv, srv.connect() as a:
        echo_roundtrip(a, b"first")
        with srv.connect() as b:  # connects: the kernel completes it in the backlog
            b.sendall(b"second")
            # Half a second with nothing is enough to show the wait; a
            # concurrent server answers within a millisecond.
            assert not readable_within(b, 0.5), "B was served while A was still connected"
            a.close()
            assert recv_exactly(b, 6) == b"second"


def slow_reader(variant):
    """A client that sends without reading: the server stops reading it
    (backpressure) instead of buffering, so its memory stays bounded, it
    does not spin waiting for that client (no core burnt asking again and
    again about a socket it cannot serve) and (except in the iterative
    server) everyone else is still served; what the slow client sent comes
    back intact once it reads."""
    # An unbounded server would take in most of the 64 MiB (the kernel's
    # socket buffers hold far less), so its resident set would show it.
    budget = 64 * MiB
    limit_kib = (24 if harness.SANITIZED else 8) * 1024  # ASan's allocator keeps more around
    with variant.server("-q") as srv:
        base_kib = srv.rss_kib()
        with srv.connect() as hog:
            echo_roundtrip(hog, b"x")  # accepted and served
            data = payload(budget, 9)
            sent = flood(hog, data)
            peak = largest_rss_kib(srv)
            assert_not_busy(srv, variant, "a client did not read its echo")
            if concurrent(variant):
                with srv.connect() as other:
                    echo_roundtrip(other, message(1, 0, 1000), timeout=10)
                peak = max(peak, largest_rss_kib(srv))
            assert_alive(srv)
            assert peak - base_kib < limit_kib, \
                "resident set grew from %d KiB to %d KiB while a client sent %d bytes without reading" % (
                    base_kib, peak, sent)
            # Nothing lost, nothing reordered while the server held back.
            echoed = recv_exactly(hog, sent, timeout=60)
            assert echoed == data[:sent], "the slow reader's echo is garbled"


def half_close(variant):
    """Data then shutdown(SHUT_WR): the whole echo comes back, then EOF,
    also when the server still holds echo bytes as the EOF reaches it."""
    with variant.server() as srv:
        with srv.connect() as sock:
            sock.sendall(b"x")
            sock.shutdown(socket.SHUT_WR)
            assert recv_exactly(sock, 1) == b"x"
            expect_eof(sock)

        # Now the EOF reaches the server while it holds echo bytes it could
        # not write yet: a server that closes at EOF instead of finishing
        # the echo loses them.
        sock, sent = stuff_server(srv)
        with sock:
            half_close_reaching(sock)
            echoed = recv_exactly(sock, len(sent), timeout=30)
            assert echoed == sent, "echo before EOF garbled"
            expect_eof(sock)


def reset_mid_transfer(variant):
    """A client sends a lot and resets the connection (SO_LINGER {1, 0})
    mid-transfer: the server logs the close, stays up and serves the next."""
    with variant.server() as srv:
        for rnd in range(3):
            sock = srv.connect()
            wait_accepted(srv, [sock])
            inode = server_inode(sock)
            flood(sock, payload(4 * MiB, rnd), stall=0.1)
            reset_close(sock)
            wait_released(srv, inode)
        assert_alive(srv)
        with srv.connect() as sock:
            echo_roundtrip(sock, payload(100000, 4))


def no_sigpipe(variant):
    """Writing to a peer that has gone raises SIGPIPE unless the server
    ignores it (or writes with MSG_NOSIGNAL). Sure trigger: the server holds
    echo bytes it cannot write, our EOF reaches it (its end goes to
    CLOSE_WAIT), then we close with the echo unread, which answers with an
    RST: in CLOSE_WAIT the kernel turns that RST into EPIPE (tcp_reset in
    net/ipv4/tcp_input.c), so the server's next write fails with EPIPE and
    raises SIGPIPE. Also the plain case: a client sends 1 MiB and closes
    without reading."""
    with variant.server() as srv:
        for rnd in range(3):
            sock, _ = stuff_server(srv)
            inode = server_inode(sock)
            with sock:
                half_close_reaching(sock)
            wait_released(srv, inode)
        with srv.connect() as sock:
            wait_accepted(srv, [sock])
            inode = server_inode(sock)
            flood(sock, payload(MiB, 7), stall=0.1)
        wait_released(srv, inode)
        assert_alive(srv)
        with srv.connect() as sock:
            echo_roundtrip(sock, payload(100000, 5))


def descriptor_exhaustion(variant):
    """RLIMIT_NOFILE lowered so a few dozen clients exhaust it and more wait:
    no crash, no busy loop while they wait, and service resumes once some
    leave. (The fork variant's descriptors live in its children, so its
    parent does not run out: for it this checks only that it keeps working.)"""
    nofile = 48
    with variant.server("-q", nofile=nofile) as srv:
        n = nofile + 8  # more than the whole descriptor table: some must wait
        clients = []
        try:
            for _ in range(n):
                clients.append(srv.connect())
            if concurrent(variant) and not forks(variant):
                # Exhaustion reached: the table is (nearly) full, the rest wait.
                wait_until(lambda: srv.fd_count() >= nofile - 4, 10,
                           "%s to run out of descriptors" % srv.program)
            elif forks(variant):
                # Every client has its child: the parent is back to waiting in accept.
                wait_until(lambda: len(srv.children()) >= n, 10, "a child for each of %d clients" % n)
            # The fork variant's children are still starting: its parent is the loop that could spin.
            assert_not_busy(srv, variant, "clients waited for a descriptor (EMFILE)", children=not forks(variant))
            for sock in clients[:n // 2]:
                sock.close()
            # The clients still waiting: each is served now, or (a server that
            # refuses what it cannot hold) closed; none is left hanging.
            for i, sock in enumerate(clients[n // 2:]):
                msg = message(i, 0, 100)
                try:
                    sock.sendall(msg)
                    got = recv_exactly(sock, len(msg), timeout=10)
                    assert got == msg, "waiting client %d: echo garbled" % i
                except AssertionError as exc:
                    if "closed after 0 of" not in str(exc):
                        raise AssertionError("waiting client %d: %s" % (i, exc)) from None
                except (ConnectionResetError, BrokenPipeError):
                    pass
                sock.close()
            assert_alive(srv)
            with srv.connect() as sock:
                echo_roundtrip(sock, b"descriptors are back")
        finally:
            for sock in clients:
                sock.close()


def stop_and_continue(variant):
    """SIGSTOP then SIGCONT while a client is connected and idle (the wait
    returns EINTR, which must be retried): the echo goes on."""
    with variant.server() as srv, srv.connect() as sock:
        echo_roundtrip(sock, b"before")
        pids = [srv.proc.pid] + srv.children()  # the fork variant's child is waiting too
        for _ in range(3):
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            for pid in pids:
                wait_until(lambda: harness.process_state(pid) in ("T", None), 5, "process %d to stop" % pid)
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            for pid in pids:
                wait_until(lambda: harness.process_state(pid) != "T", 5, "process %d to continue" % pid)
        echo_roundtrip(sock, b"after")
        assert_alive(srv)
        sock.close()
        with srv.connect() as other:
            echo_roundtrip(other, b"and a new client")


READ_CALLS = "read,readv,recvfrom,recvmsg"


def interrupted_reads(variant):
    """Every other read the server makes (read, readv, recv...) fails with
    EINTR, as when a signal interrupts a blocked read: the server retries
    it and the echo goes on. Nothing in a test can make a real signal land
    in a blocked read (SIGSTOP/SIGCONT restarts it unseen), so strace's
    fault injection returns the EINTR instead of running the call."""
    strace = shutil.which("strace")
    if not strace:
        raise harness.Skip("strace is not installed")
    with variant.server() as srv, tempfile.TemporaryDirectory(prefix="iomodels-eintr-") as tmp:
        trace = os.path.join(tmp, "strace.txt")
        # -f with -p attaches every thread, and follows new threads and children.
        tracer = subprocess.Popen([strace, "-f", "-qq", "-o", trace, "-e", "trace=" + READ_CALLS,
                                   "-e", "inject=%s:error=EINTR:when=1+2" % READ_CALLS, "-p", str(srv.proc.pid)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            def attached():
                if tracer.poll() is not None:
                    raise harness.Skip("strace cannot attach here: %s" % tracer.stderr.read().decode(errors="replace"))
                with open("/proc/%d/status" % srv.proc.pid) as f:
                    return re.search(r"^TracerPid:\s*%d$" % tracer.pid, f.read(), re.M)
            wait_until(attached, 10, "strace to attach")
            try:
                with srv.connect() as sock:
                    for i in range(4):
                        echo_roundtrip(sock, message(i, 0, 5000))
                    sock.shutdown(socket.SHUT_WR)
                    expect_eof(sock)
            except (AssertionError, OSError) as exc:
                raise AssertionError("a read that failed with EINTR was not retried: %s" % exc) from None
            assert_alive(srv)
            with srv.connect() as sock:
                echo_roundtrip(sock, b"and the next client")
        finally:
            tracer.terminate()
            tracer.wait(timeout=10)
            tracer.stderr.close()
        with open(trace, errors="replace") as f:
            injected = sum(1 for line in f if "(INJECTED)" in line)
        if not injected:
            why = "the server made no %s call strace could interrupt" % READ_CALLS.replace(",", "/")
            if variant.ours:
                raise AssertionError(why)
            raise harness.NotApplicable(why)


def built_shim(name):
    """The LD_PRELOAD library make builds from tests/shims/NAME.c."""
    library = harness.BUILD_DIR / "shims" / (name + ".so")
    if not library.exists():
        raise AssertionError("%s was not built (make builds it)" % library)
    return str(library)


def stop_before_accept(variant):
    """A SIGTERM that lands after the stop-flag check, just before accept()
    blocks (a preloaded accept4 raises it): the server still exits at once
    with its summary, instead of waiting in accept for a client."""
    env = {"LD_PRELOAD": built_shim("stop_before_accept"),
           "ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:verify_asan_link_order=0"}
    srv = variant.server(env=env)
    with srv:
        try:
            status = srv.proc.wait(timeout=slow(5))
        except subprocess.TimeoutExpired:
            raise AssertionError("still blocked in accept 5 s after a SIGTERM it had caught") from None
        text = srv.stderr()
        srv.check_sanitizers(text)
        assert status == 0, "exit status %d; stderr: %s" % (status, text[-500:])
        assert "summary:" in text, "no summary line: %s" % text[-500:]


def no_descriptor_leaks(variant):
    """50 connections come and go (echoed, idle, reset, sent-and-closed):
    the server's descriptor count returns to its start value."""
    with variant.server("-q") as srv:
        base = srv.fd_count()
        for i in range(15):  # one after another
            with srv.connect() as sock:
                echo_roundtrip(sock, message(i, 0, 300))
        group = [srv.connect() for _ in range(20)]  # open together, served in turn
        for i, sock in enumerate(group):
            echo_roundtrip(sock, message(i, 1, 300))
            sock.close()
        for i in range(5):  # reset after an echo
            sock = srv.connect()
            echo_roundtrip(sock, b"reset me")
            reset_close(sock)
        for i in range(5):  # closed without a byte
            srv.connect().close()
        for i in range(5):  # closed with its echo unread
            sock = srv.connect()
            sock.sendall(message(i, 2, 5000))
            sock.close()
        srv.wait_until_idle(base, timeout=10)
        # The server is whole afterwards, too.
        with srv.connect() as sock:
            echo_roundtrip(sock, b"still here")


def no_zombies(variant):
    """The fork variant: a child per client, and every child reaped once its client has gone."""
    with variant.server("-q") as srv:
        base = srv.fd_count()
        socks = [srv.connect() for _ in range(10)]
        try:
            for i, sock in enumerate(socks):
                echo_roundtrip(sock, message(i, 0, 100))
            assert len(srv.children()) >= 10, "10 clients but %d children" % len(srv.children())
        finally:
            for sock in socks:
                sock.close()
        try:
            wait_until(lambda: not srv.children(), 10, "the children to be reaped")
        except AssertionError:
            states = {pid: harness.process_state(pid) for pid in srv.children()}
            raise AssertionError("children left after their clients closed (pid: state): %s" % states) from None
        srv.wait_until_idle(base)


def connection_storm(variant, clients=2000):
    """2000 clients connect at once, each sends a short unique message and
    must get it back (the edge-triggered server must drain accept and read
    to EAGAIN, or connections stay stuck in the backlog)."""
    with MANY_SOCKETS:
        n = clients
        if forks(variant):
            n = min(n, 300)  # 2000 processes at once is too slow on 2 cores to be a fair unit test
        if variant.name == "multiplexing-select":
            n = 900  # select watches only descriptors < FD_SETSIZE (1024); beyond is fd_setsize_refused
        if harness.SANITIZED:
            n = min(n, 1000)
        harness.raise_own_fd_limit(n + 300)  # the server gets n + 300 too
        with variant.server("-q", "--max-clients", 2100, nofile=n + 300) as srv:
            crowd = Crowd(srv.host, srv.port, n)
            try:
                outcome = crowd.exchange(range(n), 40, timeout=60, close_when_done=True)
            finally:
                crowd.close()
            assert all(r == "ok" for r in outcome.values()), "storm of %d: %s" % (n, summarize(outcome))
            assert_alive(srv)


def ten_thousand_idle(variant):
    """epoll: 10,000 concurrent connections, all accepted, a sample echoed,
    in bounded memory (no 64 KiB buffer held per idle connection); then all
    close and the descriptors come back."""
    with MANY_SOCKETS:
        n = 10000
        harness.raise_own_fd_limit(n + 300)  # the server gets n + 300 too
        with variant.server("-q", "--max-clients", n, nofile=n + 300) as srv:
            base_fds, base_kib = srv.fd_count(), srv.rss_kib()
            crowd = Crowd(srv.host, srv.port, n)
            try:
                crowd.wait_connected(timeout=60)
                wait_until(lambda: srv.fd_count() >= base_fds + n, 60, "the server to accept all %d" % n)
                sample = range(0, n, n // 100)
                outcome = crowd.exchange(sample, 1000, timeout=30)
                assert all(r == "ok" for r in outcome.values()), "sample of %d: %s" % (len(sample), summarize(outcome))
                grown = srv.rss_kib() - base_kib
                # 10,000 x 64 KiB would be 625 MiB.
                assert grown < 200 * 1024, "resident set grew by %d MiB with %d connections" % (grown // 1024, n)
            finally:
                crowd.close()
            srv.wait_until_idle(base_fds, timeout=60)


def fd_setsize_refused(variant):
    """select: a connection whose descriptor is >= FD_SETSIZE is refused
    (never FD_SET), and the server goes on serving the others."""
    with MANY_SOCKETS:
        n = 1100
        harness.raise_own_fd_limit(n + 300)  # the server gets n + 300 too
        with variant.server("--max-clients", 2000, nofile=n + 300) as srv:
            crowd = Crowd(srv.host, srv.port, n)
            try:
                outcome = crowd.exchange(range(n), 40, timeout=30)
                refused = [i for i, r in outcome.items() if r.startswith("eof after 0") or r == "reset"]
                served = [i for i, r in outcome.items() if r == "ok"]
                assert len(served) + len(refused) == n, summarize(outcome)
                assert refused, "no connection refused with %d clients at once: fds past FD_SETSIZE were watched?" % n
                assert len(served) >= 1000, "only %d served" % len(served)
                assert_alive(srv)
                high = [line for line in srv.stderr().splitlines()
                        if any(int(fd) >= 1024 for fd in re.findall(r"\bfd (\d+)", line))]
                assert high, "no log line about a descriptor >= FD_SETSIZE: the refusals went unsaid"
            finally:
                crowd.close()
            with srv.connect() as sock:
                echo_roundtrip(sock, b"after the crowd")


def max_clients_refused(variant):
    """--max-clients 2: a third client is accepted, told why in the log, and
    closed at once; the two inside are still served, and once one leaves a
    newcomer is served again."""
    with variant.server("--max-clients", 2) as srv, srv.connect() as a, srv.connect() as b:
        echo_roundtrip(a, b"a")
        echo_roundtrip(b, b"b")
        with srv.connect() as c:
            srv.wait_for_log("refusing fd")
            # The refusal is a close: EOF, or a reset if our bytes beat it.
            try:
                c.sendall(b"c")
                expect_eof(c)
            except (ConnectionResetError, BrokenPipeError):
                pass
        assert "2 clients already connected" in srv.stderr(), srv.stderr()[-500:]
        echo_roundtrip(a, b"still served")
        b.close()
        # The server counts b gone once it has seen the close: poll for a newcomer.
        def newcomer_served():
            with srv.connect() as d:
                try:
                    d.sendall(b"d")
                    return recv_exactly(d, 1, timeout=2) == b"d"
                except (AssertionError, ConnectionResetError, BrokenPipeError):
                    return False
        wait_until(newcomer_served, 10, "a newcomer served after a client left")


def simultaneous_sends(variant):
    """50 idle clients send at the same moment, three times: every one gets
    its echo. (For the sigio server: SIGIO is not queued, so one signal
    stands for many ready sockets and the loop must sweep them all.)"""
    with variant.server() as srv:
        socks = []
        try:
            for _ in range(50):
                socks.append(srv.connect())
            wait_accepted(srv, socks)  # all accepted, the server is idle
            for rnd in range(3):
                msgs = [message(i, rnd, 64) for i in range(len(socks))]
                for sock, msg in zip(socks, msgs):
                    sock.send(msg)
                for i, (sock, msg) in enumerate(zip(socks, msgs)):
                    assert recv_exactly(sock, len(msg)) == msg, "client %d round %d: echo garbled" % (i, rnd)
        finally:
            for sock in socks:
                sock.close()


per_variant(globals(), echo_sizes, time_limit=60)
per_variant(globals(), split_sends, time_limit=60)
per_variant(globals(), concurrent_clients, concurrent, time_limit=60)
per_variant(globals(), second_client_waits, iterative, time_limit=30)
per_variant(globals(), slow_reader, time_limit=90)
per_variant(globals(), half_close, time_limit=60)
per_variant(globals(), reset_mid_transfer, time_limit=60)
per_variant(globals(), no_sigpipe, time_limit=60)
per_variant(globals(), descriptor_exhaustion, time_limit=90)
per_variant(globals(), stop_and_continue, time_limit=30)
per_variant(globals(), interrupted_reads, lambda v: v.program != "server-async", time_limit=30)
per_variant(globals(), stop_before_accept, lambda v: v.program == "server-blocking", time_limit=30)
per_variant(globals(), no_descriptor_leaks, time_limit=60)
per_variant(globals(), no_zombies, forks, time_limit=30)
per_variant(globals(), connection_storm, time_limit=120)
per_variant(globals(), ten_thousand_idle, lambda v: v.name.startswith("multiplexing-epoll"), time_limit=180)
per_variant(globals(), fd_setsize_refused, lambda v: v.name == "multiplexing-select", time_limit=60)
per_variant(globals(), max_clients_refused, concurrent, time_limit=60)
per_variant(globals(), simultaneous_sends, concurrent, time_limit=30)
