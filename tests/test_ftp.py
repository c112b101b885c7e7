"""bin/ftpd against real clients nobody here wrote (curl, Python's ftplib,
lftp) and against hostile ones written here (raw sockets): the protocol,
concurrency on one thread, confinement inside --root, hostile input,
timeouts, limits and a clean shutdown.

Every server runs on port 0 with its own temporary root; every wait is
bounded by a reply, a log line, a socket or a process, never a sleep.
"""
import contextlib
import ftplib
import hashlib
import io
import os
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import harness
from harness import Server, slow

SUMMARY = re.compile(r"^summary: (\d+) connections?, (\d+) commands?, (\d+) bytes transferred$", re.M)


# -- helpers ---------------------------------------------------------------

@contextlib.contextmanager
def served_tree(*args, files=None, **server_options):
    """A temporary root filled with files {relative path: bytes} and an
    ftpd serving it (server_options go to harness.Server); yields
    (server, root)."""
    with tempfile.TemporaryDirectory(prefix="iomodels-ftp-") as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        for rel, data in (files or {}).items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        with Server("ftpd", "-r", root, *args, **server_options) as srv:
            yield srv, root
            if srv.alive():
                status, log = srv.stop()
                assert status == 0, "ftpd exited %s; log: %s" % (status, log[-1500:])


def ftp_login(srv, user="anonymous", password="guest@"):
    ftp = ftplib.FTP(timeout=slow(20))
    ftp.connect(srv.host, srv.port)
    ftp.login(user, password)
    return ftp


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def curl(*args, timeout=30):
    """Runs curl; fails the test with its stderr if curl fails."""
    argv = ["curl", "-sS", "--max-time", str(int(slow(timeout)))] + list(args)
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=slow(timeout) + 5)
    if result.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (" ".join(argv), result.returncode,
                                                   result.stderr.decode(errors="replace")))
    return result.stdout


def have(program):
    if shutil.which(program) is None:
        raise harness.Skip("%s is not installed" % program)


class Control:
    """A control connection spoken by hand, for what real clients never do."""

    def __init__(self, srv, login=True):
        self.srv = srv
        self.sock = srv.connect(timeout=10)
        self.pending = b""
        code, _ = self.reply()
        assert code == 220, "greeting %d" % code
        if login:
            assert self.command("USER anonymous")[0] == 331
            assert self.command("PASS x")[0] == 230

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def line(self, timeout=10):
        self.sock.settimeout(slow(timeout))
        while b"\r\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("control connection closed; unread: %r" % self.pending)
            self.pending += chunk
        line, self.pending = self.pending.split(b"\r\n", 1)
        return line.decode("utf-8", errors="replace")

    def reply(self, timeout=10):
        """(code, text) of the next reply, multi-line replies joined."""
        first = self.line(timeout)
        assert re.match(r"^\d{3}[ -]", first), "not a reply: %r" % first
        text = [first[4:]]
        if first[3] == "-":
            while True:
                line = self.line(timeout)
                text.append(line)
                if line.startswith(first[:3] + " "):
                    break
        return int(first[:3]), "\n".join(text)

    def command(self, text, timeout=10):
        self.send(text.encode() + b"\r\n")
        return self.reply(timeout)

    def passive(self):
        """EPSV, then the data connection, opened at once as clients do."""
        code, text = self.command("EPSV")
        assert code == 229, (code, text)
        port = int(re.search(r"\(\|\|\|(\d+)\|\)", text).group(1))
        return harness.connect(port, self.srv.host, timeout=10)

    def expect_closed(self, timeout=10):
        self.sock.settimeout(slow(timeout))
        try:
            while True:
                if not self.sock.recv(65536):
                    return
        except ConnectionResetError:
            return


def pasv_port(text):
    numbers = [int(n) for n in re.search(r"\((\d+(?:,\d+){5})\)", text).group(1).split(",")]
    return numbers[4] * 256 + numbers[5]


def leftovers(root):
    """Temporary upload files anywhere under root."""
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".part")]


# -- curl -------------------------------------------------------------------

def curl_roundtrip(mode):
    """Listing, download and upload with curl in one passive mode."""
    have("curl")
    content = random_bytes(300_000, seed=1)
    with served_tree(files={"file.bin": content, "docs/readme.txt": b"read me\n"}) as (srv, root):
        url = "ftp://%s:%d/" % (srv.host, srv.port)
        listing = curl(*mode, url).decode()
        assert re.search(r"^-r.* 300000 .* file\.bin\r?$", listing, re.M), listing
        assert re.search(r"^d.* docs\r?$", listing, re.M), listing

        assert curl(*mode, url + "file.bin") == content
        assert curl(*mode, url + "docs/readme.txt") == b"read me\n"

        with tempfile.NamedTemporaryFile() as upload:
            upload.write(random_bytes(200_000, seed=2))
            upload.flush()
            curl(*mode, "-T", upload.name, url + "docs/uploaded.bin")
            assert read_file(os.path.join(root, "docs", "uploaded.bin")) == read_file(upload.name)
        assert leftovers(root) == []
        return srv.stderr()


def test_curl_list_download_upload_epsv():
    log = curl_roundtrip(["--ftp-pasv"])
    assert "received /docs/uploaded.bin, 200000 bytes" in log, log


def test_curl_list_download_upload_pasv():
    log = curl_roundtrip(["--ftp-pasv", "--disable-epsv"])
    assert "sent /file.bin, 300000 bytes" in log, log


def test_curl_resumes_download_and_upload():
    """-C -: curl asks SIZE, then REST + RETR for the rest of a download, or
    APPE for the rest of an upload; only the missing bytes travel."""
    have("curl")
    content = random_bytes(500_000, seed=3)
    with served_tree(files={"big.bin": content, "half.bin": content[:123_456]}) as (srv, root), \
            tempfile.TemporaryDirectory() as local:
        url = "ftp://%s:%d/" % (srv.host, srv.port)
        partial = os.path.join(local, "big.bin")
        with open(partial, "wb") as f:
            f.write(content[:200_000])
        curl("-C", "-", "-o", partial, url + "big.bin")
        assert read_file(partial) == content
        srv.wait_for_log("sent /big.bin, 300000 bytes")

        curl("-C", "-", "-T", partial, url + "half.bin")
        assert read_file(os.path.join(root, "half.bin")) == content
        srv.wait_for_log("received /half.bin, %d bytes" % (500_000 - 123_456))


