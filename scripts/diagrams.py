#!/usr/bin/env python3
"""The five IO models drawn, after the manner of Stevens' UNP figures 6.1-6.5.

    scripts/diagrams.py [-o DIR] [--lang en|zh]
    scripts/diagrams.py --text model-1-blocking [--lang zh]    (the same, for a terminal)

Each figure puts the application on the left and the kernel on the right,
time running down. An arrow is a system call or its return. The bar beside
the application says what its thread does meanwhile: sleeps waiting for the
data (phase 1), is held in the call while the kernel copies the data into
its buffer (phase 2), asks again and gets EAGAIN, or is free to run its own
code. The brackets on the right mark the two phases of an input operation.

Besides Stevens' five, two figures show what this suite's asynchronous
server really does:
  io_uring   the copy runs inline when the recv is submitted, or, when the
             data comes later, as task work in the submitting thread, inside
             its io_uring_enter(GETEVENTS) with DEFER_TASKRUN (io-wq worker
             threads are a fallback; with SQPOLL the SQ thread does it).
             Sources: io_uring/poll.c (the internal poll armed when a recv
             would block, and its wake-up queueing task work),
             io_uring/io_uring.c (io_req_local_work_add, io_cqring_wait
             running the deferred work), io_uring_setup(2) on DEFER_TASKRUN.
  posix-aio  glibc runs every request on a helper thread that blocks in
             read for the caller (glibc manual, "Asynchronous I/O";
             sysdeps/pthread/aio_misc.c): asynchronous for the caller,
             blocking underneath.

Files written (default docs/figures/, or docs/figures/zh/ with --lang zh):
model-1-blocking.svg ... model-5-asynchronous.svg, model-5-io_uring.svg,
model-5-posix_aio.svg. Plain SVG 1.1, no script, a <title> on every part.
"""
import argparse
import os
import sys
from xml.sax.saxutils import escape, quoteattr

SLEEP, HELD, FREE, ASK = "sleep", "held", "free", "ask"
# The timelines' colours where they mean the same (scripts/strace_report.py):
# blue a wait, green the copy in, pink a loop that keeps asking.
COLOURS = {SLEEP: "#4e79a7", HELD: "#59a14f", FREE: "#bab0ac", ASK: "#f4a6a6"}
TEXT_COLOURS = {SLEEP: "#3b5f86", HELD: "#3d7a35", FREE: "#6b6b6b", ASK: "#b84a4a"}  # darker, to read on white
FONT = "DejaVu Sans, Noto Sans CJK SC, WenQuanYi Micro Hei, Helvetica, Arial, sans-serif"

