#!/usr/bin/env python3
"""Reads a trace written by `strace -f -tt -T -y` and says where the server waited.

    strace_report.py TRACE [--events FILE] [--title TEXT] [--svg FILE] [--json FILE] [--lang en|zh]

The vocabulary (docs/models.md): receiving has two phases, 1. waiting for
the data (a peer must send something) and 2. copying it between kernel
and process; sending has the same two the other way round (waiting for
room in the send buffer, copying out). For each model: does the thread
sleep in phase 1, and is it held in the call during phase 2?

Prints, per process or thread, a table of its system calls (calls, EAGAIN,
total and longest time inside, how many took over 1 ms and how many of
those slept, what the calls were); then phase 1 and phase 2 over the whole
server; the longest waits as strace printed them; notes on the rows and
results a reader may not know; and a verdict computed from those numbers.
The trace parsing is in trace_parse.py; this file says what it means.

--lang zh (or LC_ALL / LC_MESSAGES / LANG starting with zh) prints it in
Chinese, with the same numbers. --svg draws the timeline (one lane per
process or thread: the calls that slept as spans, the calls that copied
data as ticks, busy stretches of calls that never sleep as a band; the
scenario's events from --events marked). --json writes the numbers:

  title, lang, lines (of trace), seconds (that it spans)
  lanes        [{pid, role (main|thread|process), parent, signals {NAME: n},
                 syscalls {ROW: row}}], a ROW being the call's name, or
               "NAME (not a socket)" for reads and writes of files and pipes
  totals       {ROW: row} over every lane; a row is {calls, eagain, total,
               longest (seconds), over_1ms, blocked (calls that slept: never
               one that could not sleep), kinds {KIND: n} (the kinds of
               trace_parse.py, adding up to calls), phase (the kinds in words)}
  waited       phase 1: {NAME: {calls, blocked (slept), seconds (asleep),
               cut_short (by a signal, then made again), waits_for (data,
               connection, readiness, signal, completion, time)}}
  copied       phase 2: {NAME: {calls, seconds, longest, direction (in|out)}}
  reads        the socket reads added up: {calls, read_wait, copied, eof,
               early, drained, failed, cut, espipe}
  features     what the trace shows of the model: {uring_setup [flag names],
               edge_triggered, sigio, helper_threads}
  admission_delays, echo_delays  {client: seconds} from the scenario's events
  sentences    the verdict as [[message key, {parameters}]], language-free
  verdict      the verdict in the report's language
"""
import argparse
import json
import os
import re
import string
import sys
from collections import defaultdict

import svg
from trace_parse import (ACCEPTS, IO_CALLS, first_fd, NAPS, READ_CALLS, READINESS_WAITS, SIGNAL_WAITS, STOP_SIGNALS,
                         WRITE_CALLS, read_events, read_trace, uring_setup_flags)

__all__ = ["read_trace", "read_events", "syscall_table", "phase_summary", "verdict", "summary_json",
           "print_report", "draw_timeline", "IO_CALLS"]

LANGUAGES = ("en", "zh")