# -- ftplib -----------------------------------------------------------------

def test_ftplib_login_mlsd_nlst():
    files = {"a.txt": b"alpha", "b.bin": b"\0" * 1234, "sub/c.txt": b"c"}
    with served_tree(files=files) as (srv, root):
        ftp = ftp_login(srv)
        assert ftp.pwd() == "/"
        facts = dict(ftp.mlsd())
        assert facts["a.txt"]["type"] == "file" and facts["a.txt"]["size"] == "5", facts
        assert facts["b.bin"]["size"] == "1234", facts
        assert facts["sub"]["type"] == "dir", facts
        assert re.fullmatch(r"\d{14}", facts["a.txt"]["modify"]), facts
        assert "." not in facts and ".." not in facts
        assert sorted(ftp.nlst()) == ["a.txt", "b.bin", "sub"]
        assert ftp.nlst("sub") == ["c.txt"]
        assert ftp.size("b.bin") == 1234
        assert re.fullmatch(r"213 \d{14}", ftp.sendcmd("MDTM a.txt"))
        ftp.quit()


def test_ftplib_large_file_roundtrip_by_sha256():
    """storbinary then retrbinary of a random file (50 MiB; 10 under the
    sanitizers), byte-verified by sha256 on disk and on the way back."""
    size = (10 if harness.SANITIZED else 50) << 20
    content = random_bytes(size, seed=4)
    with served_tree() as (srv, root):
        ftp = ftp_login(srv)
        ftp.storbinary("STOR big.bin", io.BytesIO(content), blocksize=1 << 20)
        assert sha256(read_file(os.path.join(root, "big.bin"))) == sha256(content)
        digest = hashlib.sha256()
        ftp.retrbinary("RETR big.bin", digest.update, blocksize=1 << 20)
        assert digest.hexdigest() == sha256(content)
        ftp.quit()
        _, log = srv.stop()
        counted = int(SUMMARY.search(log).group(3))
        assert counted >= 2 * size, log[-500:]


def test_ftplib_mkd_rmd_rename_delete():
    with served_tree(files={"old.txt": b"payload"}) as (srv, root):
        ftp = ftp_login(srv)
        assert ftp.mkd("newdir") == "/newdir"
        assert os.path.isdir(os.path.join(root, "newdir"))
        ftp.cwd("newdir")
        assert ftp.pwd() == "/newdir"
        ftp.rename("/old.txt", "moved.txt")
        assert read_file(os.path.join(root, "newdir", "moved.txt")) == b"payload"
        assert not os.path.exists(os.path.join(root, "old.txt"))
        with contextlib.suppress(ftplib.error_perm):
            ftp.rmd("/newdir")
            raise AssertionError("RMD of a non-empty directory succeeded")
        ftp.delete("moved.txt")
        ftp.cwd("..")
        ftp.rmd("newdir")
        assert os.listdir(root) == []
        with contextlib.suppress(ftplib.error_perm):
            ftp.delete("no-such-file")
            raise AssertionError("DELE of a missing file succeeded")
        try:
            reply = ftp.sendcmd("RNTO x")  # RNTO without RNFR
        except ftplib.error_perm as exc:
            reply = str(exc)
        assert reply.startswith("503"), reply
        ftp.quit()


def test_read_only_refuses_every_write():
    with served_tree("--read-only", files={"keep.txt": b"keep", "dir/x": b"x"}) as (srv, root):
        ftp = ftp_login(srv)
        for command in ["DELE keep.txt", "MKD new", "XMKD new", "RMD dir", "XRMD dir", "RNFR keep.txt",
                        "RNTO new.txt", "ALLO 100"]:
            try:
                reply = ftp.sendcmd(command)
            except ftplib.error_perm as exc:
                reply = str(exc)
            assert reply.startswith("550"), (command, reply)
        for upload in ["STOR new.txt", "APPE keep.txt"]:
            with contextlib.suppress(ftplib.error_perm):
                ftp.storbinary(upload, io.BytesIO(b"data"))
                raise AssertionError("%s succeeded on a read-only server" % upload)
        assert sorted(os.listdir(root)) == ["dir", "keep.txt"]
        assert read_file(os.path.join(root, "keep.txt")) == b"keep"
        chunks = []
        ftp.retrbinary("RETR keep.txt", chunks.append)  # reading still works
        assert b"".join(chunks) == b"keep"
        assert "perm=r;" in ftp.sendcmd("MLST keep.txt")
        ftp.quit()


# -- lftp -------------------------------------------------------------------

def lftp(srv, script, home, timeout=60):
    settings = ("set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; "
                "set ftp:ssl-allow no; set xfer:clobber yes; ")
    argv = ["lftp", "-c", settings + "open -u anonymous,guest -p %d %s; %s" % (srv.port, srv.host, script)]
    env = dict(os.environ, HOME=home)
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=slow(timeout), env=env)
    assert result.returncode == 0, "lftp: %s" % result.stdout.decode(errors="replace")[-2000:]