# Every word on the figures, in each language. Keys are the English.
ZH = {
    "application": "应用进程",
    "kernel": "内核",
    "glibc helper thread": "glibc 辅助线程",
    "time": "时间",
    "phase 1": "阶段 1",
    "waiting for the data": "等待数据",
    "phase 2": "阶段 2",
    "copying kernel -> process": "从内核拷贝到进程",
    "sleeps: waits for the data": "睡眠：等待数据",
    "held in the call: the copy": "停在调用中：拷贝",
    "free: runs its own code": "空闲：运行自己的代码",
    "asks again: EAGAIN": "反复询问：EAGAIN",
    "no data yet": "数据未就绪",
    "data arrives": "数据到达",
    "copy the data": "拷贝数据",
    "copy done": "拷贝完成",
    "returns n bytes": "返回 n 字节",
    "process the data": "处理数据",
    "EWOULDBLOCK / EAGAIN": "EWOULDBLOCK / EAGAIN",
    "the same question, again": "同样的问题，再问一次",
    "returns: readable": "返回：可读",
    "sleeps in the wait, for every socket at once": "在等待中睡眠，同时等待所有套接字",
    "install a SIGIO handler (sigaction), O_ASYNC": "安装 SIGIO 处理函数 (sigaction)，O_ASYNC",
    "returns at once": "立即返回",
    "SIGIO: IO can start": "SIGIO：可以开始 IO",
    "signal handler": "信号处理函数",
    "may run during phase 1 (this server sleeps in sigsuspend: nothing else to do)":
        "阶段 1 期间可以运行（本服务器无事可做，睡在 sigsuspend 中）",
    "aio_read (hand over the buffer)": "aio_read（交出缓冲区）",
    "signal or callback: IO is complete": "信号或回调：IO 已完成",
    "free in both phases: told when the IO is done, not when it can start":
        "两个阶段都空闲：通知的是 IO 已完成，而不是可以开始",
    "io_uring_enter: submit recv": "io_uring_enter：提交 recv",
    "data there: copied inline, in the submit": "数据已在：提交时就地拷贝",
    "no data: arm an internal poll": "无数据：挂上内部 poll",
    "io_uring_enter(GETEVENTS)": "io_uring_enter(GETEVENTS)",
    "held only if data was there": "仅当数据已在时：被占用",
    "waits in io_uring_enter: nothing else to do": "在 io_uring_enter 中等待：无事可做",
    "poll wakes: queue task work": "poll 唤醒：排入 task work",
    "task work: recv copies": "task work：recv 拷贝",
    "post the completion (CQE)": "写入完成事件 (CQE)",
    "returns: completions": "返回：完成事件",
    "the copy runs in our own thread, on our CPU time, inside io_uring_enter: strace cannot see it":
        "拷贝在我们自己的线程中、用我们的 CPU 时间、在 io_uring_enter 内完成：strace 看不到",
    "io-wq worker threads are a fallback; with SQPOLL the SQ thread copies":
        "io-wq 工作线程只是后备；使用 SQPOLL 时由 SQ 线程拷贝",
    "aio_read: queue the request": "aio_read：请求入队",
    "read (blocking)": "read（阻塞）",
    "signal: IO complete": "信号：IO 已完成",
    "the helper thread blocks for the caller: a thread per waiting request":
        "辅助线程替调用者阻塞：每个等待中的请求一个线程",
    "1. blocking IO": "1. 阻塞 IO",
    "2. nonblocking IO": "2. 非阻塞 IO",
    "3. IO multiplexing (select, poll, epoll)": "3. IO 多路复用（select、poll、epoll）",
    "4. signal-driven IO (SIGIO)": "4. 信号驱动 IO (SIGIO)",
    "5. asynchronous IO (POSIX aio_read, as Stevens draws it)": "5. 异步 IO（POSIX aio_read，Stevens 的画法）",
    "5a. asynchronous IO with io_uring, as this suite runs it (DEFER_TASKRUN)":
        "5a. 用 io_uring 的异步 IO，本套件的运行方式 (DEFER_TASKRUN)",
    "5b. asynchronous IO with glibc's POSIX AIO": "5b. 用 glibc POSIX AIO 的异步 IO",
    "after Stevens, UNP vol. 1, figures 6.1-6.5; drawn by scripts/diagrams.py":
        "仿 Stevens《UNIX 网络编程》卷 1 图 6.1-6.5；由 scripts/diagrams.py 绘制",
}

ROW = 26          # one step of time
TOP = 78          # below the title and the column heads
LEFT_BAR = 330    # x of the application's state bar
BAR_WIDTH = 14
PHASE_X = 900     # x of the phase brackets


