"""Is a winner a winner? Seed noise per model, example noise over validation examples, a
Welch t test, a Holm correction for several comparisons, exact power, rank stability.

Method (stated in ``--help`` and in coefficients.yaml), for the confirmation's comparisons
(:func:`compare_models`):
  1. Seed noise per model: model ``a``'s seed-to-seed standard deviation ``s_a`` of
     validation accuracy over its ``n_a`` seeds (``n_a - 1`` degrees of freedom), and
     likewise ``s_b``. Each model keeps its own: a base whose seeds spread 3x a candidate's
     does not lend the candidate its noise (a pooled std would, and the level would slip:
     benchmarks/decision_null.py measures it).
  2. Example noise: both models are scored on the same validation examples; the standard
     error of the mean per-example difference (each model's correctness averaged over its
     seeds), ``SE_ex = sd(d_i) / sqrt(N)``, on ``N - 1`` degrees of freedom. It is the same
     whichever model is named first.
  3. The parts are independent: ``SE^2 = SE_ex^2 + s_a^2 / n_a + s_b^2 / n_b``.
  4. ``margin / SE`` is referred to Student's t with Welch-Satterthwaite degrees of freedom
     over the three parts (``SE^4 / sum(part^2 / dof)``). The 95 % interval is
     ``margin +- t_{0.975} SE``; the p-value is two-sided.
  5. Several comparisons are Holm-adjusted over the *testable* ones (step-down, family-wise
     error at 5 %); a design that tests the same family again after adding seeds
     multiplies the adjusted p-values by its number of looks (Bonferroni over looks).
  6. A margin is *separated* only when both sides were trained under >= 2 seeds, each side's
     seed std is at least 1e-6 (identical accuracies over seeds mean the seeds did not vary
     the training, and a noise of 0 cannot be tested against) and its adjusted p < 0.05;
     otherwise it is *not testable*.
  7. Power, exactly: the smallest true difference detected with 80 % probability is the one
     whose noncentral t (noncentrality ``D / SE``, the Welch degrees of freedom) puts 80 %
     beyond the critical value at the level the comparison faces (:func:`detectable`); for
     a sequence of looks, :func:`procedure_detectable` follows the test through every look.

:func:`compare` is the older pooled form (one seed std for every model, on
``sum(n_i - 1)`` degrees of freedom), kept for the screening's and ``compare``'s
comparisons, which report rather than decide.

Limits:
    The seeds of one model are assumed independent. Choosing a winner as the best of several
    trainings and then testing it on those same trainings is biased; the search therefore
    tests on confirmation trainings the selection never saw (:mod:`effscale.search.decision`).
    The example part counts a single example's seed-to-seed flips that the seed part counts
    too, which makes the test a little conservative.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import combinations

import numpy as np

RESAMPLES = 2000
ALPHA = 0.05
NOT_TESTABLE = "needs >= 2 seeds on both sides"
ZERO_NOISE = ("the seeds gave identical accuracies, so seed noise measured 0: the seeds did not "
              "vary the training, and no margin can be tested against a noise of 0")
MIN_SEED_STD = 1e-6  # a seed std below this is not a measurement (identical accuracies)
POWER = 0.8
METHOD = ("SE = sqrt(SE_examples^2 + s_a^2/n_a + s_b^2/n_b), each model with its own seed "
          "std s over its n seeds; 95 % interval margin +- t_{0.975} x SE with "
          "Welch-Satterthwaite degrees of freedom over the three parts (each seed part on "
          "n - 1, the example part on N - 1), and a two-sided t p-value. SE_examples: the "
          "standard error of the mean per-example difference (correctness averaged over "
          "seeds), the same whichever model is named first. Several comparisons are "
          "Holm-adjusted over the testable ones. Separated when both sides have >= 2 seeds, "
          "each side's seed std is at least 1e-6 and the adjusted p < 0.05. Power, exactly: "
          "the smallest difference detected with 80 % probability by the noncentral t at the "
          "level each look faces, and over the plan's looks")


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


def t_pdf(t: float, df: float) -> float:
    """Density of Student's t with ``df`` degrees of freedom (``df = inf``: normal)."""
    if math.isinf(df):
        return math.exp(-t * t / 2.0) / math.sqrt(2.0 * math.pi)
    log_c = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2)
             - 0.5 * math.log(df * math.pi))
    return math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df))


@lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """The ``t`` with ``t_cdf(t, df) == p`` (bracketed Newton steps, to machine precision;
    remembered, as the same few levels and degrees of freedom recur)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2.0
    t = 0.5 * (low + high)
    for _ in range(200):
        error = t_cdf(t, df) - p
        if error < 0:
            low = t
        else:
            high = t
        density = t_pdf(t, df)
        step = error / density if density > 0 else math.inf
        candidate = t - step
        t = candidate if low < candidate < high else 0.5 * (low + high)
        if abs(step) <= 1e-13 * max(1.0, t) or high - low <= 1e-13 * max(1.0, high):
            break
    return t


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
    # per-model seed noise (compare_models): b's seed std; None for the pooled form, where
    # seed_std is the one pooled std
    seed_std_b: float | None = None

    @property
    def testable(self) -> bool:
        return not self.untestable

    def describe(self) -> str:
        if self.untestable:
            verdict = f"not testable ({self.untestable})"
        else:
            verdict = "separated" if self.separated else "within the noise"
        if self.seed_std_b is not None:
            seeds = (f"seed std {self.seed_std * 100:.2f} and {self.seed_std_b * 100:.2f} over "
                     f"{self.seeds_a}+{self.seeds_b} seeds")
        elif self.seed_std > 0:
            seeds = f"seed std {self.seed_std * 100:.2f} over {self.seeds_a}+{self.seeds_b} seeds"
        else:
            seeds = f"seed noise not measured, {self.seeds_a}+{self.seeds_b} seeds"
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


def paired_se(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of ``a - b`` over paired examples and its standard error ``sd(a - b) / sqrt(N)``
    (sample sd, ``N - 1`` degrees of freedom; 0 with one example). Symmetric: swapping ``a``
    and ``b`` flips the mean's sign and leaves the SE exactly as it was (a bootstrap drawn
    from one seed did not)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diff.ndim != 1 or diff.shape[0] == 0:
        raise ValueError(f"need two equal-length, non-empty score vectors, got {diff.shape}")
    n = diff.shape[0]
    se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return float(diff.mean()), se


def welch_satterthwaite(parts: list[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of independent variance parts, ``(variance, dof)`` each:
    ``(sum v)^2 / sum(v^2 / dof)``. A part with no variance adds nothing; a part on
    infinite dof only adds to the numerator; ``inf`` when no finite part is left."""
    total = sum(v for v, _ in parts)
    denominator = sum(v * v / d for v, d in parts if v > 0 and not math.isinf(d))
    if total <= 0 or denominator <= 0:
        return math.inf
    return total * total / denominator


def hsu_df(seeds_a: int, seeds_b: int, example_se: float = 0.0, example_dof: float = math.inf
           ) -> float:
    """Degrees of freedom of the per-model test: Hsu's ``min(n_a, n_b) - 1``, the value whose
    t is never too narrow whatever the ratio of the two seed variances (with an example part
    on top, which is known far better than the seed parts, it is only more conservative).
    The Welch-Satterthwaite estimate :func:`welch_satterthwaite` over the three parts is
    *liberal* at 2-3 seeds a side: measured by simulation (benchmarks/decision_null.py), a
    test at level 0.0083 rejected 2.5-5x too often at 2 seeds and up to 4x at 3, because a
    seed variance drawn small makes the SE small and the degrees of freedom large at once.
    With no seed part left (one seed a side, not testable anyway): the examples' dof."""
    smallest = min(seeds_a, seeds_b)
    if smallest >= 2:
        return float(smallest - 1)
    if example_se > 0 and example_dof >= 1:
        return float(example_dof)
    return math.inf


def compare_models(a_name: str, a: np.ndarray, accuracies_a: list[float], b_name: str,
                   b: np.ndarray, accuracies_b: list[float]) -> Comparison:
    """``a`` against ``b`` with each model's own seed noise (items 1-6 of this module's
    docstring), as a family of one (see :func:`holm_family` for several). ``a``/``b``: the
    per-example correctness averaged over each model's seeds; ``accuracies_a``/``_b``: its
    validation accuracy under each seed."""
    margin, example_se = paired_se(a, b)
    return compare_summary(a_name, b_name, margin, example_se, len(np.asarray(a)) - 1,
                           accuracies_a, accuracies_b)


def compare_summary(a_name: str, b_name: str, margin: float, example_se: float,
                    example_dof: float, accuracies_a: list[float], accuracies_b: list[float]
                    ) -> Comparison:
    """:func:`compare_models` from its summary: the margin, the example SE on
    ``example_dof`` degrees of freedom, and each model's accuracies over its seeds."""
    na, nb = len(accuracies_a), len(accuracies_b)
    if na < 1 or nb < 1:
        raise ValueError(f"both models need >= 1 accuracy, got {na} and {nb}")
    sa, sb = seed_std(list(accuracies_a)), seed_std(list(accuracies_b))
    se = math.sqrt(example_se ** 2 + sa * sa / na + sb * sb / nb)
    df = hsu_df(na, nb, example_se, example_dof)
    if se > 0:
        p_value = t_pvalue(margin / se, df)
    else:
        p_value = 1.0 if margin == 0 else 0.0
    half = t_quantile(1 - ALPHA / 2, df) * se
    if na < 2 or nb < 2:
        untestable = NOT_TESTABLE
    elif min(sa, sb) < MIN_SEED_STD:
        flat = a_name if sa < MIN_SEED_STD else b_name
        untestable = (f"{flat}'s seeds gave identical accuracies (seed std below "
                      f"{MIN_SEED_STD:g}), so its seed noise is not measured and no margin "
                      "can be tested against it")
    else:
        untestable = ""
    return Comparison(a_name, b_name, margin, margin - half, margin + half, sa,
                      not untestable and p_value < ALPHA, example_se, na, nb, df, p_value,
                      p_value, 1, untestable, se, seed_std_b=sb)


