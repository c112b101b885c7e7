#!/usr/bin/env python3
"""A small FTP server in Python (selectors, one thread) for the FTP
grader's own tests (tests/grade_ftp.py, make grade-ftp): correct as it
stands, and broken on purpose by --bug, one plausible mistake at a time,
so each such check of the grader is seen to fail for its reason.

    ftp_server.py [-p PORT] [-r ROOT] [--bug NAME]

It keeps the grader's contract: listens on 127.0.0.1:PORT (0: the kernel
chooses), serves ROOT as /, prints `listening on HOST:PORT` once ready.
Anonymous login, passive (PASV, EPSV) and active (PORT) data connections,
LIST, NLST, RETR, STOR, CWD, CDUP, PWD, MKD, DELE, SIZE.

Bugs (each is marked BUG: in the code below):
  blocking-retr  sends a download with a blocking sendall() inside the
                 loop: a client that does not read stalls every session
  escape         joins the client's path to the directory without
                 confining it: ../ leads out of the root
  no-lines       takes what one recv() returns as one command, instead of
                 assembling lines: a command split over two segments, or
                 two commands in one, are misread
"""
import argparse
import os
import selectors
import socket
import sys
import time

CHUNK = 64 * 1024


class Session:
    """One client: its control connection, its dialogue and its data channel."""

    def __init__(self, server, sock):
        self.server, self.sock = server, sock
        self.inbuf, self.outbuf = b"", b""
        self.cwd = "/"
        self.logged_in = False
        self.pasv = None           # our passive listener
        self.port_addr = None      # PORT: where to connect
        self.data = None           # the data connection
        self.transfer = None       # ("send", a file or BytesReader) or ("recv", a file)
        self.pending = b""         # bytes read from the file, not sent yet
        self.closing = False       # QUIT: closed once the reply has left
        self.closed = False

    # -- control connection --------------------------------------------------
    def reply(self, code, text):
        self.outbuf += ("%d %s\r\n" % (code, text)).encode("utf-8", "surrogateescape")
        self.update()

    def update(self):
        if self.closed:
            return
        events = selectors.EVENT_WRITE if self.outbuf else 0
        if len(self.inbuf) < 4096:
            events |= selectors.EVENT_READ
        self.server.watch(self.sock, events, self.on_control)

    def on_control(self, mask):
        if mask & selectors.EVENT_WRITE and self.outbuf:
            try:
                sent = self.sock.send(self.outbuf)
                self.outbuf = self.outbuf[sent:]
            except BlockingIOError:
                pass
            except OSError:
                return self.close()
            if self.closing and not self.outbuf:
                return self.close()
        if mask & selectors.EVENT_READ:
            try:
                chunk = self.sock.recv(4096)
            except BlockingIOError:
                chunk = None
            except OSError:
                return self.close()
            if chunk == b"":
                return self.close()
            if chunk:
                if self.server.bug == "no-lines":
                    # BUG: one recv() is taken as one command line.
                    self.run(chunk.decode("utf-8", "surrogateescape").strip("\r\n"))
                else:
                    self.inbuf += chunk
        self.run_lines()
        self.update()

    def run_lines(self):
        while b"\n" in self.inbuf and not self.transfer and not self.closed and not self.closing:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            self.run(line.rstrip(b"\r").decode("utf-8", "surrogateescape"))

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.close_data()
        self.server.forget(self.sock)
        self.server.sessions.discard(self)

    # -- commands --------------------------------------------------------------
    def run(self, line):
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        if verb in ("USER", "PASS", "QUIT", "NOOP", "FEAT"):
            pass
        elif not self.logged_in:
            return self.reply(530, "Please log in")
        handler = getattr(self, "cmd_" + verb, None) if verb.isalpha() else None
        if handler is None:
            return self.reply(502, "Command not implemented")
        handler(arg)

    def cmd_USER(self, arg):
        self.reply(331, "Password please")

    def cmd_PASS(self, arg):
        self.logged_in = True
        self.reply(230, "Logged in")

    def cmd_QUIT(self, arg):
        self.closing = True
        self.reply(221, "Goodbye")

    def cmd_NOOP(self, arg):
        self.reply(200, "OK")

    def cmd_FEAT(self, arg):
        self.reply(211, "No features")

    def cmd_SYST(self, arg):
        self.reply(215, "UNIX Type: L8")

    def cmd_TYPE(self, arg):
        self.reply(200, "Type set")

    def cmd_MODE(self, arg):
        self.reply(200 if arg.upper() == "S" else 504, "Mode")

    def cmd_STRU(self, arg):
        self.reply(200 if arg.upper() == "F" else 504, "Structure")

    def cmd_PWD(self, arg):
        self.reply(257, '"%s" is the current directory' % self.cwd.replace('"', '""'))

    def resolve(self, arg):
        """(virtual path, real path), or None if it leads out of the root."""
        virtual = "/" + os.path.normpath(os.path.join(self.cwd, arg or ".")).lstrip("/")
        if self.server.bug == "escape":
            # BUG: the client's text is joined as it is: "../x" climbs out of the root.
            return virtual, os.path.join(self.server.root, self.cwd.lstrip("/"), arg)
        real = os.path.realpath(os.path.join(self.server.root, virtual.lstrip("/")))
        if real != self.server.root and not real.startswith(self.server.root + os.sep):
            return None
        return virtual, real

    def resolved(self, arg):
        found = self.resolve(arg)
        if found is None:
            self.reply(550, "Outside the root")
        return found

    def cmd_CWD(self, arg):
        found = self.resolved(arg)
        if found and os.path.isdir(found[1]):
            self.cwd = found[0]
            self.reply(250, "Directory changed")
        elif found:
            self.reply(550, "No such directory")

    def cmd_CDUP(self, arg):
        self.cmd_CWD("..")

    def cmd_MKD(self, arg):
        found = self.resolved(arg)
        if found:
            try:
                os.mkdir(found[1])
                self.reply(257, '"%s" created' % found[0])
            except OSError as exc:
                self.reply(550, exc.strerror)

    def cmd_DELE(self, arg):
        found = self.resolved(arg)
        if found:
            try:
                os.unlink(found[1])
                self.reply(250, "Deleted")
            except OSError as exc:
                self.reply(550, exc.strerror)

    def cmd_SIZE(self, arg):
        found = self.resolved(arg)
        if found and os.path.isfile(found[1]):
            self.reply(213, str(os.path.getsize(found[1])))
        elif found:
            self.reply(550, "Not a file")

    # -- data connections --------------------------------------------------------
    def close_data(self):
        for sock in (self.pasv, self.data):
            if sock is not None:
                self.server.forget(sock)
        self.pasv = self.data = self.port_addr = None
        if self.transfer and self.transfer[0] in ("send", "recv") and hasattr(self.transfer[1], "close"):
            self.transfer[1].close()
        self.transfer = None
        self.pending = b""

    def open_passive(self):
        self.close_data()
        self.pasv = socket.socket()
        self.pasv.bind(("127.0.0.1", 0))
        self.pasv.listen(1)
        self.pasv.setblocking(False)
        self.server.watch(self.pasv, selectors.EVENT_READ, self.on_pasv)
        return self.pasv.getsockname()[1]

    def cmd_PASV(self, arg):
        port = self.open_passive()
        self.reply(227, "Entering Passive Mode (127,0,0,1,%d,%d)" % (port >> 8, port & 255))

    def cmd_EPSV(self, arg):
        if arg and arg not in ("1",):
            return self.reply(522, "Use (1)")
        self.reply(229, "Entering Extended Passive Mode (|||%d|)" % self.open_passive())

    def cmd_PORT(self, arg):
        try:
            numbers = [int(n) for n in arg.split(",")]
            assert len(numbers) == 6 and all(0 <= n < 256 for n in numbers)
        except (ValueError, AssertionError):
            return self.reply(501, "Bad PORT")
        if numbers[:4] != [127, 0, 0, 1]:
            return self.reply(501, "Only to your own address")
        self.close_data()
        self.port_addr = ("127.0.0.1", numbers[4] * 256 + numbers[5])
        self.reply(200, "PORT ok")

    def on_pasv(self, mask):
        try:
            conn, _ = self.pasv.accept()
        except BlockingIOError:
            return
        self.server.forget(self.pasv)
        self.pasv = None
        conn.setblocking(False)
        self.data = conn
        self.server.watch(conn, 0, self.on_data)
        self.begin()

    def start_transfer(self, transfer, text):
        if self.pasv is None and self.data is None and self.port_addr is None:
            if hasattr(transfer[1], "close"):
                transfer[1].close()
            return self.reply(425, "Use PASV or PORT first")
        self.transfer = transfer
        self.reply(150, text)
        if self.port_addr is not None:
            self.data = socket.socket()
            self.data.setblocking(False)
            try:
                self.data.connect(self.port_addr)
            except BlockingIOError:
                pass
            except OSError:
                self.close_data()
                return self.reply(425, "Cannot connect")
            self.server.watch(self.data, 0, self.on_data)
            self.port_addr = None
        if self.data is not None:
            self.begin()

    def begin(self):
        if self.transfer is None:
            return
        if self.transfer[0] == "send" and self.server.bug == "blocking-retr":
            # BUG: the whole file is pushed with blocking calls inside the loop.
            self.data.setblocking(True)
            source = self.transfer[1]
            while True:
                block = source.read(CHUNK) if hasattr(source, "read") else source
                if not block:
                    break
                self.data.sendall(block)
                if not hasattr(source, "read"):
                    break
            return self.finish()
        events = selectors.EVENT_WRITE if self.transfer[0] == "send" else selectors.EVENT_READ
        self.server.watch(self.data, events, self.on_data)

    def on_data(self, mask):
        kind, target = self.transfer[0], self.transfer[1]
        try:
            if kind == "send":
                if not self.pending:
                    self.pending = target.read(CHUNK)
                    if not self.pending:
                        return self.finish()
                sent = self.data.send(self.pending)
                self.pending = self.pending[sent:]
            else:
                chunk = self.data.recv(CHUNK)
                if not chunk:
                    return self.finish()
                target.write(chunk)
        except BlockingIOError:
            pass
        except OSError:
            self.close_data()
            self.reply(426, "Data connection failed")
            self.run_lines()

    def finish(self):
        self.close_data()
        self.reply(226, "Transfer complete")
        self.run_lines()

    def cmd_RETR(self, arg):
        found = self.resolved(arg)
        if found is None:
            return
        try:
            source = open(found[1], "rb")
        except OSError as exc:
            return self.reply(550, exc.strerror)
        self.start_transfer(("send", source), "Sending %s" % found[0])

    def cmd_STOR(self, arg):
        found = self.resolved(arg)
        if found is None:
            return
        try:
            target = open(found[1], "wb")
        except OSError as exc:
            return self.reply(550, exc.strerror)
        self.start_transfer(("recv", target), "Receiving %s" % found[0])

    def listing(self, arg, long):
        args = [a for a in arg.split() if not a.startswith("-")]
        found = self.resolved(args[0] if args else ".")
        if found is None:
            return
        try:
            names = sorted(os.listdir(found[1]))
        except OSError as exc:
            return self.reply(550, exc.strerror)
        lines = []
        for name in names:
            if long:
                st = os.lstat(os.path.join(found[1], name))
                kind = "d" if os.path.isdir(os.path.join(found[1], name)) else "-"
                stamp = time.strftime("%b %d %H:%M", time.gmtime(st.st_mtime))
                lines.append("%srw-r--r-- 1 ftp ftp %d %s %s" % (kind, st.st_size, stamp, name))
            else:
                lines.append(name)
        body = "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape")
        self.start_transfer(("send", BytesReader(body)), "Here comes the listing")

    def cmd_LIST(self, arg):
        self.listing(arg, True)

    def cmd_NLST(self, arg):
        self.listing(arg, False)


