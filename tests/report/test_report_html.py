"""report.html: built from the study (finished or mid-run), self-contained, and rendered by
Debian's headless Chromium with nothing fetched from the network.

How "nothing fetched" is checked: Chromium runs with ``--host-resolver-rules="MAP *
~NOTFOUND"`` (no host name resolves, so nothing can leave the machine) and
``--log-net-log``, its own record of every request the browser made. Requests made for the
page carry the page's network isolation key (``file://``); Chromium's own background requests
(its clock, account checks) carry others. The test asserts the page made none, and a canary
page with a remote image, stylesheet and script shows that the check sees such requests.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from shared_runs import SMOKE_SEARCH

from effscale.compare.recorded import RecordedCompare
from effscale.report.html import REPORT_FILE, write_run_report
from effscale.report.load import load_run, open_run_study
from effscale.report.sections import compare_comparisons, search_answer, search_sections

pytestmark = pytest.mark.slow

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not found (Debian: apt-get install chromium)")
WIDTH, HEIGHT = 1280, 2000


VOID = {"img", "meta", "link", "br", "hr", "input", "source", "col", "wbr"}


class Page(HTMLParser):
    """The tables (by the section they are in), images, URL attributes and the text of each
    element with an id, of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.section = ""
        self.tables: list[dict] = []
        self.images: list[str] = []
        self.urls: list[tuple[str, str]] = []
        self.ids: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._sort: str | None = None
        self._open: dict[str, int] = {}  # id -> depth of open elements inside it
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("src", "href", "action", "srcset", "poster", "data", "formaction"):
            if a.get(name) is not None:
                self.urls.append((name, a[name] or ""))
        if tag == "section":
            self.section = a.get("id") or ""
        elif tag == "table":
            self.tables.append({"section": self.section, "class": a.get("class") or "",
                                "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell, self._sort = [], a.get("data-sort")
        elif tag == "img":
            self.images.append(a.get("src") or "")
        if tag in VOID:
            return
        for key in self._open:
            self._open[key] += 1
        if a.get("id"):
            self._open[a["id"]] = 1
            self.ids[a["id"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1]["rows"][-1].append(("".join(self._cell).strip(), self._sort))
            self._cell = None
        if tag in VOID:
            return
        for key in list(self._open):
            self._open[key] -= 1
            if self._open[key] == 0:
                del self._open[key]

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for key in self._open:
            self.ids[key] += data

    def table(self, section: str, index: int = 0) -> tuple[list[str], list[list[tuple]]]:
        """(headers, body rows) of the ``index``-th table in ``section``."""
        found = [t for t in self.tables if t["section"] == section][index]
        rows = [r for r in found["rows"] if r]
        return [text for text, _ in rows[0]], rows[1:]

    def column(self, section: str, header: str, index: int = 0) -> list[tuple]:
        headers, rows = self.table(section, index)
        return [row[headers.index(header)] for row in rows]


def assert_self_contained(text: str) -> Page:
    """Nothing in the page names a resource outside it."""
    page = Page(text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    outside = [(name, url) for name, url in page.urls
               if not url.startswith(("data:image/png;base64,", "#"))]
    assert outside == []
    assert not re.search(r"(?i)\burl\s*\(|@import|https?://", text.split("<details>")[0])
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    return page


# --------------------------------------------------------------------------- the page itself


def test_search_page_says_the_verdict_first_with_tables_and_plots(smoke_search: Path) -> None:
    # the search wrote it at its end; `effscale report RUN --html` writes it again
    assert (smoke_search / REPORT_FILE).is_file()
    code, stdout, stderr = run_cli("report", smoke_search, "--html")
    assert code == 0, stderr
    text = (smoke_search / REPORT_FILE).read_text()
    page = assert_self_contained(text)
    verdict = yaml.safe_load((smoke_search / "coefficients.yaml").read_text())["verdict"]
    assert html.escape(verdict) in text  # the same verdict as the search's own outputs
    assert text.index('id="verdict"') < text.index("<nav>") < text.index('id="results"')
    # smoke's 1-epoch proxy decides nothing: the banner must not read as a result
    assert "FINISHED, UNDECIDED: all 9 trainings settled" in page.ids["status"]
    assert "COMPLETE" not in page.ids["status"]
    assert "CAVEAT: UNDECIDED" in page.ids["verdict"]
    for section in ("results", "feasible", "cost", "confirmation", "noise", "fidelity",
                    "family", "settings"):
        assert f'<section id="{section}">' in text, section
    assert page.column("feasible", "candidate")[0][0] == "base"
    assert len(page.column("family", "config")) == 8  # b0..b7
    assert "report.html" in stdout


def test_a_search_on_another_cost_shows_that_cost(tmp_path: Path) -> None:
    """The page of a search equal in another cost than FLOPs said "equal full-size FLOPs" and
    showed no column of the cost its candidates were equal in. It shows both now, and the
    timing notes a timed cost leaves in settings.yaml (as `search --cost latency` does)."""
    out = tmp_path / "params"
    # the screening alone, on the tests' tiny base: the page's columns and notes are the
    # question, not a decision
    code, _, stderr = run_cli(*SMOKE_SEARCH, "--base", "tiny", "--cost", "params",
                              "--train-size", "64", "--val-size", "32", "--batch-size", "32",
                              "--alpha-max", "1.4", "--confirm-top", "0", "--out", out)
    assert code == 0, stderr
    text = (out / REPORT_FILE).read_text()
    page = assert_self_contained(text)
    for section in ("results", "feasible"):
        headers, _ = page.table(section)
        assert headers.index("params × (full)") == headers.index("full px") + 1, section
    assert page.column("feasible", "params × (full)")[0][0] == "1.000"  # the base
    assert "models at equal full-size params (+ the base)" in text
    assert "cost = params (measured on this device) of the full-size model" in text
    assert re.search(r"measured params ×\d\.\d{3} and measured FLOPs ×", page.ids["verdict"])

    run = load_run(out, open_run_study(out))
    run.settings["cost_timing"] = {
        "spread": "8 of 42 timings did not get their spread (IQR/median) under 5%",
        "drift_line": "warning: latency: the base re-timed after the candidates at 32.28 ms"}
    _, sections = search_sections(run)
    feasible = next(s for s in sections if s.id == "feasible").body
    assert "params: 8 of 42 timings did not get their spread" in feasible
    assert "warning: latency: the base re-timed after the candidates at 32.28 ms" in feasible
    # a latency search timed in onnxruntime (`--runtime onnxruntime`) says so by its cost
    run.settings.update(runtime="onnxruntime", cost="latency (s, batch 1, in onnxruntime): …")
    _, sections = search_sections(run)
    bodies = {s.id: s.body for s in sections}
    assert "(measured on this device, in onnxruntime) of the full-size" in bodies["results"]
    assert "runtime" in bodies["settings"] and "in onnxruntime): …" in bodies["settings"]


def test_compare_page_has_the_comparisons_compare_wrote(smoke_compare: Path) -> None:
    study = open_run_study(smoke_compare)
    run = load_run(smoke_compare, study)
    from effscale.experiment.rows import collect_rows

    comparisons, _, _ = compare_comparisons(collect_rows(study),
                                            RecordedCompare.from_document(run.settings))
    written = yaml.safe_load((smoke_compare / "compare.yaml").read_text())["comparisons"]
    assert [c.describe() for c in comparisons] == written and len(written) == 4
    # the default --study is a search's; the run's one study is found
    code, _, stderr = run_cli("report", smoke_compare, "--html")
    assert code == 0, stderr
    text = (smoke_compare / REPORT_FILE).read_text()
    page = assert_self_contained(text)
    assert [c[0] for c in page.column("results", "model")] == \
        ["base", "compound", "depth", "width", "resolution"]
    shown = zip(*(page.column("noise", name, -1) for name in ("a", "b", "margin (points)")))
    assert [(a[0], b[0], m[0]) for a, b, m in shown] == \
        [(c.a, c.b, f"{c.margin * 100:+.2f}") for c in comparisons]
    code, _, stderr = run_cli("report", smoke_compare)
    assert code == 2 and "--html writes its report.html" in stderr


def test_a_run_in_progress_is_marked_partial(smoke_search: Path, tmp_path: Path,
                                             in_progress: Callable[..., Path]) -> None:
    run = in_progress(smoke_search, tmp_path / "running", running=["base@1"],
                      waiting=["a1.20_b1.30_g1.000@0"])
    text = write_run_report(run).read_text()
    page = assert_self_contained(text)
    assert "IN PROGRESS: PARTIAL RESULTS. 9 of 11 trainings settled (1 running, 1 waiting)" \
        in page.ids["status"]
    states = dict(zip([c[0] for c in page.column("feasible", "candidate")],
                      [c[0] for c in page.column("feasible", "state")]))
    assert states["base"] == "1 complete, 1 running"
    assert states["a1.20_b1.30_g1.000"] == "1 waiting"
    alphas = dict(zip([c[0] for c in page.column("feasible", "candidate")],
                      [c[0] for c in page.column("feasible", "α")]))
    assert alphas["a1.20_b1.30_g1.000"] == "1.20"  # from its name: not started yet
    selection = search_answer(load_run(run, open_run_study(run))).selection
    assert html.escape(selection.verdict) in page.ids["verdict"] or \
        selection.verdict in page.ids["verdict"]
    assert "CURRENT leader" in text


# --------------------------------------------------------------------------- in Chromium


def page_requests(net_log: Path) -> list[str]:
    """URLs Chromium requested on behalf of a page opened from a file (its network isolation
    key is ``file://``); its own background requests have other keys."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [event["params"]["url"] for event in log["events"]
            if event["type"] == start and "url" in event.get("params", {})
            and "file://" in event["params"].get("network_isolation_key", "")]


def chromium(page: Path, tmp_path: Path, *flags: str) -> tuple[str, list[str]]:
    """Open ``page`` in headless Chromium with ``flags``: (stdout, the page's requests)."""
    runs = len(list(tmp_path.glob("net-*.json")))
    net_log = tmp_path / f"net-{runs}.json"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--no-default-browser-check", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-default-apps",
               f"--user-data-dir={tmp_path / f'profile-{runs}'}",
               "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={net_log}",
               "--virtual-time-budget=3000", *flags, page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, page_requests(net_log)


def screenshot(page: Path, tmp_path: Path) -> Path:
    from PIL import Image

    shot = tmp_path / f"{page.parent.name}.png"
    _, requests = chromium(page, tmp_path, f"--screenshot={shot}",
                           f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars")
    assert requests == []
    with Image.open(shot) as image:
        assert image.size == (WIDTH, HEIGHT)
        colours = image.convert("RGB").getcolors(1 << 20) or []
        assert len(colours) > 200  # text, tables and the plots were drawn, not a blank page
    return shot


@needs_chromium
def test_the_network_check_sees_a_page_that_fetches(tmp_path: Path) -> None:
    canary = tmp_path / "canary" / "index.html"
    canary.parent.mkdir()
    canary.write_text('<!DOCTYPE html><html><head><link rel="stylesheet" '
                      'href="https://fonts.example.com/css"></head><body>'
                      '<img src="http://example.com/x.png">'
                      '<script src="https://cdn.example.org/a.js"></script></body></html>')
    _, requests = chromium(canary, tmp_path, "--dump-dom")
    assert sorted(requests) == ["http://example.com/x.png", "https://cdn.example.org/a.js",
                                "https://fonts.example.com/css"]


@needs_chromium
def test_chromium_shows_finished_and_partial_runs_fetching_nothing(
        smoke_search: Path, smoke_compare: Path, tmp_path: Path,
        in_progress: Callable[..., Path]) -> None:
    partial = in_progress(smoke_search, tmp_path / "partial", running=["base@1"],
                          waiting=["a1.20_b1.30_g1.000@0"])
    pages = {"finished search": write_run_report(smoke_search),
             "partial search": write_run_report(partial),
             "finished compare": write_run_report(smoke_compare)}
    for label, path in pages.items():
        dom, requests = chromium(path, tmp_path, "--dump-dom")
        assert requests == [], label
        page = assert_self_contained(dom)
        status = page.ids["status"]
        assert ("IN PROGRESS" in status) == (label == "partial search"), label
        assert page.ids["verdict"].startswith("verdict:"), label
        assert len([t for t in page.tables if "sortable" in t["class"]]) >= 3, label
        assert len(page.images) >= 1, label
        screenshot(path, tmp_path)


@needs_chromium
def test_a_click_on_a_column_heading_sorts_the_table(smoke_search: Path,
                                                      tmp_path: Path) -> None:
    text = write_run_report(smoke_search).read_text()
    before = Page(text)
    assert before.column("results", "candidate")[0][0] == "base"  # the ranking's order
    unsorted = [float(c[0]) for c in before.column("feasible", "FLOPs × (full)")]
    assert unsorted != sorted(unsorted)
    clicks = ("<script>for (const [id, name] of [['results', 'candidate'], "
              "['feasible', 'FLOPs × (full)']]) { Array.from(document.querySelectorAll("
              "'#' + id + ' th')).find(th => th.textContent === name).click(); }</script>")
    page = tmp_path / "clicked" / REPORT_FILE
    page.parent.mkdir()
    page.write_text(text.replace("</body>", clicks + "</body>"))
    dom, _ = chromium(page, tmp_path, "--dump-dom")
    parsed = Page(dom)
    names = [c[0] for c in parsed.column("results", "candidate")]
    assert names == sorted(names) and names[-1] == "base"  # text, ascending
    ratios = [float(c[0]) for c in parsed.column("feasible", "FLOPs × (full)")]
    assert ratios == sorted(ratios) and len(ratios) == 5  # numbers, ascending
