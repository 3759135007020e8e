"""The proxy ladder (:mod:`effscale.search.ladder`): which rungs the data allow, when it runs,
how a lead's trend is read, and that every search says what its ladder found, or why it did
not run, in coefficients.yaml, the CLI's verdict and report.html.

The end-to-end runs replace the trainer with a made-up one (accuracy a known function of the
proxy's input size), so the whole engine (screening, confirmation, ladder, outputs) runs in
seconds and the leads are known in advance."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

from effscale.experiment import runner
from effscale.experiment.queue import ITEM_PARAM, item_of
from effscale.experiment.stats import pack_correct
from effscale.experiment.storage import open_storage
from effscale.search.ladder import (
    ATTR,
    LadderPlan,
    Lead,
    choose_rungs,
    follow_ladder,
    ladder_identity,
    ladder_summary,
    trends,
)
from effscale.train.trainer import TrainResult

# ------------------------------------------------------------------ the rungs


def test_cifar_sized_data_put_the_rung_below_the_confirmation() -> None:
    """32 px data, a 20 px base, γ up to 1.3: 25 px is the largest base size at which the
    γ 1.3 candidate stays at or below 32 px (32.5 rounds to 32), only ×1.25 up, so the rung
    goes down by √2: 14 px (its γ 1.3 candidate at 18 px)."""
    assert choose_rungs(32, 20, 1.0, 1.3, 1) == ([14], "")
    assert choose_rungs(32, 20, 1.0, 1.3, 2) == ([10, 14], "")
    # the resolution-only extreme (γ ≈ 1.41) changes nothing: still no room above
    assert choose_rungs(32, 20, 1.0, 1.414, 1) == ([14], "")


def test_larger_images_put_the_rungs_up_to_half_the_native_size_or_more() -> None:
    """224 px data: the top rung is the largest base size whose γ 1.3 candidate is at most
    224 px (172 px, 224 px at γ 1.3), the others split the way up in log scale."""
    assert choose_rungs(224, 20, 1.0, 1.3, 1) == ([172], "")
    rungs, _ = choose_rungs(224, 20, 1.0, 1.3, 2)
    assert rungs == [59, 172] and rungs[-1] >= 224 / 2
    assert choose_rungs(224, 64, 1.0, 1.3, 1) == ([172], "")
    # every candidate stays at or below the data's size on every rung
    for largest, base, gamma in ((224, 20, 1.3), (64, 20, 1.45), (500, 64, 1.3)):
        for rung in choose_rungs(largest, base, 1.0, gamma, 3)[0]:
            assert round(rung * gamma) <= largest
    # 64 px data and a 20 px base: room for ×2.2 up
    assert choose_rungs(64, 20, 1.0, 1.45, 1) == ([44], "")


def test_no_rung_fits_says_why_and_no_budget_says_so() -> None:
    rungs, why = choose_rungs(12, 10, 1.0, 1.2, 1)  # 10/√2 = 7 px, under 8 px
    assert rungs == [] and "no rung fits" in why and "8 px" in why
    assert choose_rungs(32, 20, 1.0, 1.3, 0) == ([], "this budget has no ladder "
                                                     "(ladder_rungs 0; --ladder-rungs N runs one)")


def test_a_ladder_is_part_of_the_identity_only_when_there_is_one() -> None:
    """A run without a ladder keeps the identity it had before ladders existed (its study's
    items are the same); a run with one differs, so a resume across it is refused with what
    differs instead of failing inside optuna."""
    budget = {"confirm_top": 2, "ladder_rungs": 0, "ladder_seeds": 2, "ladder_time": 60.0}
    assert ladder_identity(budget) == {} and budget == {"confirm_top": 2}
    budget = {"confirm_top": 2, "ladder_rungs": 1, "ladder_seeds": 3, "ladder_time": 60.0}
    assert ladder_identity(budget) == {"ladder": {"rungs": 1, "seeds": 3}}
    assert "ladder_time" not in budget  # how long it may take is not what the run is
    assert ladder_identity({"confirm_top": 0, "ladder_rungs": 1}) == {}


# ------------------------------------------------------------------ the trends


def lead(margin: float, se: float = 0.005, versus: str = "base") -> Lead:
    half = 2.0 * se
    return Lead(versus, margin, margin - half, margin + half, se, 30.0,
                abs(margin) > half, 0.01)


def test_a_lead_that_falls_by_more_than_its_noise_shrinks() -> None:
    found = trends({"base": [lead(0.06), lead(0.02)], "r": [lead(0.01), lead(0.012)]})
    assert [t.word for t in found] == ["shrinks", "holds"]
    assert found[0].change == pytest.approx(-0.04)
    half = found[0].high - found[0].change
    assert half == pytest.approx(2.042 * math.sqrt(2) * 0.005, rel=1e-2)  # t(30), 2 SEs


def test_a_lead_that_turns_into_a_separated_loss_flips_and_a_growing_one_grows() -> None:
    assert [t.word for t in trends({"base": [lead(0.03), lead(-0.03)]})] == ["flips"]
    assert [t.word for t in trends({"base": [lead(-0.03), lead(0.03)]})] == ["grows"]
    assert [t.word for t in trends({"base": [None, lead(0.03)]})] == ["unknown"]


# ------------------------------------------------------------------ the follow-up

N = 1000
START = datetime(2026, 1, 1)
CHOICES = [f"{k}@{s}" for k in ("base", "w", "r", "confirm/base", "confirm/w", "confirm/r",
                                 "ladder/14/base", "ladder/14/w", "ladder/14/r")
           for s in range(4)]


def add(study: optuna.Study, item: str, hits: int, seconds: float = 100.0,
        gamma: float = 1.0, resolution: int = 20) -> None:
    start = START + timedelta(seconds=len(study.trials) * 1000)
    offset = int(item.rsplit("@", 1)[1])
    correct = np.zeros(N, dtype=bool)
    correct[(np.arange(hits) + offset) % N] = True
    study.add_trial(optuna.trial.FrozenTrial(
        number=0, state=optuna.trial.TrialState.COMPLETE, value=hits / N,
        datetime_start=start, datetime_complete=start + timedelta(seconds=seconds),
        params={ITEM_PARAM: item},
        distributions={ITEM_PARAM: optuna.distributions.CategoricalDistribution(CHOICES)},
        user_attrs={"val_correct": pack_correct(correct), "val_size": N, "gamma": gamma,
                    "resolution": resolution, "alpha": 1.0, "beta": 1.0, "flops": 100,
                    "flops_ratio": 2.0, "nominal_ratio": 2.0},
        system_attrs={}, intermediate_values={}, trial_id=0))


PLAN = LadderPlan(20, (14,), seeds=3, factor=2, time_limit=None, largest=32, full=224,
                  final_maps={14: 1, 20: 2})


def confirmed_study(hits: dict[str, int], plan: LadderPlan = PLAN) -> optuna.Study:
    """Screened, and confirmed on two seeds: base, w and r (w first, then r)."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("settings", {
        "num_classes": 10, "flops_window": None, "ladder": plan.to_dict(),
        "identity": {"budget": {"confirm_top": 2, "confirm_seeds": 3,
                                "confirm_max_seeds": 3}}})
    gammas = {"base": 1.0, "w": 1.3, "r": 1.0}
    for key, screened in (("base", 500), ("w", 600), ("r", 580)):
        add(study, f"{key}@0", screened, gamma=gammas[key])
    study.set_user_attr("confirm_top", ["w", "r"])
    for key in ("base", "w", "r"):
        for seed in range(3):
            add(study, f"confirm/{key}@{seed}", hits[key] + 5 * (seed - 1),
                seconds=200.0, gamma=gammas[key], resolution=round(20 * gammas[key]))
    return study


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def test_a_decided_confirmation_enqueues_the_three_models_at_each_rung_once() -> None:
    study = confirmed_study({"base": 500, "w": 700, "r": 560})
    said = Said()
    assert follow_ladder(study, said, "decided after 2 confirmation seeds")  # type: ignore[arg-type]
    waiting = sorted(item_of(t) for t in study.get_trials(deepcopy=False)
                     if t.state == optuna.trial.TrialState.WAITING)
    assert waiting == sorted(f"ladder/14/{k}@{s}" for k in ("base", "w", "r") for s in (0, 1, 2))
    assert study.user_attrs[ATTR]["models"] == ["base", "w", "r"]
    # 200 s per confirmation training; at 14 px: base (14/20)², w (18/26)², r (14/20)², 3 seeds
    expected = 3 * 200 * ((14 / 20) ** 2 * 2 + (18 / 26) ** 2)
    assert study.user_attrs[ATTR]["estimated_s"] == pytest.approx(expected, abs=0.1)
    assert said.lines[0] == "confirmation stopped: decided after 2 confirmation seeds"
    assert "proxy ladder: base, w, r retrained with the base's proxy at 14 px" in said.lines[1]
    assert not follow_ladder(study, said, "decided after 2 confirmation seeds")  # type: ignore[arg-type]
    assert len(said.lines) == 2  # nothing added, nothing said again