class BytesReader:
    def __init__(self, data):
        self.data = data

    def read(self, n):
        block, self.data = self.data[:n], self.data[n:]
        return block

    def close(self):
        pass


class Server:
    def __init__(self, port, root, bug):
        self.root, self.bug = os.path.realpath(root), bug
        self.sel = selectors.DefaultSelector()
        self.sessions = set()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.watch(self.listener, selectors.EVENT_READ, self.on_accept)

    def watch(self, sock, events, callback):
        """Registers sock for events (0: known but not watched)."""
        key = self.current(sock)
        if events == 0:
            if key is not None:
                self.sel.unregister(sock)
            return
        if key is None:
            self.sel.register(sock, events, callback)
        else:
            self.sel.modify(sock, events, callback)

    def current(self, sock):
        """sock's registration now, or None (also once it is closed)."""
        try:
            return self.sel.get_map().get(sock)
        except ValueError:
            return None

    def forget(self, sock):
        if self.current(sock) is not None:
            self.sel.unregister(sock)
        sock.close()

    def on_accept(self, mask):
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        except OSError:
            time.sleep(0.1)  # out of descriptors: wait instead of spinning
            return
        conn.setblocking(False)
        session = Session(self, conn)
        self.sessions.add(session)
        session.reply(220, "Python FTP ready")

    def run(self):
        host, port = self.listener.getsockname()
        print("listening on %s:%d" % (host, port), flush=True)
        while True:
            for key, mask in self.sel.select():
                if self.current(key.fileobj) is not None:  # not closed earlier in this batch
                    key.data(mask)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-p", "--port", type=int, default=2121)
    parser.add_argument("-r", "--root", default=".")
    parser.add_argument("--bug", choices=["blocking-retr", "escape", "no-lines"])
    args = parser.parse_args()
    try:
        Server(args.port, args.root, args.bug).run()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
