#!/usr/bin/env python3
"""Turns compare.sh's raw measurements into a table, a CSV and a picture.

    compare_report.py race  RAW_TSV --ticks-per-second N [--baseline VARIANT] [--csv FILE] [--svg FILE]
    compare_report.py sweep RAW_TSV --ticks-per-second N [--knee 5x|MICROSECONDS] [--csv FILE] [--svg FILE]
    compare_report.py idle  RAW_TSV --ticks-per-second N [--note TEXT] [--csv FILE] [--svg FILE]

RAW_TSV has one row per client run: variant, connections, offered rate
(open loop) or nothing, idle connections asked for, the repeat's number,
status, idle connections held, when the client started and ended (epoch
seconds), the server's CPU time (ns) and read/write system calls in that
time, the clock ticks all CPUs were busy meanwhile, the server's resident
memory after the load (KiB), the client's --json line (run without warm-up,
so that its message count covers the same time), and with compare.sh -S
every system call the server made (perf).

Every figure reported is the median of the repeats, with their spread (min
to max). Beside the per-message percentiles, fairness: how many connections
were served, the least served connection's msgs/s, and the slowest
connection's median latency, because a server that serves one connection
and starves the rest has excellent per-message percentiles.

race:  closed loop, each variant at each connection count; ratios to the
       baseline variant.
sweep: latency against offered load (open loop); each variant's knee is
       the highest offered rate whose p99 stays under the limit (by default
       5 times its p99 at the lightest load).
idle:  server CPU per message, latency and memory against the number of
       idle connections held open.
"""
import argparse
import csv
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys

import svg

BENCH_KEYS = ("size", "seconds", "msgs", "msgs_per_sec", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
              "stalled", "errors", "mismatches", "unanswered", "conns_served", "conn_min_msgs_per_sec",
              "conn_max_msgs_per_sec", "worst_conn_p50_us", "rate_achieved")
# The figures that get a median and a spread over the repeats.
FIGURES = ("msgs_per_sec", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "stalled", "conns_served",
           "conn_min_msgs_per_sec", "conn_max_msgs_per_sec", "worst_conn_p50_us", "server_cpu_s", "cpu_us_per_msg",
           "reads_per_msg", "writes_per_msg", "syscalls_per_msg", "all_syscalls_per_msg", "client_cpu_s",
           "client_cpu_us_per_msg", "other_cpu_cores", "rss_kib", "idle_held", "msgs", "errors", "mismatches")
SPREAD = ("msgs_per_sec", "p50_us", "p99_us", "cpu_us_per_msg", "worst_conn_p50_us", "conn_min_msgs_per_sec",
          "rss_kib")


# -- reading ---------------------------------------------------------------------

def number(text, kind=float):
    return kind(text) if text not in (None, "") else None


def read_runs(path, ticks_per_second):
    runs = []
    with open(path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            run = {"variant": row["variant"], "conns": int(row["conns"]), "status": row["status"],
                   "rate": number(row.get("rate")), "idle": number(row.get("idle"), int) or 0,
                   "run": number(row.get("run"), int) or 1, "idle_held": number(row.get("idle_held"), int),
                   "rss_kib": number(row.get("rss_kib"), int)}
            bench = json.loads(row["bench_json"]) if (row.get("bench_json") or "").startswith("{") else {}
            for key in BENCH_KEYS:
                run[key] = bench.get(key)
            run["client_cpu_us_per_msg"] = bench.get("client_cpu_us_per_msg")
            if bench and row.get("cpu_ns"):
                add_server_costs(run, row, bench, ticks_per_second)
            elif run["status"] == "ok":
                run["status"] = "no result from the client"
            if run["status"] == "ok" and run["idle_held"] is not None and run["idle_held"] < run["idle"]:
                run["status"] = "only %d of %d idle connections held" % (run["idle_held"], run["idle"])
            runs.append(run)
    return runs


def variants_copying_with_recv_send():
    """The variants whose trait recv_send (scripts/variants.txt) says that
    /proc/PID/io's read and write counters cannot see their copies."""
    names = set()
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "variants.txt")) as table:
        for line in table:
            words = line.split()
            if len(words) >= 3 and not words[0].startswith("#") and "recv_send" in words[1].split(","):
                names.add(words[0])
    return names


