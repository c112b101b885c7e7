"""scripts/compare.sh beyond the race: repeats with their spread, latency
against offered load (-L) with its knee, and cost against idle connections
(-i); and compare_report.py's knee and medians on data made up for the
purpose. The script runs use tiny durations: they test the plumbing and the
figures' shape, never the performance."""
import csv
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree

import harness

SCRIPTS = harness.ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

import compare_report  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def run_compare(out_dir, *argv, timeout=120):
    if harness.SANITIZED:
        raise harness.Skip("a race of sanitized binaries measures the sanitizer: the plain run covers compare.sh")
    env = dict(os.environ, BIN=str(harness.BIN_DIR))
    env.pop("ASAN_OPTIONS", None)
    proc = subprocess.run([str(SCRIPTS / "compare.sh"), "-o", out_dir] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def svg_root(path):
    root = ElementTree.parse(path).getroot()
    assert root.tag == SVG + "svg", root.tag
    return root


# -- the knee and the medians, on made-up data ---------------------------------

def test_knee_is_the_last_rate_under_the_limit_from_light_load_up():
    points = [(400, 30.0), (100, 10.0), (300, 60.0), (200, 12.0)]
    assert compare_report.knee(points, ("x", 5)) == (200, 50.0)  # 300 breaks 5 x 10 us; 400's dip comes after
    assert compare_report.knee(points, ("us", 100)) == (400, 100)
    assert compare_report.knee(points, ("x", 1.1)) == (100, 11.0)
    assert compare_report.knee([(100, 10.0), (200, 200.0)], ("us", 5)) == (None, 5)
    assert compare_report.knee([(100, None), (200, 5.0)], ("x", 5)) == (None, None)
    assert compare_report.knee([], ("x", 5)) == (None, None)
    assert compare_report.parse_limit("5x") == ("x", 5.0) and compare_report.parse_limit("2000") == ("us", 2000.0)


def test_knees_per_variant_from_aggregated_rows():
    entries = [{"variant": "a", "rate": r, "p99_us": p} for r, p in ((10, 100.0), (20, 120.0), (30, 900.0))]
    entries += [{"variant": "b", "rate": r, "p99_us": p} for r, p in ((10, 50.0), (20, 60.0), (30, 70.0))]
    assert compare_report.knees(entries, ("x", 5)) == {"a": (20, 500.0), "b": (30, 250.0)}


def test_each_figure_is_the_median_of_the_repeats_with_its_spread():
    runs = [{"variant": "v", "conns": 1, "rate": None, "idle": 0, "size": 64, "status": "ok", "msgs_per_sec": m,
             "cpu_us_per_msg": c} for m, c in ((100.0, 3.0), (300.0, 1.0), (200.0, 2.5))]
    runs.append({"variant": "v", "conns": 1, "rate": None, "idle": 0, "size": 64, "status": "server died",
                 "msgs_per_sec": None})
    [entry] = compare_report.aggregate(runs, compare_report.group_key)
    assert (entry["msgs_per_sec"], entry["msgs_per_sec_min"], entry["msgs_per_sec_max"]) == (200.0, 100.0, 300.0)
    assert (entry["cpu_us_per_msg"], entry["cpu_us_per_msg_min"], entry["cpu_us_per_msg_max"]) == (2.5, 1.0, 3.0)
    assert entry["runs"] == 3 and entry["status"].startswith("ok in 3 of 4 runs (server died"), entry
    assert compare_report.show_spread(entry, "msgs_per_sec", 0) == "200 (100-300)"
    spread = compare_report.agreement(runs)
    assert abs(spread[("v", 1, None, 0)] - 0.8) < 1e-9, spread  # (3.0 - 1.0) / 2.5


def test_a_server_copying_with_recv_and_send_shows_no_read_write_count():
    """/proc/PID/io counts read and write, not recv and send: the Python
    server's zero there would read as 'no copying calls', like io_uring's."""
    assert "multiplexing-python" in compare_report.RECV_SEND
    assert "multiplexing-epoll" not in compare_report.RECV_SEND
    row = {"cpu_ns": "2000000", "syscr": "0", "syscw": "0", "started": "1", "ended": "2", "busy_ticks": "0"}
    python, epoll = {}, {}
    compare_report.add_server_costs(python, dict(row, variant="multiplexing-python"), {"msgs": 1000}, 100)
    compare_report.add_server_costs(epoll, dict(row, variant="multiplexing-epoll", syscr="1000", syscw="1000"),
                                    {"msgs": 1000}, 100)
    assert python.get("syscalls_per_msg") is None and python["cpu_us_per_msg"] == 2.0, python
    assert epoll["syscalls_per_msg"] == 2.0, epoll


# -- the script ---------------------------------------------------------------------

def test_compare_repeats_and_shows_the_spread():
    with tempfile.TemporaryDirectory(prefix="iomodels-compare-") as out_dir:
        # -m =NAME: that variant alone (not multiplexing-epoll-edge too).
        proc = run_compare(out_dir, "-m", "=multiplexing-epoll", "-m", "iterative", "-c", "2", "-d", "0.2", "-r", "2")
        assert re.search(r"\[ *4/4\]", proc.stderr), proc.stderr
        rows = {row["variant"]: row for row in read_csv(os.path.join(out_dir, "compare.csv"))}
        assert set(rows) == {"multiplexing-epoll", "blocking-iterative"}, sorted(rows)
        for name, row in rows.items():
            assert row["runs"] == "2", row
            for figure in ("msgs_per_sec", "cpu_us_per_msg", "p99_us"):
                low, mid, high = (float(row[figure + s]) for s in ("_min", "", "_max"))
                assert low <= mid <= high, (name, figure, row)
        assert "median of 2 runs" in proc.stdout
        with open(os.path.join(out_dir, "compare.raw.tsv")) as f:  # one row per run
            raw = list(csv.DictReader(f, delimiter="\t"))
        assert sorted((r["variant"], r["run"]) for r in raw) == sorted(
            (v, str(n)) for v in rows for n in (1, 2)), raw
        root = svg_root(os.path.join(out_dir, "compare.svg"))
        texts = [t.text or "" for t in root.iter(SVG + "text")]
        assert "Slowest connection's median latency (log scale)" in texts, texts
        assert any(t.endswith("1/2 served") for t in texts), "the starved connection is on the chart"
test_compare_repeats_and_shows_the_spread.time_limit = 120


def test_compare_sweep_has_every_step_and_a_knee():
    rates = [300, 600, 900]
    with tempfile.TemporaryDirectory(prefix="iomodels-compare-") as out_dir:
        proc = run_compare(out_dir, "-L", "-l", ",".join(map(str, rates)), "-m", "multiplexing-epoll", "-m",
                           "iterative", "-c", "2", "-d", "0.3", "-r", "1")
        assert re.search(r"\[ *9/9\]", proc.stderr) and "msgs/s offered" in proc.stderr, proc.stderr
        rows = read_csv(os.path.join(out_dir, "sweep.csv"))
        steps = {}
        for row in rows:
            steps.setdefault(row["variant"], []).append(float(row["rate"]))
        assert steps == {v: rates for v in ("multiplexing-epoll", "multiplexing-epoll-edge", "blocking-iterative")}, \
            steps
        for row in rows:
            assert row["status"] == "ok", row
            assert float(row["p50_us"]) <= float(row["p99_us"]) <= float(row["max_us"]), row
            assert float(row["msgs_per_sec"]) > 0
        # The knee table is computed from these rows, with the default limit (5x the lightest p99).
        limit = compare_report.parse_limit("5x")
        for variant in steps:
            mine = [(float(r["rate"]), float(r["p99_us"])) for r in rows if r["variant"] == variant]
            rate, _ = compare_report.knee(mine, limit)
            line = next(l for l in proc.stdout.splitlines() if l.startswith("| %s |" % variant) and "µs" not in l
                        and l.count("|") == 5)
            assert line.split("|")[4].strip().startswith("%.0f" % rate if rate else "none"), (line, rate)
        assert "starves: 1 of 2 connections" in proc.stdout, "the iterative server's knee says it starves"
        root = svg_root(os.path.join(out_dir, "sweep.svg"))
        lines = list(root.iter(SVG + "polyline"))
        assert len(lines) == 6, "p99 and p50 for each of three variants"
        assert sum(1 for l in lines if l.get("stroke-dasharray")) == 3, "p50 dashed"
        assert any((t.text or "").startswith("knee ") for t in root.iter(SVG + "text")), "the knee is marked"
test_compare_sweep_has_every_step_and_a_knee.time_limit = 120


def test_compare_sweep_steps_from_the_closed_loop_maximum():
    with tempfile.TemporaryDirectory(prefix="iomodels-compare-") as out_dir:
        proc = run_compare(out_dir, "-L", "-m", "multiplexing-epoll-edge", "-c", "1", "-d", "0.2", "-r", "1",
                           "-k", "100000")
        assert "closed-loop maximum" in proc.stderr, proc.stderr
        rows = read_csv(os.path.join(out_dir, "sweep.csv"))
        assert len(rows) == 10, rows
        rates = [float(r["rate"]) for r in rows]
        assert rates == sorted(rates) and rates[-1] >= 1.25 * rates[-4], "from light load to past the maximum"
        assert "p99 under 100000 µs" in proc.stdout
test_compare_sweep_steps_from_the_closed_loop_maximum.time_limit = 90


def test_compare_idle_holds_connections_and_select_says_where_it_stops():
    with tempfile.TemporaryDirectory(prefix="iomodels-compare-") as out_dir:
        proc = run_compare(out_dir, "-i", "0,30,1100", "-m", "multiplexing-select", "-m", "poll", "-c", "2",
                           "-d", "0.2", "-r", "1")
        rows = {(r["variant"], int(r["idle"])): r for r in read_csv(os.path.join(out_dir, "idle.csv"))}
        assert set(rows) == {(v, n) for v in ("multiplexing-select", "multiplexing-poll") for n in (0, 30, 1100)}
        for (variant, n), row in rows.items():
            if variant == "multiplexing-select" and n == 1100:
                assert "FD_SETSIZE" in row["status"], row
                continue
            assert row["status"] == "ok", row
            assert int(row["idle_held"]) == n, row
            assert float(row["cpu_us_per_msg"]) >= 0 and int(row["rss_kib"]) > 0, row
        assert "select stops at FD_SETSIZE" in proc.stderr
        root = svg_root(os.path.join(out_dir, "idle.svg"))
        texts = [t.text or "" for t in root.iter(SVG + "text")]
        assert any("FD_SETSIZE" in t for t in texts), "the chart says where select stops"
        assert len(list(root.iter(SVG + "polyline"))) == 4, "CPU and memory for each variant"
test_compare_idle_holds_connections_and_select_says_where_it_stops.time_limit = 120


def test_compare_refuses_bad_sweep_and_idle_options():
    for argv in (["-L", "-i", "10"], ["-L", "-c", "1,2"], ["-l", "fast"], ["-k", "lots"], ["-i", "some"],
                 ["-r", "0"], ["stray"]):
        proc = subprocess.run([str(SCRIPTS / "compare.sh")] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=10)
        assert proc.returncode == 2 and "compare.sh" in proc.stderr, (argv, proc.returncode, proc.stderr)
