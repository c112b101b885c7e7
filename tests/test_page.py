"""The classroom kit: the five-model diagrams (scripts/diagrams.py), the page
(scripts/page.py, results/index.html) loaded in a real headless Chromium.
"""
import base64
import fcntl
import json
import os
import pathlib
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

import harness

SCRIPTS = harness.ROOT / "scripts"
FIGURES = harness.ROOT / "docs" / "figures"
SVG = "{http://www.w3.org/2000/svg}"
sys.path.insert(0, str(SCRIPTS))

import diagrams  # noqa: E402


def svg_words(root):
    return " ".join(t for element in root.iter() for t in (element.text,) if t)


def test_diagrams_are_well_formed_and_name_both_phases():
    for lang, phase_words in (("en", ("phase 1", "phase 2", "waiting for the data")),
                              ("zh", ("阶段 1", "阶段 2", "等待数据"))):
        figures = diagrams.render_all(lang)
        assert len(figures) == 7, sorted(figures)
        for stem, text in figures.items():
            root = ElementTree.fromstring(text)
            assert root.tag == SVG + "svg", stem
            assert root.find(SVG + "title") is not None, stem
            words = svg_words(root)
            for word in phase_words:
                assert word in words, (lang, stem, word)
            assert "<script" not in text and "href" not in text, stem


def test_diagrams_tell_each_model_its_truth():
    words = {stem: svg_words(ElementTree.fromstring(text)) for stem, text in diagrams.render_all("en").items()}
    assert "EAGAIN" in words["model-2-nonblocking"]
    assert "every socket at once" in words["model-3-multiplexing"]
    # Stevens' numbering: signal-driven is the fourth model, asynchronous the fifth.
    assert "4. signal-driven" in words["model-4-signal-driven"]
    assert "5. asynchronous" in words["model-5-asynchronous"]
    assert "IO can start" in words["model-4-signal-driven"]
    assert "IO is complete" in words["model-5-asynchronous"]
    # io_uring: the copy runs in the submitting thread, inline or as task work.
    assert "inline" in words["model-5-io_uring"] and "task work" in words["model-5-io_uring"]
    assert "strace cannot see it" in words["model-5-io_uring"]
    assert "glibc helper thread" in words["model-5-posix_aio"]


def test_diagrams_committed_in_docs_figures_match_the_generator():
    for lang, folder in (("en", FIGURES), ("zh", FIGURES / "zh")):
        for stem, text in diagrams.render_all(lang).items():
            path = folder / (stem + ".svg")
            assert path.exists(), "%s missing: run scripts/diagrams.py%s" % (path, " --lang zh" if lang == "zh" else "")
            assert path.read_text(encoding="utf-8") == text, \
                "%s is stale: run scripts/diagrams.py%s" % (path, " --lang zh" if lang == "zh" else "")