RECV_SEND = variants_copying_with_recv_send()


def add_server_costs(run, row, bench, ticks_per_second):
    """What the server spent per message, and what other programs took."""
    cpu = int(row["cpu_ns"]) / 1e9
    run["server_cpu_s"] = cpu
    if not bench["msgs"]:
        return  # nothing echoed: no cost per message to speak of
    msgs = bench["msgs"]
    run["cpu_us_per_msg"] = cpu * 1e6 / msgs
    if row["variant"] not in RECV_SEND:  # else its recv and send would read as no copying calls at all
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


# -- the repeats -------------------------------------------------------------------

def aggregate(runs, key):
    """One entry per key(run) (in first-seen order): each figure the median
    of the repeats that measured it, with figure + "_min" and "_max"; runs
    the number of repeats with a result; status the first failure's if none
    had a result."""
    groups = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    table = []
    for members in groups.values():
        good = [r for r in members if r.get("msgs_per_sec") is not None and r["status"] == "ok"]
        usable = good or [r for r in members if r.get("msgs_per_sec") is not None]
        first = members[0]
        entry = {k: first[k] for k in ("variant", "conns", "rate", "idle", "size")}
        entry["runs"] = len(usable)
        entry["repeats"] = len(members)
        entry["status"] = "ok" if good else next((r["status"] for r in members if r["status"] != "ok"),
                                                 first["status"])
        if good and len(good) < len(members):
            entry["status"] = "ok in %d of %d runs (%s)" % (len(good), len(members),
                                                          next(r["status"] for r in members if r["status"] != "ok"))
        for figure in FIGURES:
            values = [r[figure] for r in usable if r.get(figure) is not None]
            entry[figure] = statistics.median(values) if values else None
            entry[figure + "_min"] = min(values) if values else None
            entry[figure + "_max"] = max(values) if values else None
        table.append(entry)
    return table


def agreement(runs, figure="cpu_us_per_msg"):
    """How far apart the repeats of each group are: {(variant, conns, rate,
    idle): (max - min) / median}, for the closing note on repeatability."""
    spread = {}
    for entry in aggregate(runs, group_key):
        if entry.get(figure) and entry["runs"] >= 2:
            spread[group_key(entry)] = (entry[figure + "_max"] - entry[figure + "_min"]) / entry[figure]
    return spread


def group_key(run):
    return (run["variant"], run["conns"], run.get("rate"), run.get("idle") or 0)


# -- words -------------------------------------------------------------------------

def ratio(value, reference):
    if value is None or not reference:
        return None
    return value / reference


