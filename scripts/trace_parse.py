"""Reading a trace written by `strace -f -tt -T -y`: its calls, its lanes
(one per process or thread), and what each call was. No words here: the
report (strace_report.py) says what the numbers mean.

    trace = read_trace("trace-multiplexing-epoll.strace")
    for lane in trace.lanes.values():
        for call in lane.calls:
            call.name, call.seconds, call.kind, call.slept

Each call gets one kind, so the counts of a row always add up:

  wait         a wait for readiness, a signal or completions (select, poll,
               epoll_wait, sigsuspend, sigtimedwait, io_uring_enter with
               min_complete > 0), whether it slept or found something at once
  timeout      rt_sigtimedwait's EAGAIN: its timeout expired, a whole wait
  submit       io_uring_enter that only submitted (min_complete 0)
  nap          nanosleep, clock_nanosleep: waiting for time
  accept_wait  accept on a blocking listener that slept: waiting for a connection
  accepted     accept that took a connection already queued
  read_wait    a read on a blocking socket that slept, then copied the data
  copied       a read that returned data already there (phase 2 only)
  eof          a read that returned 0: the peer had closed (end of file)
  early        EAGAIN: asked before anything was there
  drained      the first EAGAIN from a descriptor after it returned data (or
               a connection), with no wait in between: the call that shows
               it is drained
  written      a write that copied bytes out
  slow_write   a write on a blocking socket that took over 1 ms: waiting for
               room in the send buffer, or descheduled
  full         a write's EAGAIN: no room in the send buffer
  espipe       pread/pwrite on a socket, refused with ESPIPE (glibc's AIO
               tries them first, then read/write)
  cut          never returned: the process or thread ended inside it
  failed       another error
  ""           anything else (socket, close, fcntl, epoll_ctl, clone...)

call.slept: the call took over 1 ms and could sleep (a wait, a nap, or an
IO call on a blocking descriptor). A call on an O_NONBLOCK descriptor
cannot sleep: over 1 ms, it was descheduled (strace slows every call).
"""
import re
from collections import defaultdict
from dataclasses import dataclass, field

SLEPT_SECONDS = 0.001  # a call that could sleep and took longer than this slept

# Calls whose purpose is to wait until something happens, and what for.
READINESS_WAITS = {"select", "pselect6", "poll", "ppoll", "epoll_wait", "epoll_pwait", "epoll_pwait2"}
SIGNAL_WAITS = {"rt_sigsuspend", "sigsuspend", "pause", "rt_sigtimedwait"}  # a signal is what they wait for
NAPS = {"nanosleep", "clock_nanosleep"}  # waiting for time, not for data
ACCEPTS = {"accept", "accept4"}
WAIT_CALLS = READINESS_WAITS | SIGNAL_WAITS | {"io_uring_enter"}
STOP_SIGNALS = {"SIGTERM", "SIGINT"}  # how trace.sh ends the server: the last wait is cut, not made again
READ_CALLS = {"read", "readv", "recv", "recvfrom", "recvmsg", "pread64", "preadv"}
WRITE_CALLS = {"write", "writev", "send", "sendto", "sendmsg", "pwrite64", "pwritev"}
IO_CALLS = READ_CALLS | WRITE_CALLS
SPAWNS = {"clone", "clone3", "fork", "vfork"}

# "1234  12:00:00.123456 rest"
LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d\.\d+) (?P<rest>.*)$")
# "read(5<socket:[99]>, ..., 16384) = 3 <0.000012>", also "= -1 EAGAIN (...)", "= ? ERESTARTSYS (...)"
RESULT = re.compile(r"^(?P<head>.*)\)\s+=\s+(?P<ret>-?\d+|\?|0x[0-9a-f]+)(?:<[^>]*>)?(?P<rest>.*?)"
                    r"(?:\s+<(?P<secs>\d+\.\d+)>)?$")
CALL_START = re.compile(r"^(?P<name>\w+)\((?P<args>.*)$")
RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<rest>.*)$")
UNFINISHED = " <unfinished ...>"

# io_uring_setup's flags (include/uapi/linux/io_uring.h), for those strace prints as hex.
URING_SETUP_FLAGS = {0x2: "IORING_SETUP_SQPOLL", 0x100: "IORING_SETUP_COOP_TASKRUN",
                     0x200: "IORING_SETUP_TASKRUN_FLAG", 0x1000: "IORING_SETUP_SINGLE_ISSUER",
                     0x2000: "IORING_SETUP_DEFER_TASKRUN"}


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
    kind: str = ""        # what the call was (see the module's docstring)

    @property
    def end(self):
        return self.start + self.seconds

    @property
    def over_1ms(self):
        return self.seconds > SLEPT_SECONDS

    @property
    def can_sleep(self):
        if self.name in WAIT_CALLS or self.name in NAPS:
            return self.name != "io_uring_enter" or min_complete(self.args) > 0
        return (self.name in IO_CALLS or self.name in ACCEPTS) and not self.nonblocking

    @property
    def slept(self):
        """Took over 1 ms in a call that can sleep: it was off the processor, waiting."""
        return self.over_1ms and self.can_sleep

    @property
    def on_socket(self):
        """The first argument is a socket (strace -y decorates descriptors)."""
        first = self.args.split(",", 1)[0]
        return "<" not in first or "<socket:" in first or "<TCP" in first or "<UNIX" in first

    @property
    def eagain(self):
        """Asked before anything was there, or after all was taken. (rt_sigtimedwait's
        EAGAIN is different: its timeout expired, after a whole wait.)"""
        return self.error == "EAGAIN" and self.name != "rt_sigtimedwait"

    @property
    def key(self):
        """The row this call is counted in: reads of files and pipes (the
        loader, the log) are kept apart from reads of sockets."""
        if self.name in IO_CALLS and not self.on_socket:
            return self.name + " (not a socket)"
        return self.name

    @property
    def returned(self):
        """The value returned, as a number, or None (an error, or it never returned)."""
        return int(self.ret) if self.ret.isdigit() else None


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


