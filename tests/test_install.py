"""`make install` and `make uninstall`, in a temporary DESTDIR: the six
programs and the `iomodels` command land in PREFIX/bin, the scripts find
their helpers and the programs from where they are installed and write into
the caller's directory, and uninstall leaves nothing behind."""
import os
import pathlib
import subprocess
import tempfile

import harness

PROGRAMS = ["server-blocking", "server-nonblocking", "server-multiplexing", "server-async", "client", "ftpd"]
PREFIX = "/opt/iomodels-test"


def make(target, destdir):
    argv = ["make", "-s", "--no-print-directory", "-C", str(harness.ROOT), target, "PREFIX=" + PREFIX,
            "DESTDIR=" + destdir, "BIN=" + str(harness.BIN_DIR), "BUILD=" + str(harness.BUILD_DIR)]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=harness.slow(120))
    assert proc.returncode == 0, "make %s: exit %d: %s" % (target, proc.returncode, proc.stdout[-1000:])


def installed_files(destdir):
    return sorted(str(p.relative_to(destdir)) for p in pathlib.Path(destdir).rglob("*")
                  if p.is_file() or p.is_symlink())


def test_install_then_uninstall():
    with tempfile.TemporaryDirectory(prefix="iomodels-destdir-") as destdir, \
            tempfile.TemporaryDirectory(prefix="iomodels-cwd-") as cwd:
        make("install", destdir)
        bindir = pathlib.Path(destdir + PREFIX) / "bin"
        for program in PROGRAMS + ["iomodels"]:
            path = bindir / program
            assert path.is_file() and os.access(path, os.X_OK), "%s not installed as a program" % path
        version = subprocess.run([str(bindir / "server-blocking"), "--version"], stdout=subprocess.PIPE,
                                 text=True, timeout=harness.slow(10))
        assert version.returncode == 0 and "iomodels" in version.stdout, version.stdout
        assert not (bindir / "unit-tests").exists(), "unit-tests installed"

        # The installed compare.sh finds its helpers, variants.txt and the
        # programs, and writes into ./results of where it was started.
        run = subprocess.run([str(bindir / "iomodels"), "compare", "-m", "multiplexing-epoll", "-c", "1",
                              "-d", "0.2"], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=harness.slow(120))
        assert run.returncode == 0, "iomodels compare: exit %d: %s" % (run.returncode, run.stdout[-1500:])
        csv = pathlib.Path(cwd) / "results" / "compare.csv"
        assert csv.is_file() and "multiplexing-epoll" in csv.read_text(), "no results in %s: %s" % (
            csv.parent, run.stdout[-500:])
        assert not (pathlib.Path(destdir + PREFIX) / "share" / "iomodels" / "results").exists(), \
            "wrote results into the installed tree"

        bad = subprocess.run([str(bindir / "iomodels"), "nonsense"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=harness.slow(10))
        assert bad.returncode == 2 and "iomodels trace" in bad.stderr, "unknown command: %r" % bad.stderr

        make("uninstall", destdir)
        left = installed_files(destdir)
        assert not left, "left behind by make uninstall: %s" % left
