"""``--runtime torch|onnxruntime`` on search, compare and derive: the one runtime a latency
cost is timed in. It reaches the cost's options, is part of a run's identity (a resume in
another runtime is refused with what differs) and is refused, in one line before any slow
work, without a latency cost or without the deploy extra."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeLatency

from effscale.errors import EffscaleError
from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.queue import describe_differences
from effscale.experiment.rundir import check_run_dir, fingerprint
from effscale.model import cost as cost_module
from effscale.model.config import load_config
from effscale.model.cost import CostOptions, Measured, cost_cache_dir, device_fingerprint
from effscale.search.grid import budget_grid
from effscale.search.run import SearchSettings

Cli = Callable[..., tuple[int, str, str]]
# the tests' small base (tests/tiny_base.py): the runtime's plumbing, not b0's grid (a b0 dry
# run solved its grid at full size in 3-5 s)
SMOKE = ("--base", "tiny", "--dataset", "synthetic", "--budget", "smoke", "--counter", "torch",
         "--threads", "1", "--device", "cpu")
COMMANDS = {"search": ["search", *SMOKE], "compare": ["compare", *SMOKE],
            "derive": ["derive", "--phi", "0", "--counter", "torch"]}


def _one_line_error(code: int, out: str, err: str) -> str:
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("cost", ["flops", "params", "train-step"])
def test_onnxruntime_without_a_latency_cost_is_refused_in_one_line(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str,
        cost: str) -> None:
    monkeypatch.chdir(tmp_path)
    flag = "--match" if command == "derive" and cost != "flops" else "--cost"
    argv = [*COMMANDS[command], *([flag, cost] if cost != "flops" else []),
            "--out", tmp_path / "out"]
    err = _one_line_error(*cli(*argv, "--runtime", "onnxruntime"))
    assert f"--runtime onnxruntime runs the model that latency times and has no effect on " \
           f"{cost}" in err
    assert list(tmp_path.iterdir()) == []  # before anything was measured or written


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unknown_runtime_is_a_usage_error(cli: Cli, command: str) -> None:
    code, out, err = cli(*COMMANDS[command], "--cost", "latency", "--runtime", "tensorrt")
    assert (code, out) == (2, "") and "tensorrt" in err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_missing_deploy_extra_names_it_in_one_line_before_any_work(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    measured: list[Any] = []
    monkeypatch.setattr(cost_module, "measure_cost", lambda *a, **k: measured.append(a))
    flag = "--match" if command == "derive" else "--cost"
    err = _one_line_error(*cli(*COMMANDS[command], flag, "latency", "--runtime",
                               "onnxruntime", "--out", tmp_path / "out"))
    assert err.startswith("error: onnxruntime is missing: ") and \
        'pip install -e ".[deploy]"' in err
    assert measured == [] and list(tmp_path.iterdir()) == []


def test_torch_stays_the_default_and_needs_no_extra(cli: Cli, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the deploy extra (its modules unimportable), ``--runtime torch`` derives, and
    gives what no ``--runtime`` gives: the same numbers and the same config file."""
    for name in ("onnx", "onnxruntime", "onnxscript"):
        monkeypatch.setitem(sys.modules, name, None)
    argv = ["derive", "--phi", "0", "--counter", "torch", "--json"]
    code, out, err = cli(*argv, "--runtime", "torch", "--out", tmp_path / "torch")
    assert code == 0, err
    doc = json.loads(out)
    assert [(r["name"], r["px"], r["ratio"]) for r in doc["rows"]] == [("b0", 224, 1.0)]
    assert doc["rows"][0]["params"] == 5_288_548 and doc["rows"][0]["flops"] > 0
    code, default_out, err = cli(*argv, "--out", tmp_path / "default")
    assert code == 0, err
    assert json.loads(default_out) == doc
    written = (tmp_path / "torch" / "b0.yaml").read_text()
    assert written == (tmp_path / "default" / "b0.yaml").read_text()
    assert load_config(tmp_path / "torch" / "b0.yaml").name == "b0"


# --------------------------------------------------------------------------- reaching the cost


@pytest.fixture
def fake_latency(monkeypatch: pytest.MonkeyPatch) -> list[CostOptions]:
    """Latency as :class:`FakeLatency`'s figures, nothing timed; the options of every
    measurement are recorded."""
    seen: list[CostOptions] = []
    fake = FakeLatency()

    def measure(config: Any, cost: str = "flops", options: CostOptions | None = None,
                timer: Any = None, use_cache: bool = True) -> Measured:
        assert cost == "latency" and options is not None
        seen.append(options)
        return Measured("latency", fake(config), "s", 1, None,
                        device_fingerprint(options.device, options.threads, options.runtime))

    monkeypatch.setattr(cost_module, "measure_cost", measure)
    return seen


@pytest.mark.parametrize("command", ["search", "compare"])
def test_the_runtime_reaches_the_cost_options_of_a_run(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fake_latency: list[CostOptions], command: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*COMMANDS[command], "--cost", "latency", "--runtime", "onnxruntime",
                         "--dry-run", "--json")
    assert code == 0, err
    assert fake_latency and {o.runtime for o in fake_latency} == {"onnxruntime"}
    json.loads(out)


