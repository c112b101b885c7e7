#!/usr/bin/env python3
"""Reads a trace written by `strace -f -tt -T -y` and says where the server waited.

    strace_report.py TRACE [--events FILE] [--title TEXT] [--svg FILE] [--json FILE]

Prints, per process or thread, a table of its system calls (calls, EAGAIN,
total and longest time inside, how many took over 1 ms), then
the two phases of the classic picture of an input operation:

  1. waiting for the data: the call sleeps until a peer has sent something
     (a blocking read or accept, select/poll/epoll_wait, sigsuspend,
     sigtimedwait, io_uring_enter waiting for completions, a nap);
  2. copying the data from the kernel to the process: a read that finds the
     bytes already there returns in microseconds.

and ends with a verdict computed from those numbers. --svg draws the
timeline (one lane per process or thread, the calls that blocked as spans,
the scenario's events from --events marked), --json writes the numbers for
tests and other scripts.
"""
import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import svg

BLOCKED_SECONDS = 0.001  # a call that took longer than this was put to sleep

# Calls whose purpose is to wait until something happens.
WAIT_CALLS = {"accept", "accept4", "select", "pselect6", "poll", "ppoll", "epoll_wait", "epoll_pwait",
              "epoll_pwait2", "rt_sigsuspend", "sigsuspend", "pause", "rt_sigtimedwait", "nanosleep",
              "clock_nanosleep", "io_uring_enter"}
NAPS = {"nanosleep", "clock_nanosleep"}  # waiting for time, not for data
STOP_SIGNALS = {"SIGTERM", "SIGINT"}  # how trace.sh ends the server: the last wait is cut, not made again
SIGNAL_WAITS = {"rt_sigsuspend", "sigsuspend", "pause", "rt_sigtimedwait"}  # a signal is what they wait for
READ_CALLS = {"read", "readv", "recv", "recvfrom", "recvmsg", "pread64", "preadv"}
WRITE_CALLS = {"write", "writev", "send", "sendto", "sendmsg", "pwrite64", "pwritev"}
IO_CALLS = READ_CALLS | WRITE_CALLS

# "1234  12:00:00.123456 rest"
LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d\.\d+) (?P<rest>.*)$")
# "read(5<socket:[99]>, ..., 16384) = 3 <0.000012>", also "= -1 EAGAIN (...)", "= ? ERESTARTSYS (...)"
RESULT = re.compile(r"^(?P<head>.*)\)\s+=\s+(?P<ret>-?\d+|\?|0x[0-9a-f]+)(?:<[^>]*>)?(?P<rest>.*?)"
                    r"(?:\s+<(?P<secs>\d+\.\d+)>)?$")
CALL_START = re.compile(r"^(?P<name>\w+)\((?P<args>.*)$")
RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<rest>.*)$")
UNFINISHED = " <unfinished ...>"


@dataclass
class Call:
    pid: int
    name: str
    start: float          # seconds since midnight, as strace -tt prints it
    seconds: float        # time inside the call (strace -T)
    args: str
    ret: str              # "3", "-1", "?" (never returned)
    error: str = ""       # "EAGAIN", "EINTR", "ERESTARTSYS"...
    line: str = ""        # the raw trace line(s), for excerpts
    nonblocking: bool = False  # its descriptor was O_NONBLOCK: it could not wait
    signal: str = ""      # the signal that cut this call short (EINTR, ERESTART...), if any

    @property
    def end(self):
        return self.start + self.seconds

    @property
    def blocked(self):
        return self.seconds > BLOCKED_SECONDS

    @property
    def on_socket(self):
        """The first argument is a socket (strace -y decorates descriptors)."""
        first = self.args.split(",", 1)[0]
        return "<" not in first or "<socket:" in first or "<TCP" in first or "<UNIX" in first

    @property
    def eagain(self):
        """Asked before anything was there. (rt_sigtimedwait's EAGAIN is
        different: its timeout expired, after a whole wait.)"""
        return self.error == "EAGAIN" and self.name != "rt_sigtimedwait"

    @property
    def key(self):
        """The row this call is counted in: reads of files and pipes (the
        loader, the log) are kept apart from reads of sockets."""
        if self.name in IO_CALLS and not self.on_socket:
            return self.name + " (not a socket)"
        return self.name

    @property
    def phase(self):
        """'wait' (phase 1), 'copy' (phase 2), 'eagain' (asked too early),
        'room' (a slow write on a blocking socket), or ''."""
        if self.name in IO_CALLS and not self.on_socket:
            return ""
        if self.eagain:
            return "eagain"
        if self.name == "io_uring_enter":
            return "wait" if min_complete(self.args) > 0 else ""
        if self.name in ("accept", "accept4") and self.nonblocking:
            return ""  # took a connection that was already there
        if self.name in WAIT_CALLS:
            return "wait"
        if self.name in IO_CALLS:
            # A call on a blocking descriptor that took long slept until the
            # data (or the room) came. One on an O_NONBLOCK descriptor cannot
            # sleep: if it took long, it was descheduled (strace, load).
            if self.blocked and not self.nonblocking:
                # A write waits for room in the send buffer, never for data;
                # a few bytes always find room, so a slow one was most often
                # only descheduled (strace slows every call).
                return "room" if self.name in WRITE_CALLS else "wait"
            return "copy" if self.ret.lstrip("-").isdigit() and int(self.ret) > 0 else ""
        return ""


