#!/usr/bin/env python3
"""What a message costs the async server, engine by engine and io_uring mode
by mode, next to the epoll server: server CPU time per message and system
calls per message, under the same closed-loop load.

    scripts/async_cost.py [-c CONNS] [-s BYTES] [-d SECONDS] [-r REPEAT]
                          [--only NAME,...] [--anchor NAME=COMMAND] [--bin DIR]

Each run starts one server (`-p 0`, on CPU 0 when there are two CPUs or
more), loads it with `bin/client bench` (on CPU 1) for SECONDS, and reads
what the server spent meanwhile: CPU time from /proc/PID/stat (all its
threads: glibc's AIO helpers and io_uring's SQ polling thread included) and,
where `perf` can count tracepoints, its system calls
(raw_syscalls:sys_enter). Runs are interleaved REPEAT times and the median
is reported, with the ratio to multiplexing-epoll: on a shared machine
absolute figures drift, ratios much less.

--anchor adds an outside server for comparison, e.g. a liburing echo built
elsewhere: --anchor 'liburing=/tmp/uring_echo {port}' ({port} is replaced by
0 and the server must print `listening on ADDR:PORT`).
"""
import argparse
import json
import os
import re
import select
import shlex
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VARIANTS = [
    ("multiplexing-epoll", ["server-multiplexing", "--api", "epoll"]),
    ("uring", ["server-async", "--engine", "uring"]),
    ("uring-cooperative", ["server-async", "--engine", "uring", "--task-run", "cooperative"]),
    ("uring-interrupting", ["server-async", "--engine", "uring", "--task-run", "interrupting"]),
    ("uring-oneshot", ["server-async", "--engine", "uring", "--oneshot"]),
    ("uring-sqpoll", ["server-async", "--engine", "uring", "--sqpoll"]),
    ("posix-aio", ["server-async", "--engine", "posix-aio"]),
]


def pinned(cpu, argv):
    return ["taskset", "-c", str(cpu)] + argv if os.cpu_count() >= 2 else argv


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(argv):
    proc = subprocess.Popen(pinned(0, argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait()
        raise RuntimeError("%s did not get ready: %r" % (" ".join(argv), line))
    return proc, int(line.rsplit(":", 1)[1])


def perf_works():
    try:
        out = subprocess.run(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "true"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and re.search(r"^\d+,", out.stderr, re.M) is not None


def run_once(argv, args, count_syscalls):
    proc, port = start_server(argv)
    perf = None
    try:
        if count_syscalls:
            perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p", str(proc.pid)],
                                    stderr=subprocess.PIPE, text=True)
            time.sleep(0.3)  # perf attaches to every thread before the load starts
        before = cpu_seconds(proc.pid)
        bench = subprocess.run(pinned(1, [os.path.join(args.bin, "client"), "bench", "127.0.0.1:%d" % port,
                                          "-c", str(args.conns), "-s", str(args.size), "-d", str(args.seconds),
                                          "--warmup", "0", "--json"]),
                               capture_output=True, text=True, timeout=args.seconds + 60)
        used = cpu_seconds(proc.pid) - before
        syscalls = None
        if perf:
            perf.send_signal(signal.SIGINT)
            m = re.search(r"^(\d+),", perf.communicate(timeout=10)[1], re.M)
            syscalls = int(m.group(1)) if m else None
        result = json.loads(bench.stdout.strip().splitlines()[-1])
        msgs = result["msgs"]
        if bench.returncode != 0 or not msgs:
            raise RuntimeError("bench failed: %s" % (bench.stdout + bench.stderr)[-300:])
        return {"msgs_per_sec": result["msgs_per_sec"], "cpu_us_per_msg": 1e6 * used / msgs,
                "syscalls_per_msg": syscalls / msgs if syscalls is not None else None}
    finally:
        if perf and perf.poll() is None:
            perf.kill()
            perf.wait()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", dest="conns", type=int, default=100)
    parser.add_argument("-s", dest="size", type=int, default=64)
    parser.add_argument("-d", dest="seconds", type=float, default=3)
    parser.add_argument("-r", dest="repeat", type=int, default=3)
    parser.add_argument("--only", help="comma-separated variant names")
    parser.add_argument("--anchor", action="append", default=[], help="NAME=COMMAND with {port}")
    parser.add_argument("--bin", default=os.path.join(ROOT, "bin"))
    args = parser.parse_args()

    variants = [(name, [os.path.join(args.bin, argv[0]), "-q", "-p", "0"] + argv[1:]) for name, argv in VARIANTS]
    for spec in args.anchor:
        name, _, command = spec.partition("=")
        variants.append((name, shlex.split(command.replace("{port}", "0"))))
    if args.only:
        wanted = args.only.split(",")
        variants = [v for v in variants if v[0] in wanted]
    count_syscalls = perf_works()

    runs = {name: [] for name, _ in variants}
    for _ in range(args.repeat):
        for name, argv in variants:
            runs[name].append(run_once(argv, args, count_syscalls))

    def median(name, key):
        values = [r[key] for r in runs[name] if r[key] is not None]
        return statistics.median(values) if values else None

    base = median("multiplexing-epoll", "cpu_us_per_msg") if "multiplexing-epoll" in runs else None
    print("%d connections, %d-byte messages, %.1f s, median of %d" % (args.conns, args.size, args.seconds, args.repeat))
    print("| server | msgs/s | CPU us/msg | vs epoll | syscalls/msg |")
    print("|---|---:|---:|---:|---:|")
    for name, _ in variants:
        cpu, calls = median(name, "cpu_us_per_msg"), median(name, "syscalls_per_msg")
        print("| %s | %.0f | %.2f | %s | %s |" % (name, median(name, "msgs_per_sec"), cpu,
                                                "x%.2f" % (cpu / base) if base else "-",
                                                "%.3f" % calls if calls is not None else "n/a"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