def language_from_environment(environ=os.environ):
    """zh when the locale asks for Chinese (LC_ALL, then LC_MESSAGES, then LANG)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


# --- the numbers ------------------------------------------------------------

def waits_for(call_name):
    """What a call that sleeps is waiting for."""
    if call_name in READINESS_WAITS:
        return "readiness"
    if call_name in ACCEPTS:
        return "connection"
    if call_name in NAPS:
        return "time"
    if call_name == "io_uring_enter" or call_name == "rt_sigtimedwait":
        return "completion"
    if call_name in SIGNAL_WAITS:
        return "signal"
    if call_name in WRITE_CALLS:
        return "room"
    return "data"


def in_phase_1(call):
    """A call that is there to wait (a wait, a nap, a blocking accept), or a
    blocking read or write that slept."""
    if not call.can_sleep or call.kind in ("", "submit", "espipe") or call.name in WRITE_CALLS:
        return False  # a slow write is output's wait for room, or descheduling: said apart
    return call.name not in IO_CALLS or call.slept


def syscall_table(calls):
    """{row: {calls, eagain, total, longest, over_1ms, blocked, kinds, phase}} for one lane (or all)."""
    table = {}
    for call in calls:
        row = table.setdefault(call.key, {"calls": 0, "eagain": 0, "total": 0.0, "longest": 0.0, "over_1ms": 0,
                                          "blocked": 0, "kinds": defaultdict(int)})
        row["calls"] += 1
        row["eagain"] += call.eagain
        row["total"] += call.seconds
        row["longest"] = max(row["longest"], call.seconds)
        row["over_1ms"] += call.over_1ms
        row["blocked"] += call.slept
        if call.kind:
            row["kinds"][call.kind] += 1
    for row in table.values():
        row["kinds"] = dict(row["kinds"])
    return table


def phase_summary(calls):
    """Phase 1 ({name: {calls, blocked, seconds, cut_short, waits_for}}) and
    phase 2 ({name: {calls, seconds, longest, direction}}) over a set of calls."""
    waited, copied = {}, {}
    for call in calls:
        if in_phase_1(call):
            entry = waited.setdefault(call.name, {"calls": 0, "blocked": 0, "seconds": 0.0, "cut_short": 0,
                                                  "waits_for": waits_for(call.name)})
            entry["calls"] += 1
            entry["blocked"] += call.slept
            entry["seconds"] += call.seconds if call.slept else 0.0
            entry["cut_short"] += cut_short(call)
        if call.kind in ("copied", "written"):
            entry = copied.setdefault(call.name, {"calls": 0, "seconds": 0.0, "longest": 0.0,
                                                  "direction": "in" if call.name in READ_CALLS else "out"})
            entry["calls"] += 1
            entry["seconds"] += call.seconds
            entry["longest"] = max(entry["longest"], call.seconds)
    return waited, copied


def read_counts(calls):
    """The reads on sockets, added up by what each one did."""
    counts = defaultdict(int)
    for call in calls:
        if call.name in READ_CALLS and call.on_socket:
            counts["calls"] += 1
            counts[call.kind or "other"] += 1
    return dict(counts)


def features(trace):
    """What the trace shows of the model, beyond the counts."""
    calls = trace.calls
    setup = next((c for c in calls if c.name == "io_uring_setup"), None)
    return {
        "uring_setup": sorted(uring_setup_flags(setup.args)) if setup else None,
        "edge_triggered": any(c.name == "epoll_ctl" and "EPOLLET" in c.args for c in calls),
        "sigio": sum(lane.signals.get("SIGIO", 0) for lane in trace.lanes.values()),
        "helper_threads": [lane.pid for lane in trace.lanes.values()
                           if lane.role == "thread" and any(c.kind == "read_wait" for c in lane.calls)],
    }


def undrained_reads(calls):
    """Reads that filled the buffer they were given, after which the lane went
    back to its wait without learning that the socket was drained (no EAGAIN,
    no end of file): (how many, the wait's name)."""
    full, count, wait = {}, 0, ""
    for call in sorted(calls, key=lambda c: c.start):
        fd = first_fd(call.args)
        if call.kind == "wait":
            count += len(full)
            full.clear()
            wait = wait or call.name
        elif call.name in READ_CALLS and call.kind in ("copied", "read_wait"):
            asked = re.search(r",\s*(\d+)\)?(?:\s+=.*)?$", call.args)  # the count asked for, the last argument
            if asked and call.returned == int(asked.group(1)):
                full[fd] = call
            else:
                full.pop(fd, None)  # a short read: drained, epoll(7)
        elif call.name in READ_CALLS and call.kind in ("drained", "early", "eof"):
            full.pop(fd, None)
    return count, wait


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
    accepts = sorted(c.end for c in trace.calls if c.name in ACCEPTS and c.ret.isdigit())
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
#
# Every sentence is a message key and its parameters; render() puts them in
# one language. Numbers are formatted the same way in both, so a test can
# check that the English and the Chinese carry the same figures.
# In a template, {n:s} is "s" unless n is 1 (English plurals), {t:time}
# formats seconds, {names:list} joins a list.

MESSAGES = {
    # the report's frame
    "heading": ("== where it waits: {title} ==", "== 在哪里等待：{title} =="),
    "intro": (
        "{lines} lines of trace over {span:time}. '>1ms': calls that took over 1 ms; 'slept': those of them\n"
        "that could sleep (a wait, or IO on a blocking descriptor). On an O_NONBLOCK descriptor a call\n"
        "cannot sleep: over 1 ms, it was descheduled (strace slows every call), not waiting.",
        "共 {lines} 行跟踪记录，历时 {span:time}。'>1ms'：耗时超过 1 ms 的调用；'睡眠'：其中能够睡眠的调用\n"
        "（等待类调用，或阻塞描述符上的 IO）。O_NONBLOCK 描述符上的调用不会睡眠：超过 1 ms\n"
        "是被调度出去了（strace 会拖慢每个调用），而不是在等待。"),
    "columns": (("system call", "calls", "EAGAIN", "total", "longest", ">1ms", "slept", "what the calls were"),
                ("系统调用", "调用数", "EAGAIN", "总耗时", "最长", ">1ms", "睡眠", "这些调用做了什么")),
    "lane_main": ("main {pid}", "主线程 {pid}"),
    "lane_main_process": ("main {pid}", "主进程 {pid}"),
    "lane_thread": ("thread {pid}", "线程 {pid}"),
    "lane_process": ("child process {pid}", "子进程 {pid}"),
    "started_by": (" (started by {parent})", "（由 {parent} 创建）"),
    "signal_row": ("signal", "信号"),
    "other_waits_title": ("Waiting, but not for data:", "等待，但不是在等数据："),
    "phase1_title": ("Phase 1, waiting for the data:", "阶段一，等待数据："),
    "phase1_room": ("  {name:16} {n} call{n:s} on a blocking socket took over 1 ms (longest {longest:time}): output's "
                    "phase 1, waiting for room in the send buffer, or descheduled",
                    "  {name:16} 阻塞套接字上有 {n} 次调用超过 1 ms（最长 {longest:time}）：输出方向的阶段一，"
                    "等待发送缓冲区的空间，或者被调度出去了"),
    "phase1_none": ("  no call slept waiting for data", "  没有任何调用睡眠等待数据"),
    "phase1_row": ("  {name:16} {slept} of {calls} call{calls:s} slept, {t:time} in all: {what}{cut}",
                   "  {name:16} {calls} 次调用中 {slept} 次睡眠，共 {t:time}：{what}{cut}"),
    "phase1_cut": (" ({n} cut short by a signal, then made again)", "（其中 {n} 次被信号打断后重新发起）"),
    "phase2_title": ("Phase 2, copying between kernel and process, in (read) and out (write); the thread is held "
                     "in the call until the copy is done:",
                     "阶段二，在内核与进程之间拷贝数据，读是拷入、写是拷出；线程停在调用里，直到拷贝完成："),
    "phase2_row_in": ("  {name:16} {calls} call{calls:s} copied data that was already there, {avg:time} each on average "
                      "(longest {longest:time})",
                      "  {name:16} {calls} 次调用把已到达的数据拷入进程，平均每次 {avg:time}（最长 {longest:time}）"),
    "phase2_row_out": ("  {name:16} {calls} call{calls:s} copied out, {avg:time} each on average (longest {longest:time})",
                       "  {name:16} {calls} 次调用把数据拷出到内核，平均每次 {avg:time}（最长 {longest:time}）"),
    "phase2_read_wait": ("  {name:16} {calls} call{calls:s} waited for the data, then copied it in the same call",
                         "  {name:16} {calls} 次调用先等到数据，再在同一个调用里拷贝"),
    "phase2_uring": ("  no read or write call on a socket: each recv and send was an io_uring request, and the copy "
                     "ran inside io_uring_enter\n  (inline at submit, or as task work); strace cannot see it, its cost "
                     "is in io_uring_enter's time",
                     "  套接字上没有 read 或 write 调用：每次 recv 和 send 都是 io_uring 请求，拷贝发生在 io_uring_enter 内部\n"
                     "  （提交时直接完成，或作为 task work 执行）；strace 看不到它，它的开销计入 io_uring_enter 的耗时"),
    "phase2_none": ("  no read or write call on a socket returned data", "  套接字上没有返回数据的 read 或 write 调用"),
    "longest_title": ("The longest waits, as strace shows them:", "最长的几次等待，strace 原文："),
    "notes_title": ("What some rows and results mean:", "部分行和返回值的含义："),
    "verdict_title": ("Verdict: ", "结论："),

    # what a sleeping call waits for
    "for_data": ("waiting for data", "等待数据"),
    "for_readiness": ("waiting until some socket is ready", "等待某个套接字就绪"),
    "for_connection": ("waiting for a connection, not for data", "等待连接，而不是等待数据"),
    "for_time": ("waiting for time, not for data", "等待时间流逝，而不是等待数据"),
    "for_signal": ("waiting for a signal", "等待信号"),
    "for_completion": ("waiting for completions", "等待完成通知"),
    "for_room": ("waiting for room in the send buffer", "等待发送缓冲区有空间"),

    # the kinds of calls, for the table's last column
    "kind_wait": ("waited", "等待"),
    "kind_timeout": ("timed out", "超时"),
    "kind_submit": ("submitted only", "仅提交"),
    "kind_nap": ("napped", "休眠"),
    "kind_accept_wait": ("waited for a connection", "等到连接"),
    "kind_accepted": ("took a queued connection", "取走已排队的连接"),
    "kind_read_wait": ("waited, then copied", "先等待再拷贝"),
    "kind_copied": ("copied", "拷贝"),
    "kind_eof": ("end of file", "读到文件结束"),
    "kind_early": ("EAGAIN (nothing yet)", "EAGAIN（还没有数据）"),
    "kind_drained": ("EAGAIN (drained)", "EAGAIN（已读空）"),
    "kind_written": ("copied out", "拷出"),
    "kind_slow_write": ("over 1 ms (room or descheduled)", "超过 1 ms（等空间或被调度出去）"),
    "kind_full": ("EAGAIN (no room)", "EAGAIN（没有空间）"),
    "kind_espipe": ("ESPIPE (then read/write)", "ESPIPE（随后改用 read/write）"),
    "kind_cut": ("cut by the exit", "被退出打断"),
    "kind_failed": ("error", "出错"),

    # notes under the table
    "note_not_socket": ("'(not a socket)': reads and writes of files and pipes (the loader reading the C library "
                        "at start, the server's log on stderr), not part of the echo.",
                        "'(not a socket)'：对文件和管道的读写（启动时加载器读取 C 库，服务器写到 stderr 的日志），不属于回显。"),
    "note_restart": ("ERESTARTSYS, ERESTARTNOHAND, ERESTART_RESTARTBLOCK: a signal interrupted the call; strace "
                     "shows the kernel's own code, never seen by the process. ERESTARTSYS: the call is made again if "
                     "no handler ran or the handler has SA_RESTART, otherwise the process sees EINTR. ERESTARTNOHAND: "
                     "made again only if no handler ran, else EINTR (sigsuspend always ends that way). "
                     "ERESTART_RESTARTBLOCK: a sleep resumed for the time left.",
                     "ERESTARTSYS、ERESTARTNOHAND、ERESTART_RESTARTBLOCK：调用被信号打断，strace 显示的是内核内部的返回码，"
                     "进程本身看不到。ERESTARTSYS：没有处理函数运行、或处理函数设置了 SA_RESTART 时，调用会重新发起，"
                     "否则进程看到 EINTR。ERESTARTNOHAND：只有没有处理函数运行时才重新发起，否则是 EINTR"
                     "（sigsuspend 总是这样返回）。ERESTART_RESTARTBLOCK：休眠按剩余时间继续。"),
    "note_uring_enter": ("io_uring_enter(fd, to_submit, min_complete, flags, ...) returns how many submission "
                         "entries it consumed, not bytes; min_complete 1 with GETEVENTS means it may sleep until a "
                         "completion arrives.",
                         "io_uring_enter(fd, to_submit, min_complete, flags, ...) 的返回值是它取走的提交队列项数，不是字节数；"
                         "min_complete 为 1 且带 GETEVENTS 表示它可能睡眠，直到有完成事件。"),
    "note_sigtimedwait": ("rt_sigtimedwait's EAGAIN is its timeout: a whole wait with no signal, not a question "
                          "asked too early.",
                          "rt_sigtimedwait 返回 EAGAIN 表示超时：完整地等了一段时间而没有信号，而不是问得太早。"),
    "note_espipe": ("pread64/pwrite64 failing with ESPIPE: glibc's AIO helper first tries the request's offset, "
                    "which a socket refuses, then falls back to read/write.",
                    "pread64/pwrite64 返回 ESPIPE：glibc 的 AIO 辅助线程先按请求的偏移量读写，套接字不支持偏移，"
                    "于是改用 read/write。"),
    "note_eof": ("A read that returns 0 found the end of file: the peer had closed its side.",
                 "返回 0 的 read 读到了文件结束：对端已经关闭了它那一侧。"),

    # the verdict, sentence by sentence
    "who_server": ("The server", "服务器"),
    "who_main_thread": ("The main thread (pid {pid})", "主线程（pid {pid}）"),
    "who_main_process": ("The main process (pid {pid})", "主进程（pid {pid}）"),
    "who_thread": ("Thread {pid}", "线程 {pid} "),
    "who_process": ("Child process {pid}", "子进程 {pid} "),
    "slept_part": ("{t:time} in {name} {why} ({n} {what}{n:s}{cut})", "在 {name} 中睡眠{why}，共 {t:time}（{n} 次{what}{cut}）"),
    "call_word": ("call", "调用"),
    "nap_word": ("nap", "休眠"),
    "cut_part": (", {n} of them cut short by a signal: {signals}", "，其中 {n} 次被信号打断：{signals}"),
    "lane_slept": ("{who} slept {parts:list}.", "{who}{parts:list}。"),
    "lane_never_slept": ("{who} never slept: no call of its waited for anything.",
                         "{who}从不睡眠：它的调用没有一个在等待。"),
    "lane_descheduled": ("{who} never slept; {n} of its calls that cannot sleep took over 1 ms (descheduled, "
                         "not waiting).",
                         "{who}从不睡眠；其中 {n} 个不会睡眠的调用超过了 1 ms（被调度出去，而不是在等待）。"),
    "helpers": ("{n} helper {what} did the waiting for it: {reads} read{reads:s} slept for the data, {t:time} "
                "in all.",
                "{n} 个辅助{what}替它等待：{reads} 次 read 睡眠等待数据，共 {t:time}。"),
    "thread_word": ("thread", "线程"),
    "threads_word": ("threads", "线程"),
    "process_word": ("process", "进程"),
    "processes_word": ("processes", "进程"),
    "reads_added": ("Of its {calls} read{calls:s} on sockets, {parts:list}.", "它在套接字上的 {calls} 次 read 中，{parts:list}。"),
    "reads_read_wait": ("{n} waited for the data and then copied it", "{n} 次先等数据再拷贝"),
    "reads_copied": ("{n} copied data that was already there", "{n} 次拷贝已到达的数据"),
    "reads_eof": ("{n} found the end of file (the peer had closed)", "{n} 次读到文件结束（对端已关闭）"),
    "reads_early": ("{n} found nothing there yet (EAGAIN)", "{n} 次还没有数据（EAGAIN）"),
    "reads_drained": ("{n} found the socket drained (EAGAIN right after data)", "{n} 次发现套接字已读空（紧跟在数据之后的 EAGAIN）"),
    "reads_espipe": ("{n} were pread64 calls refused with ESPIPE", "{n} 次是被拒绝（ESPIPE）的 pread64"),
    "reads_failed": ("{n} failed", "{n} 次出错"),
    "reads_cut": ("{n} never returned (cut by the exit)", "{n} 次没有返回（被退出打断）"),
    "held_blocking": ("Those reads were held through both phases: asleep until the data came, then copying it.",
                      "这些 read 两个阶段都停在调用里：先睡眠等数据，再拷贝数据。"),
    "held_copy_only": ("It never waited for data in read: each read that returned data found it already there and "
                       "held the thread only for the copy, {avg:time} on average.",
                       "它从不在 read 里等待数据：每次返回数据的 read 都发现数据已经到达，只在拷贝时占住线程，平均 {avg:time}。"),
    "no_socket_io": ("It made no read or write call on its sockets.", "它没有在套接字上调用 read 或 write。"),
    "uring": ("Each recv and send was an io_uring request (asynchronous IO, Stevens' fifth model: submitting "
              "never waits): a recv whose data was already there ran inline when "
              "it was submitted; one with nothing there armed an internal poll, and when the data came the kernel "
              "completed it as task work.",
              "每次 recv 和 send 都是一个 io_uring 请求（异步 IO，Stevens 的第五种模型：提交从不等待）：数据已到的 recv 在提交时就地完成；数据未到的 recv 挂上内核"
              "内部的轮询，数据到达后由内核以 task work 的形式完成。"),
    "uring_defer": ("With DEFER_TASKRUN that task work is run by this thread inside its io_uring_enter, so every "
                    "copy ran on the server's own thread inside io_uring_enter, not in another thread while this "
                    "one did something else: strace cannot see task work, so its cost is hidden in "
                    "io_uring_enter's {t:time}.",
                    "使用 DEFER_TASKRUN 时，这些 task work 由本线程在 io_uring_enter 内部执行，所以每次拷贝都发生在服务器"
                    "自己的线程上、在 io_uring_enter 内部，而不是由别的线程在它做其他事时完成：strace 看不到 task work，"
                    "它的开销藏在 io_uring_enter 的 {t:time} 里。"),
    "uring_own_thread": ("That task work is run by this thread on its way through the kernel ({how}), so the copies "
                         "ran on the server's own thread, not in another thread while this one did something else: "
                         "strace cannot see task work, so its cost is hidden in the time of its system calls, "
                         "mostly io_uring_enter's {t:time}.",
                         "这些 task work 由本线程在进出内核时执行（{how}），所以拷贝发生在服务器自己的线程上，"
                         "而不是由别的线程在它做其他事时完成：strace 看不到 task work，它的开销藏在它的系统调用里，"
                         "主要是 io_uring_enter 的 {t:time}。"),
    "uring_how_coop": ("COOP_TASKRUN: when it next returns from the kernel, after a system call or an interrupt",
                       "COOP_TASKRUN：在它下一次从内核返回时，系统调用或中断之后"),
    "uring_how_signal": ("the kernel interrupts it for it", "内核为此打断它"),
    "uring_sqpoll": ("With SQPOLL the kernel's submission-queue thread (which strace does not trace) submitted the "
                     "requests, so the inline copies and the task work ran there, on its CPU time, not the "
                     "server's.",
                     "使用 SQPOLL 时，由内核的提交队列轮询线程（strace 跟踪不到）提交请求，所以就地完成的拷贝和 task work "
                     "都在那个线程上执行，花的是它的 CPU 时间，而不是服务器线程的。"),
    "aio": ("glibc's POSIX AIO ran each request in a user-space helper thread that made an ordinary blocking read or "
            "write (glibc's design, for every kind of file): the main thread only waited for completion signals, "
            "the helpers slept in phase 1 and were held in phase 2.",
            "glibc 的 POSIX AIO 把每个请求交给用户态辅助线程，用普通的阻塞 read 或 write 完成（这是 glibc 的设计，"
            "对所有类型的文件都一样）：主线程只等待完成信号，辅助线程在阶段一睡眠、在阶段二被占住。"),
    "sigio": ("On a TCP socket SIGIO is raised for many conditions (data, a "
              "connection, a close, room to write: UNP 25.2) and, a standard signal, it does not queue, so after "
              "each one the server sweeps every connection. Signal-driven IO (Stevens' fourth model of five) says "
              "when IO can start, and the read still copies and holds the thread; asynchronous IO (the fifth) "
              "says when it is complete. The process "
              "could run during phase 1; it sleeps in sigsuspend only because it has nothing else to do.",
              "在 TCP 套接字上，许多情况都会产生 SIGIO（数据到达、新连接、关闭、可写：UNP 25.2），"
              "而且它是标准信号，不排队，所以每收到一次，服务器就把所有连接扫一遍。信号驱动 IO（Stevens 五种模型中的第四种）"
              "告诉你 IO 何时可以开始，read 仍然要拷贝并占住线程；异步 IO（第五种）则告诉你 IO 何时已经完成。在阶段一进程本可以运行，"
              "它在 sigsuspend 里睡眠只是因为没有别的事可做。"),
    "edge": ("It is edge-triggered (EPOLLET): the kernel reports a socket again only when new data arrives, so the "
             "handler reads until EAGAIN; the EAGAINs right after data are those reads, the proof that the socket "
             "is drained. (On a stream socket a short read already shows it, epoll(7); reading to EAGAIN is this "
             "server's choice: the same rule serves the listener, where accept has no short result, and an end "
             "of file that came with the last data, which a short read leaves unread and no new event announces.)",
             "它是边缘触发（EPOLLET）：只有新数据到达时内核才会再次报告该套接字，所以处理函数一直读到 EAGAIN；"
             "紧跟在数据之后的 EAGAIN 就是这些读，证明套接字已读空。（对流式套接字，短读已经说明读空了，见 epoll(7)；"
             "读到 EAGAIN 是本服务器的选择：同一条规则也适用于监听套接字（accept 没有“短”的结果），"
             "也适用于随最后一批数据一起到达的文件结束：短读会把它留在套接字里，之后也不会有新事件通知它。）"),
    "edge_undrained": ("It is edge-triggered (EPOLLET), yet {n} time{n:s} a read returned a full buffer and the "
                       "handler went back to {wait} without reading that socket again: the kernel reports a socket "
                       "again only when new data arrives (or epoll_ctl re-arms it), so the bytes left in its buffer are never announced, and "
                       "a connection whose peer waits for them stalls. A level-triggered loop would report them at "
                       "the next wait.",
                       "它是边缘触发（EPOLLET），但有 {n} 次 read 读满了缓冲区，处理函数却没有再读这个套接字就回到了 "
                       "{wait}：只有新数据到达（或 epoll_ctl 重新设置）时内核才会再次报告该套接字，所以留在缓冲区里的字节再也不会被通知，"
                       "等着这些数据的连接就停住了。水平触发的循环会在下一次等待时再报告它们。"),
    "naps": ("Its naps are waiting for time, not for data: it sleeps a fixed time between sweeps whether anything "
             "came or not.",
             "它的休眠是在等待时间，而不是等待数据：不管有没有数据到达，每两次扫描之间都睡固定的时间。"),
    "eagain": ("{n} call{n:s} came back with EAGAIN ({share} of all its calls){why}.",
               "{n} 次调用返回 EAGAIN（占全部调用的 {share}）{why}。"),
    "eagain_early": (": asked before anything was there", "：在数据到达之前就去问了"),
    "eagain_mixed": (": {early} asked before anything was there, {drained} right after data or a connection, "
                     "showing that nothing was left",
                     "：{early} 次在数据到达之前就去问了，{drained} 次紧跟在数据或连接之后，说明已经取空"),
    "eagain_drained": (": each right after data or a connection, showing that nothing was left",
                       "：每次都紧跟在数据或连接之后，说明已经取空"),
    "no_eagain": ("0 EAGAIN.", "0 次 EAGAIN。"),
    "writes": ("Output: {n} write{n:s} on sockets copied the echo out, {avg:time} each on average; none had to "
               "wait for room.",
               "输出方向：套接字上的 {n} 次 write 把回显拷出，平均每次 {avg:time}；没有一次需要等待发送空间。"),
    "slow_writes": ("{n} write{n:s} on a blocking socket took over 1 ms (longest {longest:time}): waiting for room "
                    "in the send buffer, or descheduled; that is not waiting for data.",
                    "阻塞套接字上有 {n} 次 write 超过 1 ms（最长 {longest:time}）：在等发送缓冲区的空间，"
                    "或者被调度出去了；这不是在等待数据。"),
    "signals": ("Signals received: {described:list}.", "收到的信号：{described:list}。"),
    "signal_count": ("{name} {n} time{n:s}", "{name} {n} 次"),
    "signal_timer": ("{name} {n} time{n:s}, every {period:time} (a timer)", "{name} {n} 次，每 {period:time} 一次（定时器）"),
    "cut_wait": ("A wait that a signal cuts short is made again at once: one wait, counted as several calls.",
                 "被信号打断的等待会立即重新发起：一次等待，被计成了好几次调用。"),
    "listen_queue": ("Client {client} waited {t:time} in the listen queue before the server accepted it.",
                     "客户端 {client} 在监听队列里等了 {t:time}，服务器才 accept 它。"),
    "slowest_echo": ("The slowest echo took {t:time} (client {client}).", "最慢的一次回显用了 {t:time}（客户端 {client}）。"),
    "stalled": ("Client {client} got {back} of its {sent} bytes back: its connection stalled with the rest in the "
                "server's buffer.",
                "客户端 {client} 只收回了它发送的 {sent} 字节中的 {back} 字节：连接停住了，其余数据留在服务器的缓冲区里。"),
    "all_back": ("Client {client} got all its {sent} bytes back.", "客户端 {client} 收回了它发送的全部 {sent} 字节。"),

    # the picture
    "svg_title": ("Where it waits: {title}", "在哪里等待：{title}"),
    "svg_calls": ("{n} calls", "{n} 次调用"),
    "svg_eagain": ("{n} EAGAIN", "{n} 次 EAGAIN"),
    "svg_reads": ("{n} reads", "{n} 次 read"),
    "svg_uring_reads": ("{n} reads: copies inside io_uring_enter", "{n} 次 read：拷贝在 io_uring_enter 内部"),
    "svg_sqpoll_reads": ("{n} reads: copies in the SQ thread", "{n} 次 read：拷贝在 SQ 轮询线程里"),
    "legend_wait": ("slept: waiting for data or readiness", "睡眠：等待数据或就绪"),
    "legend_completion": ("slept: waiting for completions or a signal", "睡眠：等待完成通知或信号"),
    "legend_read_wait": ("slept in read/write", "在 read/write 中睡眠"),
    "legend_connection": ("slept in accept: waiting for a connection", "在 accept 中睡眠：等待连接"),
    "legend_nap": ("napping: waiting for time", "休眠：等待时间"),
    "legend_other": ("over 1 ms, not waiting (descheduled)", "超过 1 ms，但不是在等待（被调度出去）"),
    "legend_copy_in": ("read/recv that copied data in", "拷入数据的 read/recv"),
    "legend_copy_out": ("write/send that copied out", "拷出数据的 write/send"),
    "legend_signal": ("signal received", "收到信号"),
    "legend_busy": ("busy: calls one after another, never sleeping", "忙碌：调用一个接一个，从不睡眠"),
    "legend_ticks": ("other short calls (darker: more)", "其他短调用（越深越多）"),
    "legend_queued": ("client in listen queue", "客户端在监听队列中"),
    "legend_echo": ("client awaits echo", "客户端等待回显"),
    "svg_footer": ("time since the trace started; hover a span or tick for the call",
                   "从跟踪开始算起的时间；鼠标悬停可看到对应的调用"),
    "tip_queued": ("client {client} waited {t:time} before accept", "客户端 {client} 在 accept 之前等了 {t:time}"),
    "tip_echo": ("client {client} waited {t:time} for its echo", "客户端 {client} 等回显等了 {t:time}"),
    "tip_connected": ("client {client} connected", "客户端 {client} 已连接"),
    "client": ("client {client}", "客户端 {client}"),
    "stalled_span": ("stalled: {back} of {sent} bytes back", "停住了：{sent} 字节只收回 {back}"),
    "connected": ("connected", "已连接"),
    "event_connect": ("client {client} connects", "客户端 {client} 连接"),
    "event_send": ("client {client} sends", "客户端 {client} 发送"),
    "event_leave": ("client {client} leaves", "客户端 {client} 离开"),
    "tip_busy": ("{n} calls in {t:time}, none slept", "{t:time} 内 {n} 次调用，没有一次睡眠"),
}


def seconds_text(s):
    if s >= 1:
        return "%.2f s" % s
    if s >= 0.001:
        return "%.1f ms" % (s * 1e3)
    return "%.0f µs" % (s * 1e6)


def join_words(parts, lang="en"):
    parts = list(parts)
    if len(parts) <= 1:
        return "".join(parts)
    if lang == "zh":  # clauses that have commas of their own are set apart by semicolons
        return ("；" if any("，" in p or "（" in p for p in parts) else "、").join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


class _Words(string.Formatter):
    def __init__(self, lang):
        self.lang = lang

    def format_field(self, value, spec):
        if spec == "s":  # English plural
            return "" if value == 1 else "s"
        if spec == "time":
            return seconds_text(value)
        if spec == "list":
            return join_words(value, self.lang)
        return super().format_field(value, spec)


def render(lang, key, **params):
    """The message key in language lang, its parameters filled in."""
    template = MESSAGES[key][LANGUAGES.index(lang)]
    return _Words(lang).format(template, **params)


def render_sentence(lang, sentence):
    """A sentence is (key, params); a parameter that is itself a sentence or a
    list of sentences is rendered first."""
    key, params = sentence
    return render(lang, key, **{name: _rendered(lang, value) for name, value in params.items()})


def _rendered(lang, value):
    if isinstance(value, tuple) and len(value) == 2 and value[0] in MESSAGES:
        return render_sentence(lang, value)
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return [render_sentence(lang, v) for v in value]
    return value


def share_text(part, whole):
    """A percentage that never rounds most to all."""
    share = part / max(whole, 1)
    text = "%.0f%%" % (share * 100)
    if text == "100%" and part < whole:
        text = "%.2f%%" % min(share * 100, 99.99)
    return text


def subject(lane, lanes):
    """Who a sentence is about: the server, its main thread or process, a thread, a child."""
    if len(lanes) == 1:
        return ("who_server", {})
    if lane.role == "main":
        threaded = any(other.role == "thread" for other in lanes)
        return ("who_main_thread" if threaded else "who_main_process", {"pid": lane.pid})
    return ("who_thread" if lane.role == "thread" else "who_process", {"pid": lane.pid})


# Each verdict function takes what it needs and returns a list of sentences.

def lane_sentences(lane, lanes):
    """Where one lane slept (the three longest), or that it never did."""
    who = subject(lane, lanes)
    waited, _ = phase_summary(lane.calls)
    slept = sorted(((v["seconds"], name, v) for name, v in waited.items() if v["blocked"]), key=lambda x: -x[0])
    if not slept:
        descheduled = sum(c.over_1ms and not c.slept for c in lane.calls)
        if descheduled:
            return [("lane_descheduled", {"who": who, "n": descheduled})]
        return [("lane_never_slept", {"who": who})]
    parts = []
    for seconds, name, entry in slept[:3]:
        cut = defaultdict(int)
        for call in lane.calls:
            if call.name == name and call.slept and cut_short(call):
                cut[call.signal] += 1
        cut_words = ("cut_part", {"n": sum(cut.values()), "signals": ", ".join(
            "%s %d" % kv for kv in sorted(cut.items(), key=lambda kv: -kv[1]))}) if cut else None
        parts.append(("slept_part", {
            "t": seconds, "name": name, "n": entry["blocked"],
            "what": ("nap_word" if name in NAPS else "call_word", {}),
            "cut": cut_words or "", "why": ("for_" + entry["waits_for"], {})}))
    return [("lane_slept", {"who": who, "parts": parts})]


def helper_sentences(helpers):
    """Many threads or processes that each wait for one client: summed up in one sentence."""
    reads = [c for lane in helpers for c in lane.calls if c.name in READ_CALLS and c.on_socket and c.slept]
    if not reads:
        return []  # not helpers of the echo (a runtime's own children, say)
    threads = helpers[0].role == "thread"
    if len(helpers) == 1:
        word = "thread_word" if threads else "process_word"
    else:
        word = "threads_word" if threads else "processes_word"
    return [("helpers", {"n": len(helpers), "what": (word, {}),
                         "reads": len(reads), "t": sum(c.seconds for c in reads)})]


def read_sentences(calls):
    """The socket reads, added up (every kind named, so the parts make the whole),
    then whether a thread was held in them for one phase or both."""
    counts = read_counts(calls)
    if not counts:
        return []
    parts = [("reads_" + kind, {"n": counts[kind]}) for kind in
             ("read_wait", "copied", "eof", "drained", "early", "espipe", "failed", "cut") if counts.get(kind)]
    sentences = [("reads_added", {"calls": counts["calls"], "parts": parts})]
    copies = [c for c in calls if c.kind == "copied" and c.name in READ_CALLS]
    if counts.get("read_wait"):
        sentences.append(("held_blocking", {}))
    elif copies:
        sentences.append(("held_copy_only", {"avg": sum(c.seconds for c in copies) / len(copies)}))
    return sentences


def model_sentences(trace):
    """What the trace shows of the model beyond the counts: io_uring's hidden
    copy, glibc's helper threads, SIGIO's sweep, edge triggering, naps."""
    calls = trace.calls
    found = features(trace)
    sentences = []
    socket_io = [c for c in calls if c.name in IO_CALLS and c.on_socket and c.kind != "espipe"]
    if found["uring_setup"] is not None and not socket_io:
        flags = set(found["uring_setup"])
        enter = sum(c.seconds for c in calls if c.name == "io_uring_enter")
        sentences += [("no_socket_io", {}), ("uring", {})]
        if "IORING_SETUP_SQPOLL" in flags:
            sentences.append(("uring_sqpoll", {}))
        elif "IORING_SETUP_DEFER_TASKRUN" in flags:
            sentences.append(("uring_defer", {"t": enter}))
        else:
            how = "uring_how_coop" if "IORING_SETUP_COOP_TASKRUN" in flags else "uring_how_signal"
            sentences.append(("uring_own_thread", {"how": (how, {}), "t": enter}))
    elif not socket_io:
        sentences.append(("no_socket_io", {}))
    if found["helper_threads"] and any(c.name == "rt_sigtimedwait" for c in calls):
        sentences.append(("aio", {}))
    if found["sigio"] and any(c.name in SIGNAL_WAITS - {"rt_sigtimedwait"} for c in calls):
        sentences.append(("sigio", {}))
    if found["edge_triggered"]:
        undrained, wait = undrained_reads(calls)
        sentences.append(("edge_undrained", {"n": undrained, "wait": wait}) if undrained else ("edge", {}))
    if any(c.kind == "nap" and c.slept for c in calls):
        sentences.append(("naps", {}))
    return sentences


def eagain_sentences(calls):
    early = sum(c.kind == "early" for c in calls)
    drained = sum(c.kind in ("drained", "full") for c in calls)
    total = early + drained
    if not total:
        return [("no_eagain", {})]
    why = (("eagain_early", {}) if not drained else ("eagain_drained", {}) if not early else
           ("eagain_mixed", {"early": early, "drained": drained}))
    return [("eagain", {"n": total, "share": share_text(total, len(calls)), "why": why})]


def write_sentences(calls):
    written = [c for c in calls if c.kind == "written"]
    slow = [c for c in calls if c.kind == "slow_write" and c.slept]
    sentences = []
    if slow:
        sentences.append(("slow_writes", {"n": len(slow), "longest": max(c.seconds for c in slow)}))
    elif written:
        sentences.append(("writes", {"n": len(written), "avg": sum(c.seconds for c in written) / len(written)}))
    return sentences


def signal_sentences(lanes):
    counts, times = defaultdict(int), defaultdict(list)
    for lane in lanes:
        for name, n in lane.signals.items():
            counts[name] += n
            times[name] += lane.signal_times.get(name, [])
    described = []
    for name, n in sorted(counts.items()):
        if name in ("SIGTERM", "SIGINT", "SIGCHLD"):
            continue
        period = timer_period(sorted(times[name]))
        described.append(("signal_timer", {"name": name, "n": n, "period": period}) if period else
                         ("signal_count", {"name": name, "n": n}))
    sentences = [("signals", {"described": described})] if described else []
    if any(cut_short(c) for lane in lanes for c in lane.calls):
        sentences.append(("cut_wait", {}))
    return sentences


def client_sentences(trace, events):
    sentences = []
    waits = admission_delays(trace, events)
    if len(waits) >= 2:
        late = max(waits, key=waits.get)
        if waits[late] > 0.05:
            sentences.append(("listen_queue", {"client": late, "t": waits[late]}))
    echoes = echo_delays(events)
    if echoes:
        slow = max(echoes, key=echoes.get)
        sentences.append(("slowest_echo", {"client": slow, "t": echoes[slow]}))
    for event in events:  # the burst scenario says how much came back
        if event["kind"] == "result":
            back, sent = (int(x) for x in event["label"].split("/"))
            sentences.append(("stalled" if back < sent else "all_back",
                              {"client": event["client"], "sent": sent, "back": back}))
    return sentences


def verdict_sentences(trace, events):
    """The verdict as sentences (key, params), every figure taken from the trace."""
    lanes = [lane for lane in trace.lanes.values() if lane.calls]
    calls = [c for lane in lanes for c in lane.calls]
    helpers = [lane for lane in lanes if lane.role != "main"]
    sentences = []
    for lane in lanes:
        if lane.role == "main" or len(lanes) <= 3:
            sentences += lane_sentences(lane, lanes)
    if len(lanes) > 3 and helpers:
        sentences += helper_sentences(helpers)
    sentences += read_sentences(calls)
    sentences += model_sentences(trace)
    sentences += eagain_sentences(calls)
    sentences += write_sentences(calls)
    sentences += signal_sentences(lanes)
    sentences += client_sentences(trace, events)
    return sentences


def verdict(trace, events, lang="en"):
    """One paragraph in plain words, every figure in it taken from the trace."""
    separator = "" if lang == "zh" else " "  # Chinese puts no space after a full stop
    return separator.join(render_sentence(lang, s) for s in verdict_sentences(trace, events))


# --- the report -------------------------------------------------------------

def lane_label(lane, lanes, lang):
    if lane.role == "main":
        threaded = any(other.role == "thread" for other in lanes)
        return render(lang, "lane_main" if threaded or lang == "en" else "lane_main_process", pid=lane.pid)
    return render(lang, "lane_thread" if lane.role == "thread" else "lane_process", pid=lane.pid)


def kinds_text(kinds, lang):
    shown = [(render(lang, "kind_" + kind), n) for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])]
    if len(shown) == 1:
        return shown[0][0]
    return ("；" if lang == "zh" else "; ").join("%s %d" % pair for pair in shown)