class Figure:
    """One model: columns, arrows between them, state bars and phase brackets."""

    def __init__(self, title, lang, columns=("application", "kernel")):
        self.lang = lang
        self.title = title
        self.parts = []
        self.rows = 0
        self.lines = []   # (row, column, words, arrow) for the terminal version
        self.bars = []    # (first, last, kind, column)
        self.phases = []  # (first, last, number)
        # x centre of each column's arrows end; the kernel is always last.
        if len(columns) == 2:
            self.x = {"application": LEFT_BAR + BAR_WIDTH, "kernel": 660}
        else:
            self.x = {"application": LEFT_BAR + BAR_WIDTH, columns[1]: 520, "kernel": 730}
        self.columns = columns

    def t(self, key):
        return ZH.get(key, key) if self.lang == "zh" else key

    def y(self, row):
        return TOP + row * ROW

    def _add(self, text):
        self.parts.append(text)

    def text(self, x, y, key, size=13, anchor="start", colour="#222", weight="normal", raw=False):
        words = key if raw else self.t(key)
        self._add("<text x='%d' y='%d' font-size='%d' text-anchor='%s' fill='%s' font-weight='%s'>%s</text>"
                  % (x, y, size, anchor, colour, weight, escape(words)))

    def call(self, row, frm, to, label, dashed=False, raw=False):
        """An arrow at this row: a system call (to the kernel) or its return."""
        y = self.y(row)
        x1, x2 = self.x[frm], self.x[to]
        direction = 1 if x2 > x1 else -1
        tip = x2 - direction * 2
        base = tip - direction * 10  # where the arrowhead starts
        words = label if raw else self.t(label)
        self._add("<g><title>%s</title><line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#222' stroke-width='1.6'%s/>"
                  "<polygon points='%d,%d %d,%d %d,%d' fill='#222'/></g>"
                  % (escape(words), x1, y, base, y, " stroke-dasharray='5,4'" if dashed else "",
                     tip, y, base, y - 5, base, y + 5))
        middle = (x1 + x2) / 2
        self.text(int(middle), y - 5, words, size=13, anchor="middle", raw=True)
        self.lines.append((row, to if direction < 0 else frm, words, "->" if direction > 0 else "<-"))
        self.rows = max(self.rows, row + 1)

    def note(self, row, column, label, colour="#222", anchor=None, size=13, raw=False):
        """Text in a column at this row (what the kernel or a thread does)."""
        x = self.x[column]
        if anchor is None:
            anchor = "start" if column == "kernel" else "middle"
        if column == "kernel":
            x += 10
        self.text(x, self.y(row) + 4, label, size=size, anchor=anchor, colour=colour, raw=raw)
        self.rows = max(self.rows, row + 1)
        self.lines.append((row, column, label if raw else self.t(label), ""))

    def state(self, first, last, kind, column="application", label=None):
        """The thread's state from row first to row last, as a coloured bar."""
        x = LEFT_BAR if column == "application" else self.x[column] - BAR_WIDTH // 2
        y1, y2 = self.y(first), self.y(last)
        self.bars.append((first, last, kind, column))
        words = self.t(label or {SLEEP: "sleeps: waits for the data", HELD: "held in the call: the copy",
                                 FREE: "free: runs its own code", ASK: "asks again: EAGAIN"}[kind])
        self._add("<rect x='%d' y='%d' width='%d' height='%d' fill='%s'><title>%s</title></rect>"
                  % (x, y1, BAR_WIDTH, max(y2 - y1, 3), COLOURS[kind], escape(words)))
        if column == "application":
            self.text(x - 8, (y1 + y2) // 2 + 5, words, size=12, anchor="end", colour=TEXT_COLOURS[kind], weight="bold",
                      raw=True)
        self.rows = max(self.rows, last)

    def phase(self, first, last, number):
        y1, y2 = self.y(first), self.y(last)
        self.phases.append((first, last, number))
        name = "waiting for the data" if number == 1 else "copying kernel -> process"
        self._add("<g><title>%s</title><path d='M%d,%d h8 v%d h-8' fill='none' stroke='#555' stroke-width='1.4'/></g>"
                  % (escape(self.t("phase %d" % number) + ": " + self.t(name)), PHASE_X, y1, y2 - y1))
        middle = (y1 + y2) // 2
        self.text(PHASE_X + 14, middle - 2, "phase %d" % number, size=13, weight="bold")
        self.text(PHASE_X + 14, middle + 14, name, size=11, colour="#555")
        self.rows = max(self.rows, last)

    def band(self, first, last, column="kernel"):
        """The kernel's span of waiting: a light box under its notes."""
        x = self.x[column] - 6
        self._add("<rect x='%d' y='%d' width='%d' height='%d' fill='#eef2f7' stroke='#c8d3e0'/>"
                  % (x, self.y(first) - 12, min(230, PHASE_X - x - 12), self.y(last) - self.y(first) + 16))

    def render_text(self):
        """The same figure for a terminal: one line per step of time."""
        marks = {SLEEP: "zz", HELD: "##", FREE: "..", ASK: "??"}
        names = {kind: self.t(words) for kind, words in
                 ((SLEEP, "sleeps: waits for the data"), (HELD, "held in the call: the copy"),
                  (FREE, "free: runs its own code"), (ASK, "asks again: EAGAIN"))}
        out = [self.t(self.title), "  %-4s %-44s %s" % ("", self.t("application"), self.t("kernel"))]
        for row in range(self.rows + 1):
            bar = "  "
            for first, last, kind, column in self.bars:
                if column == "application" and first <= row < last:
                    bar = marks[kind]
            phase = ""
            for first, last, number in self.phases:
                if row == first:
                    phase = "  <- %s: %s" % (self.t("phase %d" % number),
                                             self.t("waiting for the data" if number == 1
                                                    else "copying kernel -> process"))
            steps = [entry for entry in self.lines if entry[0] == row]
            if not steps and not phase and bar == "  ":
                continue
            left, right = "", ""
            for _, column, words, arrow in steps:
                if arrow == "->":
                    left = "%s ---> " % words if column == "application" else left
                    right = right or ("(%s) --->" % words if column != "application" else "")
                elif arrow == "<-":
                    left = "<--- %s" % words
                elif column == "kernel":
                    right = words
                else:
                    left = words
            out.append("  %s   %-44s %s%s" % (bar, left, right, phase))
        out.append("  " + "   ".join("%s %s" % (marks[k], names[k]) for k in (SLEEP, HELD, ASK, FREE)))
        return "\n".join(out) + "\n"

    def render(self):
        width = 1060
        height = self.y(self.rows) + 44
        heads = []
        for column in self.columns:
            x = self.x[column]
            if column == "application":
                x = LEFT_BAR - 70
            elif column == "kernel":
                x += 60
            heads.append("<text x='%d' y='%d' font-size='15' font-weight='bold' text-anchor='middle' fill='#222'>%s</text>"
                         % (x, TOP - 30, escape(self.t(column))))
        divider = self.x["kernel"] - 40
        return "\n".join([
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' font-family=%s>"
            % (width, height, width, height, quoteattr(FONT)),
            "<title>%s</title>" % escape(self.t(self.title)),
            "<rect width='100%' height='100%' fill='white'/>",
            "<text x='16' y='24' font-size='17' font-weight='bold' fill='#222'>%s</text>" % escape(self.t(self.title)),
            "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#bbb' stroke-dasharray='2,4'/>"
            % (divider, TOP - 22, divider, height - 36),
            "<g><title>%s</title><line x1='16' y1='%d' x2='16' y2='%d' stroke='#999'/>"
            "<polygon points='16,%d 11,%d 21,%d' fill='#999'/></g>"
            % (escape(self.t("time")), TOP - 10, height - 40, height - 34, height - 44, height - 44),
            "<text x='24' y='%d' font-size='11' fill='#777'>%s</text>" % (TOP - 2, escape(self.t("time"))),
        ] + heads + self.parts + [
            "<text x='16' y='%d' font-size='10' fill='#888'>%s</text>"
            % (height - 12, escape(self.t("after Stevens, UNP vol. 1, figures 6.1-6.5; drawn by scripts/diagrams.py"))),
            "</svg>"]) + "\n"


