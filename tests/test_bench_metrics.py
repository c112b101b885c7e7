"""bin/client's measurements beyond the percentiles: fairness per connection
(a server that starves connections must not look fast) and `client hold`,
the idle connections of compare.sh -i."""
import json
import subprocess

import harness
from harness import Server


def bench_json(srv, conns, seconds=0.5):
    proc = subprocess.run([harness.binary("client"), "bench", "127.0.0.1:%d" % srv.port, "-c", str(conns),
                           "-s", "64", "-d", str(seconds), "--warmup", "0", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=harness.slow(30))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bench_reports_the_starved_connections():
    """The iterative server serves one of three connections: served 1, the
    worst connection's rate 0 and its median the whole run (its first
    message waited throughout, and is charged so)."""
    with Server("server-blocking", "-q", "--concurrency", "iterative") as srv:
        result = bench_json(srv, 3)
    assert result["conns_served"] == 1, result
    assert result["conn_min_msgs_per_sec"] == 0 and result["conn_max_msgs_per_sec"] > 0, result
    # About 0.5 s (the window) within the per-connection buckets' 10 %.
    assert result["worst_conn_p50_us"] >= 0.3e6, result
    assert result["worst_conn_p50_us"] > 100 * result["p50_us"], "the slowest connection stands out: %s" % result


def test_bench_reports_every_connection_served():
    with Server("server-multiplexing", "-q") as srv:
        result = bench_json(srv, 4)
    assert result["conns_served"] == 4, result
    assert 0 < result["conn_min_msgs_per_sec"] <= result["conn_max_msgs_per_sec"], result
    per_conn_total = result["msgs_per_sec"] / 4
    assert result["conn_min_msgs_per_sec"] <= per_conn_total <= result["conn_max_msgs_per_sec"], result
    assert 0 < result["worst_conn_p50_us"] < 0.25e6, result


def test_client_hold_keeps_idle_connections_until_stdin_closes():
    with Server("server-multiplexing", "-q") as srv:
        base = srv.fd_count()
        hold = subprocess.Popen([harness.binary("client"), "hold", "-n", "40", "127.0.0.1:%d" % srv.port],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = hold.stdout.readline()
            assert line == "holding 40 of 40 connections\n", line
            assert srv.fd_count() >= base + 40, "the server holds them"
            hold.stdin.close()
            assert hold.wait(timeout=harness.slow(10)) == 0
            srv.wait_until_idle(base)
        finally:
            if hold.poll() is None:
                hold.kill()
                hold.wait()


def test_client_hold_counts_refused_connections():
    with Server("server-multiplexing", "-q", "--max-clients", "5") as srv:
        proc = subprocess.run([harness.binary("client"), "hold", "-n", "8", "127.0.0.1:%d" % srv.port],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=harness.slow(20))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "holding 5 of 8 connections (3 refused)\n", proc.stdout


def test_client_hold_refuses_bad_arguments():
    for argv in (["hold", "127.0.0.1:1"], ["hold", "-n", "many", "127.0.0.1:1"], ["hold", "-n", "3"]):
        proc = subprocess.run([harness.binary("client")] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=10)
        assert proc.returncode == 2 and proc.stderr.startswith("client: "), (argv, proc.returncode, proc.stderr[:200])