def notes(trace, lang):
    """Explanations of rows and results that appear in this trace, and only those."""
    calls = trace.calls
    wanted = []
    if any(c.key.endswith("(not a socket)") for c in calls):
        wanted.append("note_not_socket")
    if any(c.error.startswith("ERESTART") for c in calls):
        wanted.append("note_restart")
    if any(c.name == "io_uring_enter" for c in calls):
        wanted.append("note_uring_enter")
    if any(c.kind == "timeout" for c in calls):
        wanted.append("note_sigtimedwait")
    if any(c.kind == "espipe" for c in calls):
        wanted.append("note_espipe")
    if any(c.kind == "eof" for c in calls):
        wanted.append("note_eof")
    return [render(lang, key) for key in wanted]


COLUMN_WIDTHS = (-28, 7, 7, 10, 10, 6, 6, 0)  # negative: left-aligned


def pad(text, width):
    """Pads text to width columns, a wide (CJK) character taking two."""
    shown = sum(2 if ord(ch) > 0x2e80 else 1 for ch in text)
    room = " " * max(abs(width) - shown, 0)
    return text + room if width < 0 else room + text


def shorten(raw, limit=150):
    """Keeps the start of a trace line and its end (the result and the time)."""
    return raw if len(raw) <= limit else raw[:limit - 50] + " ... " + raw[-45:]


