"""The documentation stays true: both languages carry the same figures,
every relative link resolves, and every command printed in README.md and
docs/*.md runs as printed.

Pairs are found, not listed: docs/zh/NAME.md is the Chinese twin of
docs/NAME.md (docs/zh/README.md of README.md), and every English page in
docs/ must have one.

Commands are the lines of fenced blocks marked sh/bash/shell, and of
unmarked blocks whose every line starts with one of the suite's commands.
They run from the repository's root, loopback only, with these rewrites
and no others:
  - a server gets a port from the kernel (`-p 0`) and is stopped by PID when
    the page's next server of its kind starts, at `kill %1`, or when the
    page ends; clients and
    curl talk to that port where the page says 8000 or 2121;
  - `-r /tmp` and other /tmp paths become a private directory;
  - durations shrink (`-d N` becomes 0.2 s, TRACE_SCALE=0.2), scripts write
    to a private directory (`-o DIR`), and compare.sh races one connection
    count of one variant (multiplexing-epoll), measured once (`-r 1`);
  - `bin/` is the build under test.
A few lines cannot run in a test; NOT_RUN lists them, each with its reason.
"""
import collections
import os
import pathlib
import re
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

import harness
from harness import ROOT, Skip

DOCS = ROOT / "docs"
ZH = DOCS / "zh"

# ---------------------------------------------------------------- pairs --


def english_pages():
    pages = [ROOT / "README.md"]
    pages += sorted(p for p in DOCS.glob("*.md"))
    return pages


def twin(page):
    return ZH / ("README.md" if page == ROOT / "README.md" else page.name)


FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
SHELL_TAGS = {"sh", "bash", "shell", "console"}


def strip_shell_comment(line):
    # A comment starts at a # that begins a word, outside quotes (good
    # enough for the lines the docs print).
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            break
        out.append(ch)
    return "".join(out).rstrip()


MONTHS = ("January February March April May June July August September October November December").split()


def iso_dates(prose):
    """'1 December 2026' and '2026 年 12 月 1 日' both become 2026-12-01, so a
    date may be written the way each language writes it."""
    prose = re.sub(r"\b(\d{1,2}) (%s) (\d{4})\b" % "|".join(MONTHS),
                   lambda m: "%s-%02d-%02d" % (m.group(3), MONTHS.index(m.group(2)) + 1, int(m.group(1))), prose)
    return re.sub(r"(\d{4}) ?年 ?(\d{1,2}) ?月 ?(\d{1,2}) ?日",
                  lambda m: "%s-%02d-%02d" % (m.group(1), int(m.group(2)), int(m.group(3))), prose)


def figures(text):
    """What must agree between the two languages: fenced blocks (shell
    blocks without their comments), inline code spans, and the numbers in
    the prose. List numbering, link targets and anchors are left out."""
    blocks = collections.Counter()

    def take_block(m):
        tag, body = m.group(1).strip(), m.group(2)
        if tag in SHELL_TAGS:
            body = "\n".join(strip_shell_comment(l) for l in body.splitlines())
        else:
            # the figures of a non-shell block, not its words: an ASCII
            # diagram may be labelled in either language
            body = " ".join(re.findall(r"\d+(?:\.\d+)*", body)) if tag == "text" else body
        blocks[body.strip()] += 1
        return "\n"

    prose = FENCE.sub(take_block, text)
    # a code span may wrap across lines (not paragraphs): compare it unwrapped
    spans = collections.Counter(re.sub(r"\s+", " ", s).strip()
                                for s in re.findall(r"`((?:[^`\n]|\n(?!\s*\n))+)`", prose))
    prose = re.sub(r"`(?:[^`\n]|\n(?!\s*\n))+`", " ", prose)
    prose = re.sub(r"\]\([^)]*\)", "]", prose)          # link targets
    prose = re.sub(r"<a id=\"[^\"]*\"></a>", " ", prose)  # anchors
    prose = re.sub(r"https?://\S+", " ", prose)
    prose = re.sub(r"^\s*\d+\.\s", " ", prose, flags=re.M)  # list numbering
    prose = re.sub(r"(?<=\d),(?=\d{3}\b)", "", prose)     # 45,000 is 45000
    prose = iso_dates(prose)
    numbers = collections.Counter(re.findall(r"\d+(?:\.\d+)*", prose))
    return blocks, spans, numbers


def difference(name, en, zh):
    missing = en - zh
    extra = zh - en
    lines = []
    if missing:
        lines.append("  %s in English only: %s" % (name, sorted(missing.elements())[:12]))
    if extra:
        lines.append("  %s in Chinese only: %s" % (name, sorted(extra.elements())[:12]))
    return lines


def test_every_english_page_has_a_chinese_twin():
    missing = [str(p.relative_to(ROOT)) for p in english_pages() if not twin(p).exists()]
    orphans = [str(p.relative_to(ROOT)) for p in sorted(ZH.glob("*.md"))
               if not (ROOT / "README.md" if p.name == "README.md" else DOCS / p.name).exists()]
    assert not missing and not orphans, "no Chinese twin: %s; no English original: %s" % (missing, orphans)


