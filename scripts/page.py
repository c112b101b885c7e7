#!/usr/bin/env python3
"""One page to project: results/index.html, from what trace.sh and compare.sh left.

    scripts/page.py [-r RESULTS] [-o FILE] [--lang en|zh]

For each model in the lesson's order (Stevens' five: blocking, nonblocking,
multiplexing, signal-driven, asynchronous): its diagram (scripts/diagrams.py),
then every timeline traced for it (results/trace-*.svg), the report's verdict
and the strace lines that prove it (trace-*.json, trace-*.txt); then the
comparison (compare.csv, compare.svg) and any other chart found in RESULTS
(latency sweeps and the like: *.svg with a *.csv of the same name).

The page is self-contained: every picture is inline SVG, no script, no
external style or font, and a Content-Security-Policy that forbids fetching
anything, so it reads the same offline on a classroom machine. --lang zh (or
LANG=zh_*) writes it in Chinese. The machine, kernel, date, load and commit
that made it are at its top.
"""
import argparse
import csv
import datetime
import html
import json
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import diagrams  # noqa: E402

# The lesson's order. Each model: its number, its diagrams, and which traces belong to it.
MODELS = [
    ("blocking", ["model-1-blocking"], lambda stem: stem.startswith("blocking")),
    ("nonblocking", ["model-2-nonblocking"],
     lambda stem: stem.startswith("nonblocking") and not stem.startswith("nonblocking-sigio")),
    ("multiplexing", ["model-3-multiplexing"], lambda stem: stem.startswith("multiplexing")),
    ("signal-driven", ["model-4-signal-driven"], lambda stem: stem.startswith("nonblocking-sigio")),
    ("asynchronous", ["model-5-asynchronous", "model-5-io_uring", "model-5-posix_aio"],
     lambda stem: stem.startswith("async")),
]

# The page's words, in English and in Chinese: data, kept beside this file.
with open(os.path.join(HERE, "page_text.json"), encoding="utf-8") as _words:
    TEXT = json.load(_words)

STYLE = """
:root { --ink: #1d1d1f; --muted: #555; --rule: #d0d4da; --panel: #f6f7f9; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0 auto; max-width: 1180px; padding: 12px 20px 40px; color: var(--ink); background: #fff;
       font: 17px/1.45 "DejaVu Sans", "Noto Sans CJK SC", "WenQuanYi Micro Hei", Helvetica, Arial, sans-serif; }
h1 { font-size: 1.7em; margin: 0.3em 0 0.2em; }
h2 { font-size: 1.35em; margin: 1.4em 0 0.4em; padding-top: 0.4em; border-top: 3px solid var(--ink); }
h3 { font-size: 1.1em; margin: 1.1em 0 0.3em; }
p { margin: 0.4em 0 0.6em; }
.lead { font-size: 1.05em; }
.meta { display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 0.85em; color: var(--muted); margin: 0; padding: 0; }
.meta div { list-style: none; }
.meta b { color: var(--ink); font-weight: 600; }
nav { font-size: 0.9em; margin: 0.6em 0; }
nav a { margin-right: 12px; white-space: nowrap; color: #1f4e8c; }
figure { margin: 0.6em 0 1em; }
figure svg { display: block; width: 100%; height: auto; max-width: 100%; }
figcaption { font-size: 0.8em; color: var(--muted); }
.verdict { background: var(--panel); border-left: 5px solid #4e79a7; padding: 8px 12px; }
pre { background: #1e2227; color: #e8e8e8; padding: 8px 10px; font-size: 0.72em; line-height: 1.35;
      white-space: pre-wrap; overflow-wrap: anywhere; border-radius: 4px; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border-bottom: 1px solid var(--rule); padding: 3px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: var(--panel); }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 0.85em; }
.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin-right: 5px; }
.missing { color: var(--muted); font-style: italic; }
details { margin: 0.3em 0 1em; } summary { cursor: pointer; color: #1f4e8c; font-size: 0.9em; }
footer { margin-top: 2em; font-size: 0.8em; color: var(--muted); }
figure.diagram svg { max-width: 940px; }
@media (max-width: 700px) {
  body { font-size: 15px; padding: 8px 10px 30px; }
  h1 { font-size: 1.35em; }
  /* A phone keeps the pictures legible: each scrolls sideways in its own box. */
  figure.scroll svg { min-width: 760px; }
}
@media print {
  body { max-width: none; font-size: 11pt; padding: 0; }
  nav { display: none; }
  h2 { break-before: page; border-top: none; }
  h2:first-of-type { break-before: auto; }
  figure, .verdict, pre, table { break-inside: avoid; }
  pre { background: #fff; color: #000; border: 1px solid #999; }
  a { color: inherit; text-decoration: none; }
}
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STRACE_LINE = re.compile(r"^\s*\d+\s+\d\d:\d\d:\d\d\.\d+\s+\S")


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def inline_svg(text, label=None):
    """An SVG file's markup, ready to sit in HTML: no XML prolog, a role and a name."""
    text = re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    if label:
        text = text.replace("<svg ", "<svg role='img' aria-label=%s " % html.escape(label, quote=True).join('""'), 1)
    return text.strip()