def diff_trees(a, b):
    result = subprocess.run(["diff", "-r", a, b], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert result.returncode == 0, result.stdout.decode(errors="replace")[-2000:]


def test_lftp_mirror_down_and_back_up():
    have("lftp")
    tree = {}
    for i in range(3):
        for j in range(3):
            tree["level1-%d/level2-%d/level3/file-%d-%d.bin" % (i, j, i, j)] = random_bytes(1000 * (i + j + 1), i * 7 + j)
        tree["level1-%d/top-%d.txt" % (i, i)] = b"line\n" * (i + 1)
    tree["root.txt"] = b"at the root\n"
    tree["empty.bin"] = b""
    with served_tree(files=tree) as (srv, root), tempfile.TemporaryDirectory() as work:
        os.makedirs(os.path.join(root, "empty-dir", "nested-empty"))
        down = os.path.join(work, "down")
        lftp(srv, "mirror / %s" % down, home=work)
        diff_trees(root, down)

        lftp(srv, "mkdir /up; mirror -R %s /up" % down, home=work)
        diff_trees(down, os.path.join(root, "up"))
        assert leftovers(root) == []


# -- concurrency --------------------------------------------------------------

def test_twenty_clients_download_different_files_at_once():
    count, size = 20, (256 if harness.SANITIZED else 1024) << 10
    files = {"file-%02d.bin" % i: random_bytes(size, seed=100 + i) for i in range(count)}
    with served_tree(files=files) as (srv, root):
        clients = [ftp_login(srv) for _ in range(count)]  # all logged in at once
        results, errors = [None] * count, []
        start = threading.Barrier(count, timeout=slow(20))

        def download(i):
            try:
                chunks = []
                start.wait()
                clients[i].retrbinary("RETR file-%02d.bin" % i, chunks.append, blocksize=65536)
                results[i] = sha256(b"".join(chunks))
                clients[i].quit()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append("client %d: %r" % (i, exc))

        threads = [threading.Thread(target=download, args=(i,), daemon=True) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(slow(60))
        assert not errors, errors
        for i in range(count):
            assert results[i] == sha256(files["file-%02d.bin" % i]), "client %d got other bytes" % i


def test_client_that_never_reads_its_data_stalls_no_one_else():
    """A RETR whose reader never reads fills the socket buffers; the server
    must go on serving others, and ABOR must still reach the stalled one."""
    with served_tree(files={"small.bin": random_bytes(2 << 20, seed=5)}) as (srv, root):
        big = os.path.join(root, "huge.bin")
        with open(big, "wb") as f:
            f.truncate(256 << 20)  # sparse: costs no disk
        stalled = Control(srv)
        assert stalled.command("TYPE I")[0] == 200
        data = stalled.passive()
        data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert stalled.command("RETR huge.bin")[0] == 150

        for _ in range(3):
            ftp = ftp_login(srv)
            chunks = []
            ftp.retrbinary("RETR small.bin", chunks.append)
            assert sha256(b"".join(chunks)) == sha256(read_file(os.path.join(root, "small.bin")))
            assert "small.bin" in ftp.nlst()
            ftp.quit()

        stalled.send(b"ABOR\r\n")
        replies = [stalled.reply()[0], stalled.reply()[0]]
        assert replies == [426, 226], replies
        srv.wait_for_log("transfer of /huge.bin aborted")
        data.close()
        assert stalled.command("NOOP")[0] == 200
        stalled.close()


def test_abor_after_a_telnet_synch_overtakes_queued_commands():
    """During a stalled transfer, commands sent after RETR wait their turn;
    an ABOR behind the Telnet Synch (IAC IP IAC DM, as lftp sends it)
    discards them and aborts at once instead of waiting for ever."""
    with served_tree() as (srv, root):
        with open(os.path.join(root, "huge.bin"), "wb") as f:
            f.truncate(256 << 20)
        c = Control(srv)
        data = c.passive()
        data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert c.command("RETR huge.bin")[0] == 150
        c.send(b"NOOP\r\n")
        c.send(b"\xff\xf4\xff\xf2ABOR\r\n")
        assert [c.reply(timeout=5)[0], c.reply()[0]] == [426, 226]
        data.close()
        assert c.command("NOOP")[0] == 200
        c.close()


# -- confinement --------------------------------------------------------------

def test_escapes_from_the_root_are_refused():
    """.., absolute paths, and symbolic links that lead out (to /etc, to a
    sibling directory, relative or absolute) all end in 550; nothing
    outside is read, listed, written or deleted. A link that stays inside
    works."""
    with tempfile.TemporaryDirectory(prefix="iomodels-ftp-") as tmp:
        root, outside = os.path.join(tmp, "root"), os.path.join(tmp, "outside")
        os.makedirs(os.path.join(root, "inner"))
        os.mkdir(outside)
        with open(os.path.join(outside, "secret.txt"), "wb") as f:
            f.write(b"secret")
        with open(os.path.join(root, "inner", "ok.txt"), "wb") as f:
            f.write(b"inside")
        os.symlink("/etc", os.path.join(root, "etc"))
        os.symlink("../outside", os.path.join(root, "sibling"))
        os.symlink(outside, os.path.join(root, "absolute"))
        os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "secret-link"))
        os.symlink("inner/ok.txt", os.path.join(root, "good-link"))

        with Server("ftpd", "-r", root) as srv:
            c = Control(srv)
            for path in ["../..", "..", "/..", "etc", "sibling", "absolute", "inner/../../outside"]:
                assert c.command("CWD " + path)[0] == 550, path
            assert c.command("CDUP")[0] == 550
            assert c.command("PWD")[1].startswith('"/"')
            for path in ["../../etc/passwd", "/etc/passwd", "etc/passwd", "sibling/secret.txt",
                         "absolute/secret.txt", "secret-link", "inner/../../outside/secret.txt"]:
                for probe in ["SIZE", "MDTM", "MLST"]:
                    assert c.command("%s %s" % (probe, path))[0] == 550, (probe, path)
                data = c.passive()
                assert c.command("RETR " + path)[0] == 550, path
                data.close()
            for path in ["etc", "sibling", "absolute", "../"]:
                data = c.passive()
                assert c.command("LIST " + path)[0] == 550, path
                data.close()
            for command in ["DELE sibling/secret.txt", "DELE absolute/secret.txt", "MKD sibling/new",
                            "RMD ../outside", "RNFR sibling/secret.txt", "RNFR ../outside/secret.txt"]:
                assert c.command(command)[0] == 550, command
            for command in ["RMD /", "RMD .", "DELE /", "MKD .", "RNFR /", "RMD inner/../..", "DELE ../outside"]:
                assert c.command(command)[0] == 550, command  # the root itself has no parent to act in
            data = c.passive()
            assert c.command("STOR sibling/planted.txt")[0] == 550
            data.close()
            data = c.passive()
            assert c.command("APPE secret-link")[0] == 550
            data.close()
            assert sorted(os.listdir(outside)) == ["secret.txt"]
            assert read_file(os.path.join(outside, "secret.txt")) == b"secret"

            # A link that stays inside the root is followed.
            data = c.passive()
            assert c.command("RETR good-link")[0] == 150
            assert harness.recv_all(data) == b"inside"
            assert c.reply()[0] == 226
            c.close()
            status, _ = srv.stop()
            assert status == 0