def print_report(trace, events, title, out=sys.stdout, lang="en"):
    w = out.write
    lanes = [lane for lane in trace.lanes.values() if lane.calls]
    w(render(lang, "heading", title=title) + "\n")
    w(render(lang, "intro", lines=trace.lines, span=(trace.end or 0) - (trace.start or 0)) + "\n")
    columns = MESSAGES["columns"][LANGUAGES.index(lang)]
    for lane in lanes:
        w("\n%s%s\n" % (lane_label(lane, lanes, lang),
                        render(lang, "started_by", parent=lane.parent) if lane.parent else ""))
        w("  %s %s %s %s %s %s %s  %s\n" % tuple(pad(text, width) for text, width in zip(columns, COLUMN_WIDTHS)))
        table = syscall_table(lane.calls)
        for key, row in sorted(table.items(), key=lambda kv: -kv[1]["total"]):
            w("  %-28s %7d %7d %10s %10s %6d %6d  %s\n" % (
                key, row["calls"], row["eagain"], seconds_text(row["total"]), seconds_text(row["longest"]),
                row["over_1ms"], row["blocked"], kinds_text(row["kinds"], lang)))
        for signal, n in sorted(lane.signals.items()):
            w("  %s %7d\n" % (pad("%s %s" % (render(lang, "signal_row"), signal), -28), n))

    calls = trace.calls
    waited, copied = phase_summary(calls)
    not_data = {name: v for name, v in waited.items() if v["waits_for"] in ("connection", "time")}
    if not_data:  # a connection or time: waits, but not phase 1 of an input
        w("\n" + render(lang, "other_waits_title") + "\n")
        write_wait_rows(w, not_data, lang)
    w("\n" + render(lang, "phase1_title") + "\n")
    for_data = {name: v for name, v in waited.items() if name not in not_data}
    if not any(v["blocked"] for v in for_data.values()) and not any(c.kind == "slow_write" and c.slept for c in calls):
        w(render(lang, "phase1_none") + "\n")
    write_wait_rows(w, for_data, lang)
    slow_writes = defaultdict(list)
    for call in calls:
        if call.kind == "slow_write" and call.slept:
            slow_writes[call.name].append(call.seconds)
    for name, seconds in sorted(slow_writes.items()):
        w(render(lang, "phase1_room", name=name, n=len(seconds), longest=max(seconds)) + "\n")
    w(render(lang, "phase2_title") + "\n")
    read_waits = defaultdict(int)
    for call in calls:
        if call.kind == "read_wait":
            read_waits[call.name] += 1
    for name, n in sorted(read_waits.items()):
        w(render(lang, "phase2_read_wait", name=name, calls=n) + "\n")
    for name, v in sorted(copied.items(), key=lambda kv: (kv[1]["direction"], kv[0])):
        w(render(lang, "phase2_row_" + v["direction"], name=name, calls=v["calls"], avg=v["seconds"] / v["calls"],
                 longest=v["longest"]) + "\n")
    if not copied and not read_waits:
        uring = features(trace)["uring_setup"] is not None
        w(render(lang, "phase2_uring" if uring else "phase2_none") + "\n")

    longest = sorted((c for c in calls if c.slept), key=lambda c: -c.seconds)[:4]
    if longest:
        w("\n" + render(lang, "longest_title") + "\n")
        for call in sorted(longest, key=lambda c: c.start):
            for raw in call.line.split("\n"):
                w("  %s\n" % shorten(raw))
    explained = notes(trace, lang)
    if explained:
        w("\n" + render(lang, "notes_title") + "\n")
        for note in explained:
            w("  - %s\n" % note)
    w("\n%s%s\n" % (render(lang, "verdict_title"), verdict(trace, events, lang)))