def test_an_undecided_confirmation_or_a_ladder_over_its_time_is_not_run_and_says_why() -> None:
    study = confirmed_study({"base": 600, "w": 602, "r": 601})
    said = Said()
    assert not follow_ladder(study, said, "undecided after 2 seeds")  # type: ignore[arg-type]
    summary = ladder_summary(study)
    assert summary["run"] is False
    assert summary["line"] == ("PROXY LADDER NOT RUN: the confirmation did not decide (no "
                               "winner separated above the base), so there is no answer "
                               "whose reach in pixels to measure")
    slow = LadderPlan(20, (14,), seeds=3, factor=2, time_limit=60.0, largest=32, full=224)
    study = confirmed_study({"base": 500, "w": 700, "r": 560}, slow)
    assert not follow_ladder(study, said, "decided")  # type: ignore[arg-type]
    assert ladder_summary(study)["line"].startswith(
        "PROXY LADDER NOT RUN: its estimated 14.6 min of training would pass the budget's "
        "ladder time of 1 min")
    assert not [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.WAITING]


def test_the_summary_reads_each_rung_and_the_trend() -> None:
    """w leads the base by 20 points at 20 px and by 6 at 14 px: the lead grows with the
    proxy. Over r: 14 points at 20 px, 1 at 14 px (r is within the noise of w there)."""
    study = confirmed_study({"base": 500, "w": 700, "r": 560})
    follow_ladder(study, Said(), "decided")  # type: ignore[arg-type]
    before = ladder_summary(study)
    assert before["run"] and before["line"].startswith("PROXY LADDER running: 1 of 2 rungs")
    for key, hits, px in (("base", 400, 14), ("w", 460, 18), ("r", 450, 14)):
        for seed in range(3):
            add(study, f"ladder/14/{key}@{seed}", hits + 5 * (seed - 1), 50.0,
                gamma={"w": 1.3}.get(key, 1.0), resolution=px)
    doc = ladder_summary(study)
    assert doc["rungs"] == [14, 20] and doc["winner"] == "w"
    small, main = doc["at"]
    assert small["px"] == {"base": 14, "w": 18, "r": 14} and small["final_map"] == 1
    assert main["confirmation"] and main["px"] == {"base": 20, "w": 26, "r": 20}
    assert [lead["lead_points"] for lead in small["leads"]] == pytest.approx([6.0, 1.0])
    assert [lead["lead_points"] for lead in main["leads"]] == pytest.approx([20.0, 14.0])
    low, high = main["leads"][0]["interval_points"]
    assert low < 20.0 < high
    words = {t["versus"]: t["trend"] for t in doc["trend"]}
    assert words == {"base": "grows", "r": "grows"}
    assert doc["line"].startswith("PROXY LADDER (w; base proxy at 14, 20 px): lead over the "
                                  "base (points, 95 % interval): +6.00")
    assert "-> GROWS" in doc["line"] and "full size (224 px)" in doc["line"]
    assert "1×1" in doc["notes"][0]