def uring_setup_flags(args):
    """The flag names of an io_uring_setup call, hex leftovers decoded."""
    match = re.search(r"flags=([^,]*)", args)
    names = set()
    for word in (match.group(1).split("|") if match else []):
        word = word.strip()
        if word.startswith("0x"):
            value = int(word, 16)
            names |= {name for bit, name in URING_SETUP_FLAGS.items() if value & bit}
        elif word:
            names.add(word)
    return names


@dataclass
class Lane:
    """One process or thread of the traced server."""
    pid: int
    role: str = "main"     # "main", "thread" or "process"
    parent: int = 0
    calls: list = field(default_factory=list)
    signals: dict = field(default_factory=lambda: defaultdict(int))
    signal_times: dict = field(default_factory=lambda: defaultdict(list))


class Trace:
    def __init__(self):
        self.lanes = {}
        self.pending = {}  # pid -> (name, start, args, first line) of an <unfinished ...> call
        self.start = None
        self.end = None
        self.previous_clock = None
        self.day_offset = 0.0
        self.lines = 0

    @property
    def calls(self):
        return [c for lane in self.lanes.values() for c in lane.calls]

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
        if call.name not in SPAWNS or not call.ret.isdigit():
            return
        child = int(call.ret)
        lane = self.lane(child)
        lane.role = "thread" if "CLONE_THREAD" in call.args else "process"
        lane.parent = call.pid

    def close(self):
        for pid in list(self.pending):
            self.finish_pending(pid, self.end)
        self.mark_nonblocking()
        for lane in self.lanes.values():
            classify(lane.calls)

    def process_of(self, pid):
        """Threads share their process's descriptors: the pid that owns them."""
        lane = self.lanes[pid]
        while lane.role == "thread" and lane.parent in self.lanes:
            lane = self.lanes[lane.parent]
        return lane.pid

    def mark_nonblocking(self):
        """Follows which descriptors are O_NONBLOCK (socket or accept4 with
        SOCK_NONBLOCK, fcntl F_SETFL, ioctl FIONBIO) and marks the calls made on them."""
        nonblocking = defaultdict(set)  # process -> descriptors
        for call in sorted(self.calls, key=lambda c: c.start):
            owner = nonblocking[self.process_of(call.pid)]
            fd = first_fd(call.args)
            call.nonblocking = fd in owner
            if call.name in SPAWNS and call.ret.isdigit():
                if self.lanes[int(call.ret)].role == "process":
                    nonblocking[int(call.ret)] = set(owner)  # a child inherits the descriptors
            elif call.name in ("socket",) + tuple(ACCEPTS) and call.ret.isdigit():
                flags = call.args if call.name != "accept" else ""
                (owner.add if "SOCK_NONBLOCK" in flags else owner.discard)(int(call.ret))
            elif call.name == "fcntl" and "F_SETFL" in call.args and fd is not None:
                (owner.add if "O_NONBLOCK" in call.args else owner.discard)(fd)
            elif call.name == "ioctl" and "FIONBIO" in call.args and fd is not None:
                (owner.discard if "[0]" in call.args else owner.add)(fd)  # Python's setblocking()
            elif call.name == "close" and fd is not None:
                owner.discard(fd)


def classify(calls):
    """Gives each call of one lane its kind. An EAGAIN is 'drained' when the
    same descriptor gave something since the lane last waited, 'early' when not."""
    gave = set()  # descriptors that returned data or a connection, and no EAGAIN since
    for call in calls:
        call.kind = kind_of(call, gave)
        fd = first_fd(call.args)
        if call.kind in ("wait", "nap"):
            gave.clear()
        elif call.kind in ("read_wait", "copied", "accepted", "accept_wait"):
            gave.add((call.name in ACCEPTS, fd))
        elif call.kind == "drained":
            gave.discard((call.name in ACCEPTS, fd))  # the next EAGAIN there is a question asked again


def kind_of(call, gave):
    name = call.name
    if name in IO_CALLS and not call.on_socket:
        return ""
    if call.ret == "?" and not call.error:
        return "cut"
    if name == "rt_sigtimedwait" and call.error == "EAGAIN":
        return "timeout"
    if name in WAIT_CALLS:
        return "wait" if name != "io_uring_enter" or min_complete(call.args) > 0 else "submit"
    if name in NAPS:
        return "nap"
    if name in ACCEPTS or name in IO_CALLS:
        if call.error == "EAGAIN":
            if name in WRITE_CALLS:
                return "full"
            return "drained" if (name in ACCEPTS, first_fd(call.args)) in gave else "early"
        if call.error == "ESPIPE":
            return "espipe"
        if call.error.startswith(("ERESTART", "EINTR")) or call.ret == "?":
            return "accept_wait" if name in ACCEPTS else ("read_wait" if name in READ_CALLS else "slow_write")
        if call.returned is None:
            return "failed"
    if name in ACCEPTS:
        return "accept_wait" if call.slept else "accepted"
    if name in READ_CALLS:
        if call.returned == 0:
            return "eof"
        return "read_wait" if call.slept else "copied"
    if name in WRITE_CALLS:
        return "slow_write" if call.slept else "written"
    return ""


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
