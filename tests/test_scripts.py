"""scripts/trace.sh and scripts/compare.sh: the report names the call each
model really blocks in, the pictures are well-formed SVG, and the comparison
has a row for every variant.

The trace tests shrink the scenario's pauses (TRACE_SCALE) so that the whole
module stays well under a minute; they need strace, and run on the plain
build only (strace on ASan binaries is slow and adds nothing the plain run
does not show).
"""
import csv
import io
import json
import os
import pathlib
import re
import shutil
import string
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree

import harness

SCRIPTS = harness.ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

import strace_report  # noqa: E402

SCALE = 0.2  # scenario pauses: 0.2 s idle, sends 0.1 s apart
SVG = "{http://www.w3.org/2000/svg}"


def skip_unless_strace():
    if harness.SANITIZED:
        raise harness.Skip("strace on sanitized binaries: the plain run covers the scripts")
    if not shutil.which("strace"):
        raise harness.Skip("strace is not installed")


def script_env():
    env = dict(os.environ, BIN=str(harness.BIN_DIR), TRACE_SCALE=str(SCALE))
    env.pop("ASAN_OPTIONS", None)
    return env


# Traced by MODEL -- options rather than by name: the files still take the variant's name.
BY_MODEL = {"async-posix-aio", "multiplexing-epoll-edge", "blocking-fork"}
TRACE_FILES = ("strace", "txt", "svg", "json", "events", "log")


def run_trace(variant, out_dir, *arguments, name=None, env=None):
    """Runs trace.sh on one variant (by its name, or by its model and options:
    BY_MODEL); returns (numbers, report text, svg path)."""
    model = variant.program[len("server-"):]
    if arguments:
        argv = list(arguments)
    elif variant.name in BY_MODEL:
        argv = [model, "--"] + variant.args
    else:
        argv = [variant.name]
    proc = subprocess.run([str(SCRIPTS / "trace.sh"), "-o", out_dir] + argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env or script_env(), timeout=60)
    assert proc.returncode == 0, "trace.sh %s failed (%d): %s" % (argv, proc.returncode, proc.stderr[-2000:])
    base = "trace-" + (name or variant.name)
    written = sorted(p.name for p in pathlib.Path(out_dir).iterdir())
    assert written == sorted("%s.%s" % (base, ext) for ext in TRACE_FILES), "files written: %s" % written
    report = pathlib.Path(out_dir) / (base + ".json")
    numbers = json.loads(report.read_text())
    assert proc.stdout == report.with_suffix(".txt").read_text(), "the printed report is the one kept"
    return numbers, proc.stdout, report.with_suffix(".svg")


def blocked(numbers, *names):
    """How many calls of these names slept waiting (phase 1), over all lanes."""
    return sum(numbers["waited"].get(name, {}).get("blocked", 0) for name in names)


def lane_rows(numbers, role, name):
    return [lane["syscalls"][name] for lane in numbers["lanes"] if lane["role"] == role and name in lane["syscalls"]]


