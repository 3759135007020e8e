"""End to end: `effscale search` on the embedded synthetic data writes every output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from shared_runs import SMOKE_SEARCH

from effscale.datasets import synthetic
from effscale.experiment.rows import Row
from effscale.model.config import load_config
from effscale.model.rounding import round_resolution
from effscale.search.selection import select

pytestmark = pytest.mark.slow

SMOKE = SMOKE_SEARCH  # the shared smoke search's arguments (tests/shared_runs.py)
# For tests that count trainings and states, not accuracies: the tests' small base
# (tests/tiny_base.py; with alpha up to 1.4 the smoke grid keeps 4 candidates, as b0's
# does), fewer images, torch's counter.
SMALL = ("search", "--base", "tiny", "--alpha-max", "1.4", "--dataset", "synthetic",
         "--budget", "smoke", "--train-size", "64", "--val-size", "32", "--batch-size", "32",
         "--counter", "torch", "--quiet")


@pytest.fixture(scope="module")
def smoke_run(smoke_search_run) -> tuple[Path, int, str, str]:
    run = smoke_search_run
    return run.out, run.code, run.stdout, run.stderr


def test_smoke_search_writes_every_output(smoke_run: tuple[Path, int, str, str]) -> None:
    out, code, _stdout, stderr = smoke_run
    assert code == 0, stderr
    for name in ("settings.yaml", "trials.csv", "coefficients.yaml", "search.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "configs").iterdir()) == [f"b{i}.yaml" for i in range(8)]
    assert (out / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.effscale-tmp-*"))


def test_smoke_trials_cover_the_feasible_set(smoke_run: tuple[Path, int, str, str]) -> None:
    out = smoke_run[0]
    settings = yaml.safe_load((out / "settings.yaml").read_text())
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert settings["status"] == "complete"
    screening = [r for r in rows if not r["candidate"].startswith("confirm/")]
    assert len(screening) == settings["candidates"] + 1  # every candidate plus the base, once
    assert rows[0]["candidate"] == "base"
    # smoke confirms the base and its top 1 on 2 fresh seeds each
    confirmed = {r["candidate"]: int(r["seeds"]) for r in rows
                 if r["candidate"].startswith("confirm/")}
    assert len(confirmed) == 2 and "confirm/base" in confirmed
    assert set(confirmed.values()) == {2}
    rows = screening
    for row in rows:
        assert row["state"] == "complete"
        assert 0.0 <= float(row["val_accuracy"]) <= 1.0
        assert int(row["params"]) > 0 and int(row["flops"]) > 0
    base_flops = int(rows[0]["flops"])
    for row in rows[1:]:  # the recorded ratio is the measured one, not alpha*beta^2*gamma^2
        assert float(row["flops_ratio"]) == pytest.approx(int(row["flops"]) / base_flops,
                                                          abs=1e-3)
        alpha, beta, gamma = (float(row[k]) for k in ("alpha", "beta", "gamma"))
        assert float(row["nominal_ratio"]) == pytest.approx(alpha * beta**2 * gamma**2, abs=1e-3)


def test_smoke_coefficients_and_configs(smoke_run: tuple[Path, int, str, str], cli) -> None:
    out = smoke_run[0]
    doc = yaml.safe_load((out / "coefficients.yaml").read_text())
    assert {"alpha", "beta", "gamma", "val_accuracy", "base_val_accuracy",
            "flops_ratio_measured", "signal", "verdict", "method"} <= set(doc)
    assert min(doc["alpha"], doc["beta"], doc["gamma"]) >= 1.0
    b1 = load_config(out / "configs" / "b1.yaml")
    assert b1.num_classes == len(synthetic.CLASSES) == 6
    assert b1.resolution == round_resolution(224 * doc["gamma"], 8)  # full size, not proxy
    assert b1.provenance.alpha == doc["alpha"] and b1.provenance.phi == 1.0
    code, stdout, _ = cli("flops", out / "configs" / "b2.yaml", "--json", "--counter", "torch")
    assert code == 0 and json.loads(stdout)["params"] > 0


def test_smoke_coefficients_carry_their_precision(smoke_run: tuple[Path, int, str, str]
                                                  ) -> None:
    doc = yaml.safe_load((smoke_run[0] / "coefficients.yaml").read_text())
    aliases = doc["aliases"]
    for name in ("alpha", "beta", "gamma"):
        low, high = aliases[name]["same_model"]
        assert low <= doc[name] <= high, name
        assert aliases[name]["at_phi_7"] == pytest.approx([low**7, high**7], abs=1e-2)
    assert aliases["gamma"]["proxy_px"] == doc["proxy_resolution"]
    assert doc["alpha"] in aliases["alpha"]["grid"]
    assert abs(doc["flops_ratio_measured"] / 2 - 1) <= 0.05  # equal cost, at full size
    assert "full-size" in doc["cost"]


def test_smoke_summary_is_honest_about_signal(smoke_run: tuple[Path, int, str, str]) -> None:
    out, _, stdout, _stderr = smoke_run
    doc = yaml.safe_load((out / "coefficients.yaml").read_text())
    assert "verdict:" in stdout
    if doc["base_val_accuracy"] < 0.15:  # a 64-image, 1-epoch proxy learns next to nothing
        assert doc["signal"] is False and doc["verdict"].startswith("NO SIGNAL")
    if doc["verdict"].startswith("NO SIGNAL"):  # no "winner" where nothing learned
        assert "best (no signal" in stdout and "winner (" not in stdout
    elif not doc["signal"]:
        assert "best so far, not decided (the screening's pick):" in stdout
    if not doc["decided"]:  # the table's first row is the pick, not a "winner"
        assert "│ winner " not in stdout and "│ pick " in stdout


def test_smoke_undecided_family_is_marked_everywhere(smoke_run: tuple[Path, int, str, str]
                                                     ) -> None:
    """An undecided answer says so in coefficients.yaml, in the first line of every config
    derived from it, and on the terminal."""
    out, _, _, stderr = smoke_run
    doc = yaml.safe_load((out / "coefficients.yaml").read_text())
    assert doc["decided"] is False and doc["caveat"].startswith("UNDECIDED:")
    for path in (out / "configs").glob("b*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith(
            "# UNDECIDED: effscale search did not decide for these coefficients"), path
        assert load_config(path).num_classes == 6  # still a valid config, with the classes
    assert "caveat: UNDECIDED" in stderr
    stages = doc["stages"]
    assert stages["screening"]["trainings"] == 5
    assert [r["round"] for r in stages["confirmation"]["rounds"]] == [1, 2]


def _row(name: str, acc: float, flops: int, correct: np.ndarray | None = None) -> Row:
    row = Row(name, {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "flops": flops,
                     "flops_ratio": 2.0})
    row.accuracies = [acc]
    if correct is not None:
        row.correct = [correct]
    return row


def test_selection_breaks_ties_by_fewer_flops() -> None:
    rows = {"base": _row("base", 0.40, 100), "big": _row("big", 0.50, 300),
            "small": _row("small", 0.50, 200)}
    assert select(rows, 10).winner.candidate == "small"


def test_selection_says_no_signal_near_chance() -> None:
    rows = {"base": _row("base", 0.11, 100), "a": _row("a", 0.13, 200)}
    selection = select(rows, 10)
    assert not selection.signal and selection.verdict.startswith("NO SIGNAL")


def test_selection_says_when_seed_noise_comes_from_the_base_alone() -> None:
    rng = np.random.default_rng(1)
    base0, base1 = rng.random(2000) < 0.40, rng.random(2000) < 0.40
    best, other = rng.random(2000) < 0.70, rng.random(2000) < 0.50

    def rows(best_seeds: int) -> dict[str, Row]:
        base = _row("base", 0.40, 100)
        base.accuracies, base.correct = [base0.mean(), base1.mean()], [base0, base1]
        a = _row("a", best.mean(), 200, best)
        a.accuracies, a.correct = [best.mean()] * best_seeds, [best] * best_seeds
        return {"base": base, "a": a, "b": _row("b", other.mean(), 200, other)}

    alone = select(rows(1), 10)
    assert alone.noise_from_base_only and "seed noise measured on the base only" in \
        alone.verdict
    shared = select(rows(2), 10)  # the winner's own seeds count too
    assert not shared.noise_from_base_only and "base only" not in shared.verdict


def test_selection_names_tied_candidates() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(2000) < 0.40
    best = rng.random(2000) < 0.70
    near = best.copy()  # the same predictions but for 3 wins and 3 losses: a tie
    right, wrong = np.flatnonzero(best), np.flatnonzero(~best)
    near[right[:3]], near[wrong[:3]] = False, True
    worse = rng.random(2000) < 0.55
    rows = {"base": _row("base", base.mean(), 100, base),
            "a": _row("a", best.mean() + 1e-4, 200, best),
            "b": _row("b", near.mean(), 200, near),
            "c": _row("c", worse.mean(), 200, worse)}
    single = select(rows, 10)  # one seed each: the ranking is untested, not tied
    assert single.winner.candidate == "a"
    assert single.tied == [] and single.untested == ["b", "c"] and not single.signal
    assert "--repeat-top N (N >= 2)" in single.verdict
    for i, row in enumerate(rows.values()):  # a second seed each: now testable
        first = row.correct[0]
        again = first.copy()  # (a copy would measure a seed noise of exactly 0)
        again[np.flatnonzero(first)[i:i + 3]] = False  # 3 right answers become wrong ...
        again[np.flatnonzero(~first)[i:i + 2]] = True  # ... and 2 wrong ones right
        row.accuracies = [row.accuracies[0], row.accuracies[0] - 1 / len(first)]
        row.correct = [first, again]
    selection = select(rows, 10)
    assert selection.winner.candidate == "a"
    assert selection.tied == ["b"] and selection.untested == []
    assert "statistically tied with 1 candidate(s): b" in selection.verdict
    assert selection.signal  # 0.70 vs 0.40 on 2000 examples


def test_repeat_top_trains_the_best_again_under_more_seeds(tmp_path: Path, cli) -> None:
    """--repeats 2 --repeat-top 2: the base and the two best seed-0 candidates get a second
    seed, nothing else does; the noise band and rank stability come from those seeds; a
    resume of the finished run trains nothing more."""
    import optuna

    from effscale.experiment.queue import item_of, split_item
    from effscale.experiment.storage import open_storage

    out = tmp_path / "top"
    code, _, stderr = cli(*SMALL, "--repeats", "2", "--repeat-top", "2", "--confirm-top", "0",
                          "--out", out)
    assert code == 0, stderr
    rows = {row["candidate"]: row for row in csv.DictReader((out / "trials.csv").open())}
    seeds = {name: int(row["seeds"]) for name, row in rows.items()}
    repeated = sorted(name for name, n in seeds.items() if n == 2 and name != "base")
    assert seeds["base"] == 2 and len(repeated) == 2
    assert all(n == 1 for name, n in seeds.items() if name not in repeated and name != "base")

    study = optuna.load_study(study_name="effscale", storage=open_storage(None, out))
    assert sorted(study.user_attrs["repeat_top"]) == repeated
    seed0 = {}
    for trial in study.get_trials(deepcopy=False,
                                  states=(optuna.trial.TrialState.COMPLETE,)):
        candidate, seed = split_item(item_of(trial))
        if seed == 0 and candidate != "base":
            seed0[candidate] = trial.value
    others = [acc for name, acc in seed0.items() if name not in repeated]
    assert min(seed0[name] for name in repeated) >= max(others)  # the best, by seed 0

    doc = yaml.safe_load((out / "coefficients.yaml").read_text())
    assert doc["base_seeds"] == 2
    assert doc["rank_stability"]["candidates"] == repeated  # ranked over the common seeds
    assert len(doc["rank_stability"]["kendall_tau"]) == 1
    assert sum(doc["rank_stability"]["wins"].values()) == 2
    if doc["candidate"] in repeated:
        assert doc["seeds"] == 2
    trainings = len(study.get_trials(deepcopy=False))

    code, _, stderr = cli(*SMALL, "--repeats", "2", "--repeat-top", "2", "--confirm-top", "0",
                          "--out", out)
    assert code == 0, stderr  # the same command again resumes the finished run
    study = optuna.load_study(study_name="effscale", storage=open_storage(None, out))
    assert len(study.get_trials(deepcopy=False)) == trainings
    assert yaml.safe_load((out / "coefficients.yaml").read_text()) == doc


def test_repeat_top_seeds_are_never_pruned_by_halving(tmp_path: Path, cli) -> None:
    """Halving decides among seed-0 candidates; the extra seeds --repeat-top adds belong to
    candidates that already finished and must train in full, not race each other."""
    import optuna

    from effscale.experiment.queue import item_of, split_item
    from effscale.experiment.storage import open_storage

    out = tmp_path / "halving-top"
    code, _, stderr = cli(*SMALL, "--pruner", "halving", "--epochs", "3",
                          "--repeats", "2", "--repeat-top", "2", "--keep-weights",
                          "--confirm-top", "0", "--out", out)
    assert code == 0, stderr
    study = optuna.load_study(study_name="effscale", storage=open_storage(None, out))
    by_seed: dict[int, list] = {}
    for trial in study.get_trials(deepcopy=False):
        by_seed.setdefault(split_item(item_of(trial))[1], []).append(trial)
    pruned = [t for t in by_seed[0] if t.state == optuna.trial.TrialState.PRUNED]
    assert len(by_seed[0]) == 5 and len(pruned) == 2  # 4 candidates: the best 2 go on
    assert len(by_seed[1]) == 3  # the base and the two best candidates, once more
    for trial in by_seed[1]:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert len(trial.intermediate_values) == 3
    # --keep-weights under the rung-synchronous loop: every seed-0 model that finished, only.
    finished = {split_item(item_of(t))[0] for t in by_seed[0]
                if t.state == optuna.trial.TrialState.COMPLETE}
    assert {p.stem for p in (out / "weights").glob("*.pt")} == finished


def test_dry_run_json_is_the_feasible_set_at_equal_full_size_cost(cli) -> None:
    code, out, err = cli("search", "--dataset", "synthetic", "--budget", "quick", "--dry-run",
                         "--json", "--counter", "torch")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["budget"], doc["target"], doc["flops_tolerance"]) == ("quick", 2.0, 0.05)
    kept = [c for c in doc["candidates"] if c["kept"] and c["key"] != "base"]
    dropped = [c for c in doc["candidates"] if not c["kept"]]
    # the former five and, since issue 28, the resolution-only end (alpha 1, beta 1)
    assert len(kept) == 6 and dropped and all(c["reason"] for c in dropped)
    assert any(c["alpha"] == 1.0 and c["beta"] == 1.0 and c["gamma"] >= 1.35 for c in kept)
    for c in kept:  # every ranked candidate costs 2x the base within 5 %, at full size
        assert abs(c["flops_ratio_full"] / 2 - 1) <= 0.05, c
        assert c["proxy_resolution"] <= 32 < c["full_resolution"] or c["gamma"] == 1.0
        assert c["aliases"]["alpha"]["same_model"][0] <= c["alpha"]
    assert len({c["gamma"] for c in kept}) >= 3
    assert doc["proxy_stem_stride"] == 1


def test_confirmation_retrains_the_base_and_top_k_longer_on_fresh_seeds(tmp_path: Path,
                                                                        cli) -> None:
    import optuna

    from effscale.experiment.queue import item_of
    from effscale.experiment.storage import open_storage

    out = tmp_path / "check"
    code, _, stderr = cli("search", "--base", "tiny", "--dataset", "synthetic", "--budget",
                          "smoke", "--train-size", "64", "--val-size", "32", "--batch-size",
                          "32", "--alpha-max", "1.4", "--confirm-top", "1", "--confirm-factor", "2",
                          "--threads", "1", "--out", out)
    assert code == 0, stderr
    assert "confirmation round 1: 2 trainings of 2 epochs (the base and the top 1" in stderr
    assert "confirmation round 2:" in stderr and "confirmation round 3" not in stderr
    study = optuna.load_study(study_name="effscale", storage=open_storage(None, out))
    checks = {item_of(t): t for t in study.get_trials(deepcopy=False)
              if item_of(t).startswith("confirm/")}
    assert sorted(checks) == sorted(["confirm/base@0", "confirm/base@1",
                                     f"confirm/{study.user_attrs['confirm_top'][0]}@0",
                                     f"confirm/{study.user_attrs['confirm_top'][0]}@1"])
    assert all(len(t.intermediate_values) == 2 for t in checks.values())  # 2x smoke's 1 epoch
    screening_seeds = {t.user_attrs["seed"] for t in study.get_trials(deepcopy=False)
                       if not item_of(t).startswith("confirm/")}
    fresh = {t.user_attrs["seed"] for t in checks.values()}
    assert fresh == {100_000, 101_000} and not fresh & screening_seeds
    doc = yaml.safe_load((out / "coefficients.yaml").read_text())
    fidelity = doc["fidelity"]
    assert fidelity["models"][0] == "base" and fidelity["pairs"] == 1
    assert fidelity["kendall_tau_b"] in (-1.0, 1.0, None)
    assert doc["confirmation"]["seeds"] == 2 and doc["confirmation"]["looks"] == 1
    ranked = [r["candidate"] for r in csv.DictReader((out / "trials.csv").open())]
    assert "confirm/base" in ranked  # recorded, but not ranked with the screening
    assert doc["candidate"].startswith("a")


def test_no_confirmation_is_undecided_by_construction(tmp_path: Path, cli) -> None:
    out = tmp_path / "none"
    code, _stdout, stderr = cli(*SMALL, "--confirm-top", "0", "--out", out)
    assert code == 0, stderr
    doc = yaml.safe_load((out / "coefficients.yaml").read_text())
    assert doc["decided"] is False and "confirmation" not in doc
    assert doc["verdict"].startswith(("UNDECIDED (screening only: this budget has no "
                                      "confirmation stage", "NO SIGNAL"))


def test_a_shrinking_search_writes_its_report_and_the_family_below_the_base(
        tmp_path: Path, cli) -> None:
    """A --phi -1 search: report.html is written (it failed on the grid's multipliers below
    1), configs/ holds the base down to phi -3, and coefficients.yaml holds coefficients >= 1
    whose power -1 is the winner's multipliers, which is what configs/tiny-phi-1.yaml is built
    from (b0's family names them b0 to b-3)."""
    out = tmp_path / "down"
    code, _, stderr = cli(*SMALL, "--phi", "-1", "--confirm-top", "2", "--out", out)
    assert code == 0, stderr
    assert (out / "report.html").is_file(), stderr
    assert "shrinking direction" in (out / "report.html").read_text()
    assert sorted(p.name for p in (out / "configs").iterdir()) == [
        "tiny-phi-1.yaml", "tiny-phi-2.yaml", "tiny-phi-3.yaml", "tiny.yaml"]
    doc = yaml.safe_load((out / "coefficients.yaml").read_text())
    at_phi = doc["multipliers_at_phi"]
    for name in ("alpha", "beta", "gamma"):
        assert doc[name] >= 1
        assert doc[name] ** -1 == pytest.approx(at_phi[name], rel=1e-5)
    assert doc["checked_phi"] == [-1.0]
    assert doc["confirmation"]["question"] == "loses least to the base"
    b_minus_1 = load_config(out / "configs" / "tiny-phi-1.yaml")
    b0 = load_config(out / "configs" / "tiny.yaml")
    assert b_minus_1.stages[-1].channels < b0.stages[-1].channels or at_phi["beta"] == 1