# ------------------------------------------------------------------ end to end (made-up trainer)

# NNI's grid at step 0.4 (no β to solve, so few FLOPs to count) and every point kept:
# a1.00_b1.00_g1.400 (28 px), a1.40_b1.00_g1.200 (24 px), a1.00_b1.40_g1.000 (20 px).
SMOKE = ("search", "--dataset", "synthetic", "--budget", "smoke", "--train-size", "128",
         "--val-size", "400", "--counter", "torch", "--threads", "1", "--alpha-max", "1.4",
         "--beta", "grid", "--beta-max", "1.4", "--flops-tolerance", "-1",
         "--confirm-top", "2", "--quiet")


def fake_trainer(per_px: float) -> object:
    """A trainer whose accuracy is 0.3 + ``per_px`` per input pixel above 14 (the first
    correct examples, shifted by the seed), plus a seed wobble of ±0.5 points."""

    def train(config, train_images, train_labels, val_images, val_labels, *, recipe, device,
              seed=0, **_: object) -> TrainResult:
        n = len(val_labels)
        p = 0.3 + per_px * (config.resolution - 14) + (0.005 if (seed // 1000) % 2 else -0.005)
        correct = torch.zeros(n, dtype=torch.bool)
        correct[(torch.arange(int(p * n)) + seed // 1000) % n] = True
        accuracy = float(correct.float().mean())
        return TrainResult(accuracy, [accuracy] * recipe.epochs, [1.0] * recipe.epochs,
                           [accuracy] * recipe.epochs, [0.01] * recipe.epochs, 0.01, 1e4,
                           recipe.epochs, config.resolution, val_correct=correct)

    return train


def search(cli, monkeypatch: pytest.MonkeyPatch, out: Path, per_px: float, *extra: str
           ) -> tuple[dict, str]:
    monkeypatch.setattr(runner, "train_config", fake_trainer(per_px))
    code, stdout, stderr = cli(*SMOKE, *extra, "--out", out)
    assert code == 0, stderr
    return yaml.safe_load((out / "coefficients.yaml").read_text()), stdout


@pytest.mark.slow
def test_a_decided_search_reports_its_ladder_everywhere(tmp_path: Path, cli,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Accuracy grows 2 points per input pixel: the γ 1.4 candidate (28 px) wins at the 20 px
    rung, ahead of the runner-up γ 1.2 (24 px); the ladder retrains the three at 14 px on
    fresh seeds, where they see 14, 20 and 17 px."""
    from effscale.report.html import write_run_report

    out = tmp_path / "ladder"
    doc, stdout = search(cli, monkeypatch, out, 0.02, "--ladder-rungs", "1",
                         "--confirm-seeds", "3", "--confirm-max-seeds", "3")
    assert doc["decided"] is True and doc["gamma"] == pytest.approx(1.4)
    ladder = doc["ladder"]
    assert ladder["run"] is True and ladder["rungs"] == [14, 20]
    winner = doc["candidate"]
    assert ladder["winner"] == winner and ladder["models"][:2] == ["base", winner]
    small = ladder["at"][0]
    assert small["px"]["base"] == 14 and small["px"][winner] == 20  # round(14 x 1.4)
    assert small["seeds"] == {k: 3 for k in ladder["models"]}
    # 8 px between base and winner at 20 px (16 points), 6 px at 14 px (12 points)
    assert ladder["at"][1]["leads"][0]["lead_points"] == pytest.approx(16.0, abs=0.6)
    assert small["leads"][0]["lead_points"] == pytest.approx(12.0, abs=0.6)
    assert ladder["models"][2] == "a1.40_b1.00_g1.200" and small["px"]["a1.40_b1.00_g1.200"] == 17
    assert [lead["lead_points"] for lead in small["leads"]] == pytest.approx([12.0, 6.0], abs=0.6)
    # +4 and +2 points from 14 to 20 px: within the noise of 400 validation images
    assert [t["trend"] for t in ladder["trend"]] == ["holds", "holds"]
    assert f"ladder: PROXY LADDER ({winner}; base proxy at 14, 20 px)" in stdout
    assert stdout.index("verdict: DECIDED") < stdout.index("ladder: PROXY LADDER")
    study = optuna.load_study(study_name="effscale", storage=open_storage(None, out))
    on_ladder = {item_of(t): t for t in study.get_trials(deepcopy=False)
                 if item_of(t).startswith("ladder/")}
    assert len(on_ladder) == 3 * len(ladder["models"])
    # the rung's own seeds: at 14 px the winner is the base at 20 px, so the confirmation's
    # seeds would retrain the confirmation's base runs and tie the two rungs' leads together
    assert {t.user_attrs["seed"] for t in on_ladder.values()} == {
        11_400_000, 11_401_000, 11_402_000}
    confirmed = {t.user_attrs["seed"] for t in study.get_trials(deepcopy=False)
                 if item_of(t).startswith("confirm/")}
    assert confirmed == {100_000, 101_000, 102_000}
    # the ladder's trainings are neither screened nor ranked
    assert doc["stages"]["screening"]["trainings"] == \
        study.user_attrs["settings"]["candidates"] + 1
    assert not doc["candidate"].startswith("ladder/")
    page = write_run_report(out, None, "effscale").read_text()
    assert "Proxy ladder: the answer" in page and "PROXY LADDER (" in page


@pytest.mark.slow
def test_a_search_without_a_ladder_says_so_everywhere(tmp_path: Path, cli,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from effscale.report.html import write_run_report

    out = tmp_path / "none"
    doc, stdout = search(cli, monkeypatch, out, 0.02)  # smoke has no ladder
    line = ("PROXY LADDER NOT RUN: this budget has no ladder (ladder_rungs 0; --ladder-rungs "
            "N runs one)")
    assert doc["ladder"] == {"run": False, "why": line.split("NOT RUN: ")[1], "line": line}
    assert f"ladder: {line}" in stdout
    assert line in write_run_report(out, None, "effscale").read_text()


@pytest.mark.slow
def test_an_undecided_search_does_not_climb_the_ladder(tmp_path: Path, cli,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "flat"
    doc, stdout = search(cli, monkeypatch, out, 0.0, "--ladder-rungs", "1")
    assert doc["decided"] is False and doc["ladder"]["run"] is False
    assert "ladder: PROXY LADDER NOT RUN: the confirmation did not decide" in stdout


# ------------------------------------------------------------------ outputs of a made-up run


def finished_study(ladder: LadderPlan | None, hits: dict[str, int]) -> optuna.Study:
    """A made-up finished search (no FLOPs counted, nothing trained): screening, confirmation
    and, when ``ladder`` has rungs and the confirmation decided, the ladder's 14 px rung."""
    from dataclasses import asdict

    from effscale.model.config import ScalingRules

    study = confirmed_study(hits, ladder or PLAN)
    settings = dict(study.user_attrs["settings"])
    settings.update(base="b0", dataset="synthetic", budget="smoke", grid=None,
                    rules=asdict(ScalingRules()), classes=[str(i) for i in range(10)])
    if ladder is None:
        settings.pop("ladder")
    study.set_user_attr("settings", settings)
    if follow_ladder(study, Said(), "decided"):  # type: ignore[arg-type]
        for key, base_hits, px in (("base", 400, 14), ("w", 460, 18), ("r", 450, 14)):
            for seed in range(3):
                add(study, f"ladder/14/{key}@{seed}", base_hits + 5 * (seed - 1),
                    50.0, gamma={"w": 1.3}.get(key, 1.0), resolution=px)
    return study


@pytest.mark.slow  # rebuilds a run's outputs (3 s)
def test_coefficients_and_the_printed_verdict_say_what_the_ladder_found(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from effscale.cli.search import print_answer
    from effscale.search.outputs import write_outputs

    answer = write_outputs(finished_study(PLAN, {"base": 500, "w": 700, "r": 560}), tmp_path)
    doc = yaml.safe_load((tmp_path / "coefficients.yaml").read_text())
    assert doc["decided"] is True and doc["ladder"]["run"] is True
    assert doc["ladder"]["rungs"] == [14, 20]
    assert [t["trend"] for t in doc["ladder"]["trend"]] == ["grows", "grows"]
    assert doc["ladder"]["line"].startswith("PROXY LADDER (w; base proxy at 14, 20 px)")
    print_answer(answer, tmp_path)
    printed = capsys.readouterr().out
    assert "ladder: PROXY LADDER (w; base proxy at 14, 20 px): lead over the base" in printed
    assert printed.index("verdict: DECIDED") < printed.index("ladder: PROXY LADDER")


@pytest.mark.parametrize(("plan", "hits", "why"), [
    (LadderPlan(20, (), why="this budget has no ladder (ladder_rungs 0; --ladder-rungs N runs "
                            "one)"), {"base": 500, "w": 700, "r": 560},
     "this budget has no ladder"),
    (PLAN, {"base": 600, "w": 602, "r": 601}, "the confirmation did not decide"),
    (None, {"base": 500, "w": 700, "r": 560}, "this run has no ladder plan"),
])
@pytest.mark.slow  # rebuilds a run's outputs (2.5-3 s each)
def test_a_run_whose_ladder_did_not_run_says_so_and_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], plan: LadderPlan | None,
        hits: dict[str, int], why: str) -> None:
    from effscale.cli.search import print_answer
    from effscale.search.outputs import write_outputs

    answer = write_outputs(finished_study(plan, hits), tmp_path)
    ladder = yaml.safe_load((tmp_path / "coefficients.yaml").read_text())["ladder"]
    assert ladder["run"] is False and ladder["why"].startswith(why)
    assert ladder["line"] == f"PROXY LADDER NOT RUN: {ladder['why']}"
    print_answer(answer, tmp_path)
    assert f"ladder: PROXY LADDER NOT RUN: {why}" in capsys.readouterr().out
