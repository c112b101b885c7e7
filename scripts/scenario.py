#!/usr/bin/env python3
"""The fixed, reproducible scenario trace.sh drives against a server.

    scenario.py [HOST:]PORT --client bin/client --events FILE [--scale X] [--scenario lines|burst]

lines (the default): two copies of bin/client in line mode, each fed
through a pipe on a schedule:

    0.0 s  client 1 connects and stays idle
    1.0 s  client 1 sends a line, then again at 1.5 s and 2.0 s
    2.3 s  client 2 connects while client 1 is still there
    2.6 s  client 2 sends a line
    3.0 s  client 1 leaves (end of its input: it half-closes and exits)
    3.5 s  client 2 leaves

burst: what an edge-triggered handler that reads once per event does to
a big message. Client 1 connects, sends 1 MiB in one go (far more than
one read of the server's 64 KiB buffer takes) and reads its echo until
all of it is back or nothing more comes for a second; client 2 connects
meanwhile and sends one line, which must come back. Its result event
says how many bytes client 1 got back ("BACK/SENT"): fewer is the lesson
(a stalled connection), not a failure of the scenario.

--scale multiplies every pause (tests use 0.2). Each event, and each echo
a client prints, is written to FILE as "HH:MM:SS.ffffff<TAB>kind<TAB>client
<TAB>label", on the same clock as strace -tt, so the report can put them on
its timeline. Exit status 1 if an echo is missing or wrong.
"""
import argparse
import datetime
import os
import socket
import subprocess
import sys
import threading
import time

# (seconds from the start, client, what it does, the line it sends)
SCHEDULE = [
    (0.0, 1, "connect", None),
    (1.0, 1, "send", "hello 1\n"),
    (1.5, 1, "send", "hello 2\n"),
    (2.0, 1, "send", "hello 3\n"),
    (2.3, 2, "connect", None),
    (2.6, 2, "send", "hi from client 2\n"),
    (3.0, 1, "leave", None),
    (3.5, 2, "leave", None),
]
EXIT_SECONDS = 10  # how long a client may take to finish after it leaves


class EventLog:
    def __init__(self, path):
        self.file = open(path, "w")
        self.lock = threading.Lock()  # the echo readers write from their threads

    def mark(self, kind, client, label):
        stamp = datetime.datetime.now().strftime("%H:%M:%S.%f")
        with self.lock:
            self.file.write("%s\t%s\t%d\t%s\n" % (stamp, kind, client, label))
            self.file.flush()


class Client:
    """One bin/client in line mode; a thread records each echo as it arrives."""

    def __init__(self, number, program, address, log):
        self.number = number
        self.log = log
        self.sent = b""
        self.echoed = b""
        self.proc = subprocess.Popen([program, address], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self.read_echoes, daemon=True)
        self.reader.start()

    def read_echoes(self):
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                return
            self.echoed += chunk
            self.log.mark("echo", self.number, "client %d gets its echo" % self.number)

    def send(self, line):
        data = line.encode()
        self.sent += data
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the client has already exited: finish() says why

    def leave(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def finish(self, deadline):
        """Waits for the exit; returns a complaint, or None if all went well."""
        try:
            status = self.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "client %d did not finish in time" % self.number
        self.reader.join(timeout=1)
        if status != 0:
            return "client %d exited with %d: %s" % (self.number, status, self.proc.stderr.read().decode().strip())
        if self.echoed != self.sent:
            return "client %d sent %r but got back %r" % (self.number, self.sent, self.echoed)
        return None


def run(address, program, log, scale):
    clients = {}
    started = time.monotonic()
    for at, number, action, line in SCHEDULE:
        delay = started + at * scale - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the schedule itself is the point: pauses are what the trace shows
        if action == "connect":
            log.mark("connect", number, "client %d connects" % number)
            clients[number] = Client(number, program, address, log)
        elif action == "send":
            log.mark("send", number, "client %d sends" % number)
            clients[number].send(line)
        else:
            log.mark("leave", number, "client %d leaves" % number)
            clients[number].leave()
    deadline = time.monotonic() + EXIT_SECONDS
    complaints = [c for c in (client.finish(deadline) for client in clients.values()) if c]
    return complaints


BURST = 1 << 20
QUIET_SECONDS = 1.0  # no echo byte for this long: the rest is not coming


def connect_to(address):
    """A socket connected to "[HOST:]PORT" ("[::1]:8000" for IPv6)."""
    host, _, port = address.rpartition(":")
    return socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=EXIT_SECONDS)


def run_burst(address, program, log, scale):
    """Client 1 sends BURST bytes at once and reads until all are back or the
    echo goes quiet; client 2 sends a line meanwhile."""
    log.mark("connect", 1, "client 1 connects")
    big = connect_to(address)
    time.sleep(0.5 * scale)  # an idle moment first, so the burst stands apart on the timeline
    log.mark("send", 1, "client 1 sends 1 MiB")
    sender = threading.Thread(target=big.sendall, args=(b"b" * BURST,), daemon=True)
    sender.start()
    time.sleep(0.2 * scale)
    log.mark("connect", 2, "client 2 connects")
    other = Client(2, program, address, log)
    log.mark("send", 2, "client 2 sends")
    other.send("hi from client 2\n")
    back = 0
    big.settimeout(QUIET_SECONDS)
    deadline = time.monotonic() + EXIT_SECONDS
    while back < BURST and time.monotonic() < deadline:
        try:
            chunk = big.recv(1 << 20)
        except socket.timeout:
            break
        if not chunk:
            break
        if not back:
            log.mark("echo", 1, "client 1 gets its echo")
        back += len(chunk)
    log.mark("result", 1, "%d/%d" % (back, BURST))
    sender.join(EXIT_SECONDS)
    log.mark("leave", 1, "client 1 leaves")
    big.close()
    log.mark("leave", 2, "client 2 leaves")
    other.leave()
    complaint = other.finish(time.monotonic() + EXIT_SECONDS)
    print("scenario: client 1 got %d of its %d bytes back%s" % (
        back, BURST, "" if back == BURST else ": its connection stalled"), file=sys.stderr)
    return [complaint] if complaint else []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="[HOST:]PORT of the server")
    parser.add_argument("--client", default="bin/client", help="the client program")
    parser.add_argument("--events", required=True, help="where to write the timestamped events")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every pause (default 1)")
    parser.add_argument("--scenario", choices=["lines", "burst"], default="lines", help="what the clients do")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be positive")

    play = run if args.scenario == "lines" else run_burst
    complaints = play(args.address, args.client, EventLog(args.events), args.scale)
    for complaint in complaints:
        print("scenario: " + complaint, file=sys.stderr)
    return 1 if complaints else 0


if __name__ == "__main__":
    sys.exit(main())