def test_both_languages_carry_the_same_figures():
    problems = []
    for page in english_pages():
        zh = twin(page)
        if not zh.exists():
            continue  # the test above reports it
        en_fig = figures(page.read_text(encoding="utf-8"))
        zh_fig = figures(zh.read_text(encoding="utf-8"))
        lines = []
        for name, a, b in zip(("blocks", "code", "numbers"), en_fig, zh_fig):
            lines += difference(name, a, b)
        if lines:
            problems.append("%s vs %s:\n%s" % (page.relative_to(ROOT), zh.relative_to(ROOT), "\n".join(lines)))
    assert not problems, "\n".join(problems)


def test_figures_catch_a_stale_number():
    # The comparison above must be able to fail: one changed figure, or a
    # code span translated, shows up.
    en = "The server took 6.6 us per message at `-c 100`, 45,000 calls.\n1. first\n2. second\n"
    assert figures(en) == figures("在 `-c 100` 时每条消息 6.6 us，45000 次调用。\n1. 第一\n2. 第二\n")
    assert figures(en)[2] != figures("在 `-c 100` 时每条消息 7.4 us，45000 次调用。\n")[2]
    assert figures(en)[1] != figures("在 `-c 一百` 时每条消息 6.6 us，45000 次调用。\n")[1]
    assert figures("On 1 December 2026.")[2] == figures("2026 年 12 月 1 日。")[2] == figures("On 2026-12-01.")[2]


# ---------------------------------------------------------------- links --


def slug(heading):
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    found = set(re.findall(r"<a id=\"([^\"]+)\"", text))
    found |= {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}
    return found


def test_every_relative_link_resolves():
    broken = []
    for page in [ROOT / "README.md"] + sorted(DOCS.rglob("*.md")):
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, frag = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append("%s: %s (no such file)" % (page.relative_to(ROOT), target))
            elif frag and dest.suffix == ".md" and frag not in anchors(dest):
                broken.append("%s: %s (no such anchor)" % (page.relative_to(ROOT), target))
    assert not broken, "\n".join(broken)


# ------------------------------------------------------------- commands --

COMMAND_WORDS = ("bin/", "scripts/", "make", "curl", "strace", "printf", "python3", "tests/", "kill", "cat ")

# Lines that cannot run in a test, each with its reason.
NOT_RUN = [
    (r"^make demo\b", "about a minute of tracing and racing that rewrites results/; its parts, "
                      "trace.sh and compare.sh, run here from their own lines"),
    (r"^make (test|check)\b", "the test suite itself, of which this test is a part"),
    (r"^make$", "the runner builds bin/ before any test"),
    (r"scripts/compare\.sh .*-L\b", "a latency sweep, several open-loop steps of every variant; "
                                   "tests/test_compare.py runs it with short steps"),
    (r"scripts/compare\.sh .*-i\b", "holds up to thousands of idle connections at each step; "
                                   "tests/test_compare.py runs it with a small crowd"),
    (r"\bmy_ftpd\.py\b", "grades a student's own server, which is not in the repository; the grader's "
                          "own tests run it on tests/broken/ftp_server.py"),
    (r"(?<![\w./-])[A-Z]{3,}(?![\w.])|\[", "a synopsis with placeholders, not a command"),
]
# Pages whose commands another test runs.
OTHER_TESTS = {"labs.md": "tests/test_page.py runs the labs' commands"}


def command_blocks(page):
    text = page.read_text(encoding="utf-8")
    for m in FENCE.finditer(text):
        tag, body = m.group(1).strip(), m.group(2)
        lines = [strip_shell_comment(l) for l in body.splitlines()]
        lines = [l.strip() for l in lines if l.strip()]
        if tag in SHELL_TAGS or (tag == "" and lines and all(l.startswith(COMMAND_WORDS) for l in lines)):
            yield lines


