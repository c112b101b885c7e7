#!/usr/bin/env python3
"""A small echo server in Python for the grader's own tests (tests/test_grade.py):
correct as it stands, and broken on purpose by --bug, one plausible mistake
at a time, so each check of `make grade` is seen to fail for its reason.

    echo_server.py PORT [--model loop|iterative|fork] [--bug NAME] [--no-line]

It is also a model answer for a student: it keeps the grader's contract
(listens on PORT, 0 meaning the kernel chooses, and prints
`listening on HOST:PORT`; --no-line leaves that out, for the grader to
find the port in /proc).

  --model loop       one thread, selectors (epoll), non-blocking sockets (default)
  --model iterative  one client at a time, blocking calls
  --model fork       a child process per client, blocking calls

Bugs (each is marked BUG: in the code below):
  overwrite         the loop model replaces its pending output with each new
                    read instead of appending: bytes are lost when the peer
                    sends faster than it reads the echo
  close-on-eof      closes as soon as the peer's EOF arrives, dropping the
                    echo bytes still pending
  unbounded         keeps reading a client that does not read its echo,
                    buffering without limit
  spin              asks for readability even when its buffer for the client
                    is full, so a client that does not read makes the loop spin
  sigpipe           restores SIGPIPE's default action (Python ignores it), so
                    writing to a reset peer kills the server
  reset-crash       lets ECONNRESET escape and end the server
  leak-fds          forgets to close the sockets of clients that leave
  emfile-spin       retries accept() at once after EMFILE, burning a core
                    while out of descriptors
  serial            the loop model serves one client at a time (for the
                    concurrency checks; the iterative model does so by design)
  zombies           the fork model never reaps its children
"""
import argparse
import errno
import os
import selectors
import signal
import socket
import sys
import time

CHUNK = 64 * 1024
HIGH_WATER = 256 * 1024   # pending echo bytes above which a client is not read
EMFILE_PAUSE = 0.1        # seconds without accepting after running out of descriptors


def listen(port, announce=True):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1024)
    host, port = server.getsockname()
    if announce:
        print("listening on %s:%d" % (host, port), flush=True)
    return server


def echo_blocking(conn, bug):
    """Echoes one client with blocking calls until its EOF (iterative, fork)."""
    with conn:
        try:
            while True:
                data = conn.recv(CHUNK)
                if not data:
                    return
                conn.sendall(data)
        except ConnectionResetError:
            if bug == "reset-crash":
                raise  # BUG: a peer's reset ends the whole server
        except BrokenPipeError:
            pass


def accept_retrying(server):
    """accept(), pausing (not spinning) while the process is out of descriptors."""
    while True:
        try:
            return server.accept()[0]
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            time.sleep(EMFILE_PAUSE)


def serve_iterative(server, bug):
    while True:
        echo_blocking(accept_retrying(server), bug)


def serve_fork(server, bug):
    if bug != "zombies":
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    # BUG (zombies): SIGCHLD keeps its default action and nothing calls wait().
    while True:
        conn = accept_retrying(server)
        if os.fork() == 0:
            server.close()
            echo_blocking(conn, bug)
            os._exit(0)
        conn.close()


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.pending = bytearray()
        self.eof = False


def serve_loop(server, bug):
    sel = selectors.DefaultSelector()
    server.setblocking(False)
    sel.register(server, selectors.EVENT_READ)
    clients = {}
    leaked = []
    paused_until = None

    def events_for(client):
        events = 0
        if not client.eof and (len(client.pending) < HIGH_WATER or bug in ("unbounded", "spin")):
            events |= selectors.EVENT_READ
        if client.pending:
            events |= selectors.EVENT_WRITE
        return events

    def close(client):
        sel.unregister(client.sock)
        del clients[client.sock]
        if bug == "leak-fds":
            leaked.append(client.sock)  # BUG: never closed
        else:
            client.sock.close()

    def update(client):
        if client.eof and not client.pending:
            close(client)
        else:
            sel.modify(client.sock, events_for(client), client)

    while True:
        timeout = None
        if paused_until is not None:
            timeout = max(paused_until - time.monotonic(), 0)
            if timeout == 0:
                sel.register(server, selectors.EVENT_READ)
                paused_until = None
                timeout = None
        for key, mask in sel.select(timeout):
            if key.data is None:
                if bug == "serial" and clients:
                    continue  # BUG: the next client waits for this one (the listener stays ready)
                try:
                    conn, _ = server.accept()
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.EMFILE, errno.ENFILE):
                        raise
                    if bug != "emfile-spin":
                        # Stop watching the listener for a while: it stays
                        # readable, and retrying at once would spin.
                        sel.unregister(server)
                        paused_until = time.monotonic() + EMFILE_PAUSE
                    continue
                conn.setblocking(False)
                client = Client(conn)
                clients[conn] = client
                sel.register(conn, selectors.EVENT_READ, client)
                continue
            client = key.data
            try:
                if mask & selectors.EVENT_READ and (len(client.pending) < HIGH_WATER or bug == "unbounded"):
                    data = client.sock.recv(CHUNK)
                    if not data:
                        client.eof = True
                        if bug == "close-on-eof":
                            close(client)  # BUG: the pending echo is dropped
                            continue
                    elif bug == "overwrite":
                        client.pending = bytearray(data)  # BUG: replaces what was not written yet
                    else:
                        client.pending += data
                if mask & selectors.EVENT_WRITE and client.pending:
                    sent = client.sock.send(client.pending)
                    del client.pending[:sent]
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                if bug == "reset-crash":
                    raise  # BUG: a peer's reset ends the whole server
                client.pending.clear()
                client.eof = True
            update(client)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--model", choices=("loop", "iterative", "fork"), default="loop")
    parser.add_argument("--bug", default=None)
    parser.add_argument("--no-line", action="store_true", help="do not print the listening line")
    args = parser.parse_args()
    if args.bug == "sigpipe":
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # BUG: a write to a reset peer kills the server
    server = listen(args.port, announce=not args.no_line)
    {"loop": serve_loop, "iterative": serve_iterative, "fork": serve_fork}[args.model](server, args.bug)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
