"""Is a winner a winner? Seed noise, paired bootstrap over validation examples, a t test,
a Holm correction for several comparisons, power, rank stability.

Method (stated in ``--help`` and in coefficients.yaml):
  1. Seed noise ``s``: the pooled seed-to-seed standard deviation of validation accuracy over
     the models trained under two or more seeds, each model's variance weighted by its
     degrees of freedom; ``s`` rests on ``dof = sum(n_i - 1)``. A model's mean over ``n``
     seeds carries seed noise ``s / sqrt(n)``.
  2. Example noise: both models are scored on the same validation examples; resampling the
     examples (with replacement, ``resamples`` times) gives the standard error ``SE_ex`` of
     the difference in accuracy (each model's per-example correctness averaged over its
     seeds).
  3. The two sources are independent, so the margin's standard error is
     ``SE = sqrt(SE_ex**2 + s**2 * (1/n_a + 1/n_b))``.
  4. ``margin / SE`` is referred to Student's t with Welch-Satterthwaite degrees of freedom
     over the two parts (the seed part on ``dof``, the example part on the validation size
     minus one), so never fewer than ``dof``. The 95 % interval is ``margin +- t_{0.975} SE``;
     the p-value is two-sided.
  5. Several comparisons of one model (the winner against the base and its rivals) are
     Holm-adjusted over the *testable* ones (step-down, family-wise error at 5 %); a design
     that tests the same family again after adding seeds multiplies the adjusted p-values by
     its number of looks (Bonferroni over looks).
  6. A margin is *separated* only when both sides were trained under >= 2 seeds, ``dof >= 1``,
     the measured seed noise is not exactly 0 (identical accuracies over seeds mean the seeds
     did not vary the training) and its adjusted p < 0.05; otherwise it is *not testable*.
  7. Power: the smallest true difference detected with 80 % probability is
     ``(t_{1-alpha/2} + t_{0.8}) x SE`` at the level the comparison faces.

Limits:
    Seed noise is assumed equal for every model (larger models can vary more); the seeds of
    one model are assumed independent. Choosing a winner as the best of several trainings
    and then testing it on those same trainings is biased; the search therefore tests on
    confirmation trainings the selection never saw (:mod:`effscale.search.decision`).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np

RESAMPLES = 2000
ALPHA = 0.05
NOT_TESTABLE = "needs >= 2 seeds on both sides"
ZERO_NOISE = ("the seeds gave identical accuracies, so seed noise measured 0: the seeds did not "
              "vary the training, and no margin can be tested against a noise of 0")
POWER = 0.8
METHOD = ("SE = sqrt(SE_examples^2 + s^2 (1/n_a + 1/n_b)); 95 % interval margin +- "
          "t_{0.975} x SE with Welch-Satterthwaite degrees of freedom over the two parts, and "
          "a two-sided t p-value. SE_examples: paired bootstrap over validation examples "
          f"({RESAMPLES} resamples, per-example correctness averaged over seeds); s: pooled "
          "seed-to-seed std over the models with >= 2 seeds. Several comparisons of one model "
          "are Holm-adjusted over the testable ones. Separated when both sides have >= 2 "
          "seeds, the seed noise is measured (not exactly 0) and the adjusted p < 0.05. Power: "
          "the smallest difference detected with 80 % probability, (t_{1-a/2} + t_{0.8}) x SE "
          "at that level")


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, as in Numerical
    Recipes ``betacf``)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 <= x <= 1``."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df`` degrees of freedom (``df = inf``: normal)."""
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``t`` with ``t_cdf(t, df) == p`` (bisection to machine precision)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def t_pvalue(t: float, df: float) -> float:
    """Two-sided p-value of ``t`` under Student's t with ``df`` degrees of freedom."""
    return min(1.0, 2.0 * t_cdf(-abs(t), df))


def holm(p_values: list[float], alpha: float = ALPHA) -> list[float]:
    """Holm step-down adjusted p-values, in the input order: the i-th smallest of ``m`` is
    multiplied by ``m - i`` (i from 0), made monotone non-decreasing in that order and capped
    at 1. A hypothesis is rejected at level ``alpha`` when its adjusted p < ``alpha``
    (``alpha`` is only checked here; the adjustment does not depend on it)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pack_correct(correct: np.ndarray) -> str:
    """Per-example correctness as compact base64 (fits in an optuna user attribute)."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode()


