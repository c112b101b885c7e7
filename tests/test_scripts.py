"""scripts/trace.sh and scripts/compare.sh: the report names the call each
model really blocks in, the pictures are well-formed SVG, and the comparison
has a row for every variant.

The trace tests shrink the scenario's pauses (TRACE_SCALE) so that the whole
module stays well under a minute; they need strace, and run on the plain
build only (strace on ASan binaries is slow and adds nothing the plain run
does not show).
"""
import csv
import json
import os
import pathlib
import re
import shutil
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


def run_trace(variant, out_dir):
    """Runs trace.sh on one variant; returns (numbers, report text, svg path)."""
    model = variant.program[len("server-"):]
    proc = subprocess.run([str(SCRIPTS / "trace.sh"), "-o", out_dir, model, "--"] + variant.args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=script_env(),
                          timeout=60)
    assert proc.returncode == 0, "trace.sh %s failed (%d): %s" % (variant.name, proc.returncode, proc.stderr[-2000:])
    reports = list(pathlib.Path(out_dir).glob("trace-%s*.json" % model))
    assert len(reports) == 1, "expected one report, found %s" % reports
    numbers = json.loads(reports[0].read_text())
    assert proc.stdout == reports[0].with_suffix(".txt").read_text(), "the printed report is the one kept"
    return numbers, proc.stdout, reports[0].with_suffix(".svg")


def blocked(numbers, *names):
    """How many calls of these names slept waiting (phase 1), over all lanes."""
    return sum(numbers["waited"].get(name, {}).get("blocked", 0) for name in names)


def lane_rows(numbers, role, name):
    return [lane["syscalls"][name] for lane in numbers["lanes"] if lane["role"] == role and name in lane["syscalls"]]


def check_timeline(path):
    root = ElementTree.parse(path).getroot()
    assert root.tag == SVG + "svg"
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "client 2 connects" in texts and "client 1 sends" in texts, "the scenario's events are marked"
    assert any((t or "").startswith("main ") for t in texts), "a lane for the main process"
    assert any(re.match(r"\d+ calls", t or "") for t in texts), "each lane says how many calls it made"
    assert len(list(root.iter(SVG + "rect"))) > 5


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
    assert "never waited" in numbers["verdict"] and "EAGAIN" in numbers["verdict"]


def expect_nonblocking_sleep(numbers, text):
    assert blocked(numbers, "nanosleep", "clock_nanosleep") >= 1
    assert blocked(numbers, "read", "recv", "recvfrom") == 0


def expect_nonblocking_sigio(numbers, text):
    assert blocked(numbers, "rt_sigsuspend", "sigsuspend") >= 1, numbers["waited"]
    assert sum(lane["signals"].get("SIGIO", 0) for lane in numbers["lanes"]) >= 1
    assert "sigsuspend" in numbers["verdict"]


def multiplexing_waits_in(*calls):
    def check(numbers, text):
        assert blocked(numbers, *calls) >= 1, "no blocked %s: %s" % ("/".join(calls), numbers["waited"])
        assert blocked(numbers, "read", "recv", "recvfrom") == 0, "a read blocked"
        assert numbers["copied"].get("read", {}).get("calls", 0) >= 1, "no read copied the data"
        assert "never blocked in read" in numbers["verdict"]
    return check


def expect_async_uring(numbers, text):
    assert blocked(numbers, "io_uring_enter") >= 1
    on_sockets = strace_report.IO_CALLS & set(numbers["totals"])
    assert not on_sockets, "read/write calls on sockets: %s" % sorted(on_sockets)
    assert "no read or write call on its sockets" in numbers["verdict"]


def expect_async_posix_aio(numbers, text):
    assert blocked(numbers, "rt_sigtimedwait") >= 1, "the main thread waits for the completion signal"
    assert sum(row["blocked"] for row in lane_rows(numbers, "thread", "read")) >= 1, "helpers block in read"
    assert not lane_rows(numbers, "main", "read"), "the main thread reads no socket itself"


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
        check_timeline(picture)


harness.per_variant(globals(), trace_shows_where_it_blocks, time_limit=60)


