"""A recorded run's outputs, rebuilt from its study by today's code, are what it wrote.

tests/data/runs/demo-synthetic is the README's demo (`effscale search --dataset synthetic`,
at 3 confirmation seeds) as it ran on 2026-12-05: its settings, its study journal, and what it
wrote and printed. `effscale report` rebuilds coefficients.yaml, trials.csv, configs/ and
the printed answer from the journal alone; a refactor of the path from study to outputs (the typed
Design, one family writer, the settings accessor) must leave them as they were. One change
was meant: output.txt's result table labels its first row "pick", not "winner", since the
table stopped calling an undecided answer the winner.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from helpers import REPO

RECORDED = REPO / "tests" / "data" / "runs" / "demo-synthetic"
# The lines of the printed answer that depend on when and how fast it ran, not on the answer.
TIMED = ("outputs in ", "  stages:", "  estimate vs actual", "  screening vs confirmation")


def _config(path: Path) -> list[str]:
    """A config's lines but the version of the tool that wrote it."""
    return [line for line in path.read_text().splitlines() if "tool_version:" not in line]


def _answer(text: str) -> list[str]:
    start = text.index("search result")
    return [line for line in text[start:].splitlines() if not line.startswith(TIMED)]


@pytest.mark.slow  # rebuilds a recorded run's outputs (3 s)
def test_report_rebuilds_the_recorded_outputs(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("settings.yaml", "study.journal"):
        shutil.copy(RECORDED / name, run / name)
    out = tmp_path / "out"
    code, stdout, err = cli("report", run, "--out", out)
    assert code == 0, err
    recorded = yaml.safe_load((RECORDED / "coefficients.yaml").read_text())
    rebuilt = yaml.safe_load((out / "coefficients.yaml").read_text())
    recorded.pop("tool_version"), rebuilt.pop("tool_version")
    assert rebuilt == recorded
    assert (out / "trials.csv").read_text() == (RECORDED / "trials.csv").read_text()
    # configs/ as the code before the one family writer and the typed answer wrote them
    # (effscale report on this journal at 9776f0d), the undecided header line included
    written = sorted(p.name for p in (out / "configs").glob("*.yaml"))
    assert written == sorted(p.name for p in (RECORDED / "configs").glob("*.yaml"))
    for name in written:
        assert _config(out / "configs" / name) == _config(RECORDED / "configs" / name), name
    verdict = (RECORDED / "verdict.txt").read_text().strip()
    assert verdict.startswith("verdict: UNDECIDED: a1.00_b1.00_g1.400, +8.33 points")
    assert verdict in stdout.splitlines()
    assert _answer(stdout) == _answer((RECORDED / "output.txt").read_text())
