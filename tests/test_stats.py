"""The statistics behind a verdict, on synthetic numbers with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from effscale import stats
from effscale.report import Row, select


def correctness(n: int, hits: int, offset: int = 0) -> np.ndarray:
    """``n`` examples, ``hits`` of them correct, starting at ``offset`` (wrapping)."""
    vector = np.zeros(n, dtype=bool)
    vector[(np.arange(hits) + offset) % n] = True
    return vector


def test_pack_round_trip() -> None:
    vector = np.random.default_rng(0).random(1001) < 0.3
    assert np.array_equal(stats.unpack_correct(stats.pack_correct(vector), 1001), vector)


def test_seed_std_and_pooled() -> None:
    assert stats.seed_std([0.5]) == 0.0
    assert stats.seed_std([0.5, 0.7]) == pytest.approx(math.sqrt(0.02))
    # dof 1 + 2 = 3; (1 * 2 + 2 * 0) / 3; the one-seed group adds nothing
    assert stats.pooled_seed_std([[1, 3], [2, 2, 2], [5]]) == pytest.approx(math.sqrt(2 / 3))
    assert stats.pooled_seed_std([[0.5], [0.6]]) == 0.0


def test_identical_models_are_tied() -> None:
    a = correctness(1000, 700)
    result = stats.compare("a", a, "b", a.copy(), noise=0.0)
    assert (result.margin, result.separated) == (0.0, False)
    assert result.low == result.high == 0.0


def test_clearly_different_models_are_separated() -> None:
    result = stats.compare("a", correctness(1000, 900), "b", correctness(1000, 500), noise=0.01)
    assert result.separated
    assert result.margin == pytest.approx(0.4)
    assert result.low > 0.3 and result.high < 0.5
    assert "separated" in result.describe()


def _one_point_apart() -> tuple[np.ndarray, np.ndarray]:
    """``a`` gets 100 more of 10,000 examples right than ``b``, the rest identical: the
    example noise of the 1-point margin is tiny (SE about 0.1 point)."""
    b = correctness(10_000, 6_000)
    a = b.copy()
    a[6_000:6_100] = True
    return a, b


@pytest.mark.parametrize(("noise", "seeds", "separated"), [
    (0.0, (1, 1), True),      # no seed noise: only the tiny example noise counts
    (0.002, (1, 1), True),    # 2 x sqrt(0.1^2 + 0.28^2) = 0.6 points < 1
    (0.01, (1, 1), False),    # seed SE of a difference of single runs: 1.41 points
    (0.01, (4, 4), False),    # 0.71 points: 2 SE is still above the margin
    (0.003, (4, 4), True),
])
def test_seed_noise_decides_a_one_point_margin(noise: float, seeds: tuple[int, int],
                                               separated: bool) -> None:
    a, b = _one_point_apart()
    result = stats.compare("a", a, "b", b, noise, seeds_a=seeds[0], seeds_b=seeds[1])
    assert result.margin == pytest.approx(0.01)
    assert result.example_se == pytest.approx(math.sqrt(0.01 * 0.99 / 10_000), rel=0.1)
    assert result.separated is separated
    se = math.sqrt(result.example_se ** 2 + noise ** 2 * (1 / seeds[0] + 1 / seeds[1]))
    assert (result.low, result.high) == pytest.approx((0.01 - 2 * se, 0.01 + 2 * se))


def test_a_difference_of_single_runs_carries_both_runs_noise() -> None:
    """The old rule (margin > 2 x seed std) called a 2.5-point margin between two single-seed
    runs with seed std 1 point separated; their difference has seed std 1.41 points."""
    b = correctness(10_000, 6_000)
    a = b.copy()
    a[6_000:6_250] = True
    assert not stats.compare("a", a, "b", b, noise=0.01).separated
    assert stats.compare("a", a, "b", b, noise=0.01, seeds_a=3, seeds_b=3).separated


def test_bootstrap_is_deterministic_and_needs_equal_lengths() -> None:
    a, b = correctness(500, 300), correctness(500, 280, offset=7)
    assert stats.paired_bootstrap(a, b) == stats.paired_bootstrap(a, b)
    with pytest.raises(ValueError):
        stats.paired_bootstrap(a, b[:10])
    with pytest.raises(ValueError):
        stats.compare("a", a, "b", b, 0.0, seeds_a=0)


@pytest.mark.parametrize(("x", "y", "tau"), [
    ([1, 2, 3], [1, 2, 3], 1.0),
    ([1, 2, 3], [3, 2, 1], -1.0),
    ([1, 2, 3, 4], [1, 3, 2, 4], 4 / 6),
    ([1, 1, 2], [1, 2, 3], 2 / 3),   # the tied pair counts 0 (tau-a)
    ([0.9, 0.1, 0.5, 0.7], [0.8, 0.2, 0.6, 0.1], 2 / 6),
])
def test_kendall_tau_known_values(x: list[float], y: list[float], tau: float) -> None:
    assert stats.kendall_tau(x, y) == pytest.approx(tau)


def test_kendall_tau_edges() -> None:
    assert math.isnan(stats.kendall_tau([1.0], [2.0]))
    with pytest.raises(ValueError):
        stats.kendall_tau([1, 2], [1, 2, 3])


def test_rank_stability_uses_the_candidates_every_seed_scored() -> None:
    """With --repeat-top 2 only a and b have seeds 1 and 2; c and d (seed 0 only) must not
    enter tau or the win counts."""
    by_seed = {0: {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.95},
               1: {"a": 0.85, "b": 0.86}, 2: {"a": 0.9, "b": 0.8}}
    result = stats.rank_stability(by_seed)
    assert result["candidates"] == ["a", "b"]
    assert result["kendall_tau"] == [-1.0, 1.0, -1.0]  # seed pairs (0,1) (0,2) (1,2)
    assert result["mean_kendall_tau"] == pytest.approx(-1 / 3)
    assert result["wins"] == {"a": 2, "b": 1}


def test_rank_stability_needs_two_seeds_and_two_common_candidates() -> None:
    assert stats.rank_stability({0: {"a": 0.9, "b": 0.8}}) == {}
    assert stats.rank_stability({0: {"a": 0.9, "b": 0.8}, 1: {"a": 0.7}}) == {}
    stable = stats.rank_stability({s: {"a": 0.9, "b": 0.8, "c": 0.7} for s in range(3)})
    assert stable["kendall_tau"] == [1.0, 1.0, 1.0] and stable["wins"] == {"a": 3}


def make_row(name: str, *vectors: np.ndarray, flops: int = 100) -> Row:
    return Row(name, {"flops": flops, "flops_ratio": 2.0}, accuracies=[float(v.mean())
               for v in vectors], correct=list(vectors))


def test_select_separated_winner() -> None:
    n = 2000
    rows = {r.candidate: r for r in (
        make_row("base", correctness(n, 1000), correctness(n, 1010, offset=3)),
        make_row("w", correctness(n, 1800)), make_row("r", correctness(n, 1400)),
        make_row("x", correctness(n, 1200)))}
    selection = select(rows, num_classes=10)
    assert selection.winner.candidate == "w" and selection.runner_up.candidate == "r"
    assert selection.tied == []
    assert selection.signal
    assert selection.verdict.startswith(
        "winner is separated from the runner-up and beats the base; seed noise measured on "
        "the base only")  # only the base has two seeds here
    assert selection.seed_std == pytest.approx(stats.seed_std([0.5, 0.505]))
    assert [c.b for c in selection.comparisons] == ["base", "r", "x"]


def test_select_names_the_tied_candidates() -> None:
    n = 2000
    rows = {r.candidate: r for r in (
        make_row("base", correctness(n, 1000), correctness(n, 1020, offset=5)),
        make_row("w", correctness(n, 1500), correctness(n, 1520, offset=9)),
        make_row("r", correctness(n, 1495), correctness(n, 1515, offset=1)),
        make_row("far", correctness(n, 1100)))}
    selection = select(rows, num_classes=10)
    assert selection.winner.candidate == "w"
    assert selection.tied == ["r"]
    assert "statistically tied with 1 candidate(s): r;" in selection.verdict
    assert "it does clearly beat the base" in selection.verdict
    assert selection.signal  # it beats the base, even if its runner-up is as good


def test_select_says_when_seed_noise_was_not_measured() -> None:
    n = 2000
    rows = {r.candidate: r for r in (
        make_row("base", correctness(n, 1000)), make_row("w", correctness(n, 1800)),
        make_row("r", correctness(n, 1400)))}
    selection = select(rows, num_classes=10)
    assert selection.seed_std == 0.0
    assert "seed noise not measured" in selection.verdict


def test_select_no_signal_near_chance() -> None:
    n = 1000
    rows = {r.candidate: r for r in (
        make_row("base", correctness(n, 110)), make_row("w", correctness(n, 130)))}
    assert select(rows, num_classes=10).verdict.startswith("NO SIGNAL: the base reached")


def test_select_no_signal_when_everything_is_within_the_seed_noise() -> None:
    n = 2000
    rows = {r.candidate: r for r in (
        make_row("base", correctness(n, 1000), correctness(n, 1100, offset=3)),
        make_row("w", correctness(n, 1060), correctness(n, 1090, offset=2)),
        make_row("r", correctness(n, 1040)))}
    selection = select(rows, num_classes=10)
    assert selection.verdict.startswith("NO SIGNAL: every candidate is within twice the seed")
    assert not selection.signal
