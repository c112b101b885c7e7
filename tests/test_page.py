"""The classroom kit: the five-model diagrams (scripts/diagrams.py), the page
(scripts/page.py, results/index.html) loaded in a real headless Chromium.
"""
import pathlib
import subprocess
import sys
import tempfile
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