def write_wait_rows(w, waited, lang):
    for name, v in sorted(waited.items(), key=lambda kv: -kv[1]["seconds"]):
        w(render(lang, "phase1_row", name=name, slept=v["blocked"], calls=v["calls"], t=v["seconds"],
                 what=render(lang, "for_" + v["waits_for"]),
                 cut=render(lang, "phase1_cut", n=v["cut_short"]) if v["cut_short"] else "") + "\n")


def summary_json(trace, events, title, lang="en"):
    lanes = [lane for lane in trace.lanes.values() if lane.calls]
    waited, copied = phase_summary(trace.calls)
    return {
        "title": title,
        "lang": lang,
        "lines": trace.lines,
        "seconds": (trace.end or 0) - (trace.start or 0),
        "lanes": [{"pid": lane.pid, "role": lane.role, "parent": lane.parent,
                   "signals": dict(lane.signals), "syscalls": syscall_table(lane.calls)} for lane in lanes],
        "totals": syscall_table(trace.calls),
        "waited": waited,
        "copied": copied,
        "reads": read_counts(trace.calls),
        "features": features(trace),
        "admission_delays": admission_delays(trace, events),
        "echo_delays": echo_delays(events),
        "sentences": verdict_sentences(trace, events),
        "verdict": verdict(trace, events, lang),
    }