def blocking(lang):
    f = Figure("1. blocking IO", lang)
    f.call(0, "application", "kernel", "recvfrom / read")
    f.band(1, 4)
    f.note(1, "kernel", "no data yet")
    f.note(4, "kernel", "data arrives")
    f.note(5, "kernel", "copy the data")
    f.note(6, "kernel", "copy done")
    f.call(7, "kernel", "application", "returns n bytes")
    f.note(8, "application", "process the data", anchor="end")
    f.state(0, 5, SLEEP)
    f.state(5, 7, HELD)
    f.phase(0, 5, 1)
    f.phase(5, 7, 2)
    return f


def nonblocking(lang):
    f = Figure("2. nonblocking IO", lang)
    for row in (0, 2, 4):
        f.call(row, "application", "kernel", "recvfrom / read")
        f.note(row, "kernel", "no data yet")
        f.call(row + 1, "kernel", "application", "EWOULDBLOCK / EAGAIN", dashed=True)
    f.note(6, "kernel", "data arrives")
    f.call(7, "application", "kernel", "recvfrom / read")
    f.note(8, "kernel", "copy the data")
    f.note(9, "kernel", "copy done")
    f.call(10, "kernel", "application", "returns n bytes")
    f.note(11, "application", "process the data", anchor="end")
    f.state(0, 7, ASK)
    f.state(7, 10, HELD)
    f.phase(0, 7, 1)
    f.phase(7, 10, 2)
    return f