def check_timeline(path):
    """The timeline is well-formed SVG with the events and lanes; returns the fills used."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == SVG + "svg"
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "client 2 connects" in texts and "client 1 sends" in texts, "the scenario's events are marked"
    assert any((t or "").startswith("main ") for t in texts), "a lane for the main process"
    assert any(re.match(r"\d+ calls", t or "") for t in texts), "each lane says how many calls it made"
    assert len(list(root.iter(SVG + "rect"))) > 5
    return {rect.get("fill") for rect in root.iter(SVG + "rect")}


# What each variant must show. Each check gets the report's numbers and text.

def blocks_in_accept_and_read(numbers, text):
    assert blocked(numbers, "accept", "accept4") >= 1, "accept never blocked"
    assert blocked(numbers, "read", "recv", "recvfrom") >= 1, "no read waited for data"
    assert "in read" in numbers["verdict"] or "in recv" in numbers["verdict"], numbers["verdict"]


def expect_blocking_iterative(numbers, text):
    blocks_in_accept_and_read(numbers, text)
    # Client 2 connects 0.7 pauses before client 1 leaves: the one-at-a-time
    # server cannot accept it sooner.
    assert numbers["admission_delays"]["2"] >= 0.5 * 0.7 * SCALE, numbers["admission_delays"]
    assert "Client 2 waited" in numbers["verdict"]


def expect_blocking_fork(numbers, text):
    blocks_in_accept_and_read(numbers, text)
    assert sum(row["blocked"] for row in lane_rows(numbers, "process", "read")) >= 1, "children block in read"


def expect_blocking_thread(numbers, text):
    blocks_in_accept_and_read(numbers, text)
    assert sum(row["blocked"] for row in lane_rows(numbers, "thread", "read")) >= 1, "threads block in read"


def expect_nonblocking_spin(numbers, text):
    eagain = sum(row["eagain"] for row in numbers["totals"].values())
    assert eagain >= 100, "only %d EAGAIN" % eagain
    assert not any(v["blocked"] for v in numbers["waited"].values()), numbers["waited"]
    assert numbers["totals"]["read"]["blocked"] == 0, "a read on an O_NONBLOCK socket cannot sleep"
    assert "never slept" in numbers["verdict"] and "EAGAIN" in numbers["verdict"]
    assert "never waited for data in read" in numbers["verdict"], numbers["verdict"]


def expect_nonblocking_sleep(numbers, text):
    assert blocked(numbers, "nanosleep", "clock_nanosleep") >= 1
    assert blocked(numbers, "read", "recv", "recvfrom") == 0
    naps = [v for name, v in numbers["waited"].items() if name in ("nanosleep", "clock_nanosleep")]
    assert all(v["waits_for"] == "time" for v in naps), naps
    assert "waiting for time, not for data" in numbers["verdict"] and "waiting for time, not for data" in text


def expect_nonblocking_sigio(numbers, text):
    assert blocked(numbers, "rt_sigsuspend", "sigsuspend") >= 1, numbers["waited"]
    assert sum(lane["signals"].get("SIGIO", 0) for lane in numbers["lanes"]) >= 1
    assert "sigsuspend" in numbers["verdict"] and "does not queue" in numbers["verdict"], numbers["verdict"]
    assert "when IO can start" in numbers["verdict"] and "held" in numbers["verdict"], numbers["verdict"]


def multiplexing_waits_in(*calls):
    def check(numbers, text):
        assert blocked(numbers, *calls) >= 1, "no blocked %s: %s" % ("/".join(calls), numbers["waited"])
        assert blocked(numbers, "read", "recv", "recvfrom") == 0, "a read blocked"
        assert numbers["copied"].get("read", {}).get("calls", 0) >= 1, "no read copied the data"
        assert "never waited for data in read" in numbers["verdict"], numbers["verdict"]
        assert "held the thread only for the copy" in numbers["verdict"], numbers["verdict"]
        reads = numbers["reads"]
        assert reads["calls"] == sum(n for kind, n in reads.items() if kind != "calls"), reads
        assert reads.get("eof", 0) >= 2, "both clients' end of file is named: %s" % reads
    return check


def expect_async_uring(numbers, text):
    assert blocked(numbers, "io_uring_enter") >= 1
    on_sockets = strace_report.IO_CALLS & set(numbers["totals"])
    assert not on_sockets, "read/write calls on sockets: %s" % sorted(on_sockets)
    words = numbers["verdict"]
    assert "no read or write call on its sockets" in words
    assert "task work" in words and "strace cannot see" in words and "own thread" in words, words
    assert "the kernel copied the data" not in words


def expect_async_posix_aio(numbers, text):
    assert blocked(numbers, "rt_sigtimedwait") >= 1, "the main thread waits for the completion signal"
    assert sum(row["blocked"] for row in lane_rows(numbers, "thread", "read")) >= 1, "helpers block in read"
    assert not lane_rows(numbers, "main", "read"), "the main thread reads no socket itself"
    assert "user-space helper thread" in numbers["verdict"], numbers["verdict"]


EXPECTATIONS = {
    "blocking-iterative": expect_blocking_iterative,
    "blocking-fork": expect_blocking_fork,
    "blocking-thread": expect_blocking_thread,
    "nonblocking-spin": expect_nonblocking_spin,
    "nonblocking-sleep": expect_nonblocking_sleep,
    "nonblocking-sigio": expect_nonblocking_sigio,
    "multiplexing-select": multiplexing_waits_in("select", "pselect6"),
    "multiplexing-poll": multiplexing_waits_in("poll", "ppoll"),
    "multiplexing-epoll": multiplexing_waits_in("epoll_wait", "epoll_pwait", "epoll_pwait2"),
    "multiplexing-epoll-edge": multiplexing_waits_in("epoll_wait", "epoll_pwait", "epoll_pwait2"),
    "async-uring": expect_async_uring,
    "async-posix-aio": expect_async_posix_aio,
}


def trace_shows_where_it_blocks(variant):
    """trace.sh runs the scenario and its report names the call the model blocks in."""
    skip_unless_strace()
    with tempfile.TemporaryDirectory(prefix="iomodels-trace-") as out_dir:
        numbers, text, picture = run_trace(variant, out_dir)
        assert "Phase 1, waiting for the data" in text and "Verdict: " in text
        EXPECTATIONS[variant.name](numbers, text)
        fills = check_timeline(picture)
        # Who copies: each read that returned data is drawn; io_uring has none; a spinning lane looks busy.
        copies = strace_report.COPY_IN_COLOUR in fills
        assert copies == (variant.name != "async-uring"), "copying reads drawn: %s" % copies
        assert (strace_report.BUSY_COLOUR in fills) == (variant.name == "nonblocking-spin"), "busy band"


harness.per_variant(globals(), trace_shows_where_it_blocks, time_limit=60)


def test_compare_writes_a_row_for_every_variant():
    if harness.SANITIZED:
        raise harness.Skip("a race of sanitized binaries measures the sanitizer: the plain run covers compare.sh")
    with tempfile.TemporaryDirectory(prefix="iomodels-compare-") as out_dir:
        proc = subprocess.run([str(SCRIPTS / "compare.sh"), "-c", "2", "-d", "0.3", "-r", "1", "-o", out_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=script_env(),
                              timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        raced = [v[0] for v in harness.read_variants() if not v[3].get("extra")]
        assert "[%d/%d]" % (len(raced), len(raced)) in proc.stderr, "progress names each run"
        assert re.search(r"\] .* \d+ msgs/s", proc.stderr), proc.stderr
        assert not re.search(r"\d\.\d+ msgs/s", proc.stderr), "whole messages per second"
        with open(os.path.join(out_dir, "compare.csv")) as f:
            rows = {row["variant"]: row for row in csv.DictReader(f)}
        assert set(rows) == set(raced) == set(EXPECTATIONS) | {"multiplexing-python"}, "rows: %s" % sorted(rows)
        for name, row in rows.items():
            if name == "async-uring" and harness.io_uring_unavailable():
                assert row["status"].startswith("unavailable"), row
                continue
            assert row["status"] == "ok", "%s: %s" % (name, row["status"])
            assert int(row["msgs"]) > 0 and float(row["cpu_us_per_msg"]) >= 0, row
            assert "| %s | 2 |" % name in proc.stdout, "the table has %s" % name
        assert int(rows["blocking-iterative"]["stalled"]) == 1, "the second connection waits its turn"
        # Fairness: the starved connection shows in the row and the table, not only in a note.
        assert int(rows["blocking-iterative"]["conns_served"]) == 1
        assert float(rows["blocking-iterative"]["conn_min_msgs_per_sec"]) == 0
        assert "| blocking-iterative | 2 | 1/2 STARVED |" in proc.stdout, proc.stdout
        assert float(rows["blocking-iterative"]["worst_conn_p50_us"]) > 10 * float(
            rows["multiplexing-epoll"]["worst_conn_p50_us"]), "the stalled connection's median stands out"
        assert int(rows["multiplexing-epoll"]["stalled"]) == 0 and int(rows["multiplexing-epoll"]["conns_served"]) == 2
        assert float(rows["multiplexing-epoll"]["msgs_per_sec_vs_baseline"]) == 1.0
        for name in ("multiplexing-epoll", "async-uring"):  # a blank field must fail, not pass
            if name == "async-uring" and harness.io_uring_unavailable():
                continue
            assert re.fullmatch(r"[0-9.e+-]+", rows[name]["syscalls_per_msg"]), rows[name]
        # read and write per echo for epoll; io_uring makes none of /proc's read/write calls per message.
        assert float(rows["multiplexing-epoll"]["syscalls_per_msg"]) >= 1.5, rows["multiplexing-epoll"]
        assert harness.io_uring_unavailable() or float(rows["async-uring"]["syscalls_per_msg"]) < 0.5
        ElementTree.parse(os.path.join(out_dir, "compare.svg"))
test_compare_writes_a_row_for_every_variant.time_limit = 120


def test_scripts_refuse_bad_arguments():
    for argv in (["trace.sh", "teleport"], ["trace.sh"], ["trace.sh", "multiplexing-kqueue"],
                 ["trace.sh", "-s", "storm", "blocking-iterative"], ["compare.sh", "-c", "many"], ["compare.sh", "-x"]):
        proc = subprocess.run([str(SCRIPTS / argv[0])] + argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=script_env(), timeout=10)
        assert proc.returncode == 2, "%s: exit %d" % (argv, proc.returncode)
        assert proc.stderr.strip(), "%s says why" % argv


# The report's reading of strace output, on a small trace written for the
# purpose: a main thread blocked in accept, a helper thread whose read is
# split into <unfinished ...> and <... resumed>, a non-blocking socket whose
# slow read must not count as waiting, EAGAIN, and a call cut by the exit.
SAMPLE_TRACE = """\
100   10:00:00.000000 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 3<socket:[1]> <0.000010>
100   10:00:00.000100 accept4(3<socket:[1]>, NULL, NULL, SOCK_CLOEXEC) = 4<socket:[2]> <0.500000>
100   10:00:00.500200 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD, stack=0x1}, 88) = 101 <0.000050>
101   10:00:00.500300 read(4<socket:[2]>,  <unfinished ...>
100   10:00:00.500400 accept4(3<socket:[1]>, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK) = 5<socket:[3]> <0.000020>
100   10:00:00.500500 read(5<socket:[3]>, 0x7f, 100) = -1 EAGAIN (Resource temporarily unavailable) <0.000004>
100   10:00:00.600000 read(5<socket:[3]>, "late", 100) = 4 <0.003000>
101   10:00:01.500300 <... read resumed>"hello\\n", 100) = 6 <1.000000>
101   10:00:01.500400 write(4<socket:[2]>, "hello\\n", 6) = 6 <0.000008>
101   10:00:01.500500 read(4<socket:[2]>,  <unfinished ...>
100   10:00:01.600000 accept4(3<socket:[1]>,  <unfinished ...>
100   10:00:02.000000 --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER} ---
100   10:00:02.000100 <... accept4 resumed>NULL, NULL, SOCK_CLOEXEC) = ? ERESTARTSYS (To be restarted) <0.400100>
101   10:00:02.000200 +++ exited with 0 +++
100   10:00:02.000300 +++ exited with 0 +++
"""


def read_sample(text):
    """strace_report's reading of a trace given as text."""
    with tempfile.NamedTemporaryFile("w", suffix=".strace", delete=False) as f:
        f.write(text)
    try:
        return strace_report.read_trace(f.name)
    finally:
        os.unlink(f.name)