def printed_commands():
    pages = [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
    for page in pages:
        if page.name in OTHER_TESTS and page.parent == DOCS:
            continue
        for lines in command_blocks(page):
            for line in lines:
                yield page, line


def not_run_reason(line):
    for pattern, reason in NOT_RUN:
        if re.search(pattern, line):
            return reason
    return None


def is_server(line):
    return re.search(r"(?<![\w/])bin/(server-[a-z]+|ftpd)\b", line) is not None


class Page:
    """The servers a page has started, by kind (echo or ftp), and the private
    directory its commands write to."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.servers = {}
        self.last = None

    def rewrite(self, line):
        # /tmp first: the paths put in after it may themselves lie under /tmp
        # (a clone checked out there), and must stay as they are.
        line = re.sub(r"(?<![\w./])/tmp(?=/|\s|$)", lambda m: str(self.tmp), line)
        line = re.sub(r"(?<![\w/.])bin/", str(harness.BIN_DIR) + "/", line)
        line = re.sub(r"(\s-d\s+)\d+(\.\d+)?", r"\g<1>0.2", line)
        for kind, default in (("echo", "8000"), ("ftp", "2121")):
            if kind in self.servers:
                line = re.sub(r"(?<![\w.])%s\b" % default, str(self.servers[kind][1]), line)
        line = re.sub(r"(scripts/(trace|compare)\.sh)\b", r"\1 -o " + shlex.quote(str(self.tmp)), line)
        if "scripts/compare.sh" in line:
            # one connection count and one variant: the options still parse
            line = re.sub(r"(\s-c\s+)(\d+)[\d,]*", r"\g<1>\2", line)
            line = re.sub(r"\s-[mr]\s+\S+", "", line) + " -r 1 -m multiplexing-epoll"
        return line

    def start_server(self, line, where):
        kind = "ftp" if re.search(r"bin/ftpd\b", line) else "echo"
        self.stop(kind, where)
        line = line.rstrip("&").strip()
        line = self.rewrite(line)
        if re.search(r"\s-p\s+\d+", line):
            line = re.sub(r"(\s-p\s+)\d+", r"\g<1>0", line)
        else:
            line += " -p 0"
        env = None
        if line.startswith("strace "):  # LeakSanitizer cannot run under ptrace: a sanitized server would exit 1
            env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        proc = subprocess.Popen(shlex.split(line), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env)
        first = read_line(proc, harness.slow(10))
        m = re.match(r"listening on (.*):(\d+)$", first.strip())
        if not m:
            stop_process(proc)
            raise AssertionError("%s: %r printed %r, not 'listening on ADDR:PORT'" % (where, line, first))
        self.servers[kind] = (proc, int(m.group(2)), where)
        self.last = kind

    def stop(self, kind, where):
        entry = self.servers.pop(kind, None)
        if entry:
            code = stop_process(entry[0])
            assert code == 0, "%s: the server started at %s exited %s on SIGTERM" % (where, entry[2], code)

    def close(self):
        for kind in list(self.servers):
            self.stop(kind, "end of page")


def read_line(proc, timeout):
    deadline = time.monotonic() + timeout
    data = b""
    fd = proc.stdout.fileno()
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def children(pid):
    try:
        text = pathlib.Path("/proc/%d/task/%d/children" % (pid, pid)).read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def stop_process(proc):
    """SIGTERM to the server: to strace's child when strace wraps it, since
    strace itself would only detach."""
    targets = [proc.pid]
    if os.path.basename(proc.args[0]) == "strace":
        targets = children(proc.pid) or targets
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout=harness.slow(10))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "killed after 10 s"


def need(program):
    if shutil.which(program) is None:
        raise Skip("%s is not installed" % program)


def test_every_printed_command_works():
    commands = list(printed_commands())
    assert commands, "no commands found in README.md and docs/*.md"
    for program in ("strace", "curl"):
        if any(re.search(r"(^|\s)%s\s" % program, line) for _, line in commands):
            need(program)
    env = dict(os.environ, TRACE_SCALE="0.2", BIN=str(harness.BIN_DIR))
    ran, skipped = 0, []
    with tempfile.TemporaryDirectory(prefix="iomodels-docs-") as tmp:
        pages = {}
        try:
            for page, line in commands:
                where = "%s: %s" % (page.relative_to(ROOT), line)
                reason = not_run_reason(line)
                if reason:
                    skipped.append((where, reason))
                    continue
                state = pages.get(page)
                if state is None:
                    for other in pages.values():
                        other.close()
                    pages.clear()
                    state = pages[page] = Page(pathlib.Path(tmp))
                if re.match(r"kill %\d+(;\s*wait)?$", line):
                    # the page's job control: stop the server it started last
                    assert state.servers, "%s: no server to stop" % where
                    state.stop(state.last, where)
                    ran += 1
                    continue
                if is_server(line) and (line.endswith("&") or not re.search(r"\|\s*|&&", line)) \
                        and not re.search(r"\bbin/client\b", line):
                    state.start_server(line, where)
                    ran += 1
                    continue
                cmd = state.rewrite(line)
                proc = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      timeout=harness.slow(30))
                assert proc.returncode == 0, "%s\n  ran: %s\n  exit %d; stderr: %s" % (
                    where, cmd, proc.returncode, proc.stderr[-800:])
                ran += 1
        finally:
            for state in pages.values():
                state.close()
    assert ran > 0, "every printed command was skipped: %s" % skipped


test_every_printed_command_works.time_limit = 120


def test_commands_that_do_not_run_say_why():
    # Each line left out matches one entry of NOT_RUN, and each entry of
    # NOT_RUN still matches some printed line (no stale excuses).
    used = set()
    for _, line in printed_commands():
        for pattern, _ in NOT_RUN:
            if re.search(pattern, line):
                used.add(pattern)
                break
    stale = [p for p, _ in NOT_RUN if p not in used]
    assert not stale, "NOT_RUN entries that match no printed command: %s" % stale