def first_fd(args):
    """The descriptor a call works on: its first argument, "5<socket:[99]>" -> 5."""
    match = re.match(r"\s*(\d+)", args)
    return int(match.group(1)) if match else None


def min_complete(args):
    """io_uring_enter(fd, to_submit, min_complete, flags, ...): > 0 means it waits."""
    parts = [p.strip() for p in args.split(",")]
    try:
        return int(parts[2])
    except (IndexError, ValueError):
        return 0


@dataclass
class Lane:
    """One process or thread of the traced server."""
    pid: int
    role: str = "main"     # "main", "thread" or "process"
    parent: int = 0
    calls: list = field(default_factory=list)
    signals: dict = field(default_factory=lambda: defaultdict(int))
    signal_times: dict = field(default_factory=lambda: defaultdict(list))

    @property
    def label(self):
        return {"main": "main", "thread": "thread", "process": "child process"}[self.role] + " %d" % self.pid

    def sentence_subject(self, lanes):
        """"The main thread (pid 12)", "Thread 13", "Child process 14"."""
        if self.role != "main":
            return self.label[0].upper() + self.label[1:]
        threaded = any(lane.role == "thread" for lane in lanes)
        return "The main %s (pid %d)" % ("thread" if threaded else "process", self.pid)


class Trace:
    def __init__(self):
        self.lanes = {}
        self.pending = {}  # pid -> (name, start, args, first line) of an <unfinished ...> call
        self.start = None
        self.end = None
        self.previous_clock = None
        self.day_offset = 0.0
        self.lines = 0

    def lane(self, pid):
        if pid not in self.lanes:
            # The first pid is the server itself; a later one is a thread
            # until its clone line (often printed after its first call) says.
            self.lanes[pid] = Lane(pid, role="main" if not self.lanes else "thread")
        return self.lanes[pid]

    def clock(self, match):
        """-tt prints the time of day: add a day if the trace crossed midnight."""
        t = int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"]) + self.day_offset
        if self.previous_clock is not None and t < self.previous_clock - 43200:
            self.day_offset += 86400
            t += 86400
        self.previous_clock = t
        return t

    def feed(self, raw):
        match = LINE.match(raw)
        if not match:
            return
        self.lines += 1
        pid, t, rest = int(match["pid"]), self.clock(match), match["rest"]
        self.start = t if self.start is None else self.start
        self.end = t
        lane = self.lane(pid)
        if rest.startswith("---"):
            signal = rest.split()[1]
            lane.signals[signal] += 1
            lane.signal_times[signal].append(t)
            last = lane.calls[-1] if lane.calls else None
            if last and not last.signal and last.error.startswith(("EINTR", "ERESTART")):
                last.signal = signal  # strace prints the signal right after the call it cut short
        elif rest.startswith("+++"):
            self.finish_pending(pid, t)
        elif rest.startswith("<..."):
            self.resume(lane, pid, t, rest, raw)
        elif rest.endswith(UNFINISHED):
            started = CALL_START.match(rest[:-len(UNFINISHED)])
            if started:
                self.pending[pid] = (started["name"], t, started["args"], raw)
        else:
            self.complete(lane, pid, t, rest, raw)

    def complete(self, lane, pid, t, rest, raw):
        started = CALL_START.match(rest)
        result = RESULT.match(rest)
        if not started or not result:
            return
        call = make_call(pid, started["name"], t, result, raw)
        call.args = started["args"]
        lane.calls.append(call)
        self.note_clone(call)

    def resume(self, lane, pid, t, rest, raw):
        resumed = RESUMED.match(rest)
        if not resumed or pid not in self.pending:
            return
        name, start, args, first = self.pending.pop(pid)
        result = RESULT.match(resumed["rest"])
        if not result:
            return
        call = make_call(pid, name, start, result, first + "\n" + raw)
        call.args = args + result["head"]
        if not result["secs"]:
            call.seconds = t - start
        lane.calls.append(call)
        self.note_clone(call)

    def finish_pending(self, pid, t):
        """A process or thread ended inside a call (killed, or exit_group from
        another thread): the call lasted until then."""
        if pid in self.pending:
            name, start, args, first = self.pending.pop(pid)
            self.lanes[pid].calls.append(Call(pid, name, start, t - start, args, "?", "", first))

    def note_clone(self, call):
        """clone/fork returning a pid tells whether the new lane is a thread."""
        if call.name not in ("clone", "clone3", "fork", "vfork") or not call.ret.isdigit():
            return
        child = int(call.ret)
        lane = self.lane(child)
        lane.role = "thread" if "CLONE_THREAD" in call.args else "process"
        lane.parent = call.pid

    def close(self):
        for pid in list(self.pending):
            self.finish_pending(pid, self.end)
        self.mark_nonblocking()

    def process_of(self, pid):
        """Threads share their process's descriptors: the pid that owns them."""
        lane = self.lanes[pid]
        while lane.role == "thread" and lane.parent in self.lanes:
            lane = self.lanes[lane.parent]
        return lane.pid

    def mark_nonblocking(self):
        """Follows which descriptors are O_NONBLOCK (socket or accept4 with
        SOCK_NONBLOCK, fcntl F_SETFL) and marks the calls made on them."""
        nonblocking = defaultdict(set)  # process -> descriptors
        calls = sorted((c for lane in self.lanes.values() for c in lane.calls), key=lambda c: c.start)
        for call in calls:
            owner = nonblocking[self.process_of(call.pid)]
            fd = first_fd(call.args)
            call.nonblocking = fd in owner
            if call.name in ("clone", "clone3", "fork", "vfork") and call.ret.isdigit():
                if self.lanes[int(call.ret)].role == "process":
                    nonblocking[int(call.ret)] = set(owner)  # a child inherits the descriptors
            elif call.name in ("socket", "accept", "accept4") and call.ret.isdigit():
                flags = call.args if call.name != "accept" else ""
                (owner.add if "SOCK_NONBLOCK" in flags else owner.discard)(int(call.ret))
            elif call.name == "fcntl" and "F_SETFL" in call.args and fd is not None:
                (owner.add if "O_NONBLOCK" in call.args else owner.discard)(fd)
            elif call.name == "close" and fd is not None:
                owner.discard(fd)