def test_strace_report_reads_the_trace():
    trace = read_sample(SAMPLE_TRACE)
    main, helper = trace.lanes[100], trace.lanes[101]
    assert (main.role, helper.role, helper.parent) == ("main", "thread", 100)

    reads = [c for c in helper.calls if c.name == "read"]
    assert len(reads) == 2
    assert abs(reads[0].start - 36000.5003) < 1e-6 and abs(reads[0].seconds - 1.0) < 1e-9
    assert reads[0].kind == "read_wait" and reads[0].slept and "hello" in reads[0].args
    # Cut by the thread's exit: it lasted until then, and never returned.
    assert reads[1].ret == "?" and abs(reads[1].seconds - 0.4997) < 1e-6

    table = strace_report.syscall_table(main.calls)
    assert table["accept4"]["calls"] == 3 and table["accept4"]["blocked"] == 2
    assert table["accept4"]["kinds"] == {"accept_wait": 2, "accepted": 1}, table["accept4"]
    assert table["read"]["eagain"] == 1
    slow_nonblocking = [c for c in main.calls if c.name == "read" and c.ret == "4"][0]
    assert slow_nonblocking.over_1ms and slow_nonblocking.nonblocking and not slow_nonblocking.slept
    assert slow_nonblocking.kind == "copied"
    assert table["read"]["over_1ms"] == 1 and table["read"]["blocked"] == 0, table["read"]
    assert main.signals == {"SIGTERM": 1}

    words = strace_report.verdict(trace, [])
    assert "slept 900.1 ms in accept4 waiting for a connection, not for data (2 calls)" in words, words
    assert ("Of its 4 reads on sockets, 1 waited for the data and then copied it, 1 copied data that was already "
            "there, 1 found nothing there yet (EAGAIN) and 1 never returned (cut by the exit)") in words, words
    assert "1 call came back with EAGAIN" in words, words