# --- the picture ------------------------------------------------------------

WAIT_COLOUR, COMPLETION_COLOUR, READ_WAIT_COLOUR, CONNECTION_COLOUR = "#4e79a7", "#76b7b2", "#f28e2b", "#b6992d"
NAP_COLOUR, OTHER_COLOUR, BUSY_COLOUR = "#9c755f", "#888888", "#f4a6a6"
COPY_IN_COLOUR, COPY_OUT_COLOUR, SIGNAL_COLOUR = "#59a14f", "#b07aa1", "#8c1d40"
CONNECTED_COLOUR, QUEUED_COLOUR, ECHO_WAIT_COLOUR = "#d9d9d9", "#edc948", "#e15759"
BUSY_GAP = 0.001    # calls closer than this, none sleeping, make one busy stretch
BUSY_CALLS = 50     # ... when there are at least this many of them


def span_colour(call):
    """The colour of a call drawn as a span: what it slept for."""
    if not call.slept or not call.kind:
        return OTHER_COLOUR  # descheduled, or not part of the echo (the log, the loader)
    what = waits_for(call.name)
    return {"time": NAP_COLOUR, "connection": CONNECTION_COLOUR, "completion": COMPLETION_COLOUR,
            "signal": COMPLETION_COLOUR, "readiness": WAIT_COLOUR}.get(what, READ_WAIT_COLOUR)