def compare(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray, noise: float,
            seed: int = 0, seeds_a: int = 1, seeds_b: int = 1, noise_dof: int = 0
            ) -> Comparison:
    """``a`` against ``b`` with one *pooled* seed noise (the older form; the confirmation
    uses :func:`compare_models`), as a family of one. ``noise`` is the pooled seed-to-seed
    std of one training run and ``noise_dof`` its degrees of freedom; ``seeds_a``/``seeds_b``
    the seeds behind each side. The example SE is :func:`paired_se`'s (``seed`` is no
    longer used and kept for callers).

    Degrees of freedom of the t: ``noise_dof`` whenever seed noise enters (``noise > 0`` or
    ``noise_dof >= 1``; a positive ``noise`` given without its dof counts as 1, the most
    conservative choice); with no seed noise at all, only example noise from the bootstrap
    is left and the normal distribution is used (such a comparison is not testable anyway).
    """
    if seeds_a < 1 or seeds_b < 1:
        raise ValueError(f"seeds_a and seeds_b must be >= 1, got {seeds_a} and {seeds_b}")
    if noise < 0 or noise_dof < 0:
        raise ValueError(f"noise and noise_dof must be >= 0, got {noise} and {noise_dof}")
    margin, example_se = paired_se(a, b)
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
    elif noise < MIN_SEED_STD:
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