# A forking server's main process waiting in accept while a 250 ms timer
# (its SIGALRM, which reaps children) keeps cutting the wait short.
TIMER_TRACE = """\
200   10:00:00.000000 accept4(3<socket:[1]>, NULL, NULL, SOCK_CLOEXEC) = 4<socket:[2]> <0.100000>
200   10:00:00.100100 accept4(3<socket:[1]>, NULL, NULL, SOCK_CLOEXEC) = ? ERESTARTSYS (To be restarted if SA_RESTART is set) <0.249900>
200   10:00:00.350000 --- SIGALRM {si_signo=SIGALRM, si_code=SI_KERNEL} ---
200   10:00:00.350100 accept4(3<socket:[1]>,  <unfinished ...>
200   10:00:00.600000 <... accept4 resumed>NULL, NULL, SOCK_CLOEXEC) = ? ERESTARTSYS (To be restarted if SA_RESTART is set) <0.249900>
200   10:00:00.600000 --- SIGALRM {si_signo=SIGALRM, si_code=SI_KERNEL} ---
200   10:00:00.600100 accept4(3<socket:[1]>, NULL, NULL, SOCK_CLOEXEC) = ? ERESTARTSYS (To be restarted if SA_RESTART is set) <0.249900>
200   10:00:00.850000 --- SIGALRM {si_signo=SIGALRM, si_code=SI_KERNEL} ---
200   10:00:00.850100 accept4(3<socket:[1]>, NULL, NULL, SOCK_CLOEXEC) = ? ERESTARTSYS (To be restarted if SA_RESTART is set) <0.100000>
200   10:00:00.950100 --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER} ---
200   10:00:00.950300 +++ exited with 0 +++
"""


def test_strace_report_says_a_timer_cut_the_wait():
    """Periodic SIGALRM interruptions are one wait cut into slices, not many short blocks."""
    trace = read_sample(TIMER_TRACE)
    words = strace_report.verdict(trace, [])
    assert "accept4 waiting for a connection, not for data (5 calls, 3 of them cut short by a signal: SIGALRM 3)" \
        in words, words
    assert "SIGALRM 3 times, every 250.0 ms (a timer)" in words, words
    assert "one wait, counted as several calls" in words, words
    numbers = strace_report.summary_json(trace, [], "timer")
    assert numbers["waited"]["accept4"]["cut_short"] == 3, numbers["waited"]