def test_link_swapped_in_during_an_upload_does_not_redirect_it():
    """The upload's directory is held open from STOR on: a symbolic link
    to the outside swapped in under its name mid-transfer changes nothing,
    and the file lands in the directory that was opened."""
    with tempfile.TemporaryDirectory(prefix="iomodels-ftp-") as tmp:
        root, outside = os.path.join(tmp, "root"), os.path.join(tmp, "outside")
        os.makedirs(os.path.join(root, "d"))
        os.mkdir(outside)
        with Server("ftpd", "-r", root) as srv:
            c = Control(srv)
            data = c.passive()
            assert c.command("STOR d/x.bin")[0] == 150
            data.sendall(b"first ")
            harness.wait_until(lambda: leftovers(root), 10, "the temporary upload file")
            os.rename(os.path.join(root, "d"), os.path.join(root, "moved"))
            os.symlink(outside, os.path.join(root, "d"))
            data.sendall(b"second")
            data.close()
            assert c.reply()[0] == 226
            assert os.listdir(outside) == []
            assert read_file(os.path.join(root, "moved", "x.bin")) == b"first second"
            c.close()


def test_port_and_eprt_may_only_name_the_control_peer():
    """PORT/EPRT to another address (127.0.0.2 while the control connection
    comes from 127.0.0.1) or to a privileged port is refused: no FTP
    bounce. To the client's own address, active mode works."""
    with served_tree(files={"f.txt": b"active mode works"}) as (srv, root):
        c = Control(srv)
        for command in ["PORT 127,0,0,2,200,10", "EPRT |1|127.0.0.2|51210|", "PORT 127,0,0,1,0,21",
                        "PORT 1,2,3", "PORT 127,0,0,1,300,1", "EPRT |1|not-an-ip|5000|", "EPRT garbage"]:
            assert c.command(command)[0] == 501, command
        assert c.command("EPRT |9|127.0.0.1|5000|")[0] == 522
        assert c.command("RETR f.txt")[0] == 425  # nothing was prepared

        for extended in (False, True):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.settimeout(slow(10))
            port = listener.getsockname()[1]
            if extended:
                command = "EPRT |1|127.0.0.1|%d|" % port
            else:
                command = "PORT 127,0,0,1,%d,%d" % (port >> 8, port & 255)
            assert c.command(command)[0] == 200
            assert c.command("RETR f.txt")[0] == 150
            conn, _ = listener.accept()
            assert harness.recv_all(conn) == b"active mode works"
            assert c.reply()[0] == 226
            conn.close()
            listener.close()
        assert "refused PORT to another host" in srv.stderr()
        c.close()


def test_passive_port_accepts_only_the_control_peer():
    with served_tree(files={"f.txt": b"only for you"}) as (srv, root):
        c = Control(srv)
        code, text = c.command("PASV")
        assert code == 227, text
        port = pasv_port(text)
        intruder = socket.socket()
        intruder.bind(("127.0.0.2", 0))
        intruder.settimeout(slow(10))
        intruder.connect((srv.host, port))
        srv.wait_for_log("refused data connection from 127.0.0.2")
        with contextlib.suppress(ConnectionResetError):
            assert intruder.recv(1) == b""
        intruder.close()

        data = harness.connect(port, srv.host)
        assert c.command("RETR f.txt")[0] == 150
        assert harness.recv_all(data) == b"only for you"
        assert c.reply()[0] == 226
        c.close()


def test_data_connection_reset_before_accept_fails_the_transfer():
    """A client whose data connection is reset before the server accepts
    it gets 426 for its transfer, not silence: the peer check uses the
    address accept4 reports, which survives the reset."""
    with served_tree(files={"f.txt": b"x" * 100_000}) as (srv, root):
        c = Control(srv)
        code, text = c.command("EPSV")
        port = int(re.search(r"\(\|\|\|(\d+)\|\)", text).group(1))
        srv.signal(signal.SIGSTOP)  # so the reset surely comes before the accept
        try:
            harness.wait_until(lambda: harness.process_state(srv.proc.pid) == "T", 10, "ftpd to stop")
            data = harness.connect(port, srv.host)
            data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            data.close()
            c.send(b"RETR f.txt\r\n")
        finally:
            srv.signal(signal.SIGCONT)
        first = c.reply()[0]
        if first == 150:
            first = c.reply()[0]
        assert first in (425, 426), first
        assert c.command("NOOP")[0] == 200
        c.close()


# -- hostile input --------------------------------------------------------------

def test_overlong_command_line_gets_500_and_the_session_goes_on():
    with served_tree() as (srv, root):
        c = Control(srv)
        c.send(b"NOOP " + b"A" * 100_000 + b"\r\n")
        code, text = c.reply()
        assert code == 500 and "too long" in text, (code, text)
        assert c.command("NOOP")[0] == 200  # exactly one 500, then normal service
        c.send(b"RETR " + b"B" * 600)  # long and unfinished...
        c.send(b"\r\nPWD\r\n")  # ...then ended
        assert c.reply()[0] == 500
        assert c.reply()[0] == 257
        c.close()


def test_binary_garbage_and_nul_bytes_get_500():
    with served_tree() as (srv, root):
        rng = random.Random(6)
        c = Control(srv)
        garbage = bytes(rng.randrange(256) for _ in range(20_000))
        c.send(garbage + b"\r\nNOOP\x00X\r\nNOOP\r\n")
        count = 0
        while True:
            code, text = c.reply()
            count += 1
            assert count < 2000, "too many replies"
            if code == 200:
                break
            assert 500 <= code < 600 or code in (331, 530), (code, text)
        assert c.command("PWD")[0] == 257
        c.close()
        assert srv.alive()


def test_connection_closed_mid_command_or_mid_upload():
    """A client that vanishes halfway through a command line, or halfway
    through an upload, is closed cleanly: no temporary file, no target."""
    with served_tree() as (srv, root):
        base = srv.fd_count()
        c = Control(srv)
        c.send(b"RETR half-a-comm")
        c.close()

        c = Control(srv)
        data = c.passive()
        assert c.command("STOR target.bin")[0] == 150
        data.sendall(b"x" * 100_000)
        harness.wait_until(lambda: leftovers(root), 10, "the temporary upload file")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # control reset while the data connection is still open
        srv.wait_until_idle(base)
        data.close()
        assert os.listdir(root) == [], os.listdir(root)

        ftp = ftp_login(srv)  # still serving
        assert ftp.nlst() == []
        ftp.quit()


# -- sessions: login, limits, timeouts ---------------------------------------------