def show(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        if digits == 0 or abs(value) >= 1000:
            return "%.0f" % value
        return "%.*f" % (digits, value)
    return str(value)


def show_spread(entry, figure, digits=1):
    """'12.3 (11.9-12.8)': the median and, with several runs, min to max."""
    text = show(entry.get(figure), digits)
    if entry.get("runs", 0) >= 2 and entry.get(figure) is not None:
        text += " (%s-%s)" % (show(entry[figure + "_min"], digits), show(entry[figure + "_max"], digits))
    return text


def show_served(entry):
    if entry.get("conns_served") is None:
        return "-"
    served = entry["conns_served"]
    text = "%s/%d" % (show(served, 0), entry["conns"])
    return text + " STARVED" if served < entry["conns"] else text


def git_commit():
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def where_measured():
    """The machine, the date, the commit and how busy it was (other work
    shares the CPUs), so that figures quoted later say where they come from."""
    return "%s, %d CPUs, Linux %s, %s UTC, commit %s, load average %.1f" % (
        platform.node(), os.cpu_count() or 0, platform.release(),
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"), git_commit(), os.getloadavg()[0])


def disturbance(runs):
    """A warning when other programs took a good share of the CPUs during the
    runs (more than 0.3 cores on average), or None."""
    others = [run["other_cpu_cores"] for run in runs if run.get("other_cpu_cores") is not None]
    if not others or sum(others) / len(others) <= 0.3:
        return None
    return ("other programs used %.1f cores on average during these runs (up to %.1f): msgs/s and latency are "
            "disturbed, CPU per message less so" % (sum(others) / len(others), max(others)))


def head_lines(runs, out, what):
    out.write("\nMeasured on %s. %s\n" % (where_measured(), what))
    repeats = max((r.get("run") or 1 for r in runs), default=1)
    if repeats > 1:
        out.write("Each figure is the median of %d runs, min-max in brackets.\n" % repeats)
    warning = disturbance(runs)
    if warning:
        out.write("WARNING: %s.\n" % warning)
    out.write("\n")


def chart_heading(picture, runs, title):
    """A chart's title (its %s takes the repeats, if any) and, below it,
    where it was measured and how disturbed the machine was."""
    repeats = max((r.get("run") or 1 for r in runs), default=1)
    picture.text(10, 20, title % (", median of %d runs, bars min-max" % repeats if repeats > 1 else ""), size=14,
                 font_weight="bold")
    warning = disturbance(runs)
    picture.text(10, 38, "measured on " + where_measured() + ("; " + warning if warning else ""), size=10,
                 fill="#c0392b" if warning else "#555")


def markdown_table(heads, rows, out):
    out.write("| %s |\n" % " | ".join(heads))
    out.write("|---|%s\n" % ("--:|" * (len(heads) - 1)))
    for cells in rows:
        out.write("| %s |\n" % " | ".join(cells))


def write_csv(entries, path, columns):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for entry in entries:
            writer.writerow({k: csv_number(v) for k, v in entry.items()})


def csv_number(v):
    """Four significant digits, never in exponent form (12345.6 -> 12346)."""
    if not isinstance(v, float):
        return v
    return "%.0f" % v if abs(v) >= 1e4 else "%.4g" % v


def spread_columns(figures):
    return [c for f in figures for c in (f, f + "_min", f + "_max")]


# -- race: the closed loop ----------------------------------------------------------

RACE_COLUMNS = (["variant", "conns", "size", "runs", "status"] + spread_columns(
    ["msgs_per_sec", "p50_us", "p99_us", "cpu_us_per_msg", "worst_conn_p50_us", "conn_min_msgs_per_sec"])
    + ["msgs", "p90_us", "p999_us", "max_us", "stalled", "conns_served", "conn_max_msgs_per_sec", "errors", "mismatches",
       "server_cpu_s", "reads_per_msg", "writes_per_msg", "syscalls_per_msg", "all_syscalls_per_msg",
       "client_cpu_s", "client_cpu_us_per_msg", "other_cpu_cores", "msgs_per_sec_vs_baseline",
       "cpu_per_msg_vs_baseline"])


def add_ratios(entries, baseline):
    """Each entry against the baseline at the same connection count: > 1 means
    more messages per second, or more CPU per message, than the baseline."""
    base = {e["conns"]: e for e in entries if e["variant"] == baseline and e.get("msgs_per_sec")}
    for entry in entries:
        ref = base.get(entry["conns"])
        entry["msgs_per_sec_vs_baseline"] = ratio(entry.get("msgs_per_sec"), ref and ref["msgs_per_sec"])
        entry["cpu_per_msg_vs_baseline"] = ratio(entry.get("cpu_us_per_msg"), ref and ref.get("cpu_us_per_msg"))


def print_race(runs, entries, baseline, out=sys.stdout):
    head_lines(runs, out, "Ratios are against %s at the same connection count. 'served' counts the connections "
               "that got an echo; the worst connection's msgs/s and the slowest connection's median latency show "
               "a server that starves some connections." % baseline)
    counted = any(e.get("all_syscalls_per_msg") is not None for e in entries)
    heads = ["variant", "conns", "served", "msgs/s", "p50 µs", "p99 µs", "p99.9 µs", "worst conn msgs/s",
             "slowest conn p50 µs", "server CPU µs/msg", "read+write calls/msg"] + (
             ["all calls/msg"] if counted else []) + ["msgs/s vs base", "CPU/msg vs base", "other programs' CPU"]
    rows = []
    for e in entries:
        if e.get("msgs_per_sec") is None:
            rows.append([e["variant"], str(e["conns"]), e["status"]] + [""] * (len(heads) - 3))
            continue
        name = e["variant"] if e["status"] == "ok" else "%s (%s)" % (e["variant"], e["status"])
        rows.append([name, str(e["conns"]), show_served(e), show_spread(e, "msgs_per_sec", 0),
                     show_spread(e, "p50_us"), show_spread(e, "p99_us"), show(e["p999_us"]),
                     show_spread(e, "conn_min_msgs_per_sec", 0), show_spread(e, "worst_conn_p50_us"),
                     show_spread(e, "cpu_us_per_msg", 2), show(e.get("syscalls_per_msg"), 2)] + (
                     [show(e.get("all_syscalls_per_msg"), 2)] if counted else []) + [
                     show(e["msgs_per_sec_vs_baseline"], 2), show(e["cpu_per_msg_vs_baseline"], 2),
                     show(e.get("other_cpu_cores"), 2)])
    markdown_table(heads, rows, out)
    blank = sorted({e["variant"] for e in entries if e["variant"] in RECV_SEND})
    if blank:
        out.write("\nread+write calls/msg is '-' for %s: it copies with recv and send, which /proc/PID/io "
                  "does not count (compare.sh -S counts every system call).\n" % ", ".join(blank))


def conns_label(conns):
    return "%d connection%s" % (conns, "" if conns == 1 else "s")


def draw_race(runs, entries, path):
    variants = list(dict.fromkeys(e["variant"] for e in entries))
    series = [conns_label(c) for c in dict.fromkeys(e["conns"] for e in entries)]
    charts = [("Throughput", "msgs_per_sec", "msgs/s", False),
              ("Latency p99", "p99_us", "µs", True),
              ("Slowest connection's median latency", "worst_conn_p50_us", "µs", True),
              ("Server CPU per message", "cpu_us_per_msg", "µs", False)]
    panel = 470
    picture = svg.Svg(panel * 2 + 20, 0)
    chart_heading(picture, runs, "Echo servers side by side: %s-byte messages, closed loop%%s"
                  % (entries[0].get("size") or "?"))
    picture.text(10, 52, "Red notes: connections that got no echo (starved). A server that serves one connection "
                 "and starves the rest shows a fine p99 and a huge slowest-connection median.", size=10,
                 fill="#555")
    top, row_height = 62, 0
    for i, (title, key, unit, log_scale) in enumerate(charts):
        values, notes, spreads = {}, {}, {}
        for e in entries:
            cell = (e["variant"], conns_label(e["conns"]))
            values[cell] = e.get(key)
            if e.get("runs", 0) >= 2:
                spreads[cell] = (e.get(key + "_min"), e.get(key + "_max"))
            if e["status"] != "ok" and e.get("msgs_per_sec") is None:
                notes[cell] = e["status"][:30]
            elif e.get("conns_served") is not None and e["conns_served"] < e["conns"]:
                notes[cell] = "%s/%d served" % (show(e["conns_served"], 0), e["conns"])
        x = 10 + (i % 2) * panel
        height = svg.grouped_bars(picture, x, top, panel - 10, title, variants, series, values, unit,
                                  log_scale=log_scale, notes=notes, spreads=spreads)
        row_height = max(row_height, height)
        if i % 2 == 1:
            top += row_height
            row_height = 0
    picture.height = top + row_height + 30
    picture.save(path)


# -- sweep: latency against offered load ------------------------------------------

SWEEP_COLUMNS = (["variant", "conns", "rate", "runs", "status"] + spread_columns(
    ["msgs_per_sec", "p50_us", "p99_us", "worst_conn_p50_us", "cpu_us_per_msg"])
    + ["p90_us", "p999_us", "max_us", "conns_served", "conn_min_msgs_per_sec", "unanswered", "other_cpu_cores"])


def parse_limit(text):
    """'5x' -> ('x', 5.0): a multiple of the light-load p99; '2000' -> ('us', 2000.0)."""
    if text.endswith("x"):
        return ("x", float(text[:-1]))
    return ("us", float(text))


def knee(points, limit):
    """The knee of a latency curve: the highest offered rate up to which p99
    stays under the limit, checked from the lightest load up (a rate past
    one that broke the limit does not count, even if its p99 dips again).

    points: [(offered, p99_us)], any order; p99 None means no result.
    limit:  ('x', factor) for factor times the p99 at the lightest load, or
            ('us', microseconds).
    Returns (knee rate or None, the threshold in us or None)."""
    ordered = sorted(points)
    if not ordered or ordered[0][1] is None:
        return None, None
    kind, value = limit
    threshold = value * ordered[0][1] if kind == "x" else value
    best = None
    for offered, p99 in ordered:
        if p99 is None or p99 > threshold:
            break
        best = offered
    return best, threshold


def knees(entries, limit):
    """{variant: (knee, threshold)} from the aggregated sweep."""
    curves = {}
    for e in entries:
        curves.setdefault(e["variant"], []).append((e["rate"], e.get("p99_us")))
    return {variant: knee(points, limit) for variant, points in curves.items()}


def print_sweep(runs, entries, limit, out=sys.stdout):
    head_lines(runs, out, "Open loop: latency counts from when each message was due, so a queue behind a "
               "stall is charged in full. The knee is the highest offered rate whose p99 stays under %s."
               % limit_words(limit))
    heads = ["variant", "conns", "offered msgs/s", "achieved msgs/s", "served", "p50 µs", "p90 µs", "p99 µs",
             "p99.9 µs", "max µs", "slowest conn p50 µs", "server CPU µs/msg", "other programs' CPU"]
    rows = []
    for e in entries:
        if e.get("msgs_per_sec") is None:
            rows.append([e["variant"], str(e["conns"]), show(e["rate"], 0), e["status"]] + [""] * (len(heads) - 4))
            continue
        name = e["variant"] if e["status"] == "ok" else "%s (%s)" % (e["variant"], e["status"])
        rows.append([name, str(e["conns"]), show(e["rate"], 0), show_spread(e, "msgs_per_sec", 0), show_served(e),
                     show_spread(e, "p50_us"), show(e["p90_us"]), show_spread(e, "p99_us"), show(e["p999_us"]),
                     show(e["max_us"]), show(e["worst_conn_p50_us"]), show_spread(e, "cpu_us_per_msg", 2),
                     show(e.get("other_cpu_cores"), 2)])
    markdown_table(heads, rows, out)
    out.write("\nKnees (p99 under %s):\n\n" % limit_words(limit))
    markdown_table(["variant", "light-load p99 µs", "threshold µs", "knee: offered msgs/s"],
                   knee_rows(entries, limit), out)


def limit_words(limit):
    kind, value = limit
    return "%g times the variant's p99 at the lightest load" % value if kind == "x" else "%g µs" % value


def knee_rows(entries, limit):
    rows = []
    found = knees(entries, limit)
    for variant, (rate, threshold) in found.items():
        light = min((e for e in entries if e["variant"] == variant), key=lambda e: e["rate"])
        words = show(rate, 0) if rate is not None else "none (over the limit from the lightest load)"
        if light.get("conns_served") is not None and light["conns_served"] < light["conns"]:
            words += " (starves: %s of %d connections served at the lightest load)" % (
                show(light["conns_served"], 0), light["conns"])
        rows.append([variant, show(light.get("p99_us")), show(threshold), words])
    return rows


class Axis:
    """Maps values to pixels, linear or log10, over [low, high]."""

    def __init__(self, low, high, start, end, log_scale):
        self.log = log_scale
        if log_scale:
            low, high = 10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high))
            if high <= low:
                high = low * 10
        else:
            step = svg.nice_step(high - low, 5)
            low, high = math.floor(low / step) * step, math.ceil(high / step) * step or step
        self.low, self.high, self.start, self.end = low, high, start, end

    def __call__(self, v):
        if self.log:
            v = max(v, self.low)
            frac = (math.log10(v) - math.log10(self.low)) / (math.log10(self.high) - math.log10(self.low))
        else:
            frac = (v - self.low) / ((self.high - self.low) or 1)
        return self.start + frac * (self.end - self.start)

    def ticks(self):
        if self.log:
            return [10 ** p for p in range(int(round(math.log10(self.low))), int(round(math.log10(self.high))) + 1)]
        step = svg.nice_step(self.high - self.low, 5)
        return [self.low + i * step for i in range(int(round((self.high - self.low) / step)) + 1)]


