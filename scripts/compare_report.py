#!/usr/bin/env python3
"""Turns compare.sh's raw measurements into a table, a CSV and a picture.

    compare_report.py RAW_TSV --ticks-per-second N [--baseline VARIANT] [--csv FILE] [--svg FILE]

RAW_TSV has one row per run: variant, connections, status, when the
client started and ended (epoch seconds), the server's CPU time (ns) and
read/write system calls in that time, the clock ticks all CPUs were busy
meanwhile, the client's --json line (run without warm-up, so that its
message count covers the same time), and with compare.sh -S every system
call the server made (perf). From them:
throughput, latency percentiles, stalled connections, server CPU time per
message (the fair figure once the client's own core is saturated), system
calls per message, each also as a ratio to the baseline variant at the same
connection count, and how many cores other programs used during the run
(more than a few tenths, and the run was disturbed).
"""
import argparse
import csv
import datetime
import json
import os
import platform
import sys

import svg

COLUMNS = ["variant", "conns", "size", "seconds", "msgs", "msgs_per_sec", "p50_us", "p99_us", "p999_us", "max_us",
           "stalled", "errors", "mismatches", "server_cpu_s", "cpu_us_per_msg", "reads_per_msg", "writes_per_msg",
           "syscalls_per_msg", "all_syscalls_per_msg", "client_cpu_s", "other_cpu_cores", "msgs_per_sec_vs_baseline",
           "cpu_per_msg_vs_baseline", "status"]


