#!/usr/bin/env python3
"""Grades an FTP server written in any language (make grade-ftp): the FTP
checks of the test suite that hold for any correct FTP server, not only
for bin/ftpd and its options.

    tests/grade_ftp.py 'COMMAND'            e.g. 'python3 my_ftpd.py --port {port} --root {root}'
    make grade-ftp FTPD='COMMAND'

The contract with the server:
- COMMAND is split like a shell would (shlex) and run directly. `{port}`
  in it is replaced by 0 and `{root}` by the directory to serve; without
  `{port}` the grader appends `-p 0`, without `{root}` it appends `-r DIR`
  (bin/ftpd's own options). Port 0: the kernel chooses a free port.
- Once it listens, the server prints `listening on HOST:PORT` on stdout
  (flushed), with the port the kernel chose. (A server that prints
  nothing is found by its listening socket in /proc instead.)
- It serves DIR as `/`, accepts `USER anonymous` with any password, and
  binds its passive data ports on 127.0.0.1.

Each check starts the server afresh with a fresh directory, so one failure
does not spoil the next. One line per guarantee (PASS, FAIL with the
reason, N/A when it cannot apply here), then a summary and two
tab-separated rows to paste into a grade sheet. Exit status 1 if any check
failed, 2 on a usage error.
"""
import argparse
import contextlib
import ftplib
import io
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SMALL = b"hello, ftp\n"
INNER = b"inside a directory\n"
SECRET = b"outside the root\n"


def data_bytes(n, seed):
    return random.Random(seed).randbytes(n)


# -- starting the server under test -----------------------------------------------

class StudentServer(harness.CommandServer):
    """The server under test: harness.CommandServer's contract ({port} or
    -p 0, readiness by the 'listening on' line or a listening socket in
    /proc), plus the directory to serve: {root}, or -r DIR appended."""

    def __init__(self, command, root):
        super().__init__(command)
        self.root = root

    def argv(self):
        words = super().argv()
        if any("{root}" in w for w in words):
            return [w.replace("{root}", self.root) for w in words]
        return words + ["-r", self.root]


@contextlib.contextmanager
def served(command):
    """A fresh directory (with a file beside it, outside), the server on it."""
    with tempfile.TemporaryDirectory(prefix="iomodels-grade-ftp-") as tmp:
        root = os.path.join(tmp, "root")
        os.makedirs(os.path.join(root, "sub"))
        for name, data in (("hello.txt", SMALL), ("data.bin", data_bytes(1 << 20, 1)),
                           ("sub/inner.txt", INNER)):
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.truncate(256 << 20)  # sparse: costs no disk
        with open(os.path.join(tmp, "secret.txt"), "wb") as f:
            f.write(SECRET)
        with StudentServer(command, root) as srv:
            yield srv, root


# -- talking to it -------------------------------------------------------------------

def login(srv):
    ftp = ftplib.FTP(timeout=10)
    try:
        ftp.connect(srv.host, srv.port)
        ftp.login("anonymous", "grader@example.org")
    except (OSError, EOFError, ftplib.Error) as exc:
        raise AssertionError("login failed: %s" % exc) from None
    return ftp