def line_chart(picture, x, y, width, height, title, lines, x_label, y_label, x_log=False, y_log=False,
               x_names=None):
    """A chart of lines into picture at (x, y). lines: dicts with name,
    colour, points [(x, y, low, high)] (low/high may be None: no error bar),
    dashed (bool), marks [(x, y, text)] (a ringed point with a label).
    x_names maps an x value to its tick label (e.g. 0 on a log axis).
    Returns nothing; the chart fills width x height."""
    left, bottom = x + 60, y + height - 30
    xs = [p[0] for line in lines for p in line["points"]]
    ys = [v for line in lines for p in line["points"] for v in (p[1], p[2], p[3]) if v is not None and v > 0]
    if not xs or not ys:
        picture.text(x, y + 14, title + ": no data", size=12, font_weight="bold")
        return
    ax = Axis(min(xs), max(xs), left, x + width - 10, x_log)
    ay = Axis(min(ys), max(ys), bottom, y + 24, y_log)
    picture.text(x, y + 14, title, size=12, font_weight="bold")
    for tick in ax.ticks():
        tx = ax(tick)
        picture.line(tx, y + 24, tx, bottom, stroke="#eee")
        label = (x_names or {}).get(tick, svg._human(tick))
        picture.text(tx, bottom + 12, label, size=9, anchor="middle", fill="#555")
    for tick in ay.ticks():
        ty = ay(tick)
        picture.line(left, ty, x + width - 10, ty, stroke="#eee")
        picture.text(left - 4, ty + 3, svg._human(tick), size=9, anchor="end", fill="#555")
    picture.line(left, y + 24, left, bottom, stroke="#999")
    picture.line(left, bottom, x + width - 10, bottom, stroke="#999")
    picture.text((left + x + width) / 2, bottom + 25, x_label, size=10, anchor="middle", fill="#333")
    picture.text(x, y + 30, y_label, size=10, fill="#333")
    for line in lines:
        points = [(ax(px), ay(py)) for px, py, lo, hi in line["points"] if py is not None and py > 0]
        if len(points) >= 2:
            picture.polyline(points, line["colour"], stroke_width=1.6,
                             stroke_dasharray="5,3" if line.get("dashed") else None, tip=line["name"])
        for px, py, lo, hi in line["points"]:
            if py is None or py <= 0:
                continue
            picture.circle(ax(px), ay(py), 2.2, line["colour"], tip="%s: %s at %s" % (line["name"], svg._human(py),
                                                                                     svg._human(px)))
            if lo is not None and hi is not None and hi > 0:
                picture.line(ax(px), ay(max(lo, ay.low)), ax(px), ay(hi), stroke=line["colour"], stroke_width=1)
                for v in (max(lo, ay.low), hi):
                    picture.line(ax(px) - 3, ay(v), ax(px) + 3, ay(v), stroke=line["colour"], stroke_width=1)
        for mx, my, text in line.get("marks", []):
            picture.circle(ax(mx), ay(my), 5, "none", stroke=line["colour"], stroke_width=2)
            picture.text(ax(mx) + 6, ay(my) - 6, text, size=9, fill=line["colour"])


