"""The statistics behind a verdict, on synthetic numbers with known answers."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from effscale.experiment import stats
from effscale.experiment.rows import Row
from effscale.search.selection import select


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
    std, dof = stats.pooled_seed_noise([[1, 3], [2, 2, 2], [5]])
    assert (std, dof) == (pytest.approx(math.sqrt(2 / 3)), 3)
    assert stats.pooled_seed_noise([[0.5], [0.6]]) == (0.0, 0)


@pytest.mark.parametrize(("df", "quantile"), [
    (1, 12.706), (2, 4.303), (5, 2.571), (30, 2.042), (1_000_000, 1.960), (math.inf, 1.960)])
def test_t_quantile_matches_the_table(df: float, quantile: float) -> None:
    assert stats.t_quantile(0.975, df) == pytest.approx(quantile, abs=5e-4)
    assert stats.t_cdf(stats.t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-10)
    assert stats.t_quantile(0.025, df) == pytest.approx(-quantile, abs=5e-4)


def test_t_cdf_known_values_and_symmetry() -> None:
    for df in (1, 3, 10, math.inf):
        assert stats.t_cdf(0.0, df) == 0.5
        for t in (0.3, 1.5, 4.0):
            assert stats.t_cdf(t, df) + stats.t_cdf(-t, df) == pytest.approx(1.0, abs=1e-12)
    assert stats.t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert stats.t_cdf(-3.078, 1) == pytest.approx(0.10, abs=1e-4)  # one-sided t_0.90(1)
    # df 2 has a closed form: F(t) = 1/2 + t / (2 sqrt(2 + t^2))
    assert stats.t_cdf(2.0, 2) == pytest.approx(0.5 + 2 / (2 * math.sqrt(6)), abs=1e-12)
    assert stats.t_pvalue(2.0, 10) == pytest.approx(0.07339, abs=1e-5)
    assert stats.t_pvalue(1.96, math.inf) == pytest.approx(0.05, abs=1e-4)
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, 3)


def test_holm_known_example() -> None:
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.001 x 3, 0.4 x 2 = 0.8, 0.5 x 1 -> 0.8 (monotone)
    assert stats.holm([0.5, 0.4, 0.001]) == pytest.approx([0.8, 0.8, 0.003])
    assert stats.holm([0.9, 0.6]) == [1.0, 1.0]  # 0.6 x 2 = 1.2 -> capped at 1
    assert stats.holm([]) == []
    assert stats.holm([0.02]) == [0.02]


def test_identical_models_are_tied() -> None:
    a = correctness(1000, 700)
    result = stats.compare("a", a, "b", a.copy(), noise=0.0)
    assert (result.margin, result.separated) == (0.0, False)
    assert result.low == result.high == 0.0
    assert result.p_value == 1.0 and result.untestable == stats.NOT_TESTABLE


def test_clearly_different_models_are_separated() -> None:
    result = stats.compare("a", correctness(1000, 900), "b", correctness(1000, 500), noise=0.01,
                           seeds_a=2, seeds_b=2, noise_dof=2)
    # Welch-Satterthwaite: the example part (1,000 examples) adds degrees of freedom
    seed_se = 0.01 * math.sqrt(1 / 2 + 1 / 2)
    assert result.separated
    assert result.df == pytest.approx(stats.welch_df(result.example_se, 999, seed_se, 2))
    assert result.df > 2
    assert result.margin == pytest.approx(0.4)
    half = stats.t_quantile(0.975, result.df) * result.se
    assert (result.low, result.high) == pytest.approx((0.4 - half, 0.4 + half), rel=1e-6)
    assert result.low > 0.3 and result.high < 0.5
    assert "-> separated" in result.describe()
    assert f"95 % t({result.df:.3g}) interval" in result.describe()


def test_one_seed_on_a_side_is_not_testable() -> None:
    """The old rule called a 40-point margin between single runs separated; one run says
    nothing about its own seed noise, so the new one calls it untestable."""
    a, b = correctness(1000, 900), correctness(1000, 500)
    for seeds in ((1, 1), (1, 3), (3, 1)):
        result = stats.compare("a", a, "b", b, noise=0.01, seeds_a=seeds[0], seeds_b=seeds[1],
                               noise_dof=5)
        assert not result.separated and result.untestable == stats.NOT_TESTABLE
        assert result.p_value < 1e-4  # the p-value is still computed, just not acted on
        assert result.describe().endswith("-> not testable (needs >= 2 seeds on both sides)")
    no_dof = stats.compare("a", a, "b", b, noise=0.01, seeds_a=2, seeds_b=2)
    assert not no_dof.separated and no_dof.df >= 1  # a std given without its dof counts as 1


def _one_point_apart() -> tuple[np.ndarray, np.ndarray]:
    """``a`` gets 100 more of 10,000 examples right than ``b``, the rest identical: the
    example noise of the 1-point margin is tiny (SE about 0.1 point)."""
    b = correctness(10_000, 6_000)
    a = b.copy()
    a[6_000:6_100] = True
    return a, b


@pytest.mark.parametrize(("noise", "seeds", "dof", "separated"), [
    (0.0, (1, 1), 0, False),    # single runs: not testable, however small the noise
    (0.0, (2, 2), 0, False),    # seed noise not measured: no degrees of freedom
    (0.002, (2, 2), 3, True),   # SE = sqrt(0.1^2 + 0.2^2) = 0.22: t = 4.5 on >= t(3)
    (0.003, (4, 4), 6, True),   # SE 0.23: t = 4.3 on >= t(6)
    (0.01, (4, 4), 30, False),  # SE 0.71: t = 1.4
])
def test_seed_noise_and_its_dof_decide_a_one_point_margin(
        noise: float, seeds: tuple[int, int], dof: int, separated: bool) -> None:
    a, b = _one_point_apart()
    result = stats.compare("a", a, "b", b, noise, seeds_a=seeds[0], seeds_b=seeds[1],
                           noise_dof=dof)
    assert result.margin == pytest.approx(0.01)
    assert result.example_se == pytest.approx(math.sqrt(0.01 * 0.99 / 10_000), rel=0.1)
    assert result.separated is separated
    seed_se = noise * math.sqrt(1 / seeds[0] + 1 / seeds[1])
    se = math.sqrt(result.example_se ** 2 + seed_se ** 2)
    df = stats.welch_df(result.example_se, 9_999, seed_se, dof) if dof else math.inf
    assert result.se == pytest.approx(se) and result.df == pytest.approx(df)
    assert df >= (dof or 0)
    half = stats.t_quantile(0.975, df) * se
    assert (result.low, result.high) == pytest.approx((0.01 - half, 0.01 + half))
    assert result.p_value == pytest.approx(stats.t_pvalue(0.01 / se, df))


def test_welch_df_lies_between_the_seed_dof_and_the_example_dof() -> None:
    """Defect 6: the t's degrees of freedom are Welch-Satterthwaite's over both parts of the
    SE, not the seed part's alone; a negligible example part leaves the seed dof, a
    dominant one approaches the examples'."""
    assert stats.welch_df(0.0, 999, 0.01, 3) == pytest.approx(3)
    assert stats.welch_df(0.01, 999, 1e-6, 3) == pytest.approx(999, rel=1e-3)
    both = stats.welch_df(0.005, 999, 0.005, 3)
    assert 3 < both < 999
    # equal parts: (2 v)^2 / (v^2/3 + v^2/999) with v = SE^2
    assert both == pytest.approx(4 / (1 / 3 + 1 / 999))
    assert math.isinf(stats.welch_df(0.01, 999, 0.0, 0))