def test_derive_passes_the_runtime_to_its_meter(cli: Cli, tmp_path: Path,
                                                fake_latency: list[CostOptions]) -> None:
    code, out, err = cli(*COMMANDS["derive"], "--phi", "0,1", "--match", "latency",
                         "--runtime", "onnxruntime", "--json", "--out", tmp_path)
    assert code == 0, err
    assert fake_latency and {o.runtime for o in fake_latency} == {"onnxruntime"}
    cost = json.loads(out)["cost"]
    assert cost["runtime"] == "onnxruntime" and cost["device"]["runtime"].startswith(
        "onnxruntime ")


# --------------------------------------------------------------------------- identity


def _settings(runtime: str, cost: str = "latency") -> SearchSettings:
    budget = get_budget("smoke")
    return SearchSettings(base="b0", dataset="synthetic", budget=budget, threads=1,
                          recipe=budget_recipe(budget), grid=budget_grid(budget), cost=cost,
                          runtime=runtime, device="cpu")


def test_the_runtime_is_part_of_a_latency_runs_identity_and_a_resume_in_another_is_refused(
        tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    torch_id, ort_id = _settings("torch").identity("d"), _settings("onnxruntime").identity("d")
    assert "runtime" not in torch_id["cost"]["device"]  # torch runs keep their fingerprints
    assert describe_differences(torch_id, ort_id).startswith(
        "cost.device.runtime: '(unset)' -> 'onnxruntime ")
    assert _settings("onnxruntime").cost_options().runtime == "onnxruntime"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "settings.yaml").write_text(json.dumps(
        {"fingerprint": fingerprint(ort_id), "identity": ort_id}))
    check_run_dir(run_dir, fingerprint(ort_id), ort_id)  # the same runtime resumes
    with pytest.raises(EffscaleError, match=r"belongs to a different run \(cost\.device\."
                                            r"runtime: 'onnxruntime [^']+' -> '\(unset\)'"):
        check_run_dir(run_dir, fingerprint(torch_id), torch_id)


def test_a_resume_with_another_runtime_is_refused_by_the_command(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fake_latency: list[CostOptions]) -> None:
    """A compare run timed in onnxruntime, resumed with torch (the default): refused, saying
    what differs; resumed with onnxruntime: accepted. Its settings.yaml names the runtime."""
    from effscale.compare.run import Compare
    from effscale.compare.settings import CompareSettings
    from effscale.experiment.events import RunEvents
    from effscale.experiment.rundir import write_settings

    monkeypatch.chdir(tmp_path)
    budget = get_budget("smoke")
    settings = CompareSettings(base="tiny", dataset="synthetic", budget=budget,
                               recipe=budget_recipe(budget), counter="torch", threads=1,
                               device="cpu", cost="latency", runtime="onnxruntime")
    experiment = Compare(settings)
    prepared = experiment.prepare(RunEvents())
    doc = experiment.settings_document(prepared)
    assert doc["runtime"] == "onnxruntime" and "in onnxruntime" in doc["cost"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_settings(run_dir, doc, "running")
    argv = [*COMMANDS["compare"], "--cost", "latency", "--resume", run_dir, "--dry-run"]
    code, _, err = cli(*argv)
    assert code == 2 and "belongs to a different run (cost.device.runtime: 'onnxruntime " in err
    code, out, err = cli(*argv, "--runtime", "onnxruntime", "--json")
    assert code == 0, err
    assert "belongs to a different run" not in err
    assert json.loads(out)  # the dry run's plan of the resumed run


# --------------------------------------------------------------------------- derive, measured


def _ort_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime's branch of the latency cost without exporting or timing: the "runner" is
    the model's size (parameters x input pixels) and the timer returns what it returns."""
    from effscale.model.deploy import onnx

    def runner(model: Any, image: Any, threads: Any = None, device: str = "cpu") -> Any:
        size = sum(p.numel() for p in model.parameters()) * image.numel()
        return lambda: size * 1e-15

    monkeypatch.setattr(onnx, "runner", runner)
    monkeypatch.setattr(cost_module, "cpu_timer", lambda fn: fn())


def _cached(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


@pytest.mark.slow  # solves full-size b1 on a latency (2.5 s)
def test_derive_match_latency_in_onnxruntime_records_the_runtime_it_measured_in(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ort_latency(monkeypatch)
    code, out, err = cli("derive", "--phi", "0,1", "--counter", "torch", "--match", "latency",
                         "--runtime", "onnxruntime", "--device", "cpu", "--threads", "1",
                         "--json", "--out", tmp_path / "out")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["cost"]["device"]["runtime"].startswith("onnxruntime ")
    assert [m["name"] for m in doc["matched"]] == ["b0", "b1"]
    assert all(m["within_tolerance"] for m in doc["matched"])
    assert (tmp_path / "out" / "matched" / "b1.yaml").is_file()
    cached = _cached(cost_cache_dir())
    assert cached and all(m["device"]["runtime"] == doc["cost"]["device"]["runtime"]
                          for m in cached)


@pytest.mark.slow  # exports a model to ONNX and times it (b0 took ~20 s, tiny a few)
def test_derive_match_latency_really_runs_onnxruntime(cli: Cli, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    # the runtime's plumbing on the tests' small base (every base's graph exports: test_export)
    code, out, err = cli("derive", "--base", "tiny", "--phi", "0", "--counter", "torch",
                         "--match", "latency",
                         "--runtime", "onnxruntime", "--device", "cpu", "--threads", "1",
                         "--json", "--out", tmp_path)
    assert code == 0, err
    cost = json.loads(out)["cost"]
    assert cost["runtime"] == "onnxruntime" and cost["phi0"] > 0
    assert cost["device"]["runtime"].startswith("onnxruntime ")