def legend(picture, x, y, names, width):
    cx, cy = x, y
    for i, name in enumerate(names):
        span = 24 + len(name) * svg.CHAR_WIDTH
        if cx + span > x + width:
            cx, cy = x, cy + 14
        picture.rect(cx, cy - 8, 10, 10, svg.PALETTE[i % len(svg.PALETTE)])
        picture.text(cx + 14, cy + 1, name, size=10)
        cx += span
    return cy + 14


def draw_sweep(runs, entries, limit, path):
    variants = list(dict.fromkeys(e["variant"] for e in entries))
    found = knees(entries, limit)
    width, chart_height = 1000, 460
    picture = svg.Svg(width, 0)
    chart_heading(picture, runs, "Latency against offered load (open loop, %s connections, %s-byte messages%%s)"
                  % (entries[0]["conns"], entries[0].get("size") or "?"))
    picture.text(10, 52, "p99 solid, p50 dashed; ringed: the knee, the highest offered rate whose p99 stays under "
                 + limit_words(limit) + ". Latency counts from when each message was due.", size=10, fill="#555")
    lines = []
    for i, variant in enumerate(variants):
        colour = svg.PALETTE[i % len(svg.PALETTE)]
        mine = sorted((e for e in entries if e["variant"] == variant), key=lambda e: e["rate"])
        rate, _ = found[variant]
        marks = [(e["rate"], e["p99_us"], "knee %s/s" % svg._human(e["rate"])) for e in mine
                 if rate is not None and e["rate"] == rate and e.get("p99_us")]
        lines.append({"name": variant + " p99", "colour": colour, "marks": marks,
                      "points": [(e["rate"], e.get("p99_us"), e.get("p99_us_min") if e["runs"] >= 2 else None,
                                  e.get("p99_us_max") if e["runs"] >= 2 else None) for e in mine]})
        lines.append({"name": variant + " p50", "colour": colour, "dashed": True,
                      "points": [(e["rate"], e.get("p50_us"), None, None) for e in mine]})
    top = legend(picture, 10, 70, variants, width - 20)
    line_chart(picture, 10, top, width - 20, chart_height, "p99 and p50 against offered load", lines,
               "offered load, msgs/s", "latency, µs (log scale)", y_log=True)
    y = top + chart_height + 20
    picture.text(10, y, "Knees", size=12, font_weight="bold")
    for row in knee_rows(entries, limit):
        y += 15
        picture.text(20, y, "%s: knee at %s msgs/s offered (light-load p99 %s µs, limit %s µs)"
                     % (row[0], row[3], row[1], row[2]), size=10)
    picture.height = y + 20
    picture.save(path)


