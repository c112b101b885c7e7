#!/usr/bin/env python3
"""The course's selectors echo server, written beside the C loop.

    multiplexing/selectors_echo.py [-H ADDR] [-p PORT] [-q] [--max-clients N]

The same model as server-multiplexing: one thread, one wait for every socket
at once, then a handler per ready socket. Each part of this file names the
piece of the C server it stands for (multiplexing/loop.c, server.c and
common/echo.c), so a class can read the two side by side:

    selectors.DefaultSelector()  loop_create(): the best readiness call the
                                 system has; on Linux that is epoll
                                 (multiplexing/epoll.c), so this server waits
                                 in epoll_wait exactly as --api epoll does
    sel.register(sock, ...)      loop_watch(): watch a socket (epoll_ctl ADD)
    sel.modify(sock, ...)        loop_watch() with a new interest (epoll_ctl MOD)
    sel.unregister(sock)         loop_unwatch() (epoll_ctl DEL)
    sel.select()                 the wait: the one place the thread sleeps
                                 (phase 1, waiting for the data)
    key.data(mask)               dispatch(): the handler of a ready socket
    recv / send                  read_some / write_some: the copies (phase 2;
                                 the thread is held in the call while the
                                 kernel copies, but never waits for data)

Where it differs from the course's version: send() may take fewer bytes than
it was given (a short write, when the peer reads slowly and the socket
buffer is full). The course's handler ignores the count and loses the rest;
here the rest stays in the connection's buffer, the handler asks to be told
when the socket is writable again, and it stops reading from that peer until
the buffer drains (the backpressure of common/echo.c's want bits).

Standard library only. The contract is the C servers': -p 0 lets the kernel
choose the port, "listening on ADDR:PORT" once ready, -q silences the event
log, --max-clients refuses the rest, SIGINT or SIGTERM prints the summary.
"""
import argparse
import errno
import selectors
import signal
import socket
import sys
import time

BUFFER_SIZE = 64 * 1024  # as common/buffer.h: what one connection may hold
ACCEPT_PAUSE = 0.1       # seconds to stop accepting when out of descriptors


class Stop(Exception):
    """Raised by the SIGINT/SIGTERM handler to leave the loop."""


class Server:
    def __init__(self, listener, max_clients, quiet):
        self.sel = selectors.DefaultSelector()  # loop_create()
        self.listener = listener
        self.max_clients = max_clients
        self.quiet = quiet
        self.clients = 0
        self.paused_until = None  # accepting paused after EMFILE, until then
        self.connections = self.messages = self.echoed = 0
        self.sel.register(listener, selectors.EVENT_READ, self.on_listener)  # loop_watch(listen_fd, READABLE)

    def log(self, text):
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    # -- the listener: server.c's on_listener_ready and admit ------------------
    def on_listener(self, mask):
        try:
            conn, addr = self.listener.accept()  # ready, so it does not wait
        except BlockingIOError:
            return  # another event took it first
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of descriptors: the listener stays readable, so stop
                # watching it for a while instead of spinning on it.
                self.log("accept: %s: pausing accepts for %d ms" % (e.strerror, ACCEPT_PAUSE * 1000))
                self.sel.unregister(self.listener)
                self.paused_until = time.monotonic() + ACCEPT_PAUSE
                return
            if e.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                return
            raise
        peer = "%s:%d" % addr[:2] if conn.family == socket.AF_INET else "[%s]:%d" % addr[:2]
        if self.clients >= self.max_clients:
            self.log("refusing fd %d from %s: %d clients already connected" % (conn.fileno(), peer, self.clients))
            conn.close()
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.clients += 1
        self.connections += 1
        self.log("accepted fd %d from %s" % (conn.fileno(), peer))
        self.sel.register(conn, selectors.EVENT_READ, Connection(self, conn).on_ready)  # loop_watch(fd, READABLE)

    # -- the loop: loop.c's loop_run -------------------------------------------
    def run(self):
        while True:
            timeout = None  # sleep until a socket is ready...
            if self.paused_until is not None:  # ...or until accepting may resume
                timeout = max(self.paused_until - time.monotonic(), 0)
            events = self.sel.select(timeout)  # the wait (epoll_wait)
            if self.paused_until is not None and time.monotonic() >= self.paused_until:
                self.paused_until = None  # watch the listener again
                self.sel.register(self.listener, selectors.EVENT_READ, self.on_listener)
            for key, mask in events:  # dispatch(): the handler was registered with the socket
                key.data(mask)