def test_t3_interval_is_wider_than_the_old_2_se_band() -> None:
    """The same margin and SE: the old rule (|margin| > 2 SE) separated it; on the pooled
    seed dof 3 (Welch: a little more) the 95 % interval is about +-3.1 SE, p about 0.08."""
    a, b = _one_point_apart()
    result = stats.compare("a", a, "b", b, noise=0.0035, seeds_a=2, seeds_b=2, noise_dof=3)
    assert 3 <= result.df < 4
    assert 2 < result.margin / result.se < stats.t_quantile(0.975, result.df)
    assert not result.separated
    assert result.p_value == pytest.approx(stats.t_pvalue(result.margin / result.se,
                                                          result.df))
    assert 0.05 < result.p_value < 0.2
    assert result.high - result.low == pytest.approx(
        2 * stats.t_quantile(0.975, result.df) * result.se, rel=1e-6)


def test_a_difference_of_single_runs_carries_both_runs_noise() -> None:
    """A difference of two runs with seed std s has std sqrt(2) s; with three seeds per
    side the means are less noisy and a 2.5-point margin separates."""
    b = correctness(10_000, 6_000)
    a = b.copy()
    a[6_000:6_250] = True
    two = stats.compare("a", a, "b", b, noise=0.01, seeds_a=2, seeds_b=2, noise_dof=4)
    three = stats.compare("a", a, "b", b, noise=0.01, seeds_a=3, seeds_b=3, noise_dof=4)
    assert two.se > three.se and not two.separated and three.separated