# -- idle: cost against idle connections ---------------------------------------------

IDLE_COLUMNS = (["variant", "idle", "idle_held", "conns", "runs", "status"] + spread_columns(
    ["cpu_us_per_msg", "p50_us", "p99_us", "rss_kib", "msgs_per_sec"])
    + ["conns_served", "worst_conn_p50_us", "syscalls_per_msg", "all_syscalls_per_msg", "other_cpu_cores"])


def print_idle(runs, entries, note, out=sys.stdout):
    head_lines(runs, out, "Each run holds N idle connections open (bin/client hold: each echoed one byte, so the "
               "server watches it) while the busy connections are measured." + (" " + note + "." if note else ""))
    heads = ["variant", "idle", "held", "busy conns", "msgs/s", "server CPU µs/msg", "p50 µs", "p99 µs",
             "server RSS KiB", "served"]
    rows = []
    for e in entries:
        if e.get("msgs_per_sec") is None:
            rows.append([e["variant"], str(e["idle"]), "-", str(e["conns"]), e["status"]] + [""] * (len(heads) - 5))
            continue
        name = e["variant"] if e["status"] == "ok" else "%s (%s)" % (e["variant"], e["status"])
        rows.append([name, str(e["idle"]), show(e.get("idle_held"), 0), str(e["conns"]),
                     show_spread(e, "msgs_per_sec", 0), show_spread(e, "cpu_us_per_msg", 2),
                     show_spread(e, "p50_us"), show_spread(e, "p99_us"), show_spread(e, "rss_kib", 0),
                     show_served(e)])
    markdown_table(heads, rows, out)


