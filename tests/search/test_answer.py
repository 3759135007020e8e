"""The search's answer, computed once (:mod:`effscale.search.answer`): answer.json holds what
coefficients.yaml, configs/ and the printed verdict say, and a run's outputs and its page are
written from one computation of it."""

from __future__ import annotations

import base64
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import REPO

from effscale.search import answer as answer_module
from effscale.search import outputs
from effscale.search.answer import ANSWER_SCHEMA, json_safe

RECORDED = REPO / "tests" / "data" / "runs" / "demo-synthetic"


def _strict(text: str) -> dict:
    """JSON as a strict parser reads it: NaN or Infinity anywhere is an error."""
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def recorded_run(tmp_path: Path) -> Path:
    """The README's demo as it ran (tests/data/runs/demo-synthetic): settings and journal."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("settings.yaml", "study.journal"):
        shutil.copy(RECORDED / name, run / name)
    return run


def test_json_safe_writes_strict_json() -> None:
    value = {"a": float("nan"), "b": (np.float32(0.5), np.int64(3)), 4: [math.inf, "x"]}
    assert json_safe(value) == {"a": None, "b": [0.5, 3], "4": [None, "x"]}
    assert json.dumps(json_safe(value), allow_nan=False)


@pytest.mark.slow  # rebuilds a recorded run's outputs (3-4 s)
def test_answer_json_says_what_coefficients_yaml_and_configs_say(cli, recorded_run: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, err = cli("report", recorded_run, "--out", out)
    assert code == 0, err
    answer = _strict((out / "answer.json").read_text())
    doc = yaml.safe_load((out / "coefficients.yaml").read_text())
    assert answer["schema"] == ANSWER_SCHEMA
    assert (answer["decided"], answer["verdict"], answer["winner"]) == (
        doc["decided"], doc["verdict"], doc["candidate"])
    assert answer["coefficients"] == {"alpha": doc["alpha"], "beta": doc["beta"],
                                      "gamma": doc["gamma"], "phi_searched": 1.0}
    # the recorded demo is undecided: one caveat, word for word, in every place it is said
    assert answer["decided"] is False and answer["caveat"] == doc["caveat"]
    assert answer["caveat"].startswith("UNDECIDED: effscale search did not decide")
    header = (out / "configs" / "b3.yaml").read_text().splitlines()[0]
    assert header == "# " + answer["caveat"].split(" This family")[0]
    assert "caveat: UNDECIDED: effscale search did not decide" in err
    # the family: the configs written, in order, with their sizes
    assert [m["name"] for m in answer["family"]] == [f"b{i}" for i in range(8)]
    assert sorted(p.stem for p in (out / "configs").glob("*.yaml")) == \
        sorted(m["name"] for m in answer["family"])
    b0 = yaml.safe_load((out / "configs" / "b0.yaml").read_text())
    assert answer["family"][0]["resolution"] == b0["resolution"]
    params = [m["params"] for m in answer["family"]]
    assert params == sorted(params) and params[0] > 1_000_000  # B0 has millions, B7 most
    # every model in every stage, with the accuracies trials.csv gives
    stages = {(m["stage"], m["key"]): m for m in answer["models"]}
    assert ("screening", "base") in stages and ("confirmation", "base") in stages
    confirmed = stages[("confirmation", doc["candidate"])]
    assert confirmed["val_accuracy"] == pytest.approx(doc["val_accuracy"], abs=1e-5)
    assert len(confirmed["accuracies"]) == doc["seeds"]
    assert answer["decision"] == json.loads(json.dumps(doc["confirmation"]))
    assert answer["ladder"]["line"] == doc["ladder"]["line"]


def _count_calls(monkeypatch: pytest.MonkeyPatch, real: Any, modules: tuple) -> list:
    """Replace ``real`` by a counting wrapper in each of ``modules``; returns the calls."""
    calls: list = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    for module in modules:
        monkeypatch.setattr(module, real.__name__, counted)
    return calls


@pytest.mark.slow  # rebuilds a recorded run's outputs (3 s)
def test_outputs_and_page_come_from_one_computation(cli, recorded_run: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`effscale report RUN --html` writes coefficients.yaml, configs/ and report.html from
    one answer: the study is read into an answer once, not once per output."""
    from effscale.report import sections

    calls = _count_calls(monkeypatch, answer_module.answer_of, (outputs, sections))
    out = tmp_path / "out"
    code, _, err = cli("report", recorded_run, "--out", out, "--html")
    assert code == 0, err
    assert (out / "report.html").is_file() and (out / "answer.json").is_file()
    assert len(calls) == 1
    page = (out / "report.html").read_text()
    answer = _strict((out / "answer.json").read_text())
    assert answer["caveat"] in page.replace("&#x27;", "'").replace("&#39;", "'")


@pytest.mark.slow  # rebuilds a recorded run's outputs (3 s)
def test_the_page_shows_the_plots_its_outputs_just_wrote(cli, recorded_run: Path,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The search plot was drawn twice (outputs, then the page), and `report RUN --out DIR
    --html` put the run's own pareto.png on the page, not the one it had just written into
    DIR. The page now embeds DIR's search.png and pareto.png, and the plot is drawn once."""
    from effscale.report import sections

    drawn = _count_calls(monkeypatch, outputs.plot_search, (outputs, sections))
    (recorded_run / "pareto.png").write_bytes(b"\x89PNG stale, from an earlier report")
    out = tmp_path / "out"
    code, _, err = cli("report", recorded_run, "--out", out, "--html")
    assert code == 0, err
    assert len(drawn) == 1
    page = (out / "report.html").read_text()
    for name in ("search.png", "pareto.png"):
        assert base64.b64encode((out / name).read_bytes()).decode() in page, name
    assert base64.b64encode(b"\x89PNG stale, from an earlier report").decode() not in page