def test_holm_family_over_six_comparisons() -> None:
    """A margin significant alone (p = 0.02) is not separated once it is one of six."""
    a, b = _one_point_apart()
    alone = stats.compare("a", a, "b", b, noise=0.0045, seeds_a=3, seeds_b=3, noise_dof=10)
    assert alone.separated and 0.01 < alone.p_value < 0.05
    family = stats.holm_family([replace(alone, b=f"b{i}") for i in range(6)])
    assert [c.p_adjusted for c in family] == pytest.approx([6 * alone.p_value] * 6)
    assert not any(c.separated for c in family)
    assert {c.family for c in family} == {6}
    assert f"adjusted p={6 * alone.p_value:.3f} over 6" in family[0].describe()
    assert family[0].describe().endswith("-> within the noise")


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
    ([1, 1, 2], [1, 2, 3], 2 / math.sqrt(2 * 3)),  # tau-b: (C - D) / sqrt((n0 - t_x) n0)
    ([1, 1, 2, 2], [1, 1, 2, 2], 1.0),  # the same ranking with ties: tau-b 1, tau-a 4/6
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


def test_select_single_seed_winner_is_untested() -> None:
    """Formerly "separated ... and beats the base" from the base's two seeds alone: with one
    seed per candidate nothing is testable and there is no signal."""
    n = 2000
    rows = {r.candidate: r for r in (
        make_row("base", correctness(n, 1000), correctness(n, 1010, offset=3)),
        make_row("w", correctness(n, 1800)), make_row("r", correctness(n, 1400)),
        make_row("x", correctness(n, 1200)))}
    selection = select(rows, num_classes=10)
    assert selection.winner.candidate == "w" and selection.runner_up.candidate == "r"
    assert selection.tied == [] and selection.untested == ["r", "x"]
    assert not selection.signal
    assert not any(c.separated for c in selection.comparisons)
    assert selection.verdict.startswith("whether the winner beats the base is untested")
    assert "seed noise measured on the base only" in selection.verdict
    assert "1 degree(s) of freedom (t_0.975 = 12.71)" in selection.verdict
    assert selection.seed_std == pytest.approx(stats.seed_std([0.5, 0.505]))
    assert selection.seed_dof == 1
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
    assert selection.tied == ["r"] and selection.untested == ["far"]
    assert selection.seed_dof == 3
    assert "statistically tied with 1 candidate(s): r;" in selection.verdict
    assert selection.verdict.startswith("the winner beats the base by 25.00 points")
    assert "(far) is untested: --repeat-top N (N >= 2)" in selection.verdict
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
    assert selection.verdict.startswith("NOT SEPARATED FROM THE BASE: the winner's")
    assert "within the noise" in selection.verdict
    assert not selection.signal


def test_a_seed_std_of_exactly_zero_is_not_trusted() -> None:
    """Defect 5: two seeds per side with identical accuracies measure a seed std of 0; a
    +2.50-point margin then had SE 0.22 (example noise alone), Holm p = 0.015 and a signal.
    Seeds that do not move the result say nothing about seed noise: not testable."""
    b = correctness(2_000, 1_000)
    a = b.copy()
    a[1_000:1_050] = True
    result = stats.compare("a", a, "b", b, noise=0.0, seeds_a=2, seeds_b=2, noise_dof=2)
    assert result.margin == pytest.approx(0.025)
    assert not result.separated and result.untestable == stats.ZERO_NOISE
    rows = {"base": make_row("base", b, b), "w": make_row("w", a, a)}
    selection = select(rows, num_classes=10)
    assert selection.seed_std == 0.0 and selection.seed_dof == 2
    assert not selection.signal
    assert not any(c.separated for c in selection.comparisons)