def make_call(pid, name, start, result, raw):
    rest = result["rest"].strip()
    error = rest.split()[0] if rest.startswith("E") else ""
    seconds = float(result["secs"]) if result["secs"] else 0.0
    return Call(pid, name, start, seconds, "", result["ret"], error, raw)


def read_trace(path):
    trace = Trace()
    with open(path, errors="replace") as f:
        for raw in f:
            trace.feed(raw.rstrip("\n"))
    trace.close()
    return trace


def read_events(path):
    """The scenario's events: lines of "HH:MM:SS.ffffff<TAB>kind<TAB>client<TAB>label"."""
    events = []
    if not path:
        return events
    with open(path) as f:
        for raw in f:
            parts = raw.rstrip("\n").split("\t")
            if len(parts) == 4:
                h, m, s = parts[0].split(":")
                events.append({"t": int(h) * 3600 + int(m) * 60 + float(s), "kind": parts[1],
                               "client": int(parts[2]), "label": parts[3]})
    return events


# --- the numbers ------------------------------------------------------------

def syscall_table(calls):
    """{key: {calls, eagain, total, longest, blocked, phase}} for one lane (or all)."""
    table = {}
    for call in calls:
        row = table.setdefault(call.key, {"calls": 0, "eagain": 0, "total": 0.0, "longest": 0.0, "blocked": 0,
                                          "phases": defaultdict(int)})
        row["calls"] += 1
        row["eagain"] += call.eagain
        row["total"] += call.seconds
        row["longest"] = max(row["longest"], call.seconds)
        row["blocked"] += call.blocked
        row["phases"][call.phase] += 1
    for row in table.values():
        row["phase"] = describe_phases(row["phases"])
        row["phases"] = dict(row["phases"])
    return table


