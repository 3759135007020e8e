"""``report.html``: one self-contained page per run, verdict first.

Built from the run's study and directory at any time: a run still going gets a page of its
partial results under a banner saying so. The page loads nothing (inline style and script,
images as data URIs, a Content-Security-Policy that forbids any fetch) and is written
atomically, so a browser never shows half a file.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import optuna

from effscale import atomic
from effscale.report.load import RunData, load_run, open_run_study
from effscale.report.markup import esc, page
from effscale.report.sections import (
    compare_sections,
    decision_html,
    search_sections,
    verdict_html,
)
from effscale.search.answer import SearchAnswer

REPORT_FILE = "report.html"


def banner(run: RunData, decided: bool | None = None) -> str:
    """The run's state; its colour follows the verdict. Only a finished run with a decided
    answer gets the green COMPLETE banner: a finished run without one (undecided, or no
    answer at all) is amber, so its page does not read as a result."""
    c = run.counts
    if run.finished and decided is not True:
        return (f'<div class="banner partial" id="status">FINISHED, UNDECIDED: all '
                f'{c["items"]} trainings settled, and the verdict below is not a decision.'
                "</div>")
    if run.finished:
        return (f'<div class="banner done" id="status">COMPLETE: all {c["items"]} trainings '
                "settled.</div>")
    return (f'<div class="banner partial" id="status">IN PROGRESS: PARTIAL RESULTS. '
            f'{c["settled"]} of {c["items"]} trainings settled ({c["running"]} running, '
            f'{c["waiting"]} waiting); every number below may still change.</div>')


def build_report(run: RunData) -> str:
    """The page's HTML."""
    s = run.settings
    verdict, sections = (compare_sections if run.kind == "compare" else search_sections)(run)
    phis = ", ".join(f"{p:g}" for p in s.get("phis") or [s.get("phi", 1)])
    what = (f"compare: {s.get('base')} at φ={phis}" if run.kind == "compare"
            else f"search: {s.get('base')}")
    title = f"{what} on {s.get('dataset')} ({s.get('budget')} budget)"
    header = (f"<h1>{esc(title)}</h1>"
              f'<p class="meta">run {esc(run.run_dir.name)} · study '
              f"{esc(run.study.study_name)} · report written "
              f"{esc(datetime.now().strftime('%Y-%m-%d %H:%M'))}</p>"
              f"{decision_html(verdict, run.finished, run.kind)}"
              f"{banner(run, verdict.signal)}{verdict_html(verdict)}")
    return page(f"effscale {title}", header, sections)


def write_report(run_dir: Path, study: optuna.Study, out_dir: Path | None = None,
                 answer: SearchAnswer | None = None) -> Path:
    """Write ``report.html`` for the run in ``run_dir`` (into ``out_dir``, default the run
    directory) atomically; returns its path. ``answer``: a search's, as its outputs were
    just written from it into ``out_dir`` (the page shows their plots rather than drawing
    them again); else the page computes it from the study."""
    folder = Path(out_dir or run_dir)
    run = load_run(Path(run_dir), study, answer, outputs_dir=folder)
    atomic.write_text(folder / REPORT_FILE, build_report(run))
    return folder / REPORT_FILE


def write_run_report(run_dir: Path, storage: str | None = None,
                     study_name: str | None = None, answer: SearchAnswer | None = None
                     ) -> Path:
    """Open the run's study (its journal, or ``study_name`` in ``storage``) and write its
    ``report.html`` into ``run_dir``."""
    return write_report(run_dir, open_run_study(Path(run_dir), storage, study_name),
                        answer=answer)