def read_runs(path, ticks_per_second):
    runs = []
    with open(path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            run = {"variant": row["variant"], "conns": int(row["conns"]), "status": row["status"]}
            bench = json.loads(row["bench_json"]) if row["bench_json"].startswith("{") else {}
            for key in ("size", "seconds", "msgs", "msgs_per_sec", "p50_us", "p99_us", "p999_us", "max_us",
                        "stalled", "errors", "mismatches"):
                run[key] = bench.get(key)
            if bench and row["cpu_ns"]:
                add_server_costs(run, row, bench, ticks_per_second)
            elif run["status"] == "ok":
                run["status"] = "no result from the client"
            runs.append(run)
    return runs


def add_server_costs(run, row, bench, ticks_per_second):
    """What the server spent per message, and what other programs took."""
    msgs = max(bench["msgs"], 1)
    cpu = int(row["cpu_ns"]) / 1e9
    run["server_cpu_s"] = cpu
    run["cpu_us_per_msg"] = cpu * 1e6 / msgs
    run["reads_per_msg"] = int(row["syscr"]) / msgs
    run["writes_per_msg"] = int(row["syscw"]) / msgs
    run["syscalls_per_msg"] = run["reads_per_msg"] + run["writes_per_msg"]
    if row.get("syscalls"):  # compare.sh -S: every system call, counted by perf
        run["all_syscalls_per_msg"] = int(row["syscalls"]) / msgs
    run["client_cpu_s"] = bench.get("client_cpu_seconds")
    window = float(row["ended"]) - float(row["started"])
    if run["client_cpu_s"] is not None and window > 0:
        busy = int(row["busy_ticks"]) / ticks_per_second
        run["other_cpu_cores"] = max(busy - cpu - run["client_cpu_s"], 0.0) / window


def add_ratios(runs, baseline):
    """Each run against the baseline at the same connection count: > 1 means
    more messages per second, or more CPU per message, than the baseline."""
    base = {r["conns"]: r for r in runs if r["variant"] == baseline and r.get("msgs")}
    for run in runs:
        ref = base.get(run["conns"])
        run["msgs_per_sec_vs_baseline"] = ratio(run.get("msgs_per_sec"), ref and ref["msgs_per_sec"])
        run["cpu_per_msg_vs_baseline"] = ratio(run.get("cpu_us_per_msg"), ref and ref.get("cpu_us_per_msg"))


def ratio(value, reference):
    if value is None or not reference:
        return None
    return value / reference


def show(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.*f" % (digits, value)
    return str(value)


def where_measured():
    """The machine, the date and how busy it was (other work shares the CPUs),
    so that figures quoted later say where they come from."""
    return "%s, %d CPUs, Linux %s, %s, load average %.1f" % (
        platform.node(), os.cpu_count() or 0, platform.release(),
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), os.getloadavg()[0])


def disturbance(runs):
    """A warning when other programs took a good share of the CPUs during the
    runs (more than 0.3 cores on average), or None."""
    others = [run["other_cpu_cores"] for run in runs if run.get("other_cpu_cores") is not None]
    if not others or sum(others) / len(others) <= 0.3:
        return None
    return ("other programs used %.1f cores on average during these runs (up to %.1f): msgs/s and latency are "
            "disturbed, CPU per message less so" % (sum(others) / len(others), max(others)))


def print_table(runs, baseline, out=sys.stdout):
    out.write("\nMeasured on %s. Ratios are against %s at the same connection count.\n"
              % (where_measured(), baseline))
    warning = disturbance(runs)
    if warning:
        out.write("WARNING: %s.\n" % warning)
    out.write("\n")
    counted = any(run.get("all_syscalls_per_msg") is not None for run in runs)
    heads = ["variant", "conns", "msgs/s", "p50 µs", "p99 µs", "p99.9 µs", "stalled", "server CPU µs/msg",
             "read+write calls/msg"] + (["all calls/msg"] if counted else []) + [
             "msgs/s vs base", "CPU/msg vs base", "other programs' CPU"]
    out.write("| %s |\n" % " | ".join(heads))
    out.write("|---|%s\n" % ("--:|" * (len(heads) - 1)))
    for run in runs:
        if run.get("msgs_per_sec") is None:
            out.write("| %s | %d | %s |%s\n" % (run["variant"], run["conns"], run["status"], " |" * (len(heads) - 3)))
            continue
        name = run["variant"] if run["status"] == "ok" else "%s (%s)" % (run["variant"], run["status"])
        cells = [name, str(run["conns"]), show(run["msgs_per_sec"], 0), show(run["p50_us"]), show(run["p99_us"]),
                 show(run["p999_us"]), str(run["stalled"]), show(run.get("cpu_us_per_msg")),
                 show(run.get("syscalls_per_msg"), 2)] + (
                 [show(run.get("all_syscalls_per_msg"), 2)] if counted else []) + [
                 show(run["msgs_per_sec_vs_baseline"], 2), show(run["cpu_per_msg_vs_baseline"], 2),
                 show(run.get("other_cpu_cores"), 2)]
        out.write("| %s |\n" % " | ".join(cells))


def write_csv(runs, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for run in runs:
            writer.writerow({k: ("%.4g" % v if isinstance(v, float) else v) for k, v in run.items()})


def conns_label(conns):
    return "%d connection%s" % (conns, "" if conns == 1 else "s")


def draw(runs, path):
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    series = [conns_label(c) for c in dict.fromkeys(r["conns"] for r in runs)]
    charts = [("Throughput", "msgs_per_sec", "msgs/s", False),
              ("Latency p99", "p99_us", "µs", True),
              ("Server CPU per message", "cpu_us_per_msg", "µs", False)]
    panel = 470
    picture = svg.Svg(panel * len(charts) + 20, 0)
    picture.text(10, 20, "Echo servers side by side: %s-byte messages, closed loop"
                 % (runs[0].get("size") or "?"), size=14, font_weight="bold")
    warning = disturbance(runs)
    picture.text(10, 38, "measured on " + where_measured() + ("; " + warning if warning else ""), size=10,
                 fill="#c0392b" if warning else "#555")
    height = 0
    for i, (title, key, unit, log_scale) in enumerate(charts):
        values, notes = {}, {}
        for run in runs:
            cell = (run["variant"], conns_label(run["conns"]))
            values[cell] = run.get(key)
            if run["status"] != "ok":
                notes[cell] = run["status"][:30]
            elif run.get("stalled"):
                notes[cell] = "%d stalled" % run["stalled"]
        height = max(height, svg.grouped_bars(picture, 10 + i * panel, 50, panel - 10, title, variants, series,
                                              values, unit, log_scale=log_scale, notes=notes))
    picture.height = height + 60
    picture.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw")
    parser.add_argument("--ticks-per-second", type=int, required=True, help="getconf CLK_TCK, the unit of the busy ticks")
    parser.add_argument("--baseline", default="multiplexing-epoll")
    parser.add_argument("--csv")
    parser.add_argument("--svg")
    args = parser.parse_args()

    runs = read_runs(args.raw, args.ticks_per_second)
    if not runs:
        sys.exit("compare_report: no runs in %s" % args.raw)
    add_ratios(runs, args.baseline)
    print_table(runs, args.baseline)
    if args.csv:
        write_csv(runs, args.csv)
    if args.svg:
        draw(runs, args.svg)


if __name__ == "__main__":
    main()