def draw_idle(runs, entries, note, path):
    variants = list(dict.fromkeys(e["variant"] for e in entries))
    counts = sorted({e["idle"] for e in entries})
    positive = [n for n in counts if n > 0]
    zero_at = (min(positive) / 10) if positive else 1  # 0 cannot sit on a log axis: one decade left of the rest
    width, chart_height = 1000, 340
    picture = svg.Svg(width, 0)
    chart_heading(picture, runs, "Cost against idle connections (%s busy connections, %s-byte messages%%s)"
                  % (entries[0]["conns"], entries[0].get("size") or "?"))
    stops = [e for e in entries if e.get("msgs_per_sec") is None and "FD_SETSIZE" in e["status"]]
    words = "select and poll hand the kernel every watched descriptor on each wait; epoll and io_uring only the ready ones."
    if stops:
        words += " %s stops before %d idle connections: FD_SETSIZE is 1024." % (
            stops[0]["variant"], min(e["idle"] for e in stops))
    if note:
        words += " " + note + "."
    picture.text(10, 52, words, size=10, fill="#555")
    top = legend(picture, 10, 70, variants, width - 20)
    x_names = {zero_at: "0"}
    for title, figure, unit in (("Server CPU per message", "cpu_us_per_msg", "µs per message"),
                                ("Server resident memory", "rss_kib", "KiB")):
        lines = []
        for i, variant in enumerate(variants):
            mine = sorted((e for e in entries if e["variant"] == variant and e.get(figure) is not None),
                          key=lambda e: e["idle"])
            lines.append({"name": variant, "colour": svg.PALETTE[i % len(svg.PALETTE)],
                          "points": [(e["idle"] or zero_at, e[figure],
                                      e.get(figure + "_min") if e["runs"] >= 2 else None,
                                      e.get(figure + "_max") if e["runs"] >= 2 else None) for e in mine],
                          "marks": [(mine[-1]["idle"] or zero_at, mine[-1][figure], "stops (FD_SETSIZE)")]
                          if mine and any(s["variant"] == variant for s in stops) else []})
            lines[-1]["marks"] += [(e["idle"], e[figure], "only %s held" % show(e["idle_held"], 0)) for e in mine
                                   if e["status"].startswith("only") and e.get("idle_held") is not None]
        line_chart(picture, 10, top, width - 20, chart_height, title + " against idle connections", lines,
                   "idle connections held open (log scale)", unit, x_log=True, x_names=x_names)
        top += chart_height + 10
    picture.height = top + 10
    picture.save(path)