class Connection:
    """One client: common/echo.c's echo_conn, its buffer and its want bits."""

    def __init__(self, server, sock):
        self.server, self.sock, self.fd = server, sock, sock.fileno()
        self.pending = bytearray()  # read but not yet echoed
        self.peer_closed = False

    def wants(self):
        """echo_wants(): read while there is room, write while bytes are pending."""
        events = 0
        if not self.peer_closed and len(self.pending) < BUFFER_SIZE:
            events |= selectors.EVENT_READ
        if self.pending:
            events |= selectors.EVENT_WRITE
        return events

    def on_ready(self, mask):
        """on_connection_ready() and echo_pump(): one read, one write, then
        tell the selector what to wait for next."""
        try:
            if mask & selectors.EVENT_READ and self.wants() & selectors.EVENT_READ:
                data = self.sock.recv(BUFFER_SIZE - len(self.pending))  # read_some
                if data:
                    self.server.messages += 1
                    self.pending += data
                else:
                    self.peer_closed = True  # end of file: echo the rest, then close
            if self.pending:
                sent = self.sock.send(self.pending)  # write_some: may be short
                self.server.echoed += sent
                del self.pending[:sent]  # the rest waits for EVENT_WRITE
        except (BlockingIOError, InterruptedError):
            pass  # nothing to read or no room after all: wait again
        except OSError:
            self.close()  # reset by the peer, broken pipe: this connection only
            return
        wants = self.wants()
        if wants == 0:
            self.close()  # the peer closed and everything was echoed
        else:
            self.server.sel.modify(self.sock, wants, self.on_ready)  # loop_watch() with the new interest

    def close(self):
        self.server.log("closing fd %d" % self.fd)
        self.server.sel.unregister(self.sock)  # loop_unwatch()
        self.sock.close()
        self.server.clients -= 1


def listen_on(host, port):
    """common/net.c's listen_on: bind, listen, non-blocking."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(socket.SOMAXCONN)
    sock.setblocking(False)
    return sock


def main():
    parser = argparse.ArgumentParser(
        prog="selectors_echo.py",
        description="The course's Python selectors echo server, one thread waiting for every socket at once.",
        epilog='Once ready it prints "listening on ADDR:PORT"; SIGINT or SIGTERM stops it with a summary.')
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=8000, help="port, 0 lets the kernel choose (default 8000)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no event log, only errors and the summary")
    parser.add_argument("--max-clients", type=int, default=1024, metavar="N",
                        help="connections served at once; more are refused (default 1024)")
    parser.add_argument("--version", action="version", version="selectors_echo.py (iomodels) 1.0.0")
    args = parser.parse_args()
    if not 0 <= args.port <= 65535 or args.max_clients < 1:
        parser.error("--port expects 0 to 65535 and --max-clients at least 1")

    def stop(signo, frame):
        raise Stop()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a send to a closed peer fails with EPIPE instead

    try:
        listener = listen_on(args.host, args.port)
    except OSError as e:
        sys.exit("selectors_echo.py: cannot listen on %s:%d: %s" % (args.host, args.port, e.strerror))
    server = Server(listener, args.max_clients, args.quiet)
    host, port = listener.getsockname()[:2]
    print("listening on %s:%d" % (host if ":" not in host else "[%s]" % host, port), flush=True)
    server.log("multiplexing with selectors.%s" % type(server.sel).__name__)
    try:
        server.run()
    except Stop:
        pass
    print("summary: %d connections, %d messages, %d bytes echoed" % (server.connections, server.messages,
                                                                      server.echoed), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
