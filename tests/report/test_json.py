"""--json on the commands that read or run a whole study: search, compare, report and cam.
Each prints exactly one JSON document on stdout; progress and messages stay on stderr. They
reuse the session's finished smoke runs (a rerun of a finished run trains nothing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import SMOKE_COMPARE, run_cli
from shared_runs import SMOKE_SEARCH

pytestmark = pytest.mark.slow


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / run.name
    shutil.copytree(run, target)
    return target


def test_search_json_is_the_coefficients_document(smoke_search: Path, tmp_path: Path) -> None:
    run = _copy(smoke_search, tmp_path)
    quiet = [a for a in SMOKE_SEARCH if a != "--quiet"]  # progress on, and on stderr
    code, out, err = run_cli(*quiet, "--out", run, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc == json.loads(json.dumps(yaml.safe_load((run / "coefficients.yaml").read_text()),
                                        default=str))
    assert {"alpha", "beta", "gamma", "decided"} <= set(doc)
    assert "search finished" in err


def test_report_json_is_the_coefficients_document(smoke_search: Path, tmp_path: Path) -> None:
    run = _copy(smoke_search, tmp_path)
    code, out, err = run_cli("report", run, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["alpha"] == yaml.safe_load((run / "coefficients.yaml").read_text())["alpha"]
    assert "trainings settled" in err


def test_compare_json_is_compare_yaml(smoke_compare: Path, tmp_path: Path) -> None:
    run = _copy(smoke_compare, tmp_path)
    code, out, err = run_cli(*SMOKE_COMPARE, "--out", run, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [m["model"] for m in doc["models"]] == ["base", "compound", "depth", "width",
                                                   "resolution"]
    assert doc["run_dir"] == str(run) and doc["method"]
    assert "compare finished" in err  # messages: stderr


def test_report_json_of_a_compare_run_lists_what_it_wrote(smoke_compare: Path,
                                                          tmp_path: Path) -> None:
    run = _copy(smoke_compare, tmp_path)
    code, out, err = run_cli("report", run, "--html", "--json")
    assert code == 0, err
    assert json.loads(out) == {"written": [str(run / "report.html")]}


def test_cam_json_names_the_maps_and_the_page(smoke_compare: Path, tmp_path: Path) -> None:
    run = _copy(smoke_compare, tmp_path)
    code, out, err = run_cli("cam", run, "--rows", "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["cam"] == str(run / "cam.png") and doc["images"] == 2
    assert doc["models"][0] == "base"
    assert doc["written"] == [str(run / "cam.png"), str(run / "report.html")]