def busy_stretches(calls):
    """Runs of calls that follow one another within BUSY_GAP without sleeping:
    [(start, end, how many calls)], only those of BUSY_CALLS calls or more."""
    stretches, run = [], []
    for call in sorted(calls, key=lambda c: c.start):
        if run and (call.start - run[-1].end > BUSY_GAP or call.slept):
            if len(run) >= BUSY_CALLS:
                stretches.append((run[0].start, run[-1].end, len(run)))
            run = []
        if not call.slept:
            run.append(call)
    if len(run) >= BUSY_CALLS:
        stretches.append((run[0].start, run[-1].end, len(run)))
    return stretches


def client_lanes(trace, events, lang):
    """The scenario seen from the clients: connected from connect to exit,
    waiting in the listen queue until accept, waiting for each echo."""
    queued = admission_delays(trace, events)
    lanes = []
    for client in sorted({e["client"] for e in events}):
        mine = sorted((e for e in events if e["client"] == client), key=lambda e: e["t"])
        first, last = mine[0]["t"], max(e["t"] for e in mine)
        spans = [(first, last, render(lang, "connected"), CONNECTED_COLOUR, render(lang, "tip_connected", client=client))]
        if client in queued:
            spans.append((first, first + queued[client], "queued", QUEUED_COLOUR,
                          render(lang, "tip_queued", client=client, t=queued[client])))
        for i, event in enumerate(mine):
            echo = next((e for e in mine[i + 1:] if e["kind"] == "echo"), None) if event["kind"] == "send" else None
            if echo:
                spans.append((event["t"], echo["t"], "awaiting echo", ECHO_WAIT_COLOUR,
                              render(lang, "tip_echo", client=client, t=echo["t"] - event["t"])))
        for event in mine:
            if event["kind"] == "result":  # the burst: from the send to the end of the wait for the rest
                back, sent = (int(x) for x in event["label"].split("/"))
                send = next((e["t"] for e in mine if e["kind"] == "send"), first)
                if back < sent:  # drawn last, over the wait for the first echo
                    spans.append((send, event["t"], render(lang, "stalled_span", back=back, sent=sent),
                                  ECHO_WAIT_COLOUR, render(lang, "stalled_span", back=back, sent=sent)))
        lanes.append((render(lang, "client", client=client), spans, [], {}))
    return lanes