def test_diagrams_script_writes_where_asked():
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run([sys.executable, str(SCRIPTS / "diagrams.py"), "-o", out, "--lang", "zh"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        written = sorted(p.name for p in pathlib.Path(out).iterdir())
        assert written == sorted(stem + ".svg" for stem, _ in diagrams.FIGURES), written
        bad = subprocess.run([sys.executable, str(SCRIPTS / "diagrams.py"), "--lang", "fr"],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "invalid choice" in bad.stderr, bad.stderr


# ---------------------------------------------------------------------------
# The page in a real browser: headless Chromium driven over the DevTools
# protocol on a pipe (--remote-debugging-pipe: fd 3 carries our commands,
# fd 4 its answers and events, each a JSON text ended by a NUL byte).

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--remote-debugging-pipe"]


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise harness.Skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")


class Chromium:
    """Just enough of the DevTools protocol to load a page and ask it questions."""

    def __init__(self, timeout=60):
        self.timeout = timeout
        self.profile = tempfile.TemporaryDirectory()
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Far from 3 and 4, so that placing them there cannot clobber one another.
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 100)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 100)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)

        def place_pipes():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [find_chromium()] + CHROMIUM_FLAGS + ["--user-data-dir=" + self.profile.name, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            pass_fds=(3, 4, high_r, high_w), preexec_fn=place_pipes)
        os.close(high_r)
        os.close(high_w)
        self.writer = os.fdopen(to_browser_w, "wb", buffering=0)
        self.reader = from_browser_r
        self.pending = b""
        self.next_id = 0
        self.events = []

    def _receive(self, deadline):
        while b"\0" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("chromium did not answer within %ds" % self.timeout)
            ready, _, _ = select.select([self.reader], [], [], left)
            if ready:
                chunk = os.read(self.reader, 1 << 20)
                if not chunk:
                    raise AssertionError("chromium closed the pipe: %s" % self.process.stderr.read()[-2000:])
                self.pending += chunk
        message, self.pending = self.pending.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, session=None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.writer.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise AssertionError("%s failed: %s" % (method, answer["error"]))
                return answer.get("result", {})
            self.events.append(answer)

    def wait_event(self, method, session):
        deadline = time.monotonic() + self.timeout
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        while True:
            event = self._receive(deadline)
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def open(self, url, width, height):
        """A new tab of this size with url loaded; returns its session."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(domain + ".enable", session)
        self.send("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                  deviceScaleFactor=1, mobile=width < 600)
        self.send("Page.navigate", session, url=url)
        self.wait_event("Page.loadEventFired", session)
        return session

    def evaluate(self, session, expression):
        result = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError("evaluation failed: %s" % result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, session, path):
        data = self.send("Page.captureScreenshot", session, format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def problems(self, session, page_url):
        """Console errors, uncaught exceptions, and every request for anything but the page itself."""
        found = []
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append("exception: %s" % params.get("exceptionDetails", {}).get("text"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console %s: %s" % (params["type"], params.get("args")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append("log: %s" % params["entry"].get("text"))
            elif method == "Network.requestWillBeSent":
                url = params.get("request", {}).get("url", "")
                if url != page_url and not url.startswith(("data:", "about:")):
                    found.append("request: %s" % url)
        return found

    def close(self):
        try:
            self.send("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.writer.close()
        os.close(self.reader)
        self.process.stderr.close()
        self.profile.cleanup()


# What the page says about itself, computed in the browser.
PAGE_REPORT = """(() => {
  const width = window.innerWidth;
  const wide = [];
  for (const e of document.body.querySelectorAll('*')) {
    if (e.closest('.scroll')) continue;           // a table may scroll inside its own box
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > width + 1) wide.push(e.tagName + '.' + (e.className.baseVal ?? e.className));
  }
  const external = [];
  for (const e of document.querySelectorAll('*')) {
    for (const a of e.attributes) {
      if (/^(href|src|xlink:href|action|poster|srcset|data)$/.test(a.name) && !/^#/.test(a.value)) external.push(e.tagName + ' ' + a.name + '=' + a.value);
      if (a.name === 'style' && /url\\(/.test(a.value)) external.push(e.tagName + ' style url()');
    }
  }
  const sized = s => { const r = s.getBoundingClientRect(); return r.width > 50 && r.height > 50; };
  return {
    sections: [...document.querySelectorAll('main > section')].map(s => s.id),
    diagrams: [...document.querySelectorAll('figure.diagram')].map(f => f.dataset.diagram),
    timelines: [...document.querySelectorAll('article.trace')].map(a => a.dataset.trace),
    verdicts: document.querySelectorAll('article.trace .verdict').length,
    proofs: document.querySelectorAll('article.trace pre').length,
    charts: [...document.querySelectorAll('figure.chart')].map(f => f.dataset.chart),
    unsized: [...document.querySelectorAll('figure svg')].filter(s => !sized(s)).length,
    spanTitles: document.querySelectorAll('figure.timeline svg rect > title').length,
    meta: [...document.querySelectorAll('[id^=meta-]')].map(e => e.id),
    scrollWidth: document.documentElement.scrollWidth,
    width, wide: wide.slice(0, 5), external,
    csp: document.querySelector('meta[http-equiv=Content-Security-Policy]')?.content,
    scripts: document.scripts.length,
  };
})()"""

SAMPLE_TRACES = [["blocking-iterative"], ["-s", "burst", "multiplexing-epoll-edge", "--", "--read-once"]]


def make_sample_results(out):
    """A short real run: two traces and one comparison, with the pauses shrunk."""
    if harness.SANITIZED:
        raise harness.Skip("strace on sanitized binaries: the plain run covers the page")
    if not shutil.which("strace"):
        raise harness.Skip("strace is not installed")
    env = dict(os.environ, BIN=str(harness.BIN_DIR), TRACE_SCALE="0.2")
    for words in SAMPLE_TRACES:
        run = subprocess.run([str(SCRIPTS / "trace.sh"), "-o", out] + words, env=env, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
    run = subprocess.run([str(SCRIPTS / "compare.sh"), "-c", "1", "-d", "0.3", "-m", "epoll", "-o", out],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    # A latency chart found by its name, as the latency scripts leave them.
    shutil.copy(os.path.join(out, "compare.svg"), os.path.join(out, "latency-sample.svg"))
    shutil.copy(os.path.join(out, "compare.csv"), os.path.join(out, "latency-sample.csv"))


def write_page(results, lang):
    run = subprocess.run([sys.executable, str(SCRIPTS / "page.py"), "-r", results, "--lang", lang],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    page = os.path.join(results, "index.html")
    assert run.stdout.strip() == "page: " + page, run.stdout
    return page


def check_in_browser(page, shots, lang):
    url = pathlib.Path(page).as_uri()
    browser = Chromium()
    try:
        for width, height in ((1280, 720), (390, 844)):
            session = browser.open(url, width, height)
            report = browser.evaluate(session, PAGE_REPORT)
            browser.screenshot(session, os.path.join(shots, "page-%s-%dx%d.png" % (lang, width, height)))
            where = "%s at %dx%d" % (lang, width, height)
            assert browser.problems(session, url) == [], (where, browser.problems(session, url))
            assert report["sections"] == ["blocking", "nonblocking", "multiplexing", "signal-driven",
                                          "asynchronous", "compare", "latency"], (where, report["sections"])
            assert report["diagrams"] == [stem for stem, _ in diagrams.FIGURES], (where, report["diagrams"])
            assert report["timelines"] == ["blocking-iterative", "multiplexing-epoll-edge-read-once-burst"], (where, report)
            assert report["verdicts"] == 2 and report["proofs"] == 2, (where, report)
            assert report["charts"] == ["compare", "latency-sample"], (where, report["charts"])
            assert report["unsized"] == 0, (where, report)
            assert report["spanTitles"] > 4, (where, report)  # hovering a span names its call
            assert set(report["meta"]) >= {"meta-machine", "meta-kernel", "meta-load", "meta-commit",
                                           "meta-date", "meta-made"}, (where, report["meta"])
            assert report["external"] == [] and report["scripts"] == 0, (where, report)
            assert "default-src 'none'" in (report["csp"] or ""), (where, report["csp"])
            assert report["scrollWidth"] <= width and report["wide"] == [], (where, report)
    finally:
        browser.close()


def test_page_in_chromium_renders_every_section_and_fetches_nothing():
    find_chromium()
    with tempfile.TemporaryDirectory() as results:
        make_sample_results(results)
        shots = os.environ.get("PAGE_SCREENSHOTS") or results  # kept where asked, to look at
        for lang in ("en", "zh"):
            page = write_page(results, lang)
            text = pathlib.Path(page).read_text(encoding="utf-8")
            assert ("阻塞" in text) == (lang == "zh"), lang
            check_in_browser(page, shots, lang)


def test_page_catches_an_external_fetch():
    """The browser check is not blind: a page that fetches from outside fails it."""
    find_chromium()
    with tempfile.TemporaryDirectory() as results:
        page = write_page(results, "en")
        text = pathlib.Path(page).read_text(encoding="utf-8")
        # An image from elsewhere (loopback, port 9: nothing listens) and a broken inline script.
        bad = text.replace("<main>", "<main><img src='http://127.0.0.1:9/x.png' alt=''>", 1)
        pathlib.Path(page).write_text(bad, encoding="utf-8")
        url = pathlib.Path(page).as_uri()
        browser = Chromium()
        try:
            session = browser.open(url, 1280, 720)
            report = browser.evaluate(session, PAGE_REPORT)
            assert report["external"], report
            problems = browser.problems(session, url)
            # The CSP refuses the image: Chromium logs the refusal as an error.
            assert any("127.0.0.1:9" in p for p in problems), problems
        finally:
            browser.close()


def test_page_without_results_says_how_to_make_them():
    with tempfile.TemporaryDirectory() as results:
        page = write_page(results, "en")
        text = pathlib.Path(page).read_text(encoding="utf-8")
        assert "scripts/trace.sh blocking-iterative" in text
        assert "scripts/compare.sh" in text
    missing = subprocess.run([sys.executable, str(SCRIPTS / "page.py"), "-r", "/nonexistent/results"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr, missing.stderr


def test_demo_writes_the_page_and_says_where_in_chinese_on_request():
    """make demo's script, with every pause and run shrunk, into a directory of its own; in
    Chinese (LANG=zh_CN.UTF-8), which the English page test above does not cover."""
    if harness.SANITIZED:
        raise harness.Skip("strace on sanitized binaries: the plain run covers the demo")
    if not shutil.which("strace"):
        raise harness.Skip("strace is not installed")
    for lang, env_lang, words in (("zh", "zh_CN.UTF-8", "投影用的页面"),):
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, BIN=str(harness.BIN_DIR), TRACE_SCALE="0.1", DEMO_SECONDS="0.1", LANG=env_lang)
            env.pop("LC_ALL", None)
            env.pop("LC_MESSAGES", None)
            run = subprocess.run([str(SCRIPTS / "demo.sh"), "-o", out], env=env, capture_output=True, text=True,
                                 timeout=300)
            assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
            page = os.path.join(out, "index.html")
            assert words in run.stdout and page in run.stdout, run.stdout[-1000:]
            text = pathlib.Path(page).read_text(encoding="utf-8")
            assert ("lang='zh-CN'" in text) == (lang == "zh"), lang
            # The diagrams were shown in the terminal, the traces and comparison made.
            assert "phase 1" in run.stdout or "阶段 1" in run.stdout, run.stdout[:2000]
            for stem in ("blocking-iterative", "nonblocking-spin", "multiplexing-epoll", "nonblocking-sigio",
                         "async-posix-aio", "multiplexing-epoll-edge-read-once-burst"):
                assert os.path.exists(os.path.join(out, "trace-%s.json" % stem)), stem
                assert "data-trace='%s'" % stem in text, stem
            assert "data-chart='compare'" in text
            assert "data-crowd='1'" in text and "FD_SETSIZE" in text


test_demo_writes_the_page_and_says_where_in_chinese_on_request.time_limit = 240  # six traces and a race


# ---------------------------------------------------------------------------
# The labs: every ```sh block of docs/labs.md runs as printed, with only
# these rewrites: results/labs/ becomes a private directory, bin/ the build
# under test, durations shrink (-d N: 0.3 s; TRACE_SCALE=0.2). The Chinese
# edition carries the same blocks (tests/test_docs.py compares them).

LABS = harness.ROOT / "docs" / "labs.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```[ \t]*$", re.M | re.S)


def lab_blocks(path=LABS):
    """(lab heading, block text) for every sh block, in order."""
    text = path.read_text(encoding="utf-8")
    heading = ""
    blocks = []
    position = 0
    for m in SH_BLOCK.finditer(text):
        for h in re.finditer(r"^## (.*)$", text[position:m.start()], re.M):
            heading = h.group(1)
        position = m.start()
        blocks.append((heading, m.group(1)))
    return blocks


def rewrite_lab(block, out):
    block = block.replace("results/labs", out)
    block = re.sub(r"(?<![\w/.])bin/", str(harness.BIN_DIR) + "/", block)
    return re.sub(r"(\s-d\s+)\d+(\.\d+)?", r"\g<1>0.3", block)


def test_labs_cover_every_model_and_the_homework():
    headings = [h for h, _ in lab_blocks()]
    for word in ("Lab 1: blocking", "Lab 2: nonblocking", "Lab 3: IO multiplexing", "Lab 4: signal-driven",
                 "Lab 5: asynchronous", "Lab 6: scaling", "Lab 7: latency", "Lab 8 (homework): an FTP"):
        assert any(h.startswith(word) for h in headings), (word, headings)
    answers = (harness.ROOT / "docs" / "labs-answers.md").read_text(encoding="utf-8")
    for n in range(1, 9):
        assert re.search(r"^## Lab %d\b" % n, answers, re.M), "labs-answers.md has no Lab %d" % n
    assert "```sh" not in answers, "the answers print no commands to run: the labs do"


def test_every_lab_command_runs_as_printed():
    if harness.SANITIZED:
        raise harness.Skip("strace on sanitized binaries: the plain run covers the labs")
    for program in ("strace", "curl"):
        if not shutil.which(program):
            raise harness.Skip("%s is not installed" % program)
    env = dict(os.environ, BIN=str(harness.BIN_DIR), TRACE_SCALE="0.2")
    with tempfile.TemporaryDirectory(prefix="iomodels-labs-") as out:
        for heading, block in lab_blocks():
            script = "set -eo pipefail\n" + rewrite_lab(block, out)
            run = subprocess.run(["bash", "-c", script], cwd=harness.ROOT, env=env, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=harness.slow(240))
            assert run.returncode == 0, "%s: exit %d\n%s\n%s" % (heading, run.returncode, script,
                                                                 (run.stdout + run.stderr)[-1500:])
            # What each lab asks the student to look at is there.
            if heading.startswith("Lab 3") and "burst" in block:
                report = (pathlib.Path(out) / "trace-multiplexing-epoll-edge-read-once-burst.txt").read_text()
                assert "stalled" in report, report[-800:]
            if heading.startswith("Lab 7") and "bench" in block:
                assert "p99" in run.stdout, run.stdout[-800:]
            if "make grade SERVER" in block:
                assert "summary:" in run.stdout and " 0 failed" in run.stdout, run.stdout[-800:]
            if heading.startswith("Lab 8"):
                assert "hello" in run.stdout and "summary:" in run.stdout, run.stdout[-800:]
        for name in ("trace-blocking-iterative.txt", "trace-nonblocking-sigio.svg", "trace-async-posix-aio.json",
                     "compare.csv", "sweep.svg"):
            assert (pathlib.Path(out) / name).exists(), name


test_every_lab_command_runs_as_printed.time_limit = 900  # a dozen traces, three races, a sweep, both graders