def multiplexing(lang):
    f = Figure("3. IO multiplexing (select, poll, epoll)", lang)
    f.call(0, "application", "kernel", "select / poll / epoll_wait")
    f.band(1, 3)
    f.note(1, "kernel", "no data yet")
    f.note(3, "kernel", "data arrives")
    f.call(4, "kernel", "application", "returns: readable")
    f.call(5, "application", "kernel", "recvfrom / read")
    f.note(6, "kernel", "copy the data")
    f.note(7, "kernel", "copy done")
    f.call(8, "kernel", "application", "returns n bytes")
    f.note(9, "application", "process the data", anchor="end")
    f.state(0, 4, SLEEP, label="sleeps in the wait, for every socket at once")
    f.state(4, 5, FREE)
    f.state(5, 8, HELD)
    f.phase(0, 4, 1)
    f.phase(5, 8, 2)
    return f


def signal_driven(lang):
    f = Figure("4. signal-driven IO (SIGIO)", lang)
    f.call(0, "application", "kernel", "install a SIGIO handler (sigaction), O_ASYNC")
    f.call(1, "kernel", "application", "returns at once")
    f.band(2, 4)
    f.note(2, "kernel", "no data yet")
    f.note(4, "kernel", "data arrives")
    f.call(5, "kernel", "application", "SIGIO: IO can start", dashed=True)
    f.note(6, "application", "signal handler", anchor="end")
    f.call(7, "application", "kernel", "recvfrom / read")
    f.note(8, "kernel", "copy the data")
    f.note(9, "kernel", "copy done")
    f.call(10, "kernel", "application", "returns n bytes")
    f.note(11, "application", "process the data", anchor="end")
    f.note(12, "application", "may run during phase 1 (this server sleeps in sigsuspend: nothing else to do)",
           anchor="start", size=12, colour="#555")
    f.state(1, 5, FREE)
    f.state(7, 10, HELD)
    f.phase(1, 5, 1)
    f.phase(7, 10, 2)
    return f


def asynchronous(lang):
    f = Figure("5. asynchronous IO (POSIX aio_read, as Stevens draws it)", lang)
    f.call(0, "application", "kernel", "aio_read (hand over the buffer)")
    f.call(1, "kernel", "application", "returns at once")
    f.band(2, 4)
    f.note(2, "kernel", "no data yet")
    f.note(4, "kernel", "data arrives")
    f.note(5, "kernel", "copy the data")
    f.note(6, "kernel", "copy done")
    f.call(7, "kernel", "application", "signal or callback: IO is complete", dashed=True)
    f.note(8, "application", "process the data", anchor="end")
    f.note(9, "application", "free in both phases: told when the IO is done, not when it can start",
           anchor="start", size=12, colour="#555")
    f.state(1, 7, FREE)
    f.phase(1, 5, 1)
    f.phase(5, 7, 2)
    return f