def server_lane(lane, lanes, lang, sqpoll=False):
    """One traced process or thread as a timeline lane: spans for the calls that
    took over 1 ms, ticks for the copies, marks for signals, bands where busy."""
    spans = [(c.start, c.end, c.name, span_colour(c),
              "%s %s: %s" % (c.name, seconds_text(c.seconds), c.line.split("\n")[-1][:200]))
             for c in lane.calls if c.over_1ms]
    copies = [(c.start, COPY_IN_COLOUR if c.name in READ_CALLS else COPY_OUT_COLOUR,
               "%s: %s" % (c.name, c.line.split("\n")[-1][:200]))
              for c in lane.calls if c.kind in ("copied", "written", "read_wait")]
    ticks = [c.start for c in lane.calls if not c.over_1ms and c.kind not in ("copied", "written")]
    signals = [(t, name) for name, times in lane.signal_times.items() if name not in STOP_SIGNALS for t in times]
    busy = [(t0, t1, render(lang, "tip_busy", n=n, t=t1 - t0)) for t0, t1, n in busy_stretches(lane.calls)]
    eagain = sum(c.eagain for c in lane.calls)
    reads = sum(c.name in READ_CALLS and c.on_socket for c in lane.calls)
    uring = not reads and any(c.name == "io_uring_enter" for c in lane.calls)
    count = ", ".join([render(lang, "svg_calls", n=len(lane.calls)),
                       render(lang, ("svg_sqpoll_reads" if sqpoll else "svg_uring_reads") if uring else "svg_reads",
                              n=reads)]
                      + ([render(lang, "svg_eagain", n=eagain)] if eagain else [])
                      + ["%s %d" % kv for kv in sorted(lane.signals.items()) if kv[0] not in STOP_SIGNALS])
    return (lane_label(lane, lanes, lang) + "\n" + count, spans, ticks,
            {"copies": copies, "signals": signals, "busy": busy})


def event_label(event, lang):
    """A scenario event's label, in the report's language when it is a known kind."""
    key = "event_" + event["kind"]
    return render(lang, key, client=event["client"]) if key in MESSAGES and lang != "en" else event["label"]


def draw_timeline(trace, events, title, path, lang="en"):
    lanes = client_lanes(trace, events, lang)
    traced = [lane for lane in trace.lanes.values() if lane.calls]
    sqpoll = "IORING_SETUP_SQPOLL" in (features(trace)["uring_setup"] or [])
    lanes += [server_lane(lane, traced, lang, sqpoll) for lane in traced]
    marks = [(e["t"], event_label(e, lang)) for e in events if e["kind"] not in ("echo", "result")]
    used = {colour for lane in lanes for _, _, _, colour, _ in lane[1]}
    extras = [lane[3] for lane in lanes]
    used |= {colour for extra in extras for _, colour, _ in extra.get("copies", [])}
    used |= {SIGNAL_COLOUR} if any(extra.get("signals") for extra in extras) else set()
    used |= {BUSY_COLOUR} if any(extra.get("busy") for extra in extras) else set()
    used |= {"#333"} if any(lane[2] for lane in lanes) else set()
    legend = [(colour, render(lang, key)) for colour, key in [
        (WAIT_COLOUR, "legend_wait"), (COMPLETION_COLOUR, "legend_completion"), (READ_WAIT_COLOUR, "legend_read_wait"),
        (CONNECTION_COLOUR, "legend_connection"), (NAP_COLOUR, "legend_nap"), (OTHER_COLOUR, "legend_other"),
        (COPY_IN_COLOUR, "legend_copy_in"), (COPY_OUT_COLOUR, "legend_copy_out"), (SIGNAL_COLOUR, "legend_signal"),
        (BUSY_COLOUR, "legend_busy"), ("#333", "legend_ticks"), (QUEUED_COLOUR, "legend_queued"),
        (ECHO_WAIT_COLOUR, "legend_echo")] if colour in used]
    picture = svg.timeline(render(lang, "svg_title", title=title), lanes, marks, trace.start or 0, trace.end or 1,
                           legend, footer=render(lang, "svg_footer"))
    picture.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--events", help="the scenario's events (written by scenario.py)")
    parser.add_argument("--title", default="server")
    parser.add_argument("--svg", help="write the timeline here")
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--lang", choices=LANGUAGES, help="en or zh (default: from LC_ALL, LC_MESSAGES, LANG)")
    args = parser.parse_args()
    lang = args.lang or language_from_environment()

    trace = read_trace(args.trace)
    if not trace.lanes:
        sys.exit("strace_report: no system calls in %s" % args.trace)
    events = read_events(args.events)
    print_report(trace, events, args.title, lang=lang)
    if args.svg:
        draw_timeline(trace, events, args.title, args.svg, lang)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary_json(trace, events, args.title, lang), f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