class Control:
    """A control connection spoken by hand, for what ftplib does not do."""

    def __init__(self, srv, log_in=True):
        self.srv, self.pending = srv, b""
        self.sock = harness.connect(srv.port, srv.host, timeout=10)
        code, text = self.reply()
        assert code == 220, "greeting: %d %s" % (code, text)
        if log_in:
            assert self.command("USER anonymous")[0] in (230, 331), "USER refused"
            assert self.command("PASS grader@")[0] in (230, 202), "PASS refused"

    def reply(self, timeout=10):
        """(code, text) of the next reply, multi-line replies joined."""
        first = self.line(timeout)
        assert re.match(r"^\d{3}[ -]", first), "not an FTP reply: %r" % first
        if first[3] == "-":
            while not self.line(timeout).startswith(first[:3] + " "):
                pass
        return int(first[:3]), first[4:]

    def line(self, timeout):
        self.sock.settimeout(timeout)
        while b"\n" not in self.pending:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("no reply within %g s" % timeout) from None
            if not chunk:
                raise AssertionError("the server closed the control connection")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def command(self, text, timeout=10):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply(timeout)

    def passive(self):
        code, text = self.command("PASV")
        assert code == 227, "PASV: %d %s" % (code, text)
        numbers = [int(n) for n in re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", text).groups()]
        # The control connection's host, as ftplib does: a server bound to
        # 0.0.0.0 may name that in its reply.
        return harness.connect(numbers[4] * 256 + numbers[5], self.srv.host, timeout=10)

    def close(self):
        self.sock.close()


def download(ftp, name):
    chunks = []
    ftp.retrbinary("RETR " + name, chunks.append)
    return b"".join(chunks)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# -- the checks: one guarantee each -------------------------------------------------------

def check_greeting(srv, root):
    """A client that connects is greeted with 220."""
    Control(srv, log_in=False).close()


def check_login(srv, root):
    """USER anonymous and any password log in (230)."""
    login(srv).quit()


def check_unknown_command(srv, root):
    """An unknown command gets a 5xx reply and the session goes on."""
    c = Control(srv)
    code, text = c.command("XYZZY")
    assert 500 <= code < 600, "XYZZY got %d %s" % (code, text)
    assert c.command("NOOP")[0] == 200, "NOOP after an unknown command"
    c.close()


def check_directories(srv, root):
    """PWD, CWD into a directory and back with CDUP, and CWD to a missing one (550)."""
    ftp = login(srv)
    assert ftp.pwd() == "/", "PWD at login is %r, not /" % ftp.pwd()
    ftp.cwd("sub")
    assert ftp.pwd() == "/sub", "PWD after CWD sub is %r" % ftp.pwd()
    assert download(ftp, "inner.txt") == INNER, "RETR relative to the new directory"
    ftp.sendcmd("CDUP")
    assert ftp.pwd() == "/", "PWD after CDUP is %r" % ftp.pwd()
    try:
        reply = ftp.sendcmd("CWD no-such-dir")
    except ftplib.error_perm as exc:
        reply = str(exc)
    assert reply.startswith("550"), "CWD to a missing directory: %s" % reply
    ftp.quit()


def check_listing(srv, root):
    """NLST names every entry of the directory; LIST describes each on one line."""
    ftp = login(srv)
    names = sorted(os.path.basename(n) for n in ftp.nlst())
    assert names == ["big.bin", "data.bin", "hello.txt", "sub"], "NLST gave %r" % names
    lines = []
    ftp.retrlines("LIST", lines.append)
    assert len([line for line in lines if line.strip()]) == 4, "LIST gave %r" % lines
    assert any(line.endswith("hello.txt") for line in lines), "LIST gave %r" % lines
    ftp.quit()


def check_download(srv, root):
    """RETR sends a file byte for byte (a small text and 1 MiB of random bytes)."""
    ftp = login(srv)
    assert download(ftp, "hello.txt") == SMALL, "hello.txt differs"
    assert download(ftp, "data.bin") == read_file(os.path.join(root, "data.bin")), "data.bin differs"
    ftp.quit()


def check_upload(srv, root):
    """STOR stores exactly what was sent (2 MiB), and a second STOR replaces it whole."""
    ftp = login(srv)
    content = data_bytes(2 << 20, 2)
    ftp.storbinary("STOR up.bin", io.BytesIO(content))
    assert read_file(os.path.join(root, "up.bin")) == content, "up.bin differs from what was sent"
    ftp.storbinary("STOR up.bin", io.BytesIO(b"shorter"))
    assert read_file(os.path.join(root, "up.bin")) == b"shorter", "a second STOR left old bytes behind"
    ftp.quit()


def check_missing_file(srv, root):
    """RETR of a missing file gets 550, and the session goes on."""
    c = Control(srv)
    data = c.passive()
    code, text = c.command("RETR no-such-file")
    assert code == 550, "RETR of a missing file got %d %s" % (code, text)
    data.close()
    assert c.command("NOOP")[0] == 200, "NOOP after the refused RETR"
    c.close()


def check_active_mode(srv, root):
    """PORT (active mode, RFC 959's minimum) to the client's own address works."""
    c = Control(srv)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    code, text = c.command("PORT 127,0,0,1,%d,%d" % (port >> 8, port & 255))
    assert code == 200, "PORT got %d %s" % (code, text)
    code, text = c.command("RETR hello.txt")
    assert code in (125, 150), "RETR after PORT got %d %s" % (code, text)
    conn, _ = listener.accept()
    assert harness.recv_all(conn) == SMALL, "the active-mode download differs"
    assert c.reply()[0] == 226, "no 226 after the active-mode download"
    conn.close()
    listener.close()
    c.close()


def check_command_lines(srv, root):
    """Commands are lines: one split over two segments waits for its end,
    and several in one segment are each answered, in order."""
    c = Control(srv)
    c.sock.sendall(b"NO")
    with contextlib.suppress(AssertionError):
        code, text = c.reply(timeout=1)
        raise AssertionError("answered %d %s before the command line ended" % (code, text))
    c.sock.sendall(b"OP\r\n")
    code, text = c.reply()
    assert code == 200, "NOOP split in two segments got %d %s" % (code, text)
    c.sock.sendall(b"NOOP\r\nPWD\r\nNOOP\r\n")
    codes = [c.reply()[0] for _ in range(3)]
    assert codes == [200, 257, 200], "three commands in one segment got %s" % codes
    c.close()


def check_stalled_reader(srv, root):
    """A client that stops reading its download stalls no one else: while
    it holds a RETR of 256 MiB unread, another client logs in and downloads."""
    stalled = Control(srv)
    data = stalled.passive()
    data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sock.sendall(b"RETR big.bin\r\n")
    outcome = []

    def other_client():
        try:
            ftp = login(srv)
            outcome.append(download(ftp, "hello.txt"))
            ftp.quit()
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    helper = threading.Thread(target=other_client, daemon=True)
    helper.start()
    helper.join(15)
    assert outcome, "another client was not served within 15 s while one client did not read"
    assert outcome[0] == SMALL, "another client failed while one did not read: %s" % outcome[0]
    code, text = stalled.reply()
    assert code in (125, 150), "RETR big.bin got %d %s" % (code, text)
    data.close()
    stalled.close()


def check_half_a_command(srv, root):
    """A client that sends half a command line and stops stalls no one else."""
    idle = Control(srv)
    idle.sock.sendall(b"RETR hel")
    ftp = login(srv)
    assert download(ftp, "hello.txt") == SMALL
    ftp.quit()
    idle.close()


def check_concurrent_downloads(srv, root):
    """Eight clients logged in at once each download 1 MiB at the same time."""
    expected = read_file(os.path.join(root, "data.bin"))
    clients = [login(srv) for _ in range(8)]
    results = [None] * len(clients)
    start = threading.Barrier(len(clients), timeout=20)

    def fetch(i):
        try:
            start.wait()
            results[i] = download(clients[i], "data.bin")
            clients[i].quit()
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=fetch, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    bad = [(i, r if isinstance(r, Exception) else "wrong bytes") for i, r in enumerate(results) if r != expected]
    assert not bad, "clients that failed: %s" % bad


def check_confinement(srv, root):
    """Nothing outside the served directory can be reached: CWD .. stays at
    /, and ../secret.txt, /../secret.txt and sub/../../secret.txt are
    neither sent, listed, nor written."""
    c = Control(srv)
    code, _ = c.command("CWD ..")
    pwd = c.command("PWD")[1]
    assert code >= 500 or pwd.startswith('"/"'), "CWD .. from / left the root: PWD %s" % pwd
    for path in ("../secret.txt", "/../secret.txt", "sub/../../secret.txt"):
        data = c.passive()
        code, text = c.command("RETR " + path)
        if code in (125, 150):
            got = harness.recv_all(data)
            c.reply()
            assert SECRET not in got, "RETR %s sent a file from outside the root" % path
        data.close()
    data = c.passive()
    code, _ = c.command("NLST ..")
    if code in (125, 150):
        listing = harness.recv_all(data)
        c.reply()
        assert b"secret.txt" not in listing, "NLST .. listed the directory above the root"
    data.close()
    data = c.passive()
    code, _ = c.command("STOR ../planted.txt")
    if code in (125, 150):
        data.sendall(b"planted")
        data.close()
        c.reply()
    data.close()
    outside = os.listdir(os.path.dirname(root))
    assert "planted.txt" not in outside, "STOR ../planted.txt wrote outside the root"
    c.close()


def check_client_vanishes(srv, root):
    """A client that disconnects halfway through an upload leaves the server serving."""
    c = Control(srv)
    data = c.passive()
    code, _ = c.command("STOR cut.bin")
    assert code in (125, 150), "STOR got %d" % code
    data.sendall(b"x" * 100_000)
    for sock in (c.sock, data):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset, as a crashed client's kernel sends
    ftp = login(srv)
    assert download(ftp, "hello.txt") == SMALL
    ftp.quit()
    assert srv.alive(), "the server exited"


def check_curl(srv, root):
    """curl, a client nobody here wrote, lists, downloads and uploads."""
    if shutil.which("curl") is None:
        raise harness.NotApplicable("curl is not installed")
    url = "ftp://%s:%d/" % (srv.host, srv.port)

    def curl(*args):
        result = subprocess.run(["curl", "-sS", "--max-time", "20"] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30)
        assert result.returncode == 0, "curl %s: %s" % (" ".join(args), result.stderr.decode(errors="replace"))
        return result.stdout

    assert b"hello.txt" in curl(url), "curl's listing lacks hello.txt"
    assert curl(url + "hello.txt") == SMALL, "curl's download differs"
    with tempfile.NamedTemporaryFile() as upload:
        upload.write(data_bytes(100_000, 3))
        upload.flush()
        curl("-T", upload.name, url + "curl.bin")
        assert read_file(os.path.join(root, "curl.bin")) == read_file(upload.name), "curl's upload differs"


def check_quit(srv, root):
    """QUIT gets 221 and the server closes the control connection."""
    c = Control(srv)
    code, _ = c.command("QUIT")
    assert code == 221, "QUIT got %d" % code
    c.sock.settimeout(10)
    try:
        rest = c.sock.recv(100)
    except ConnectionResetError:
        rest = b""
    except socket.timeout:
        raise AssertionError("the connection stayed open after QUIT") from None
    assert rest == b"", "more after 221: %r" % rest
    c.close()


CHECKS = [
    ("greeting", check_greeting),
    ("login", check_login),
    ("unknown-command", check_unknown_command),
    ("directories", check_directories),
    ("listing", check_listing),
    ("download", check_download),
    ("upload", check_upload),
    ("missing-file", check_missing_file),
    ("active-mode", check_active_mode),
    ("command-lines", check_command_lines),
    ("stalled-reader", check_stalled_reader),
    ("half-a-command", check_half_a_command),
    ("concurrent-downloads", check_concurrent_downloads),
    ("confinement", check_confinement),
    ("client-vanishes", check_client_vanishes),
    ("curl", check_curl),
    ("quit", check_quit),
]


def grade(command, only=None, out=sys.stdout):
    """Runs the checks against command; prints the report; returns the results."""
    results = []
    for name, check in CHECKS:
        if only and name not in only:
            continue

        def run(check=check):
            with served(command) as (srv, root):
                check(srv, root)

        with harness.time_limit(90):
            status, reason = harness.run_check(run)
        harness.report(results, name, status, reason, out)
    harness.print_summary(results, out)
    return results


def main():
    parser = argparse.ArgumentParser(
        description="Grade an FTP server in any language against the suite's FTP checks.",
        epilog="COMMAND may contain {port} (replaced by 0) and {root} (the directory to serve); "
               "without them the grader appends -p 0 and -r DIR. The server must print "
               "'listening on HOST:PORT' on stdout once it listens.")
    parser.add_argument("command", help="the server's command line, quoted as one argument")
    parser.add_argument("-k", dest="only", action="append", metavar="CHECK",
                        help="run only this check (repeatable): %s" % ", ".join(n for n, _ in CHECKS))
    args = parser.parse_args()
    unknown = set(args.only or []) - {n for n, _ in CHECKS}
    if unknown:
        parser.error("no such check: %s" % ", ".join(sorted(unknown)))
    results = grade(args.command, args.only)
    sys.exit(1 if any(status == harness.FAIL for _, status, _ in results) else 0)


if __name__ == "__main__":
    main()