def variant_order():
    """Variant names in scripts/variants.txt's order (the lesson's order inside a model)."""
    names = []
    for line in (read(os.path.join(HERE, "variants.txt")) or "").splitlines():
        words = line.split()
        if words and not line.lstrip().startswith("#"):
            names.append(words[0])
    return names


def trace_stems(results):
    """trace-*.json in results, as stems without 'trace-', in the lesson's order."""
    try:
        stems = [name[len("trace-"):-len(".json")] for name in os.listdir(results)
                 if name.startswith("trace-") and name.endswith(".json")]
    except OSError:
        return []
    order = variant_order()

    def rank(stem):
        # async-auto and async (no option) come with the uring engine they pick.
        for i, name in enumerate(order):
            if stem == name or stem.replace("_", "-") == name:
                return (i, stem)
        return (len(order), stem)
    return sorted(stems, key=rank)


def proof_lines(txt, limit=6):
    """The strace lines a report quotes (its longest waits), whatever its language."""
    lines = [line.strip() for line in (txt or "").splitlines() if STRACE_LINE.match(line)]
    return lines[:limit]


def command_for(title, stem):
    """The trace.sh command that makes this trace again, from the report's title
    ('multiplexing-epoll-edge --read-once (server-multiplexing ...)') and the file's
    stem (which ends in the scenario's name when it is not the default)."""
    words = title.split(" (")[0].split()
    if not words:
        return ""
    scenario = "-s burst " if stem.endswith("-burst") else ""
    return "scripts/trace.sh %s%s%s" % (scenario, words[0], " -- " + " ".join(words[1:]) if len(words) > 1 else "")


def file_time(path):
    try:
        return datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
    except OSError:
        return None


