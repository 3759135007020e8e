"""The estimate before a run: its arithmetic with fake speeds, the search's stages counted
in full (the demo trains 8-10, not its 4 work items), the time cap, and the comparison at
the end."""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from effscale.experiment import estimate as est
from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.events import RunEvents
from effscale.search import estimate_stages
from effscale.train import throughput
from effscale.train.throughput import Throughput


@pytest.fixture(autouse=True)
def _estimates_measure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite counts trainings without timing models (tests/conftest.py); here the
    estimate is the subject, with fake speeds."""
    monkeypatch.delenv(estimate_stages.NO_ESTIMATE_ENV, raising=False)


@dataclass(frozen=True)
class Fake:
    train_ips: float = 100.0
    eval_ips: float = 500.0
    resize_ips: float = 10_000.0
    setup_s: float = 1.0
    compile_s: float = 0.0


def test_training_seconds_formula() -> None:
    # 1000 images at batch 64: 15 whole batches = 960 trained images an epoch.
    training = est.Training("m", train_images=1000, val_images=500, epochs=3, batch_size=64,
                            precise_bn=100)
    expected = 1.0 + 1500 / 10_000 + 3 * (960 / 100 + 600 / 500)
    assert est.training_seconds(training, Fake()) == pytest.approx(expected)
    assert est.training_seconds(training, Fake(compile_s=20.0)) == pytest.approx(expected + 20)


def test_cap_drops_the_optional_steps_past_the_limit() -> None:
    stages = [est.StageEstimate("screening", [est.Step(100.0, 4)]),
              est.StageEstimate("confirmation", [est.Step(50.0, 2)] * 2,
                                [est.Step(50.0, 2)] * 2)]
    capped = est.cap_optional([replace(s) for s in stages], time_limit=260.0)
    assert capped[1].trainings == (4, 6)  # 100 + 50 + 50 + 50 = 250 fits; 300 does not
    assert capped[1].seconds == (100.0, 150.0)
    # The minimum always runs, even past the limit.
    assert est.cap_optional([replace(s) for s in stages], 120.0)[1].trainings == (4, 4)
    assert est.cap_optional([replace(s) for s in stages], None)[1].trainings == (4, 8)


def test_run_estimate_divides_by_workers_and_says_it() -> None:
    stages = [est.StageEstimate("screening", [est.Step(600.0, 6)]),
              est.StageEstimate("confirmation", [est.Step(300.0, 3)] * 2,
                                [est.Step(300.0, 3)])]
    run = est.RunEstimate(stages, workers=2, source="fake")
    assert run.trainings == (12, 15)
    assert run.wall_seconds == (600.0, 750.0)
    line = est.describe(run)
    assert "screening 6 trainings ~5.0 min" in line
    assert "confirmation 6-9 trainings ~5.0-7.5 min" in line
    assert "total 12-15 trainings, ~10.0-12.5 min of wall time on 2 workers" in line
    assert est.describe(run.to_dict()) == line  # from the stored document too


def test_compare_estimate_with_actual() -> None:
    doc = est.RunEstimate([est.StageEstimate("screening", [est.Step(600.0, 6)]),
                           est.StageEstimate("confirmation", [est.Step(300.0, 3)],
                                             [est.Step(300.0, 3)])]).to_dict()
    rows = est.compare(doc, {"screening": {"trainings": 6, "seconds": 900.0},
                             "confirmation": {"trainings": 6, "seconds": 450.0}})
    assert rows[0]["ratio"] == 1.5  # 900 s against 600
    assert rows[1]["ratio"] == 1.0  # 450 s is inside 300-600
    line = est.compare_line(rows)
    assert "screening est. 10.0 min / actual 15.0 min (6 of 6 trainings, ×1.50" in line
    assert "confirmation est. 5.0-10.0 min / actual 7.5 min (6 of 3-6 trainings)" in line
    missing = est.compare(doc, {})
    assert missing[0]["actual_s"] == 0.0 and missing[0]["ratio"] == 0.0


# --------------------------------------------------------------------------- a search's stages


@dataclass
class Cand:
    key: str
    config: Any
    is_base: bool = False
    is_confirmation: bool = False
    epochs_factor: int = 1
    seed_offset: int = 0


class Sized(SimpleNamespace):
    def __len__(self) -> int:
        return self.n


def prepared_for(budget_name: str, candidates: int, workers: int = 1) -> SimpleNamespace:
    """What the estimate reads of a prepared search: settings, items, models, data sizes."""
    budget = get_budget(budget_name)
    settings = SimpleNamespace(budget=budget, recipe=budget_recipe(budget), workers=workers,
                               grid=SimpleNamespace(target=2.0), repeat_top=0, device="cpu")
    models = [Cand("base", "base-config", is_base=True)]
    models += [Cand(f"c{i}", f"c{i}-config") for i in range(candidates)]
    confirm = [Cand(f"confirm/{m.key}", m.config, m.is_base, True) for m in models]
    items = [f"base@{s}" for s in range(budget.repeats)] + [f"c{i}@0" for i in range(candidates)]
    return SimpleNamespace(
        settings=settings, items=items, candidates={m.key: m for m in models + confirm},
        train=Sized(images=torch.zeros(1, 3, 32, 32, dtype=torch.uint8), n=budget.train_size),
        val=Sized(n=budget.val_size))


def test_the_demo_counts_every_stage() -> None:
    """The demo: 4 screening items, then the base and the winner on 4 seeds in one look:
    12 trainings (the work items alone said 4)."""
    seen: list[str] = []

    def measure(config: Any, recipe: Any, device: Any, native: int):
        seen.append(config)
        return Fake(train_ips=1000.0, eval_ips=4000.0, setup_s=0.5), True

    prepared = prepared_for("demo", candidates=3)
    run = estimate_stages.estimate_search(prepared, RunEvents(), measure)
    assert [s.name for s in run.stages] == ["screening", "confirmation"]
    assert run.stages[0].trainings == (4, 4)
    assert run.stages[1].trainings == (8, 8)
    assert run.trainings == (12, 12)
    assert sorted(seen) == ["base-config", "c0-config", "c1-config", "c2-config"]  # once each
    # one demo training: 0.5 + 1824/10000 + 3 x (1024/1000 + (800 + 512)/4000)
    one = 0.5 + 1824 / 10_000 + 3 * (1024 / 1000 + 1312 / 4000)
    assert run.stages[0].seconds[0] == pytest.approx(4 * one)
    confirm_one = 0.5 + 1824 / 10_000 + 3 * (1024 / 1000 + 1312 / 4000)  # factor 1
    assert run.stages[1].seconds == pytest.approx((8 * confirm_one, 8 * confirm_one))


def test_the_quick_budgets_confirmation_is_capped_by_its_time() -> None:
    """quick: 55 min of training. Slow fake speeds leave no room for the third round."""
    def slow(config: Any, recipe: Any, device: Any, native: int):
        return Fake(train_ips=50.0, eval_ips=200.0), False

    prepared = prepared_for("quick", candidates=5)
    run = estimate_stages.estimate_search(prepared, RunEvents(), slow)
    assert run.stages[0].trainings == (6, 6)
    assert run.stages[1].trainings == (9, 9)  # 3 rounds of 3 models; round 4 over the limit

    def fast(config: Any, recipe: Any, device: Any, native: int):
        return Fake(train_ips=5000.0, eval_ips=20000.0), False

    run = estimate_stages.estimate_search(prepared_for("quick", 5), RunEvents(), fast)
    assert run.stages[1].trainings == (9, 12)


def test_the_estimate_never_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from effscale.search import run as search_run

    def broken(*args: Any, **kwargs: Any):
        raise RuntimeError("no speed")

    monkeypatch.setattr(search_run, "estimate_search", broken)
    said: list[str] = []
    events = RunEvents()
    events.message = said.append  # type: ignore[method-assign]
    assert search_run.estimate_run(SimpleNamespace(), events) == {}
    assert said == ["warning: no time estimate (RuntimeError: no speed)"]


# --------------------------------------------------------------------------- the measurement


def test_throughput_is_measured_once_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    from effscale.model.bases import get_base
    from effscale.scaling.compound import scale_config
    from effscale.train.trainer import Recipe, proxy_config

    small = scale_config(get_base("b0", 10), depth=0.3, width=0.25, name="tiny")
    config = proxy_config(small.replace(resolution=16), Recipe(), 4)
    recipe = Recipe(batch_size=16)
    monkeypatch.setattr(throughput, "_MEASURED", {})
    first, measured = throughput.cached_throughput(config, recipe, torch.device("cpu"), 16)
    assert measured and isinstance(first, Throughput)
    assert first.train_ips > 0 and first.eval_ips > 0 and first.resize_ips > 0
    monkeypatch.setattr(throughput, "_MEASURED", {})  # a new process: the disk cache
    again, measured = throughput.cached_throughput(config, recipe, torch.device("cpu"), 16)
    assert not measured and again == first
    _other, measured = throughput.cached_throughput(config, replace(recipe, batch_size=8),
                                                   torch.device("cpu"), 16)
    assert measured  # another batch is another speed


def test_counting_only_without_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(estimate_stages.NO_ESTIMATE_ENV, "1")

    def never(*args: Any):
        raise AssertionError("measured")

    run = estimate_stages.estimate_search(prepared_for("demo", 3), RunEvents(), never)
    assert run.trainings == (12, 12) and not run.timed
    line = est.describe(run)
    assert "total 12 trainings" in line and "min" not in line
    assert est.compare(run.to_dict(), {}) is None


@pytest.mark.slow  # a whole smoke search, end to end
def test_a_search_says_its_estimate_and_compares_it_at_the_end(
        cli: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks: the estimate line before the trainings, in settings.yaml, and estimate
    vs actual per stage in coefficients.yaml and the last lines."""
    import yaml

    monkeypatch.setattr(estimate_stages, "cached_throughput",
                        lambda *args: (Fake(train_ips=2000.0, eval_ips=8000.0), True))
    out = tmp_path / "run"
    code, stdout, stderr = cli("search", "--base", "tiny", "--alpha-max", "1.4", "--dataset",
                               "synthetic", "--budget", "smoke", "--train-size", "64",
                               "--val-size", "32", "--batch-size", "32", "--counter", "torch",
                               "--threads", "1", "--out", out)
    assert code == 0, stderr
    assert "estimate: screening" in stderr and "confirmation 4 trainings" in stderr
    settings = yaml.safe_load((out / "settings.yaml").read_text())
    screening = settings["estimate"]["stages"][0]
    doc = yaml.safe_load((out / "coefficients.yaml").read_text())
    rows = {r["stage"]: r for r in doc["estimate_vs_actual"]}
    assert rows["screening"]["actual_trainings"] == screening["trainings"][0]
    assert rows["confirmation"]["actual_trainings"] == 4  # smoke: 2 models x 2 seeds
    assert rows["screening"]["actual_s"] > 0
    assert "estimate vs actual (training time): screening est." in stdout


def test_the_ladder_and_the_refinement_are_not_counted_as_screening(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's line read "screening est. 7.5 min / actual 42.1 min (11 of 5 trainings)":
    the ladder's six trainings were added to the screening's five."""
    times = {"base": [60.0], "a1.00_b1.00_g1.400": [90.0], "confirm/base": [70.0, 72.0],
             "ladder/14/base": [40.0, 41.0, 42.0], "refine/gamma:a1.000_b1": [95.0]}
    monkeypatch.setattr(estimate_stages, "trial_seconds", lambda study: times)
    stages = estimate_stages.actual_stages(None)  # type: ignore[arg-type]
    assert stages == {"screening": {"trainings": 2, "seconds": 150.0},
                      "confirmation": {"trainings": 2, "seconds": 142.0},
                      "ladder": {"trainings": 3, "seconds": 123.0},
                      "refinement": {"trainings": 1, "seconds": 95.0}}