def norm_cdf(x: np.ndarray | float) -> np.ndarray:
    """Standard normal CDF, elementwise (``math.erfc`` over an array)."""
    values = np.asarray(x, dtype=np.float64)
    return 0.5 * _erfc(-values / math.sqrt(2.0))


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _chi2_nodes(df: float, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``V / df`` and weights of a chi-square on ``df`` degrees of freedom, on a uniform
    grid in ``log V`` (the density there, ``exp(df y / 2 - e^y / 2)``, is smooth and decays
    on both sides, so the trapezoid rule converges fast); weights normalised to sum to 1."""
    centre = math.log(df)
    low = centre - min(300.0, 80.0 / df) - 2.0
    high = math.log(df + 12.0 * math.sqrt(2.0 * df) + 80.0)
    y = np.linspace(low, high, points)
    log_density = df * y / 2.0 - np.exp(y) / 2.0
    weights = np.exp(log_density - log_density.max())
    return np.exp(y) / df, weights / weights.sum()


def nct_cdf(t: float, df: float, delta: float) -> float:
    """``P(T <= t)`` for the noncentral t with ``df`` degrees of freedom and noncentrality
    ``delta``: ``T = (Z + delta) / sqrt(V / df)``, ``V`` chi-square on ``df``, so
    ``P(T <= t) = E_V[Phi(t sqrt(V / df) - delta)]``, integrated numerically over ``V``
    (``df = inf``: the normal ``Phi(t - delta)``)."""
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    if math.isinf(df):
        return float(norm_cdf(t - delta))
    u, weights = _chi2_nodes(df)
    return float(weights @ norm_cdf(t * np.sqrt(u) - delta))


def power_at(delta: float, df: float, alpha: float = ALPHA) -> float:
    """Probability that a two-sided t test at level ``alpha`` on ``df`` degrees of freedom
    rejects when the true difference is ``delta`` standard errors (noncentral t, exact)."""
    critical = t_quantile(1 - alpha / 2, df)
    return 1.0 - nct_cdf(critical, df, delta) + nct_cdf(-critical, df, delta)


def detectable(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided test at level ``alpha`` detects with
    probability ``power``, for a margin with standard error ``se`` on ``df`` degrees of
    freedom: ``D`` with :func:`power_at` ``(D / se, df, alpha) == power`` (the noncentral t,
    not the normal-shift ``(t_{1-a/2} + t_power) x SE``, which is optimistic at few degrees
    of freedom)."""
    if se <= 0 or df <= 0:
        return float("nan")
    low, high = 0.0, t_quantile(1 - alpha / 2, df) + t_quantile(power, df)
    while power_at(high, df, alpha) < power:
        low, high = high, high * 2.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if power_at(mid, df, alpha) < power:
            low = mid
        else:
            high = mid
        if high - low < 1e-6 * high:
            break
    return 0.5 * (low + high) * se


_CRITICAL_DF = np.geomspace(0.5, 20_000.0, 160)


@lru_cache(maxsize=64)
def _critical_table(alpha: float) -> np.ndarray:
    """Two-sided critical t at level ``alpha`` on the grid :data:`_CRITICAL_DF`."""
    return np.array([t_quantile(1 - alpha / 2, df) for df in _CRITICAL_DF])


def critical_t(alpha: float, df: np.ndarray) -> np.ndarray:
    """Two-sided critical t at level ``alpha`` for many degrees of freedom at once,
    interpolated in ``log df`` on a 160-point grid (relative error below 1e-3)."""
    table = _critical_table(float(alpha))
    logs = np.log(np.clip(np.asarray(df, dtype=np.float64), _CRITICAL_DF[0], _CRITICAL_DF[-1]))
    return np.interp(logs, np.log(_CRITICAL_DF), table)


def _procedure_thresholds(example_se: float, std_a: float, std_b: float,
                          looks: list[int] | list[tuple[int, int]], alpha: float, draws: int,
                          seed: int) -> np.ndarray:
    """Per simulated confirmation, the smallest true difference that the sequential Welch
    test would separate above 0 at one of ``looks`` (seeds per model at each look, or
    ``(n_a, n_b)`` pairs): a look separates when ``(D + noise) / SE > t_crit``, i.e. when
    ``D > t_crit SE - noise``, so the threshold is the minimum of that over the looks."""
    pairs = [(n, n) if isinstance(n, int) else (int(n[0]), int(n[1])) for n in looks]
    rng = np.random.default_rng(seed)
    seeds_a = rng.normal(0.0, std_a, (draws, max(a for a, _ in pairs)))
    seeds_b = rng.normal(0.0, std_b, (draws, max(b for _, b in pairs)))
    examples = rng.normal(0.0, example_se, draws)
    ve = example_se ** 2
    threshold = np.full(draws, np.inf)
    for na, nb in pairs:
        a, b = seeds_a[:, :na], seeds_b[:, :nb]
        va, vb = a.var(axis=1, ddof=1) / na, b.var(axis=1, ddof=1) / nb
        critical = t_quantile(1 - alpha / 2, hsu_df(na, nb))
        noise = examples + a.mean(axis=1) - b.mean(axis=1)
        threshold = np.minimum(threshold, critical * np.sqrt(ve + va + vb) - noise)
    return threshold


def procedure_power(delta: float, example_se: float, std_a: float, std_b: float,
                    looks: list[int] | list[tuple[int, int]], alpha: float,
                    draws: int = 10_000, seed: int = 0) -> float:
    """Probability that the sequential Welch test (items 1-6) separates ``a`` above ``b`` at
    one of ``looks`` (the seeds per model at each look, e.g. ``[2, 3]``), each look at level
    ``alpha``, when ``a`` is truly ``delta`` better; seed noise ``std_a``/``std_b`` per
    training, example SE ``example_se``. Followed through the looks by ``draws`` simulated
    confirmations (fixed ``seed``): the same seeds carry from one look to the next, so the
    looks are as correlated as the real ones, and each look's t has the Welch degrees of
    freedom its own draws give (not only the expected ones)."""
    thresholds = _procedure_thresholds(example_se, std_a, std_b, looks, alpha, draws, seed)
    return float(np.mean(delta > thresholds))


def procedure_detectable(example_se: float, std_a: float, std_b: float,
                         looks: list[int] | list[tuple[int, int]], alpha: float,
                         power: float = POWER, draws: int = 10_000, seed: int = 0) -> float:
    """The smallest true difference :func:`procedure_power` detects with probability
    ``power`` over ``looks``: the ``power`` quantile of the per-confirmation thresholds.
    NaN with a look under 2 seeds or without seed noise on a side."""
    smallest = min((min(n) if isinstance(n, tuple) else n for n in looks), default=0)
    if smallest < 2 or std_a <= 0 or std_b <= 0:
        return float("nan")
    thresholds = _procedure_thresholds(example_se, std_a, std_b, looks, alpha, draws, seed)
    return float(np.quantile(thresholds, power))


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


# --------------------------------------------------------------------------- correlation


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def correlation(xs: list[float], ys: list[float]) -> dict[str, float | None]:
    """Pearson's r and Spearman's rho of two equally long lists (``None`` with fewer than
    three pairs or a constant list, where neither means anything)."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(x) != len(y):
        raise ValueError("correlation of lists of different lengths")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": None, "spearman": None}
    pearson = float(np.corrcoef(x, y)[0, 1])
    spearman = float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])
    return {"pearson": round(pearson, 6), "spearman": round(spearman, 6)}