def machine_facts(results):
    cpu = ""
    for line in (read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = (read("/proc/loadavg") or "").split()[:3]
    try:
        commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    times = [t for t in (file_time(os.path.join(results, name)) for name in _listdir(results)
                         if name.endswith((".svg", ".csv", ".json"))) if t]
    made = ""
    if times:
        first, last = min(times), max(times)
        made = first.strftime("%Y-%m-%d %H:%M") + ("" if last - first < datetime.timedelta(minutes=1)
                                                   else " - " + last.strftime("%H:%M")) + " UTC"
    return {
        "machine": "%s, %s, %d CPUs" % (platform.node(), cpu or platform.machine(), os.cpu_count() or 0),
        "kernel": "%s %s" % (platform.system(), platform.release()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load": " ".join(load) + " (%d CPUs)" % (os.cpu_count() or 0) if load else "?",
        "commit": commit or "?",
        "made": made or "?",
    }


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


# The comparison's columns worth projecting, when compare.csv has them.
COMPARE_COLUMNS = ["variant", "conns", "msgs_per_sec", "p50_us", "p99_us", "stalled", "cpu_us_per_msg",
                   "reads_per_msg", "writes_per_msg", "other_cpu_cores"]


def readable(cell):
    """4.143e+04 -> 41430; 0.8565 -> 0.857: numbers a class can read off a screen."""
    try:
        value = float(cell)
    except ValueError:
        return cell
    if value != value or abs(value) >= 1e15:
        return cell
    if abs(value) >= 100 or value == int(value):
        return "{:,}".format(int(round(value)))
    return "%.3g" % value


def csv_table(path, columns=None, limit=80):
    text = read(path)
    if not text:
        return ""
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return ""
    head = rows[0]
    keep = [head.index(c) for c in columns if c in head] if columns else []
    if len(keep) < 2:  # every column but the spreads (x_min, x_max), which the charts show
        keep = [i for i, c in enumerate(head) if not c.endswith(("_min", "_max"))]
    out = ["<div class='scroll'><table><thead><tr>"]
    out += ["<th>%s</th>" % html.escape(head[i]) for i in keep]
    out.append("</tr></thead><tbody>")
    for row in rows[1:limit + 1]:
        out.append("<tr>" + "".join("<td>%s</td>" % html.escape(readable(row[i]) if i < len(row) else "")
                                    for i in keep) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def build(results, lang):
    t = TEXT[lang]
    figures = diagrams.render_all(lang)
    facts = machine_facts(results)
    stems = trace_stems(results)
    used = set()
    body = []
    esc = html.escape

    body.append("<header><h1>%s</h1><p class='lead'>%s</p><div class='meta'>" % (esc(t["title"]), esc(t["lead"])))
    for key in ("machine", "kernel", "load", "commit", "made", "date"):
        body.append("<div id='meta-%s'><b>%s:</b> %s</div>" % (key, esc(t[key]), esc(facts[key])))
    body.append("<div id='meta-results'><b>%s:</b> <code>%s</code></div></div>" % (
        esc(t["results"]), esc(os.path.relpath(results, ROOT) if results.startswith(ROOT) else results)))
    body.append("<nav aria-label='%s'>" % esc(t["contents"]))
    for model, _, _ in MODELS:
        body.append("<a href='#%s'>%s</a>" % (model, esc(t[model])))
    body.append("<a href='#compare'>%s</a><a href='#latency'>%s</a></nav>" % (
        esc(t["compare"].split(":")[0].split("：")[0]), esc(t["latency"])))
    body.append("<div class='legend'><b>%s:</b>" % esc(t["legend-title"]))
    for kind, words in t["legend"]:
        body.append("<span><span class='swatch' style='background:%s'></span>%s</span>"
                    % (diagrams.COLOURS[kind], esc(words)))
    body.append("</div></header><main>")

    for model, diagram_stems, belongs in MODELS:
        body.append("<section id='%s' class='model'><h2>%s</h2><p>%s</p>" % (model, esc(t[model]),
                                                                            esc(t["say-" + model])))
        for stem in diagram_stems:
            body.append("<figure class='diagram scroll' data-diagram='%s'>%s</figure>"
                        % (stem, inline_svg(figures[stem], stem)))
        mine = [s for s in stems if belongs(s)]
        used.update(mine)
        if not mine:
            example = {"blocking": "blocking-iterative", "nonblocking": "nonblocking-spin",
                       "multiplexing": "multiplexing-epoll", "signal-driven": "nonblocking-sigio",
                       "asynchronous": "async-uring"}[model]
            body.append("<p class='missing'>%s <code>scripts/trace.sh %s</code></p>" % (esc(t["not-traced"]),
                                                                                        esc(example)))
        for stem in mine:
            body.append(trace_block(results, stem, t))
        if model == "multiplexing":
            body.append(crowd_block(results, t))
        body.append("</section>")

    body.append("<section id='compare'><h2>%s</h2>" % esc(t["compare"]))
    compare_svg = read(os.path.join(results, "compare.svg"))
    if compare_svg:
        body.append(csv_table(os.path.join(results, "compare.csv"), COMPARE_COLUMNS))
        body.append("<figure class='chart scroll' data-chart='compare'>%s<figcaption>results/compare.svg</figcaption>"
                    "</figure>" % inline_svg(compare_svg, "compare"))
    else:
        body.append("<p class='missing'>%s <code>scripts/compare.sh -c 1,100 -d 1</code></p>"
                    % esc(t["compare-none"]))
    body.append("</section>")

    body.append("<section id='latency'><h2>%s</h2>" % esc(t["latency"]))
    others = [name for name in _listdir(results) if name.endswith(".svg") and not name.startswith("trace-")
              and name != "compare.svg"]
    for name in others:
        stem = name[:-4]
        body.append("<h3>%s</h3>" % esc(stem))
        body.append("<figure class='chart scroll' data-chart='%s'>%s<figcaption>results/%s</figcaption></figure>"
                    % (esc(stem), inline_svg(read(os.path.join(results, name)) or "", stem), esc(name)))
        table = csv_table(os.path.join(results, stem + ".csv"))
        if table:
            body.append("<details><summary>%s: results/%s.csv</summary>%s</details>" % (esc(t["table"]), esc(stem),
                                                                                        table))
    if not others:
        body.append("<p class='missing'>%s</p>" % esc(t["latency-none"]))
    body.append("</section></main><footer>%s</footer>" % esc(t["footer"] % facts_results(results)))

    return ("<!DOCTYPE html>\n<html lang='%s'><head><meta charset='utf-8'>\n"
            "<meta http-equiv='Content-Security-Policy' content=\"%s\">\n"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
            "<title>%s</title><style>%s</style></head>\n<body>\n%s\n</body></html>\n"
            % ("zh-CN" if lang == "zh" else "en", CSP, esc(t["title"]), STYLE, "\n".join(body)))


def facts_results(results):
    return os.path.relpath(results, ROOT) if results.startswith(ROOT) else results


def crowd_block(results, t):
    """scripts/crowd.py's counts (crowd.json): what select cannot watch."""
    try:
        crowd = json.loads(read(os.path.join(results, "crowd.json")) or "null")
    except ValueError:
        crowd = None
    if not isinstance(crowd, dict) or not crowd:
        return ""
    esc = html.escape
    out = ["<article class='crowd' data-crowd='1'><h3>%s</h3><div class='scroll'><table><thead><tr>" % esc(t["crowd"])]
    out += ["<th>%s</th>" % esc(word) for word in t["crowd-heads"]]
    out.append("</tr></thead><tbody>")
    warnings = []
    for api, row in crowd.items():
        if not isinstance(row, dict):
            continue
        out.append("<tr>%s</tr>" % "".join("<td>%s</td>" % esc(str(cell)) for cell in
                                           (api, row.get("clients", "?"), row.get("served", "?"),
                                            row.get("refused", "?"))))
        warnings += ["%s: %s" % (api, line) for line in row.get("warnings") or []]
    out.append("</tbody></table></div>")
    if warnings:
        out.append("<pre>%s</pre>" % esc("\n".join(warnings)))
    out.append("<p><b>%s:</b> <code>scripts/crowd.py --clients 1100</code></p></article>" % esc(t["reproduce"]))
    return "".join(out)


def trace_block(results, stem, t):
    esc = html.escape
    base = os.path.join(results, "trace-" + stem)
    try:
        report = json.loads(read(base + ".json") or "{}")
    except ValueError:
        report = {}
    title = report.get("title") or stem
    out = ["<article class='trace' data-trace='%s'><h3>%s</h3>" % (esc(stem), esc(title))]
    timeline = read(base + ".svg")
    if timeline:
        out.append("<figure class='timeline scroll'>%s<figcaption>results/trace-%s.svg</figcaption></figure>"
                   % (inline_svg(timeline, "trace-" + stem), esc(stem)))
    if report.get("verdict"):
        out.append("<p class='verdict'><b>%s:</b> %s</p>" % (esc(t["verdict"]), esc(report["verdict"])))
    lines = proof_lines(read(base + ".txt"))
    if lines:
        out.append("<p><b>%s:</b></p><pre>%s</pre>" % (esc(t["proof"]), esc("\n".join(lines))))
    out.append("<p><b>%s:</b> <code>%s</code></p></article>" % (esc(t["reproduce"]), esc(command_for(title, stem))))
    return "".join(out)


def default_lang():
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return "zh" if value.startswith("zh") else "en"
    return "en"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-r", "--results", default=os.path.join(ROOT, "results"),
                        help="where trace.sh and compare.sh wrote (default results/)")
    parser.add_argument("-o", "--output", help="the page (default RESULTS/index.html)")
    parser.add_argument("--lang", choices=("en", "zh"), default=None, help="default: from LANG")
    args = parser.parse_args(argv)
    results = os.path.abspath(args.results)
    if not os.path.isdir(results):
        print("page.py: %s is not a directory (run make demo, trace.sh or compare.sh first)" % results,
              file=sys.stderr)
        return 2
    output = args.output or os.path.join(results, "index.html")
    page = build(results, args.lang or default_lang())
    with open(output, "w", encoding="utf-8") as f:
        f.write(page)
    print("page: %s" % output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
