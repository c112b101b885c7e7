#!/usr/bin/env python3
"""What select cannot watch: the same crowd against select, poll and epoll.

    scripts/crowd.py [--clients N] [--api API ...] [--json FILE]

For each API, starts bin/server-multiplexing (--max-clients above the
crowd, RLIMIT_NOFILE raised to fit it), connects N clients (default 1100)
that all stay connected, then has each send one line and counts who gets
its echo back and who is closed unanswered. An fd_set holds FD_SETSIZE
(1024) bits, so select can watch only descriptors 0 to 1023: the server
refuses a connection whose descriptor is higher (FD_SET past the end of
the set would write over memory), and says why once, at start-up. poll
and epoll take a list of descriptors instead of a bitmap and serve the
whole crowd. BIN=DIR takes the programs from elsewhere than bin/.

Prints one line per API and the server's warnings; --json writes
{api: {clients, served, refused, other, warnings}}. Exit status 1 when a
run could not be made (the server did not start, descriptors ran out here).
"""
import argparse
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = 30  # the whole exchange of one API, at most


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        sys.exit("crowd.py: RLIMIT_NOFILE hard limit is %d, the crowd needs %d" % (hard, wanted))
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else hard, hard))


def start_server(program, api, clients):
    limit = clients + 300

    def limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proc = subprocess.Popen([program, "-p", "0", "-q", "--api", api, "--max-clients", str(clients + 100)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=limits, text=True)
    line = proc.stdout.readline()  # the readiness line, or EOF if it failed
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit("crowd.py: %s --api %s did not start: %s" % (program, api, proc.stderr.read().strip()))
    host, _, port = line[len("listening on "):].strip().rpartition(":")
    return proc, host.strip("[]"), int(port)


def exchange(host, port, clients):
    """Connects every client first (so the crowd is there at once), then each
    sends one line; returns {client: "ok" | "refused" | what went wrong}."""
    sel = selectors.DefaultSelector()  # epoll: Python's select() has the same 1024 ceiling
    socks = []
    outcome = {}
    deadline = time.monotonic() + SECONDS
    try:
        for i in range(clients):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setblocking(False)
            sock.connect_ex((host, port))
            socks.append(sock)
            sel.register(sock, selectors.EVENT_WRITE, i)
        sent = {}
        got = {i: b"" for i in range(clients)}
        while len(outcome) < clients and time.monotonic() < deadline:
            for key, events in sel.select(timeout=0.2):
                i, sock = key.data, key.fileobj
                if events & selectors.EVENT_WRITE and i not in sent:
                    sent[i] = b"client %d\n" % i
                    try:
                        sock.send(sent[i])
                    except OSError:
                        outcome[i] = "refused"
                        sel.unregister(sock)
                        continue
                    sel.modify(sock, selectors.EVENT_READ, i)
                elif events & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(4096)
                    except ConnectionResetError:
                        chunk = None
                    if not chunk:  # closed by the server before any echo: refused
                        outcome[i] = "refused" if not got[i] else "cut after %d bytes" % len(got[i])
                        sel.unregister(sock)
                        continue
                    got[i] += chunk
                    if got[i] == sent[i]:
                        outcome[i] = "ok"
                        sel.unregister(sock)
                    elif not sent[i].startswith(got[i]):
                        outcome[i] = "wrong echo"
                        sel.unregister(sock)
        for i in range(clients):
            outcome.setdefault(i, "no answer in %d s" % SECONDS)
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    return outcome


def run(program, api, clients):
    proc, host, port = start_server(program, api, clients)
    try:
        outcome = exchange(host, port, clients)
    finally:
        proc.terminate()
        try:
            _, errors = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, errors = proc.communicate()
    values = list(outcome.values())
    served, refused = values.count("ok"), values.count("refused")
    return {"clients": clients, "served": served, "refused": refused, "other": clients - served - refused,
            "warnings": [line for line in errors.splitlines() if not line.startswith("summary:")]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1100, help="how many at once (default 1100)")
    parser.add_argument("--api", action="append", choices=["select", "poll", "epoll"],
                        help="repeat to pick several (default all three)")
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args()
    if not 1 <= args.clients <= 100000:
        parser.error("--clients must be between 1 and 100000")
    program = os.path.join(os.environ.get("BIN", os.path.join(ROOT, "bin")), "server-multiplexing")
    if not os.access(program, os.X_OK):
        sys.exit("crowd.py: %s is not built (run make)" % program)
    raise_fd_limit(args.clients + 300)

    results = {}
    for api in args.api or ["select", "poll", "epoll"]:
        result = results[api] = run(program, api, args.clients)
        print("%-6s %d clients at once: %d served, %d refused%s" % (
            api, args.clients, result["served"], result["refused"],
            ", %d other" % result["other"] if result["other"] else ""))
        for line in result["warnings"]:
            print("       the server said: %s" % line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