def test_compare_writes_a_row_for_every_variant():
    if harness.SANITIZED:
        raise harness.Skip("a race of sanitized binaries measures the sanitizer: the plain run covers compare.sh")
    with tempfile.TemporaryDirectory(prefix="iomodels-compare-") as out_dir:
        proc = subprocess.run([str(SCRIPTS / "compare.sh"), "-c", "2", "-d", "0.3", "-o", out_dir],
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
        assert int(rows["multiplexing-epoll"]["stalled"]) == 0
        assert float(rows["multiplexing-epoll"]["msgs_per_sec_vs_baseline"]) == 1.0
        assert float(rows["async-uring"].get("syscalls_per_msg") or 0) < 0.5 or harness.io_uring_unavailable()
        ElementTree.parse(os.path.join(out_dir, "compare.svg"))
test_compare_writes_a_row_for_every_variant.time_limit = 120


def test_scripts_refuse_bad_arguments():
    for argv in (["trace.sh", "teleport"], ["trace.sh"], ["compare.sh", "-c", "many"], ["compare.sh", "-x"]):
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
    assert reads[0].phase == "wait" and "hello" in reads[0].args
    # Cut by the thread's exit: it lasted until then, and never returned.
    assert reads[1].ret == "?" and abs(reads[1].seconds - 0.4997) < 1e-6

    table = strace_report.syscall_table(main.calls)
    assert table["accept4"]["calls"] == 3 and table["accept4"]["blocked"] == 2
    assert table["read"]["eagain"] == 1
    slow_nonblocking = [c for c in main.calls if c.name == "read" and c.ret == "4"][0]
    assert slow_nonblocking.blocked and slow_nonblocking.nonblocking and slow_nonblocking.phase == "copy"
    assert main.signals == {"SIGTERM": 1}

    words = strace_report.verdict(trace, [])
    assert "spent 900.1 ms in accept4 (2 calls) blocked" in words, words
    assert "2 reads on sockets waited for data" in words and "1 only copied" in words, words
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
    assert "accept4 (5 calls, 3 of them cut short by a signal: SIGALRM 3)" in words, words
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
    """-m repeats; the io_uring modes run only when -m names them; -S counts every call (perf)."""
    if harness.SANITIZED:
        raise harness.Skip("the plain run covers compare.sh")
    count = perf_counts_syscalls()
    with tempfile.TemporaryDirectory(prefix="iomodels-compare-") as out_dir:
        argv = [str(SCRIPTS / "compare.sh"), "-m", "multiplexing-epoll", "-m", "sqpoll", "-c", "1", "-d", "0.3",
                "-o", out_dir] + (["-S"] if count else [])
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=script_env(),
                              timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        with open(os.path.join(out_dir, "compare.csv")) as f:
            rows = {row["variant"]: row for row in csv.DictReader(f)}
        assert set(rows) == {"multiplexing-epoll", "multiplexing-epoll-edge", "async-uring-sqpoll"}, sorted(rows)
        if count:
            assert "all calls/msg" in proc.stdout
            # epoll: at least the read, the write and an epoll_wait now and then.
            assert float(rows["multiplexing-epoll"]["all_syscalls_per_msg"]) >= 2, rows["multiplexing-epoll"]
test_compare_picks_several_words_and_the_uring_modes.time_limit = 60


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
    assert "1.30 s in rt_sigtimedwait (2 calls)" in words and "0 EAGAIN" in words, words


def test_compare_report_warns_when_the_machine_was_busy():
    """Other programs' CPU during the runs is said above the table, not only in its last column."""
    bench = json.dumps({"size": 64, "seconds": 1, "msgs": 10000, "msgs_per_sec": 10000, "p50_us": 90, "p99_us": 400,
                        "p999_us": 900, "max_us": 1000, "stalled": 0, "errors": 0, "mismatches": 0,
                        "client_cpu_seconds": 0.5})
    head = "variant\tconns\tstatus\tstarted\tended\tcpu_ns\tsyscr\tsyscw\tbusy_ticks\tbench_json\tsyscalls\n"
    with tempfile.TemporaryDirectory(prefix="iomodels-report-") as out_dir:
        raw = os.path.join(out_dir, "raw.tsv")
        for busy_ticks, warned in ((250, True), (100, False)):  # 100 ticks a second: 2.5 s or 1 s of CPU in 1 s
            with open(raw, "w") as f:
                f.write(head + "multiplexing-epoll\t1\tok\t100.0\t101.0\t500000000\t10000\t10000\t%d\t%s\t\n"
                        % (busy_ticks, bench))
            proc = subprocess.run([sys.executable, str(SCRIPTS / "compare_report.py"), raw, "--ticks-per-second",
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