def test_detectable_difference_is_the_exact_noncentral_t() -> None:
    """Defect: the power line was the normal-shift formula (t_{1-a/2} + t_{0.8}) SE, which
    promises too much at few degrees of freedom (at 3 df and level 0.05/6 it said 7.21 SE;
    the noncentral t says 7.92 SE, the issue's figure)."""
    se, df = 0.01, 6
    shift = (stats.t_quantile(0.975, df) + stats.t_quantile(0.8, df)) * se
    assert stats.detectable(se, df) > shift  # the old formula is optimistic
    assert stats.power_at(stats.detectable(se, df) / se, df) == pytest.approx(0.8, abs=1e-6)
    assert stats.detectable(1.0, 3, 0.05 / 6) == pytest.approx(7.92, abs=0.005)
    assert (stats.t_quantile(1 - 0.05 / 12, 3) + stats.t_quantile(0.8, 3)) == pytest.approx(
        7.21, abs=0.01)
    assert stats.detectable(se, df, alpha=0.01) > stats.detectable(se, df)
    assert stats.detectable(se, math.inf) == pytest.approx((1.959964 + 0.841621) * se,
                                                          rel=1e-4)
    assert math.isnan(stats.detectable(0.0, 3))


@pytest.mark.parametrize(("df", "delta", "t"), [(3, 2.0, 1.5), (1, 1.0, 2.0), (2.5, 3.0, 4.0),
                                                (30, 0.5, 0.0), (5, -1.0, -2.0)])
def test_noncentral_t_cdf_matches_monte_carlo(df: float, delta: float, t: float) -> None:
    rng = np.random.default_rng(3)
    z, v = rng.normal(size=400_000), rng.chisquare(df, 400_000)
    simulated = float(np.mean((z + delta) / np.sqrt(v / df) <= t))
    assert stats.nct_cdf(t, df, delta) == pytest.approx(simulated, abs=0.003)
    assert stats.nct_cdf(1.0, 1, 0.0) == pytest.approx(0.75, abs=1e-9)  # central: Cauchy



def test_holm_family_with_looks_multiplies_the_adjusted_p() -> None:
    a, b = _one_point_apart()
    alone = stats.compare("a", a, "b", b, noise=0.0045, seeds_a=3, seeds_b=3, noise_dof=10)
    family = stats.holm_family([alone, replace(alone, b="c")], looks=3)
    assert [c.p_adjusted for c in family] == pytest.approx([min(1, 6 * alone.p_value)] * 2)
    assert {c.looks for c in family} == {3}
    assert "x 3 looks" in family[0].describe()
    with pytest.raises(ValueError):
        stats.holm_family([alone], looks=0)



def test_the_example_se_does_not_depend_on_which_model_is_named_first() -> None:
    """Issue 29: the paired bootstrap drew different resamples for (a, b) and (b, a), so one
    pair had two SEs (families built around different picks could disagree at 0.05). The
    analytic paired SE is symmetric, and so is every comparison built on it."""
    rng = np.random.default_rng(4)
    a, b = rng.random(3000) < 0.62, rng.random(3000) < 0.60
    _, boot_ab = stats.bootstrap_means(a, b)
    _, boot_ba = stats.bootstrap_means(b, a)
    assert boot_ab.std(ddof=1) != boot_ba.std(ddof=1)  # the old estimate's asymmetry
    (m_ab, se_ab), (m_ba, se_ba) = stats.paired_se(a, b), stats.paired_se(b, a)
    assert se_ab == se_ba and m_ab == -m_ba
    assert se_ab == pytest.approx(np.std(a.astype(float) - b, ddof=1) / math.sqrt(3000))
    ab = stats.compare_models("a", a, [0.61, 0.63], "b", b, [0.60, 0.59])
    ba = stats.compare_models("b", b, [0.60, 0.59], "a", a, [0.61, 0.63])
    assert (ab.se, ab.df, ab.p_value) == (ba.se, ba.df, ba.p_value)


def test_correlation_by_hand() -> None:
    result = stats.correlation([1, 2, 3, 4], [1, 4, 9, 100])
    assert result["spearman"] == pytest.approx(1.0)  # monotone: ranks agree exactly
    assert 0.7 < result["pearson"] < 0.9
    assert stats.correlation([1, 2, 3], [3, 2, 1]) == {"pearson": -1.0, "spearman": -1.0}
    tied = stats.correlation([1, 1, 2, 3], [1, 2, 3, 4])  # ties share their average rank
    assert tied["spearman"] == pytest.approx(0.9486833, abs=1e-6)
    assert stats.correlation([1, 2], [2, 1]) == {"pearson": None, "spearman": None}
    assert stats.correlation([1, 1, 1], [1, 2, 3]) == {"pearson": None, "spearman": None}
