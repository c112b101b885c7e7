"""Two lessons shown live: what an edge-triggered handler that does not
drain its socket does (a connection stalls with its bytes in the buffer,
while the level-triggered loop with the same handler does not), and what
select cannot watch (a crowd past FD_SETSIZE: select refuses the rest and
says so once; poll and epoll serve it all).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import harness

BURST = 1 << 20  # far more than one read takes (the echo buffer is 64 KiB)


def server_rx_queue(port, client_port):
    """Bytes waiting in the server's receive buffer for the connection from
    client_port (the rx_queue column of /proc/net/tcp), or None if not found."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == client_port:
                return int(queues.split(":")[1], 16)
    return None


def burst(srv):
    """One client sends BURST bytes at once and reads what comes back until
    all of it is back or nothing has come for a while; returns (bytes back,
    the client's port). A second client is served meanwhile either way."""
    with srv.connect() as sock:
        sender = threading.Thread(target=sock.sendall, args=(b"e" * BURST,), daemon=True)
        sender.start()
        back = 0
        quiet = harness.slow(0.5)  # a stalled connection gets nothing more, ever: half a second says it
        deadline = time.monotonic() + harness.slow(20)
        sock.settimeout(quiet)
        while back < BURST and time.monotonic() < deadline:
            try:
                chunk = sock.recv(1 << 20)
            except socket.timeout:
                break
            if not chunk:
                break
            back += len(chunk)
        sender.join(harness.slow(5))
        client_port = sock.getsockname()[1]
        rx_queue = server_rx_queue(srv.port, client_port)
        with srv.connect() as other:
            harness.echo_roundtrip(other, b"the others are still served\n")
        return back, rx_queue


def test_edge_triggered_read_once_stalls():
    """--trigger edge --read-once: after one read per event, the rest of a
    burst sits in the server's receive buffer and is never announced again."""
    with harness.Server("server-multiplexing", "-q", "--api", "epoll", "--trigger", "edge", "--read-once") as srv:
        back, rx_queue = burst(srv)
        assert back < BURST, "all %d bytes came back: the edge-triggered handler drained after all?" % back
        assert rx_queue, "the stalled connection's bytes should sit in the server's buffer (rx_queue %r)" % rx_queue


def test_level_triggered_read_once_serves_everything():
    """The same handler under level triggering: the next wait reports the
    bytes left, so the whole burst comes back."""
    with harness.Server("server-multiplexing", "-q", "--api", "epoll", "--read-once") as srv:
        back, _ = burst(srv)
        assert back == BURST, "only %d of %d bytes came back" % (back, BURST)


def test_edge_triggered_default_drains():
    """Without --read-once the edge-triggered handler reads to EAGAIN: no stall."""
    with harness.Server("server-multiplexing", "-q", "--api", "epoll", "--trigger", "edge") as srv:
        back, _ = burst(srv)
        assert back == BURST, "only %d of %d bytes came back" % (back, BURST)


def test_select_crowd_past_fd_setsize():
    """scripts/crowd.py: 1100 clients at once; select serves those whose
    descriptors fit in an fd_set, refuses the rest and says why once; poll and
    epoll serve all of them."""
    if harness.SANITIZED:
        raise harness.Skip("the plain run covers the crowd (ASan's allocator makes 3 x 1100 connections slow)")
    harness.raise_own_fd_limit(1400)
    with tempfile.TemporaryDirectory(prefix="iomodels-crowd-") as out_dir:
        path = os.path.join(out_dir, "crowd.json")
        proc = subprocess.run([sys.executable, str(harness.ROOT / "scripts" / "crowd.py"), "--clients", "1100",
                               "--json", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, BIN=str(harness.BIN_DIR)), timeout=120)
        assert proc.returncode == 0, proc.stderr
        with open(path) as f:
            results = json.load(f)
    select = results["select"]
    assert select["refused"] > 0 and select["served"] >= 1000, select
    assert select["served"] + select["refused"] == 1100, select
    fd_setsize = [line for line in select["warnings"] if "FD_SETSIZE" in line]
    assert len(fd_setsize) == 1, "select says why once: %s" % select["warnings"]
    for api in ("poll", "epoll"):
        assert results[api]["served"] == 1100, (api, results[api])
        assert not results[api]["warnings"], (api, results[api]["warnings"])
test_select_crowd_past_fd_setsize.time_limit = 120


def test_default_max_clients_fits_select():
    """The default --max-clients promises nothing select cannot keep: no warning at start."""
    with harness.Server("server-multiplexing", "--api", "select") as srv:
        srv.stop()
        assert "FD_SETSIZE" not in srv.stderr(), srv.stderr()
    with harness.Server("server-multiplexing", "--api", "select", "--max-clients", "2000") as srv:
        srv.stop()
        assert "FD_SETSIZE" in srv.stderr(), srv.stderr()


def test_select_refusals_past_fd_setsize_are_said_once():
    """The event log says once why select refuses the crowd past FD_SETSIZE,
    not once per refused client; every refused client is still closed."""
    if harness.SANITIZED:
        raise harness.Skip("the plain run covers the crowd")
    harness.raise_own_fd_limit(1400)
    sys.path.insert(0, str(harness.ROOT / "scripts"))
    import crowd
    with harness.Server("server-multiplexing", "--api", "select", "--max-clients", "2000", nofile=1400) as srv:
        outcome = crowd.exchange(srv.host, srv.port, 1100)
        refused = list(outcome.values()).count("refused")
        assert refused > 0 and list(outcome.values()).count("ok") + refused == 1100, outcome
        srv.stop()
        lines = [line for line in srv.stderr().splitlines() if "cannot watch" in line]
        assert len(lines) == 1, "%d refusals, logged %d times: %s" % (refused, len(lines), lines[:3])