def test_protocol_basics_and_replies():
    with served_tree(files={'quote"d/x': b"x"}) as (srv, root):
        c = Control(srv, login=False)
        assert c.command("PWD")[0] == 530  # not logged in yet
        assert c.command("PASS x")[0] == 503  # PASS before USER
        code, feat = c.command("FEAT")
        assert code == 211 and all(f in feat for f in ["EPSV", "MLST", "REST STREAM", "SIZE", "MDTM", "UTF8"]), feat
        assert c.command("USER anonymous")[0] == 331
        assert c.command("PASS a@b")[0] == 230
        assert c.command("SYST")[0] == 215
        assert c.command("OPTS UTF8 ON")[0] == 200
        assert c.command("TYPE I")[0] == 200 and c.command("TYPE A")[0] == 200
        assert c.command("TYPE X")[0] == 504
        assert c.command("MODE S")[0] == 200 and c.command("MODE B")[0] == 504
        assert c.command("STRU F")[0] == 200 and c.command("STRU R")[0] == 504
        assert c.command("XYZZY")[0] == 500
        assert c.command("RETR")[0] == 501  # argument missing
        assert c.command("PWD extra")[0] == 501  # argument where none belongs
        assert c.command("REST -5")[0] == 501
        assert c.command("MKD bad\rname")[0] == 550  # a name no listing could frame
        assert c.command("MKD bad\x1bname")[0] == 550
        assert c.command("REST 10")[0] == 350
        assert c.command("ABOR")[0] == 225
        assert c.command('CWD quote"d')[0] == 250
        assert c.command("PWD")[1].startswith('"/quote""d" ')
        assert c.command("CDUP")[0] == 250
        assert c.command("NOOP")[0] == 200
        assert c.command("QUIT")[0] == 221
        c.expect_closed()


def test_user_account_is_required_when_configured():
    with served_tree("--user", "alice:s3cret:x", files={"f": b"f"}) as (srv, root):
        with contextlib.suppress(ftplib.error_perm):
            ftp_login(srv)  # anonymous
            raise AssertionError("anonymous login accepted")
        with contextlib.suppress(ftplib.error_perm):
            ftp_login(srv, "alice", "wrong")
            raise AssertionError("wrong password accepted")
        ftp = ftp_login(srv, "alice", "s3cret:x")  # the password is all after the first colon
        assert ftp.nlst() == ["f"]
        ftp.quit()
        assert "s3cret" not in srv.stderr()
        with open("/proc/%d/cmdline" % srv.proc.pid, "rb") as f:
            assert b"s3cret" not in f.read()  # ps shows every local user the command line


def test_idle_timeout_closes_with_421():
    with served_tree("--idle-timeout", "1") as (srv, root):
        c = Control(srv)
        code, text = c.reply(timeout=10)
        assert code == 421, (code, text)
        c.expect_closed()
        srv.wait_for_log("idle timeout")


def test_max_clients_refused_with_421():
    with served_tree("--max-clients", "2") as (srv, root):
        first, second = Control(srv), Control(srv)
        sock = srv.connect()
        sock.settimeout(slow(10))
        assert sock.recv(100).startswith(b"421"), "third client was not refused"
        sock.close()
        assert first.command("QUIT")[0] == 221
        first.expect_closed()
        srv.wait_for_log("closing fd")
        third = harness.wait_until(lambda: try_control(srv), 10, "a free slot after one client left")
        assert third.command("NOOP")[0] == 200
        second.close()
        third.close()


def try_control(srv):
    try:
        return Control(srv)
    except AssertionError:
        return None


def test_sigterm_during_transfers_exits_0_without_half_files():
    with served_tree() as (srv, root):
        with open(os.path.join(root, "huge.bin"), "wb") as f:
            f.truncate(256 << 20)
        downloader = Control(srv)
        down = downloader.passive()
        assert downloader.command("RETR huge.bin")[0] == 150

        uploader = Control(srv)
        up = uploader.passive()
        assert uploader.command("STOR incoming.bin")[0] == 150
        up.sendall(b"u" * 300_000)
        harness.wait_until(lambda: leftovers(root) and os.path.getsize(leftovers(root)[0]) > 0, 10,
                           "upload bytes on disk")
        status, log = srv.stop()
        assert status == 0, log[-1000:]
        assert SUMMARY.search(log), log[-1000:]
        assert sorted(os.listdir(root)) == ["huge.bin"], os.listdir(root)
        for sock in (down, up, downloader.sock, uploader.sock):
            sock.close()


def test_every_api_serves_and_leaks_no_descriptor():
    files = {"f-%d.bin" % i: random_bytes(100_000, seed=i) for i in range(3)}
    for api in ("select", "poll", "epoll"):
        with served_tree("--api", api, files=files) as (srv, root):
            base = srv.fd_count()
            for i in range(3):
                ftp = ftp_login(srv)
                chunks = []
                ftp.retrbinary("RETR f-%d.bin" % i, chunks.append)
                assert b"".join(chunks) == files["f-%d.bin" % i], api
                ftp.storbinary("STOR up-%d.bin" % i, io.BytesIO(files["f-%d.bin" % i]))
                assert len(ftp.nlst()) == 3 + i + 1
                ftp.quit()
            srv.wait_until_idle(base)
            assert srv.wait_for_log("with %s" % api)