# -- main ------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("race", "sweep", "idle"))
    parser.add_argument("raw")
    parser.add_argument("--ticks-per-second", type=int, required=True, help="getconf CLK_TCK, the unit of the busy ticks")
    parser.add_argument("--baseline", default="multiplexing-epoll")
    parser.add_argument("--knee", default="5x", help="Nx (times the light-load p99) or microseconds")
    parser.add_argument("--note", default="", help="said above the idle table and on its chart")
    parser.add_argument("--csv")
    parser.add_argument("--svg")
    args = parser.parse_args()

    runs = read_runs(args.raw, args.ticks_per_second)
    if not runs:
        sys.exit("compare_report: no runs in %s" % args.raw)
    if args.mode == "race":
        entries = aggregate(runs, group_key)
        add_ratios(entries, args.baseline)
        print_race(runs, entries, args.baseline)
        columns, draw = RACE_COLUMNS, lambda path: draw_race(runs, entries, path)
    elif args.mode == "sweep":
        try:
            limit = parse_limit(args.knee)
        except ValueError:
            sys.exit("compare_report: --knee expects Nx or microseconds, not %r" % args.knee)
        entries = aggregate(runs, group_key)
        print_sweep(runs, entries, limit)
        columns, draw = SWEEP_COLUMNS, lambda path: draw_sweep(runs, entries, limit, path)
    else:
        entries = aggregate(runs, group_key)
        print_idle(runs, entries, args.note)
        columns, draw = IDLE_COLUMNS, lambda path: draw_idle(runs, entries, args.note, path)
    if args.csv:
        write_csv(entries, args.csv, columns)
    if args.svg:
        draw(args.svg)


if __name__ == "__main__":
    main()