def perf_counts_syscalls():
    if not shutil.which("perf"):
        return False
    proc = subprocess.run(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "true"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    return proc.returncode == 0


def test_compare_picks_several_words_and_the_uring_modes():
    """-m repeats; the io_uring modes run only when -m names them."""
    if harness.SANITIZED:
        raise harness.Skip("the plain run covers compare.sh")
    with tempfile.TemporaryDirectory(prefix="iomodels-compare-") as out_dir:
        argv = [str(SCRIPTS / "compare.sh"), "-m", "multiplexing-epoll", "-m", "sqpoll", "-c", "1", "-d", "0.3",
                "-r", "1", "-o", out_dir]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=script_env(),
                              timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        with open(os.path.join(out_dir, "compare.csv")) as f:
            rows = {row["variant"]: row for row in csv.DictReader(f)}
        assert set(rows) == {"multiplexing-epoll", "multiplexing-epoll-edge", "async-uring-sqpoll"}, sorted(rows)
test_compare_picks_several_words_and_the_uring_modes.time_limit = 60


def test_compare_counts_every_syscall_with_perf():
    """-S counts every call the server makes (perf); where perf cannot count, a skip says so."""
    if harness.SANITIZED:
        raise harness.Skip("the plain run covers compare.sh")
    if not perf_counts_syscalls():
        raise harness.Skip("perf cannot count raw_syscalls:sys_enter here (not installed, or perf_event_paranoid)")
    with tempfile.TemporaryDirectory(prefix="iomodels-compare-") as out_dir:
        argv = [str(SCRIPTS / "compare.sh"), "-m", "multiplexing-epoll", "-c", "1", "-d", "0.3", "-r", "1", "-S",
                "-o", out_dir]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=script_env(),
                              timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        with open(os.path.join(out_dir, "compare.csv")) as f:
            rows = {row["variant"]: row for row in csv.DictReader(f)}
        assert "all calls/msg" in proc.stdout
        # epoll: at least the read, the write and an epoll_wait now and then.
        assert float(rows["multiplexing-epoll"]["all_syscalls_per_msg"]) >= 2, rows["multiplexing-epoll"]
test_compare_counts_every_syscall_with_perf.time_limit = 60


def test_strace_report_does_not_call_a_slow_write_a_wait_for_data():
    """An 8-byte write on a blocking socket that strace slowed past 1 ms is not phase 1."""
    trace = read_sample("""\
300   10:00:00.000000 accept4(3<socket:[1]>, NULL, NULL, SOCK_CLOEXEC) = 4<socket:[2]> <0.400000>
300   10:00:00.400100 read(4<socket:[2]>, "hello 1\\n", 65536) = 8 <1.000000>
300   10:00:01.400200 write(4<socket:[2]>, "hello 1\\n", 8) = 8 <0.001600>
300   10:00:01.402000 +++ exited with 0 +++
""")
    words = strace_report.verdict(trace, [])
    assert "in write" not in words, words
    assert "1 write on a blocking socket took over 1 ms" in words and "not waiting for data" in words, words
    assert "write" not in strace_report.summary_json(trace, [], "slow write")["waited"]


def test_strace_report_reads_a_timed_out_sigtimedwait_as_a_wait():
    """rt_sigtimedwait's EAGAIN is its timeout: a whole wait, not a question asked too early."""
    trace = read_sample("""\
400   10:00:00.000000 rt_sigtimedwait([INT TERM IO RT_3], 0x7ff, {tv_sec=1, tv_nsec=0}, 8) = -1 EAGAIN (Resource temporarily unavailable) <1.000000>
400   10:00:01.000100 rt_sigtimedwait([INT TERM IO RT_3], {si_signo=SIGRT_3, si_code=SI_ASYNCIO}, {tv_sec=1, tv_nsec=0}, 8) = 35 (SIGRT_3) <0.300000>
400   10:00:01.300200 +++ exited with 0 +++
""")
    words = strace_report.verdict(trace, [])
    assert "1.30 s in rt_sigtimedwait waiting for completions (2 calls)" in words and "0 EAGAIN" in words, words


def test_compare_report_warns_when_the_machine_was_busy():
    """Other programs' CPU during the runs is said above the table, not only in its last column."""
    bench = json.dumps({"size": 64, "seconds": 1, "msgs": 10000, "msgs_per_sec": 10000, "p50_us": 90, "p99_us": 400,
                        "p999_us": 900, "max_us": 1000, "stalled": 0, "errors": 0, "mismatches": 0,
                        "client_cpu_seconds": 0.5})
    head = "variant\tconns\tstatus\tstarted\tended\tcpu_ns\tsyscr\tsyscw\tbusy_ticks\tbench_json\tsyscalls\n"  # the old layout still reads
    with tempfile.TemporaryDirectory(prefix="iomodels-report-") as out_dir:
        raw = os.path.join(out_dir, "raw.tsv")
        for busy_ticks, warned in ((250, True), (100, False)):  # 100 ticks a second: 2.5 s or 1 s of CPU in 1 s
            with open(raw, "w") as f:
                f.write(head + "multiplexing-epoll\t1\tok\t100.0\t101.0\t500000000\t10000\t10000\t%d\t%s\t\n"
                        % (busy_ticks, bench))
            proc = subprocess.run([sys.executable, str(SCRIPTS / "compare_report.py"), "race", raw, "--ticks-per-second",
                                   "100", "--svg", os.path.join(out_dir, "c.svg")],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
            assert proc.returncode == 0, proc.stderr
            assert ("WARNING: other programs used 1.5 cores" in proc.stdout) == warned, proc.stdout
            assert ("other programs used" in open(os.path.join(out_dir, "c.svg")).read()) == warned


def test_strace_report_never_rounds_most_to_all():
    """999 EAGAIN out of 1001 calls is 99.80%, not 100%."""
    lines = ["500   10:00:00.%06d read(4<socket:[2]>, 0x7f, 100) = -1 EAGAIN (Resource temporarily unavailable) "
             "<0.000001>" % i for i in range(999)]
    lines += ["500   10:00:01.000000 read(4<socket:[2]>, \"hi\", 100) = 2 <0.000002>",
              "500   10:00:01.000010 write(4<socket:[2]>, \"hi\", 2) = 2 <0.000002>"]
    words = strace_report.verdict(read_sample("\n".join(lines) + "\n"), [])
    assert "999 calls came back with EAGAIN (99.80% of all its calls)" in words, words


def spin_trace(eagain_reads=999, descheduled=3):
    """A spinning server's trace: a nonblocking connection, eagain_reads reads
    that find nothing (the first descheduled of them took over 1 ms each), one
    that finds data, its echo, and two end-of-file reads."""
    lines = ["600   10:00:00.000000 accept4(3<socket:[1]>, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK) = 4<socket:[2]> "
             "<0.000010>"]
    for i in range(eagain_reads):
        lines.append("600   10:00:00.%06d read(4<socket:[2]>, 0x7f, 100) = -1 EAGAIN (Resource temporarily "
                     "unavailable) <%s>" % (100 + i * 100, "0.002000" if i < descheduled else "0.000001"))
    lines += ["600   10:00:01.000000 read(4<socket:[2]>, \"hi\", 100) = 2 <0.000002>",
              "600   10:00:01.000010 write(4<socket:[2]>, \"hi\", 2) = 2 <0.000002>",
              "600   10:00:01.000020 read(4<socket:[2]>, \"\", 100) = 0 <0.000002>",
              "600   10:00:01.000030 read(4<socket:[2]>, \"\", 100) = 0 <0.000002>",
              "600   10:00:01.000040 close(4<socket:[2]>) = 0 <0.000002>"]
    return read_sample("\n".join(lines) + "\n")


def test_strace_report_never_counts_eagain_as_slept():
    """A read on an O_NONBLOCK socket cannot sleep: EAGAIN calls, even those
    strace slowed past 1 ms, are not blocked; the verdict counts only the slow ones."""
    trace = spin_trace()
    row = strace_report.syscall_table(trace.calls)["read"]
    assert row["calls"] == 1002 and row["eagain"] == 999, row
    assert row["blocked"] == 0, "EAGAIN reads counted as slept: %s" % row
    assert row["over_1ms"] == 3, row
    words = strace_report.verdict(trace, [])
    assert "never slept; 3 of its calls that cannot sleep took over 1 ms (descheduled" in words, words
    assert "999 calls" not in words.split("EAGAIN")[0], "EAGAIN calls counted as descheduled: " + words


def test_strace_report_read_counts_add_up():
    """Every read on a socket is named by what it did: the parts make the whole,
    end-of-file reads included."""
    trace = spin_trace(eagain_reads=20, descheduled=0)
    words = strace_report.verdict(trace, [])
    assert ("Of its 23 reads on sockets, 1 copied data that was already there, 2 found the end of file (the peer "
            "had closed) and 20 found nothing there yet (EAGAIN)") in words, words
    reads = strace_report.summary_json(trace, [], "spin")["reads"]
    assert reads == {"calls": 23, "copied": 1, "eof": 2, "early": 20}, reads


EDGE_TRACE = """\
700   10:00:00.000000 epoll_ctl(3<anon_inode:[eventpoll]>, EPOLL_CTL_ADD, 5<socket:[9]>, {events=EPOLLIN|EPOLLET, data={u32=5, u64=5}}) = 0 <0.000005>
700   10:00:00.000100 epoll_pwait(3<anon_inode:[eventpoll]>, [{events=EPOLLIN, data={u32=5, u64=5}}], 1024, -1, [], 8) = 1 <0.900000>
700   10:00:00.900200 read(5<socket:[9]>, "hello 1\\n", 65536) = 8 <0.000040>
700   10:00:00.900300 write(5<socket:[9]>, "hello 1\\n", 8) = 8 <0.000050>
700   10:00:00.900400 read(5<socket:[9]>, 0x55, 65536) = -1 EAGAIN (Resource temporarily unavailable) <0.000010>
700   10:00:00.900500 epoll_pwait(3<anon_inode:[eventpoll]>,  <unfinished ...>
700   10:00:01.400000 --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER} ---
700   10:00:01.400100 <... epoll_pwait resumed>[], 1024, -1, [], 8) = -1 EINTR (Interrupted system call) <0.499600>
700   10:00:01.400300 +++ exited with 0 +++
"""


def test_strace_report_edge_triggered_eagain_is_the_drained_proof():
    """An EAGAIN right after data under EPOLLET is the read that shows the socket drained, not a question too early."""
    trace = read_sample(EDGE_TRACE)
    words = strace_report.verdict(trace, [])
    assert "1 found the socket drained (EAGAIN right after data)" in words, words
    assert "the proof that the socket is drained" in words and "epoll(7)" in words, words
    assert "asked before anything was there" not in words, words
    assert "never waited for data in read" in words, words


URING_TRACE = """\
800   10:00:00.000000 io_uring_setup(256, {flags=IORING_SETUP_CQSIZE|0x3000, sq_thread_cpu=0, sq_thread_idle=0, sq_entries=256, cq_entries=1024}) = 4<anon_inode:[io_uring]> <0.000500>
800   10:00:00.001000 io_uring_enter(4<anon_inode:[io_uring]>, 1, 1, IORING_ENTER_GETEVENTS, [], 8) = 1 <1.000000>
800   10:00:01.001100 io_uring_enter(4<anon_inode:[io_uring]>, 2, 1, IORING_ENTER_GETEVENTS, [], 8) = 2 <0.500000>
800   10:00:01.501200 io_uring_enter(4<anon_inode:[io_uring]>, 1, 0, 0, NULL, 8) = 1 <0.000020>
800   10:00:01.600000 +++ exited with 0 +++
"""


def test_strace_report_io_uring_copies_on_its_own_thread():
    """DEFER_TASKRUN (0x2000 in io_uring_setup's flags): the verdict says the copy ran
    as task work inside io_uring_enter, on the server's thread, invisible to strace."""
    trace = read_sample(URING_TRACE)
    numbers = strace_report.summary_json(trace, [], "uring")
    assert "IORING_SETUP_DEFER_TASKRUN" in numbers["features"]["uring_setup"], numbers["features"]
    words = numbers["verdict"]
    assert "ran inline when it was submitted" in words and "internal poll" in words, words
    assert "run by this thread inside its io_uring_enter" in words, words
    assert "strace cannot see task work, so its cost is hidden in io_uring_enter's 1.50 s" in words, words
    assert "the kernel copied the data" not in words
    assert numbers["waited"]["io_uring_enter"]["calls"] == 2, "the submit-only call is not a wait"
    text = io.StringIO()
    strace_report.print_report(trace, [], "uring", out=text)
    assert "returns how many submission entries it consumed" in text.getvalue(), "io_uring_enter's result explained"
    sqpoll = read_sample(URING_TRACE.replace("IORING_SETUP_CQSIZE|0x3000", "IORING_SETUP_SQPOLL|IORING_SETUP_CQSIZE"))
    words = strace_report.verdict(sqpoll, [])
    assert "submission-queue thread" in words and "own thread" not in words, words


def numbers_in(text):
    return sorted(re.findall(r"\d+(?:\.\d+)?", text))


def test_strace_report_speaks_chinese_with_the_same_numbers():
    """--lang zh: the verdict and the report carry exactly the figures of the English."""
    for sample in (SAMPLE_TRACE, TIMER_TRACE, EDGE_TRACE, URING_TRACE):
        trace = read_sample(sample)
        english, chinese = strace_report.verdict(trace, [], "en"), strace_report.verdict(trace, [], "zh")
        assert re.search("[\u4e00-\u9fff]", chinese) and not re.search("[\u4e00-\u9fff]", english), chinese
        assert numbers_in(english) == numbers_in(chinese), "\n%s\n%s" % (english, chinese)
        reports = {}
        for lang in ("en", "zh"):
            out = io.StringIO()
            strace_report.print_report(trace, [], "sample", out=out, lang=lang)
            reports[lang] = out.getvalue()
        # The phases' titles number them in words in Chinese (阶段一, 阶段二): the figures are the rest.
        figures = {lang: numbers_in("\n".join(line for line in text.splitlines()
                                              if not line.startswith(("Phase ", "阶段"))))
                   for lang, text in reports.items()}
        assert figures["en"] == figures["zh"], "\n%s\n%s" % (reports["en"], reports["zh"])
    assert "边缘触发" in strace_report.verdict(read_sample(EDGE_TRACE), [], "zh")
    assert "阻塞" in strace_report.render("zh", "aio") and "异步" in strace_report.render("zh", "sigio")


def test_strace_report_language_from_the_locale():
    pick = strace_report.language_from_environment
    assert pick({"LANG": "zh_CN.UTF-8"}) == "zh" and pick({"LC_ALL": "zh_TW.UTF-8", "LANG": "C"}) == "zh"
    assert pick({"LC_ALL": "C.UTF-8", "LANG": "zh_CN.UTF-8"}) == "en", "LC_ALL wins"
    assert pick({}) == "en" and pick({"LANG": "en_US.UTF-8"}) == "en"
    with tempfile.TemporaryDirectory(prefix="iomodels-report-") as out_dir:
        path = os.path.join(out_dir, "t.strace")
        with open(path, "w") as f:
            f.write(SAMPLE_TRACE)
        env = dict(os.environ, LANG="zh_CN.UTF-8")
        env.pop("LC_ALL", None)
        env.pop("LC_MESSAGES", None)
        proc = subprocess.run([sys.executable, str(SCRIPTS / "strace_report.py"), path], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=30)
        assert proc.returncode == 0 and "结论：" in proc.stdout, proc.stdout + proc.stderr


def test_trace_edge_triggered_read_once_stalls_and_level_does_not():
    """scripts/trace.sh -s burst multiplexing-epoll-edge -- --read-once: the report and the
    timeline show the connection that stalls with its bytes in the buffer; the
    level-triggered loop with the same handler gives everything back (and a zh
    locale gets the same report in Chinese)."""
    skip_unless_strace()
    edge = harness.EchoVariant("multiplexing-epoll-edge", "server-multiplexing", [], {})
    with tempfile.TemporaryDirectory(prefix="iomodels-trace-") as out_dir:
        numbers, text, picture = run_trace(edge, out_dir, "-s", "burst", "multiplexing-epoll-edge", "--",
                                           "--read-once", name="multiplexing-epoll-edge-read-once-burst")
        keys = [sentence[0] for sentence in numbers["sentences"]]
        assert "stalled" in keys and "edge_undrained" in keys, numbers["verdict"]
        assert "its connection stalled" in numbers["verdict"]
        assert any("stalled:" in (t.text or "") for t in ElementTree.parse(picture).getroot().iter(SVG + "text")), \
            "the timeline marks the stalled client"
    level = harness.EchoVariant("multiplexing-epoll", "server-multiplexing", [], {})
    env = dict(script_env(), LANG="zh_CN.UTF-8")
    env.pop("LC_ALL", None)
    env.pop("LC_MESSAGES", None)
    with tempfile.TemporaryDirectory(prefix="iomodels-trace-") as out_dir:
        numbers, text, _ = run_trace(level, out_dir, "-s", "burst", "multiplexing", "--", "--api", "epoll",
                                     "--read-once", name="multiplexing-epoll-read-once-burst", env=env)
        keys = [sentence[0] for sentence in numbers["sentences"]]
        assert "all_back" in keys and "stalled" not in keys and "edge_undrained" not in keys, numbers["verdict"]
        assert numbers["lang"] == "zh" and "结论：" in text and "全部 1048576 字节" in numbers["verdict"], text[-600:]
test_trace_edge_triggered_read_once_stalls_and_level_does_not.time_limit = 90


def test_strace_report_messages_take_the_same_figures_in_both_languages():
    """Every message's English and Chinese templates use the same parameters."""
    for key, pair in strace_report.MESSAGES.items():
        if key == "columns":
            assert len(pair[0]) == len(pair[1])
            continue
        fields = [{name for _, name, _, _ in string.Formatter().parse(text) if name} for text in pair]
        assert fields[0] == fields[1], "%s: %s against %s" % (key, sorted(fields[0]), sorted(fields[1]))


def test_strace_report_follows_python_setblocking():
    """Python's setblocking(False) is ioctl(FIONBIO): a slow read on that socket did not sleep."""
    trace = read_sample("""\
900   10:00:00.000000 accept4(3<socket:[1]>, 0x7f, [16], SOCK_CLOEXEC) = 4<socket:[2]> <0.000020>
900   10:00:00.000100 ioctl(4<socket:[2]>, FIONBIO, [1]) = 0 <0.000005>
900   10:00:00.000200 read(4<socket:[2]>, "hi", 100) = 2 <0.002000>
900   10:00:00.002300 ioctl(4<socket:[2]>, FIONBIO, [0]) = 0 <0.000005>
900   10:00:00.002400 read(4<socket:[2]>, "hi", 100) = 2 <0.002000>
900   10:00:00.004500 +++ exited with 0 +++
""")
    reads = [c for c in trace.calls if c.name == "read"]
    assert [c.slept for c in reads] == [False, True], [(c.nonblocking, c.slept) for c in reads]