def test_usage_errors_exit_2():
    for args in (["--user", "no-colon"], ["--api", "kqueue"], ["--idle-timeout", "0"], ["--bogus"]):
        result = subprocess.run([harness.binary("ftpd")] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, timeout=slow(10), text=True)
        assert result.returncode == 2, (args, result.returncode)
        assert "usage:" in result.stderr, result.stderr
    result = subprocess.run([harness.binary("ftpd"), "-p", "0", "-r", "/no/such/dir"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=slow(10), text=True)
    assert result.returncode == 1 and "/no/such/dir" in result.stderr, result.stderr


def test_pipelined_commands_with_unread_replies_all_get_answers():
    """A client that sends thousands of commands before reading any reply
    is paused (its replies are bounded, not grown), then served to the last
    command. Each PWD here answers with 800 bytes for 5 sent, so the
    replies outrun every buffer."""
    count = 4000
    deep = "/".join(["d" * 200] * 4)
    with served_tree() as (srv, root):
        os.makedirs(os.path.join(root, deep))
        c = Control(srv)
        for _ in range(4):
            assert c.command("CWD " + "d" * 200)[0] == 250
        c.send(b"PWD\r\n" * count + b"NOOP\r\n")  # all of it, before reading any reply
        for i in range(count):
            code, text = c.reply()
            assert code == 257 and deep in text, "reply %d: %d" % (i, code)
        assert c.reply()[0] == 200
        c.close()


def test_abor_and_rest_stor_uploads():
    """ABOR during an upload removes the partial file; REST + STOR resumes
    an upload in place (ftplib's rest=); a LIST of one file is one line."""
    with served_tree(files={"resume.bin": b"0123456789"}) as (srv, root):
        c = Control(srv)
        data = c.passive()
        assert c.command("STOR aborted.bin")[0] == 150
        data.sendall(b"a" * 50_000)
        harness.wait_until(lambda: leftovers(root), 10, "the temporary upload file")
        c.send(b"\xff\xf4\xff\xf2ABOR\r\n")  # Telnet IP + Synch first, as lftp sends it
        assert [c.reply()[0], c.reply()[0]] == [426, 226]
        data.close()
        assert sorted(os.listdir(root)) == ["resume.bin"], os.listdir(root)
        c.close()

        ftp = ftp_login(srv)
        ftp.storbinary("STOR resume.bin", io.BytesIO(b"ABCDEF"), rest=4)
        assert read_file(os.path.join(root, "resume.bin")) == b"0123ABCDEF"
        lines = []
        ftp.dir("resume.bin", lines.append)
        assert len(lines) == 1 and lines[0].startswith("-") and lines[0].endswith(" resume.bin"), lines
        ftp.quit()


def test_rest_then_stor_of_a_missing_file_creates_nothing():
    """A resume (REST n, STOR) of a file that is not there is refused, and
    the refusal leaves no empty file under that name."""
    with served_tree() as (srv, root):
        c = Control(srv)
        data = c.passive()
        assert c.command("REST 5")[0] == 350
        assert c.command("STOR missing.bin")[0] in (550, 554)
        data.close()
        assert os.listdir(root) == [], os.listdir(root)
        c.close()


def test_epsv_1_from_an_ipv4_client_of_a_dual_stack_listener():
    """Listening on ::, an IPv4 client shows as ::ffff:127.0.0.1: EPSV 1
    (IPv4) is its protocol, not a 522."""
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::", 0))
        probe.close()
    except OSError as exc:
        raise harness.Skip("no IPv6: %s" % exc)
    with served_tree("-H", "::", files={"f.txt": b"dual stack"}) as (srv, root):
        srv.host = "127.0.0.1"
        c = Control(srv)
        code, text = c.command("EPSV 1")
        assert code == 229, (code, text)
        data = harness.connect(int(re.search(r"\(\|\|\|(\d+)\|\)", text).group(1)), "127.0.0.1", timeout=10)
        assert c.command("RETR f.txt")[0] == 150
        assert harness.recv_all(data) == b"dual stack"
        assert c.reply()[0] == 226
        assert c.command("EPSV 2")[0] == 522
        c.close()


def test_ipv6_control_uses_epsv():
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError as exc:
        raise harness.Skip("no IPv6 loopback: %s" % exc)
    with served_tree("-H", "::1", files={"six.txt": b"over IPv6"}) as (srv, root):
        assert srv.host == "::1"
        ftp = ftp_login(srv)  # ftplib speaks EPSV over IPv6
        chunks = []
        ftp.retrbinary("RETR six.txt", chunks.append)
        assert b"".join(chunks) == b"over IPv6"
        for command, code in (("EPSV 1", "522"), ("PASV", "425")):  # both name IPv4
            try:
                reply = ftp.sendcmd(command)
            except ftplib.Error as exc:
                reply = str(exc)
            assert reply.startswith(code), (command, reply)
        ftp.quit()


def lowest_free_fd(pid):
    used = {int(n) for n in os.listdir("/proc/%d/fd" % pid)}
    return next(n for n in range(len(used) + 1) if n not in used)


def test_out_of_descriptors_pauses_without_spinning_then_recovers():
    """With its descriptor limit lowered under its feet (prlimit), accept
    fails with EMFILE: the server warns once, stays alive and uses next to
    no CPU while a client waits in the backlog (a retry without a pause
    would burn a core), then serves that client once the limit is back."""
    with served_tree(files={"f.txt": b"still here"}) as (srv, root):
        first = Control(srv)
        limits = resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (lowest_free_fd(srv.proc.pid), limits[1]))
        try:
            waiting = srv.connect()
            srv.wait_for_log("accept: Too many open files: pausing new connections")
            cpu_before, start = srv.cpu_seconds(), time.monotonic()
            time.sleep(1.0)  # the measurement window, not a synchronisation
            cpu, elapsed = srv.cpu_seconds() - cpu_before, time.monotonic() - start
            assert cpu < 0.1, "%.2f s of CPU in %.2f s while out of descriptors" % (cpu, elapsed)
            assert srv.alive()
            assert first.command("NOOP")[0] == 200  # the sessions it has are still served
        finally:
            resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, limits)
        waiting.settimeout(slow(10))
        assert waiting.recv(100).startswith(b"220"), "the waiting client was not served"
        assert srv.stderr().count("pausing new connections") == 1, srv.stderr()[-2000:]
        waiting.close()
        ftp = ftp_login(srv)
        chunks = []
        ftp.retrbinary("RETR f.txt", chunks.append)
        assert b"".join(chunks) == b"still here"
        ftp.quit()
        first.close()


def test_out_of_descriptors_in_a_session_gets_transient_replies():
    """A command that cannot open what it needs for want of a descriptor
    is told to try again (451, or 425 for a data connection), never the
    permanent 550 that says the file itself is the problem."""
    with served_tree(files={"f.txt": b"x", "d/x": b"x"}) as (srv, root):
        c = Control(srv)
        limits = resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (lowest_free_fd(srv.proc.pid), limits[1]))
        try:
            for command in ("SIZE f.txt", "MDTM f.txt", "CWD d", "MKD new", "DELE f.txt", "RNFR f.txt"):
                code, text = c.command(command)
                assert code == 451, (command, code, text)
            code, text = c.command("EPSV")
            assert code == 425, (code, text)
        finally:
            resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, limits)
        assert c.command("SIZE f.txt")[0] == 213
        assert sorted(os.listdir(root)) == ["d", "f.txt"]
        c.close()