def unpack_correct(text: str, count: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    return bits[:count].astype(bool)


@dataclass(frozen=True)
class Comparison:
    """``a`` versus ``b``: mean margin, its 95 % t interval and whether it is separated.

    ``p_adjusted`` is the Holm-adjusted p-value over ``family`` comparisons (the raw p when
    ``family`` is 1); ``untestable`` says why no test was possible ("" when it was)."""

    a: str
    b: str
    margin: float
    low: float
    high: float
    seed_std: float
    separated: bool
    example_se: float = 0.0
    seeds_a: int = 1
    seeds_b: int = 1
    df: float = math.inf
    p_value: float = 1.0
    p_adjusted: float = 1.0
    family: int = 1
    untestable: str = ""
    se: float = 0.0
    looks: int = 1  # a sequential design's looks: p_adjusted carries a factor of it

    @property
    def testable(self) -> bool:
        return not self.untestable

    def describe(self) -> str:
        if self.untestable:
            verdict = f"not testable ({self.untestable})"
        else:
            verdict = "separated" if self.separated else "within the noise"
        seeds = (f"seed std {self.seed_std * 100:.2f} over {self.seeds_a}+{self.seeds_b} seeds"
                 if self.seed_std > 0 else
                 f"seed noise not measured, {self.seeds_a}+{self.seeds_b} seeds")
        dist = "normal" if math.isinf(self.df) else f"t({self.df:.3g})"
        over = f" over {self.family}" if self.family > 1 else ""
        over += f" x {self.looks} looks" if self.looks > 1 else ""
        holm_p = f", {format_p(self.p_adjusted, 'adjusted p')}{over}" if over else ""
        return (f"{self.a} vs {self.b}: {self.margin * 100:+.2f} points "
                f"(95 % {dist} interval {self.low * 100:+.2f} to {self.high * 100:+.2f}; "
                f"{format_p(self.p_value)}{holm_p}; example SE {self.example_se * 100:.2f}, "
                f"{seeds}) -> {verdict}")


def format_p(p: float, label: str = "p") -> str:
    """A p-value for people: ``p=0.031``, or ``p<0.001``."""
    return f"{label}<0.001" if p < 0.001 else f"{label}={p:.3f}"


def seed_std(values: list[float]) -> float:
    """Sample standard deviation; 0 with fewer than two values."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def pooled_seed_noise(groups: list[list[float]]) -> tuple[float, int]:
    """Pooled within-model std ``sqrt(sum((n_i - 1) * s_i**2) / sum(n_i - 1))`` and its
    degrees of freedom ``sum(n_i - 1)``, over the groups (one per model, its accuracies over
    seeds) with two or more values; ``(0.0, 0)`` if none."""
    kept = [g for g in groups if len(g) >= 2]
    dof = sum(len(g) - 1 for g in kept)
    if dof == 0:
        return 0.0, 0
    return math.sqrt(sum((len(g) - 1) * seed_std(g) ** 2 for g in kept) / dof), dof


def pooled_seed_std(groups: list[list[float]]) -> float:
    """The std of :func:`pooled_seed_noise` alone; 0 if no group has two values."""
    return pooled_seed_noise(groups)[0]


def bootstrap_means(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES,
                    seed: int = 0) -> tuple[float, np.ndarray]:
    """Mean of ``a - b`` and ``resamples`` means of it over examples drawn with replacement.

    A resample's mean depends only on how often each distinct difference value is drawn, and
    per-example differences of (seed-averaged) correctness take few distinct values, so the
    draws are made as multinomial counts over those values: the same distribution as
    resampling indices, in O(resamples x distinct values) instead of O(resamples x examples).
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diff.ndim != 1 or diff.shape[0] == 0:
        raise ValueError(f"need two equal-length, non-empty score vectors, got {diff.shape}")
    values, counts = np.unique(diff, return_counts=True)
    n = diff.shape[0]
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=resamples)
    return float(diff.mean()), draws @ values / n


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its 95 % percentile interval; ``a``/``b`` are per-example scores
    in [0, 1] (correctness, averaged over seeds) on the same examples."""
    mean, means = bootstrap_means(a, b, resamples, seed)
    low, high = np.percentile(means, [2.5, 97.5])
    return mean, float(low), float(high)


def compare(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray, noise: float,
            seed: int = 0, seeds_a: int = 1, seeds_b: int = 1, noise_dof: int = 0
            ) -> Comparison:
    """``a`` against ``b`` by the method in this module's docstring, as a family of one
    (see :func:`holm_family` for several). ``noise`` is the pooled seed-to-seed std of one
    training run and ``noise_dof`` its degrees of freedom; ``seeds_a``/``seeds_b`` the seeds
    behind each side.

    Degrees of freedom of the t: ``noise_dof`` whenever seed noise enters (``noise > 0`` or
    ``noise_dof >= 1``; a positive ``noise`` given without its dof counts as 1, the most
    conservative choice); with no seed noise at all, only example noise from the bootstrap
    is left and the normal distribution is used (such a comparison is not testable anyway).
    """
    if seeds_a < 1 or seeds_b < 1:
        raise ValueError(f"seeds_a and seeds_b must be >= 1, got {seeds_a} and {seeds_b}")
    if noise < 0 or noise_dof < 0:
        raise ValueError(f"noise and noise_dof must be >= 0, got {noise} and {noise_dof}")
    margin, means = bootstrap_means(a, b, seed=seed)
    example_se = float(means.std(ddof=1))
    seed_se = noise * math.sqrt(1 / seeds_a + 1 / seeds_b)
    se = math.sqrt(example_se ** 2 + seed_se ** 2)
    seed_dof = max(noise_dof, 1) if (noise > 0 or noise_dof >= 1) else 0
    df = welch_df(example_se, len(np.asarray(a)) - 1, seed_se, seed_dof)
    if se > 0:
        p_value = t_pvalue(margin / se, df)
    else:
        p_value = 1.0 if margin == 0 else 0.0
    half = t_quantile(1 - ALPHA / 2, df) * se
    if seeds_a < 2 or seeds_b < 2:
        untestable = NOT_TESTABLE
    elif noise_dof < 1:
        untestable = "seed noise has no degrees of freedom"
    elif noise == 0:
        untestable = ZERO_NOISE
    else:
        untestable = ""
    return Comparison(a_name, b_name, margin, margin - half, margin + half, noise,
                      not untestable and p_value < ALPHA, example_se, seeds_a, seeds_b, df,
                      p_value, p_value, 1, untestable, se)


def holm_family(comparisons: list[Comparison], alpha: float = ALPHA, looks: int = 1
                ) -> list[Comparison]:
    """The comparisons again, their p-values Holm-adjusted over the *testable* ones (a
    comparison that can never be declared separated spends no share of ``alpha``), and each
    separated only when it is testable and its adjusted p < ``alpha``.

    ``looks``: how many times a sequential design may test the same family (a confirmation
    that adds seeds until it decides); the adjusted p-values are multiplied by it
    (Bonferroni over the looks), so stopping at the first look that separates keeps the
    family-wise error at ``alpha``. An untestable comparison keeps its raw p."""
    if looks < 1:
        raise ValueError(f"looks must be >= 1, got {looks}")
    testable = [i for i, c in enumerate(comparisons) if c.testable]
    adjusted = holm([comparisons[i].p_value for i in testable], alpha)
    out = list(comparisons)
    for i, p in zip(testable, adjusted, strict=True):
        p = min(1.0, p * looks)
        out[i] = replace(comparisons[i], p_adjusted=p, family=len(testable), looks=looks,
                         separated=p < alpha)
    for i, c in enumerate(comparisons):
        if not c.testable:
            out[i] = replace(c, p_adjusted=c.p_value, family=len(testable), looks=looks,
                             separated=False)
    return out


def welch_df(example_se: float, example_dof: int, seed_se: float, seed_dof: int) -> float:
    """Welch-Satterthwaite degrees of freedom of ``SE^2 = SE_ex^2 + SE_seeds^2``: the
    example part rests on ``example_dof`` (validation examples - 1), the seed part on
    ``seed_dof`` (0: no seed part, only example noise). Never below ``seed_dof``."""
    if seed_dof < 1 or seed_se <= 0:
        return math.inf if seed_dof < 1 else float(seed_dof)
    se2 = example_se ** 2 + seed_se ** 2
    denominator = seed_se ** 4 / seed_dof + (example_se ** 4 / example_dof
                                             if example_dof >= 1 else 0.0)
    return max(float(seed_dof), se2 ** 2 / denominator)


def detectable(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided test at level ``alpha`` detects with
    probability ``power``, for a margin with standard error ``se`` on ``df`` degrees of
    freedom: ``(t_{1-alpha/2} + t_{power}) x SE`` (the usual normal-shift approximation, with
    t quantiles)."""
    if se <= 0 or df <= 0:
        return float("nan")
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b between two score lists over the same items: concordant minus
    discordant pairs over ``sqrt((n0 - t_x)(n0 - t_y))``, where ``t_x``/``t_y`` count the
    pairs tied in ``x``/``y``, so ties do not pull it towards 0 (tau-a's flaw). NaN with fewer
    than two items or when one list is constant."""
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    pairs = list(combinations(range(len(x)), 2))
    if not pairs:
        return float("nan")
    score, tied_x, tied_y = 0, 0, 0
    for i, j in pairs:
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        tied_x += sx == 0
        tied_y += sy == 0
        score += int(sx * sy)
    denominator = math.sqrt((len(pairs) - tied_x) * (len(pairs) - tied_y))
    return score / denominator if denominator else float("nan")


def rank_stability(scores_by_seed: dict[int, dict[str, float]]) -> dict[str, object]:
    """How stable the ranking is over seeds, on the candidates scored under *every* seed
    (with ``--repeat-top N``: the top N; the rest have one seed and cannot be compared).

    Returns ``candidates`` (that common set), ``kendall_tau`` (one value per pair of seeds),
    ``mean_kendall_tau`` and ``wins`` (how many seeds each candidate wins, among the common
    set). Empty when fewer than two seeds share two or more candidates.
    """
    seeds = sorted(s for s, scores in scores_by_seed.items() if scores)
    if len(seeds) < 2:
        return {}
    common = sorted(set.intersection(*(set(scores_by_seed[s]) for s in seeds)))
    if len(common) < 2:
        return {}
    taus = [kendall_tau([scores_by_seed[s][k] for k in common],
                        [scores_by_seed[t][k] for k in common])
            for s, t in combinations(seeds, 2)]
    wins = dict.fromkeys(common, 0)
    for seed in seeds:
        wins[max(common, key=lambda k: scores_by_seed[seed][k])] += 1
    return {"candidates": common, "kendall_tau": taus,
            "mean_kendall_tau": float(np.mean(taus)),
            "wins": {k: v for k, v in sorted(wins.items(), key=lambda kv: -kv[1]) if v}}