def describe_phases(phases):
    names = {"wait": "waited", "copy": "copied", "eagain": "EAGAIN", "room": "slow"}
    shown = [(names[p], n) for p, n in phases.items() if p in names and n]
    if len(shown) == 1:
        return {"waited": "waiting for data", "copied": "copying", "EAGAIN": "nothing there yet",
                "slow": "waiting for room, or descheduled"}[shown[0][0]]
    return ", ".join("%s %d" % pair for pair in shown)


def phase_summary(calls):
    """The two phases over a set of calls."""
    waits = [c for c in calls if c.phase == "wait"]
    copies = [c for c in calls if c.phase == "copy"]
    waited = defaultdict(lambda: [0, 0.0, 0, 0])  # name -> [blocked calls, seconds blocked, calls, cut short]
    for call in waits:
        entry = waited[call.name]
        entry[0] += call.blocked
        entry[1] += call.seconds if call.blocked else 0.0
        entry[2] += 1
        entry[3] += cut_short(call)
    copied = defaultdict(lambda: [0, 0.0, 0.0])  # name -> [calls, seconds, longest]
    for call in copies:
        entry = copied[call.name]
        entry[0] += 1
        entry[1] += call.seconds
        entry[2] = max(entry[2], call.seconds)
    return waited, copied


def cut_short(call):
    """A wait that a signal interrupted (a timer, a child's exit) and that the
    server will simply make again: one wait, shown as several calls."""
    return bool(call.signal) and call.signal not in STOP_SIGNALS and call.name not in SIGNAL_WAITS