def first_reply_code(sock, timeout=10):
    """The code of the first reply line on a fresh control connection."""
    sock.settimeout(slow(timeout))
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(200)
        if not chunk:
            raise AssertionError("closed without a reply line: %r" % data)
        data += chunk
    return int(data[:3])


def check_session_limit(srv, root, clients):
    """clients connections beyond a logged-in session: each is greeted
    (220) or refused at once (421), never left waiting; the logged-in
    session can still list, upload and download."""
    c = Control(srv)
    socks = [srv.connect(timeout=10) for _ in range(clients)]
    codes = [first_reply_code(sock) for sock in socks]
    greeted, refused = codes.count(220), codes.count(421)
    assert greeted + refused == clients and greeted >= 1 and refused >= 1, (greeted, refused)
    data = c.passive()
    assert c.command("LIST")[0] == 150
    harness.recv_all(data)
    assert c.reply()[0] == 226
    data = c.passive()
    assert c.command("STOR up.bin")[0] == 150
    data.sendall(b"u" * 100_000)
    data.close()
    assert c.reply()[0] == 226
    data = c.passive()
    assert c.command("RETR up.bin")[0] == 150
    assert harness.recv_all(data) == b"u" * 100_000
    assert c.reply()[0] == 226
    for sock in socks:
        sock.close()
    c.close()
    srv.wait_for_log_match(r"refusing fd \d+ from 127\.0\.0\.1:\d+: \d+ clients already connected")
    return greeted


def test_session_limit_follows_the_descriptor_limit():
    """Under RLIMIT_NOFILE 128 (as prlimit --nofile=128 sets it) ftpd takes
    only as many sessions as leave each room for a data connection and its
    files, and says how many: 130 more clients get 220 or an immediate 421,
    and a logged-in user's transfers still work. The same with select."""
    for api in ("epoll", "select"):
        with served_tree("--api", api, nofile=128) as (srv, root):
            greeted = check_session_limit(srv, root, 130)
            match = srv.wait_for_log_match(r"at most (\d+) sessions, not \d+: 128 descriptors")
            assert greeted + 1 == int(match.group(1)), (greeted, match.group(0))


def test_select_session_limit_follows_fd_setsize():
    """--api select with the defaults: a select loop can watch descriptors
    below FD_SETSIZE (1024) only, so the session limit is what fits under
    it, not --max-clients 1024: over a thousand idle clients leave a
    logged-in user's transfers working, and the rest get 421 at once."""
    harness.raise_own_fd_limit(2200)
    with served_tree("--api", "select") as (srv, root):
        limits = resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE)
        if limits[0] <= 1024:
            raise harness.Skip("ftpd could not raise its descriptor limit above 1024")
        check_session_limit(srv, root, 1030)
        srv.wait_for_log("descriptors (select's FD_SETSIZE)")


def try_login(srv):
    try:
        return ftp_login(srv)
    except (OSError, EOFError, ftplib.Error):
        return None


# -- REST, Telnet bytes, EPSV arguments, the verbose log -------------------------

def test_rest_applies_only_to_the_transfer_right_after_it():
    """REST n sets the offset of the transfer command that follows it, and
    of no other (RFC 959; RFC 3659 5.3): a listing, a PWD or any command in
    between forgets it, so a later STOR replaces the whole file and a later
    RETR sends all of it."""
    content = random_bytes(1000, seed=7)
    with served_tree(files={"big.bin": content, "keep.bin": content}) as (srv, root):
        c = Control(srv)
        data = c.passive()
        assert c.command("REST 100")[0] == 350
        assert c.command("LIST")[0] == 150
        harness.recv_all(data)
        assert c.reply()[0] == 226
        assert c.command("PWD")[0] == 257
        data = c.passive()
        assert c.command("STOR big.bin")[0] == 150
        data.sendall(b"n" * 50)
        data.close()
        assert c.reply()[0] == 226
        assert read_file(os.path.join(root, "big.bin")) == b"n" * 50

        data = c.passive()
        assert c.command("REST 100")[0] == 350
        assert c.command("NLST")[0] == 150
        harness.recv_all(data)
        assert c.reply()[0] == 226
        data = c.passive()
        assert c.command("RETR keep.bin")[0] == 150
        assert harness.recv_all(data) == content
        assert c.reply()[0] == 226

        data = c.passive()  # straight before its RETR, REST still works
        assert c.command("REST 100")[0] == 350
        assert c.command("RETR keep.bin")[0] == 150
        assert harness.recv_all(data) == content[100:]
        assert c.reply()[0] == 226
        c.close()


def test_telnet_commands_are_stripped_and_0xff_in_names_kept():
    """Only real Telnet commands leave a command line: IAC and a command
    byte, IAC WILL/WONT/DO/DONT with its option byte, and IAC IAC as one
    0xFF. An 0xFF followed by anything else is part of a file name."""
    names = {"a\xffb.txt": b"target", "a.txt": b"bystander", "doc.txt": b"old doc"}
    files = {os.fsdecode(name.encode("latin-1")): data for name, data in names.items()}
    with served_tree(files=files) as (srv, root):
        c = Control(srv)
        c.send(b"DELE a\xffb.txt\r\n")
        assert c.reply()[0] == 250
        assert sorted(os.listdir(os.fsencode(root))) == [b"a.txt", b"doc.txt"]
        assert read_file(os.path.join(root, "a.txt")) == b"bystander"

        data = c.passive()
        c.send(b"STOR doc\xff!.txt\r\n")
        assert c.reply()[0] == 150
        data.sendall(b"new doc")
        data.close()
        assert c.reply()[0] == 226
        assert read_file(os.path.join(root, "doc.txt")) == b"old doc"
        assert read_file(os.path.join(os.fsencode(root), b"doc\xff!.txt")) == b"new doc"

        for telnet in (b"\xff\xfbx", b"\xff\xfex", b"\xff\xf4", b"\xff\xf4\xff\xf2", b"\xff\xf1"):
            c.send(telnet + b"NOOP\r\n")
            assert c.reply()[0] == 200, telnet
        c.send(b"MKD e\xff\xffe\r\n")  # IAC IAC: one 0xFF
        assert c.reply()[0] == 257
        assert os.path.isdir(os.path.join(os.fsencode(root), b"e\xffe"))
        c.close()