def io_uring(lang):
    f = Figure("5a. asynchronous IO with io_uring, as this suite runs it (DEFER_TASKRUN)", lang)
    f.call(0, "application", "kernel", "io_uring_enter: submit recv")
    f.note(1, "kernel", "data there: copied inline, in the submit", size=12)
    f.note(2, "kernel", "no data: arm an internal poll", size=12)
    f.call(3, "kernel", "application", "returns at once")
    f.call(5, "application", "kernel", "io_uring_enter(GETEVENTS)")
    f.band(6, 7)
    f.note(6, "kernel", "no data yet")
    f.note(7, "kernel", "data arrives")
    f.note(8, "kernel", "poll wakes: queue task work", size=12)
    f.note(9, "kernel", "task work: recv copies")
    f.note(10, "kernel", "post the completion (CQE)", size=12)
    f.call(11, "kernel", "application", "returns: completions")
    f.note(12, "application", "process the data", anchor="end")
    f.note(13, "application",
           "the copy runs in our own thread, on our CPU time, inside io_uring_enter: strace cannot see it",
           anchor="start", size=12, colour="#555")
    f.note(14, "application", "io-wq worker threads are a fallback; with SQPOLL the SQ thread copies",
           anchor="start", size=12, colour="#555")
    f.state(0, 2, HELD, label="held only if data was there")
    f.state(3, 5, FREE)
    f.state(5, 8, SLEEP, label="waits in io_uring_enter: nothing else to do")
    f.state(8, 11, HELD)
    f.phase(3, 8, 1)
    f.phase(8, 11, 2)
    return f


def posix_aio(lang):
    helper = "glibc helper thread"
    f = Figure("5b. asynchronous IO with glibc's POSIX AIO", lang, columns=("application", helper, "kernel"))
    f.call(0, "application", helper, "aio_read: queue the request")
    f.call(1, helper, "application", "returns at once")
    f.call(2, helper, "kernel", "read (blocking)")
    f.band(3, 5)
    f.note(3, "kernel", "no data yet")
    f.note(5, "kernel", "data arrives")
    f.note(6, "kernel", "copy the data")
    f.call(7, "kernel", helper, "returns n bytes")
    f.call(8, helper, "application", "signal: IO complete", dashed=True)
    f.note(9, "application", "process the data", anchor="end")
    f.note(10, "application", "the helper thread blocks for the caller: a thread per waiting request",
           anchor="start", size=12, colour="#555")
    f.state(1, 8, FREE)
    f.state(2, 6, SLEEP, column=helper)
    f.state(6, 7, HELD, column=helper)
    f.phase(2, 6, 1)
    f.phase(6, 7, 2)
    return f


FIGURES = [("model-1-blocking", blocking), ("model-2-nonblocking", nonblocking),
           ("model-3-multiplexing", multiplexing), ("model-4-signal-driven", signal_driven),
           ("model-5-asynchronous", asynchronous), ("model-5-io_uring", io_uring),
           ("model-5-posix_aio", posix_aio)]


def render_all(lang="en"):
    """{file stem: SVG text} for every figure."""
    return {stem: draw(lang).render() for stem, draw in FIGURES}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("-o", "--out", help="directory (default docs/figures, or docs/figures/zh)")
    parser.add_argument("--lang", choices=("en", "zh"), default="en")
    parser.add_argument("--text", metavar="STEM", action="append",
                        help="print this figure (model-1-blocking, ...) for a terminal instead; repeatable")
    args = parser.parse_args(argv)
    if args.text:
        known = dict(FIGURES)
        for stem in args.text:
            if stem not in known:
                parser.error("no figure %s (%s)" % (stem, ", ".join(known)))
            sys.stdout.write(known[stem](args.lang).render_text() + "\n")
        return 0
    out = args.out or os.path.join(root, "docs", "figures", *(["zh"] if args.lang == "zh" else []))
    os.makedirs(out, exist_ok=True)
    for stem, text in render_all(args.lang).items():
        with open(os.path.join(out, stem + ".svg"), "w", encoding="utf-8") as f:
            f.write(text)
    print("diagrams: %d figures in %s" % (len(FIGURES), out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