def timer_period(times):
    """The period of a signal that came at regular intervals (a timer), or None."""
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    if len(gaps) < 2:
        return None
    typical = gaps[len(gaps) // 2]
    return typical if typical > 0 and all(abs(g - typical) <= 0.25 * typical for g in gaps) else None


def admission_delays(trace, events):
    """For each client's connect event, how long until the server's accept
    returned its connection (the first unclaimed successful accept after it)."""
    accepts = sorted(c.end for lane in trace.lanes.values() for c in lane.calls
                     if c.name in ("accept", "accept4") and c.ret.isdigit())
    delays = {}
    for event in sorted((e for e in events if e["kind"] == "connect"), key=lambda e: e["t"]):
        later = [t for t in accepts if t >= event["t"] - 0.0005]
        if later:
            delays[event["client"]] = later[0] - event["t"]
            accepts.remove(later[0])
    return delays


def echo_delays(events):
    """For each client, the longest time from one of its sends to the next echo it printed."""
    delays = {}
    for client in {e["client"] for e in events}:
        mine = sorted((e for e in events if e["client"] == client), key=lambda e: e["t"])
        for i, event in enumerate(mine):
            if event["kind"] == "send":
                echo = next((e for e in mine[i + 1:] if e["kind"] == "echo"), None)
                if echo:
                    delays[client] = max(delays.get(client, 0.0), echo["t"] - event["t"])
    return delays


# --- the words --------------------------------------------------------------

def seconds_text(s):
    if s >= 1:
        return "%.2f s" % s
    if s >= 0.001:
        return "%.1f ms" % (s * 1e3)
    return "%.0f µs" % (s * 1e6)


def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def verdict(trace, events):
    """One paragraph in plain words, every figure in it taken from the trace."""
    lanes = [lane for lane in trace.lanes.values() if lane.calls]
    all_calls = [c for lane in lanes for c in lane.calls]
    sentences = []
    for lane in lanes:
        waited, _ = phase_summary(lane.calls)
        blocked = sorted(((v[1], name, v[0]) for name, v in waited.items() if v[1] > 0), reverse=True)
        who = "The server" if len(lanes) == 1 else lane.sentence_subject(lanes)
        if lane.role != "main" and len(lanes) > 3:
            continue  # helpers are summed up below, not one by one
        if blocked:
            parts = []
            for s, name, n in blocked[:3]:
                cut = defaultdict(int)
                for call in lane.calls:
                    if call.name == name and call.phase == "wait" and call.blocked and cut_short(call):
                        cut[call.signal] += 1
                parts.append("%s in %s (%s%s)" % (
                    seconds_text(s), name, plural(n, "nap" if name in NAPS else "call"),
                    "" if not cut else ", %d of them cut short by a signal: %s" % (
                        sum(cut.values()), ", ".join("%s %d" % kv for kv in sorted(cut.items(), key=lambda kv: -kv[1])))))
            sentences.append("%s spent %s blocked." % (who, join_words(parts)))
        else:
            slow = sum(c.blocked for c in lane.calls)
            sentences.append("%s never waited: none of its calls slept%s." % (
                who, "" if not slow else " (%s that cannot sleep took over 1 ms: descheduled, not waiting)"
                % plural(slow, "call")))
    helpers = [lane for lane in lanes if lane.role != "main"]
    if len(lanes) > 3 and helpers:
        blocked_reads = [c for lane in helpers for c in lane.calls if c.name in READ_CALLS and c.phase == "wait"]
        sentences.append("%d %s did the waiting for it: %s blocked in read or recv, %s in all." % (
            len(helpers), "threads" if helpers[0].role == "thread" else "processes",
            plural(len(blocked_reads), "call"), seconds_text(sum(c.seconds for c in blocked_reads))))

    socket_reads = [c for c in all_calls if c.name in READ_CALLS and c.on_socket]
    socket_writes = [c for c in all_calls if c.name in WRITE_CALLS and c.on_socket]
    waiting_reads = [c for c in socket_reads if c.phase == "wait"]
    copying_reads = [c for c in socket_reads if c.phase == "copy"]
    if not socket_reads and not socket_writes:
        sentences.append("It made no read or write call on its sockets at all: the kernel copied the data, "
                         "and the process only collected the completions.")
    elif waiting_reads:
        readers = sorted({trace.lanes[c.pid].label for c in waiting_reads})
        sentences.append("%s on sockets waited for data (%s in all, in %s); %d only copied." % (
            plural(len(waiting_reads), "read"), seconds_text(sum(c.seconds for c in waiting_reads)),
            join_words(readers[:3] + (["%d more" % (len(readers) - 3)] if len(readers) > 3 else [])),
            len(copying_reads)))
    else:
        average = sum(c.seconds for c in copying_reads) / len(copying_reads) if copying_reads else 0.0
        sentences.append("It never blocked in read or recv: its %s that returned data took %s on average, "
                         "so they only copied what was already there." % (
                             plural(len(copying_reads), "read"), seconds_text(average)))

    eagain = sum(c.eagain for c in all_calls)
    if eagain:
        share = eagain / max(len(all_calls), 1)
        percent = "%.0f%%" % (share * 100)
        if percent == "100%" and eagain < len(all_calls):
            percent = "%.2f%%" % min(share * 100, 99.99)  # all but a few: not all
        sentences.append("%s came back with EAGAIN (%s of all its calls): asked before anything was there."
                         % (plural(eagain, "call"), percent))
    else:
        sentences.append("0 EAGAIN.")
    slow_writes = [c for c in all_calls if c.phase == "room"]
    if slow_writes:
        sentences.append("%s on a blocking socket took over 1 ms (longest %s): waiting for room in the send "
                         "buffer, or descheduled; that is not waiting for data." % (
                             plural(len(slow_writes), "write"), seconds_text(max(c.seconds for c in slow_writes))))
    signals = defaultdict(int)
    times = defaultdict(list)
    for lane in lanes:
        for name, n in lane.signals.items():
            signals[name] += n
            times[name] += lane.signal_times.get(name, [])
    notable = {k: v for k, v in signals.items() if k not in ("SIGTERM", "SIGINT", "SIGCHLD")}
    if notable:
        described = []
        for name, n in sorted(notable.items()):
            period = timer_period(sorted(times[name]))
            described.append("%s %d times%s" % (name, n, ", every %s (a timer)" % seconds_text(period) if period else ""))
        sentences.append("Signals received: %s." % ", ".join(described))
    if any(cut_short(c) for c in all_calls):
        sentences.append("A wait that a signal cuts short is made again at once: one wait, counted as several calls.")

    waits = admission_delays(trace, events)
    if len(waits) >= 2:
        late = max(waits, key=waits.get)
        if waits[late] > 0.05:
            sentences.append("Client %d waited %s in the listen queue before the server accepted it."
                             % (late, seconds_text(waits[late])))
    echoes = echo_delays(events)
    if echoes:
        slow = max(echoes, key=echoes.get)
        sentences.append("The slowest echo took %s (client %d)." % (seconds_text(echoes[slow]), slow))
    return " ".join(sentences)


def shorten(raw, limit=150):
    """Keeps the start of a trace line and its end (the result and the time)."""
    return raw if len(raw) <= limit else raw[:limit - 50] + " ... " + raw[-45:]


def join_words(parts):
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def print_report(trace, events, title, out=sys.stdout):
    w = out.write
    w("== where it blocks: %s ==\n" % title)
    w("%s lines of trace over %s. '>1ms': calls that took over 1 ms, which is blocking for a call\n"
      "that can sleep, and being descheduled for one that cannot (on an O_NONBLOCK descriptor).\n"
      % (trace.lines, seconds_text((trace.end or 0) - (trace.start or 0))))
    for lane in trace.lanes.values():
        if not lane.calls:
            continue
        w("\n%s%s\n" % (lane.label, " (started by %d)" % lane.parent if lane.parent else ""))
        w("  %-28s %7s %7s %10s %10s %8s  %s\n" % ("system call", "calls", "EAGAIN", "total", "longest",
                                                  ">1ms", "phase"))
        table = syscall_table(lane.calls)
        for key, row in sorted(table.items(), key=lambda kv: -kv[1]["total"]):
            w("  %-28s %7d %7d %10s %10s %8d  %s\n" % (key, row["calls"], row["eagain"], seconds_text(row["total"]),
                                                     seconds_text(row["longest"]), row["blocked"], row["phase"]))
        for signal, n in sorted(lane.signals.items()):
            w("  signal %-21s %7d\n" % (signal, n))

    all_calls = [c for lane in trace.lanes.values() for c in lane.calls]
    waited, copied = phase_summary(all_calls)
    w("\nPhase 1, waiting for the data:\n")
    if not any(v[0] for v in waited.values()):
        w("  no call ever slept waiting\n")
    for name, (blocked, seconds, calls, cut) in sorted(waited.items(), key=lambda kv: -kv[1][1]):
        what = "waiting for time, not data" if name in NAPS else "blocked"
        w("  %-16s %d of %d calls %s, %s in all%s\n" % (name, blocked, calls, what, seconds_text(seconds),
                                                      " (%d cut short by a signal, then made again)" % cut if cut else ""))
    w("Phase 2, copying the data between kernel and process:\n")
    if not copied:
        w("  no read or write call on a socket: the kernel did the copy\n")
    for name, (calls, seconds, longest) in sorted(copied.items()):
        w("  %-16s %s that did not block, %s each on average (longest %s)\n"
          % (name, plural(calls, "call"), seconds_text(seconds / calls), seconds_text(longest)))

    longest = sorted((c for c in all_calls if c.blocked and c.phase == "wait"), key=lambda c: -c.seconds)[:4]
    if longest:
        w("\nThe longest waits, as strace shows them:\n")
        for call in sorted(longest, key=lambda c: c.start):
            for raw in call.line.split("\n"):
                w("  %s\n" % shorten(raw))
    w("\nVerdict: %s\n" % verdict(trace, events))


def summary_json(trace, events, title):
    all_calls = [c for lane in trace.lanes.values() for c in lane.calls]
    waited, copied = phase_summary(all_calls)
    return {
        "title": title,
        "lines": trace.lines,
        "seconds": (trace.end or 0) - (trace.start or 0),
        "lanes": [{"pid": lane.pid, "role": lane.role, "parent": lane.parent,
                   "signals": dict(lane.signals), "syscalls": syscall_table(lane.calls)}
                  for lane in trace.lanes.values() if lane.calls],
        "totals": syscall_table(all_calls),
        "waited": {name: {"blocked": v[0], "seconds": v[1], "calls": v[2], "cut_short": v[3]}
                   for name, v in waited.items()},
        "copied": {name: {"calls": v[0], "seconds": v[1], "longest": v[2]} for name, v in copied.items()},
        "admission_delays": admission_delays(trace, events),
        "echo_delays": echo_delays(events),
        "verdict": verdict(trace, events),
    }


# --- the picture ------------------------------------------------------------

WAIT_COLOUR, READ_COLOUR, NAP_COLOUR, OTHER_COLOUR = "#4e79a7", "#f28e2b", "#9c755f", "#888888"
CONNECTED_COLOUR, QUEUED_COLOUR, ECHO_WAIT_COLOUR = "#d9d9d9", "#edc948", "#e15759"


def span_colour(call):
    if call.name in NAPS:
        return NAP_COLOUR
    if call.phase == "wait":
        return READ_COLOUR if call.name in IO_CALLS else WAIT_COLOUR
    return OTHER_COLOUR


def client_lanes(trace, events):
    """The scenario seen from the clients: connected from connect to exit,
    waiting in the listen queue until accept, waiting for each echo."""
    queued = admission_delays(trace, events)
    lanes = []
    for client in sorted({e["client"] for e in events}):
        mine = sorted((e for e in events if e["client"] == client), key=lambda e: e["t"])
        first, last = mine[0]["t"], max(e["t"] for e in mine)
        spans = [(first, last, "connected", CONNECTED_COLOUR, "client %d connected" % client)]
        if client in queued:
            spans.append((first, first + queued[client], "queued", QUEUED_COLOUR,
                          "client %d waited %s before accept" % (client, seconds_text(queued[client]))))
        for i, event in enumerate(mine):
            echo = next((e for e in mine[i + 1:] if e["kind"] == "echo"), None) if event["kind"] == "send" else None
            if echo:
                spans.append((event["t"], echo["t"], "awaiting echo", ECHO_WAIT_COLOUR,
                              "client %d waited %s for its echo" % (client, seconds_text(echo["t"] - event["t"]))))
        lanes.append(("client %d" % client, spans, []))
    return lanes


def draw_timeline(trace, events, title, path):
    lanes = client_lanes(trace, events)
    for lane in trace.lanes.values():
        if not lane.calls:
            continue
        spans = [(c.start, c.end, c.name, span_colour(c),
                  "%s %s: %s" % (c.name, seconds_text(c.seconds), c.line.split("\n")[-1][:200]))
                 for c in lane.calls if c.blocked]
        ticks = [c.start for c in lane.calls if not c.blocked]
        eagain = sum(c.eagain for c in lane.calls)
        signals = ["%s %d" % kv for kv in sorted(lane.signals.items()) if kv[0] not in STOP_SIGNALS]
        count = ", ".join(["%d calls" % len(lane.calls)] + (["%d EAGAIN" % eagain] if eagain else []) + signals)
        lanes.append((lane.label + "\n" + count, spans, ticks))
    marks = [(e["t"], e["label"]) for e in events if e["kind"] != "echo"]
    used = {colour for _, spans, _ in lanes for _, _, _, colour, _ in spans}
    used |= {"#333"} if any(ticks for _, _, ticks in lanes) else set()
    legend = [(colour, meaning) for colour, meaning in [
        (WAIT_COLOUR, "blocked waiting"), (READ_COLOUR, "read/write blocked"), (NAP_COLOUR, "napping"),
        (OTHER_COLOUR, "over 1 ms, not waiting for data"), ("#333", "short calls (darker: more)"),
        (QUEUED_COLOUR, "client in listen queue"), (ECHO_WAIT_COLOUR, "client awaits echo")] if colour in used]
    picture = svg.timeline("Where it blocks: " + title, lanes, marks, trace.start or 0, trace.end or 1, legend)
    picture.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--events", help="the scenario's events (written by scenario.py)")
    parser.add_argument("--title", default="server")
    parser.add_argument("--svg", help="write the timeline here")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    trace = read_trace(args.trace)
    if not trace.lanes:
        sys.exit("strace_report: no system calls in %s" % args.trace)
    events = read_events(args.events)
    print_report(trace, events, args.title)
    if args.svg:
        draw_timeline(trace, events, args.title, args.svg)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary_json(trace, events, args.title), f, indent=1)


if __name__ == "__main__":
    main()