def test_epsv_with_an_unknown_protocol_gets_522_and_the_supported_ones():
    """RFC 2428: an EPSV for a protocol the server cannot use here gets 522
    naming the protocols it can; an argument that is no protocol number
    gets 501."""
    with served_tree() as (srv, root):
        c = Control(srv)
        for argument in ("3", "2", "17"):
            code, text = c.command("EPSV " + argument)
            assert code == 522 and "(1)" in text, (argument, code, text)
        assert c.command("EPSV x")[0] == 501
        c.close()


def test_logged_client_bytes_are_escaped():
    """With -v every command and reply is logged, and transfers are logged
    by name without it: control bytes, C1 controls and bytes that are not
    UTF-8 appear as \\xHH, so a client can neither forge a log line nor
    drive the terminal; UTF-8 names stay readable."""
    with served_tree("-v") as (srv, root):
        c = Control(srv)
        c.send(b"XYZZY \x1b[2J\rforged: accepted fd 99\r\n")
        assert c.reply()[0] == 500
        c.send(b"MKD bad\x1bname\r\n")
        assert c.reply()[0] == 550
        c.send("MKD café".encode() + b"\xff\xc2\x9b\r\n")
        assert c.reply()[0] == 257
        data = c.passive()
        c.send(b"STOR up\x9b.bin\r\n")
        assert c.reply()[0] == 150
        data.sendall(b"x")
        data.close()
        assert c.reply()[0] == 226
        srv.wait_for_log("received /up\\x9b.bin, 1 bytes")
        c.close()
        status, _ = srv.stop()
        assert status == 0
        with open(srv._stderr.name, "rb") as f:
            log = f.read()
        controls = sorted({b for b in log if b < 0x20 and b != 0x0A} | {b for b in log if b == 0x7F})
        assert controls == [], "raw control bytes %r in the log" % controls
        for raw in (b"\x9b", b"\xff", b"\xc2\x9b"):
            assert raw not in log, raw
        assert b"XYZZY \\x1b[2J\\x0dforged: accepted fd 99" in log, log[-2000:]
        assert "café\\xff\\xc2\\x9b".encode() in log, log[-2000:]


def test_synch_reaches_a_session_whose_input_is_full():
    """Commands queued behind a stalled transfer fill the session's input
    (1 KiB), so it stops reading them. An ABOR behind a Synch (IAC IP, then
    IAC DM with the DM sent as TCP urgent data, as lftp does) still aborts
    the transfer promptly, long before the idle timeout; the queued
    commands are discarded, as the Synch asks."""
    with served_tree("--idle-timeout", "60") as (srv, root):
        with open(os.path.join(root, "huge.bin"), "wb") as f:
            f.truncate(256 << 20)
        c = Control(srv)
        data = c.passive()
        data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert c.command("RETR huge.bin")[0] == 150
        c.send(b"NOOP\r\n" * 184)  # 1104 bytes: more than the input holds
        c.send(b"\xff\xf4\xff")
        c.sock.send(b"\xf2", socket.MSG_OOB)
        c.send(b"ABOR\r\n")
        assert [c.reply(timeout=5)[0], c.reply(timeout=5)[0]] == [426, 226]
        srv.wait_for_log("transfer of /huge.bin aborted")
        data.close()
        assert c.command("NOOP")[0] == 200
        c.close()


# -- the grader: make grade-ftp ---------------------------------------------------------

GRADER = str(harness.ROOT / "tests" / "grade_ftp.py")
MODEL_SERVER = "%s %s --port {port} --root {root}" % (
    shlex.quote(sys.executable), shlex.quote(str(harness.ROOT / "tests" / "broken" / "ftp_server.py")))


def grade_ftp(command):
    """Runs the FTP grader on command: (exit status, {check: (status, reason)}, output)."""
    result = subprocess.run([sys.executable, GRADER, command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=slow(300))
    lines = {}
    for line in result.stdout.splitlines():
        m = re.match(r"^(PASS|FAIL|N/A)\s+([\w-]+)(?:: (.*))?$", line)
        if m:
            lines[m.group(2)] = (m.group(1), m.group(3) or "")
    assert re.search(r"^summary: \d+ of \d+ applicable checks passed", result.stdout, re.M), result.stdout
    return result.returncode, lines, result.stdout


def grade_passes(command):
    status, lines, out = grade_ftp(command)
    assert status == 0, out
    assert len(lines) == 17 and all(s == "PASS" or (s == "N/A" and n == "curl") for n, (s, _) in lines.items()), out


def test_grade_ftp_passes_bin_ftpd():
    """The grader passes the reference server, given without {port} and
    {root} (it appends -p 0 and -r DIR): every check PASS, or N/A for curl
    where curl is missing."""
    grade_passes(harness.binary("ftpd"))


def test_grade_ftp_passes_the_model_server():
    """The same for the small Python model server, given with {port} and
    {root}."""
    grade_passes(MODEL_SERVER)


def broken_model_fails(bug, check, reason):
    """The model server with --bug fails exactly check, for reason."""
    status, lines, out = grade_ftp(MODEL_SERVER + " --bug " + bug)
    assert status == 1, out
    failed = {name: why for name, (s, why) in lines.items() if s == "FAIL"}
    assert list(failed) == [check] and reason in failed[check], out


def test_grade_ftp_fails_a_server_that_blocks_on_a_download():
    broken_model_fails("blocking-retr", "stalled-reader", "while one did not read")


def test_grade_ftp_fails_a_server_that_lets_paths_escape():
    broken_model_fails("escape", "confinement", "sent a file from outside the root")


def test_grade_ftp_fails_a_server_that_does_not_assemble_lines():
    broken_model_fails("no-lines", "command-lines", "split in two segments")


def test_grade_ftp_reports_a_server_that_does_not_start():
    """A command that cannot run, or exits at once, fails every check with
    that reason and exit status 1; it is never a pass."""
    status, lines, out = grade_ftp("/no/such/server {port} {root}")
    assert status == 1 and lines and all(s == "FAIL" and "cannot run" in why for s, why in lines.values()), out


for _test in (test_grade_ftp_passes_bin_ftpd, test_grade_ftp_passes_the_model_server,
              test_grade_ftp_fails_a_server_that_blocks_on_a_download,
              test_grade_ftp_fails_a_server_that_lets_paths_escape,
              test_grade_ftp_fails_a_server_that_does_not_assemble_lines):
    _test.time_limit = 300  # a whole grade: 17 fresh servers, under the sanitizers too
