"""Is a winner a winner? Seed noise, paired bootstrap over validation examples, rank stability.

Method (stated in ``--help`` and in coefficients.yaml):
  1. Seed noise ``s``: the pooled seed-to-seed standard deviation of validation accuracy over
     every model trained under two or more seeds (the base with ``--repeats``, and the top
     candidates with ``--repeat-top``), each model's variance weighted by its degrees of
     freedom. A model's mean over ``n`` seeds carries seed noise ``s / sqrt(n)``.
  2. Example noise: both models are scored on the same validation examples; resampling the
     examples (with replacement, ``resamples`` times) gives the standard error ``SE_ex`` of
     the difference in accuracy (each model's per-example correctness averaged over its
     seeds).
  3. The two sources are independent, so the margin's standard error is
     ``SE = sqrt(SE_ex**2 + s**2 * (1/n_a + 1/n_b))``. A margin is *separated* when
     ``|margin| > 2 * SE`` (its +-2 SE interval excludes 0); otherwise the two are tied.

Note:
    The earlier rule ("bootstrap interval excludes 0 and margin > 2 x the base's seed std")
    undercounted seed noise: a difference of two single-seed accuracies has seed std
    ``sqrt(2) * s``, not ``s``, and it ignored that means over more seeds are less noisy.
    No correction is made for comparing the winner with many candidates; the winner of a
    large grid is optimistically biased, which is one more reason to read "tied" literally.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

RESAMPLES = 2000
METHOD = ("separated when |margin| > 2 x sqrt(SE_examples^2 + SE_seeds^2), else tied. "
          f"SE_examples: paired bootstrap over validation examples ({RESAMPLES} resamples, "
          "per-example correctness averaged over seeds); SE_seeds: pooled seed-to-seed std "
          "x sqrt(1/n_a + 1/n_b) for models trained under n_a and n_b seeds (0 when no model "
          "has two seeds: use --repeats 2 or more)")


def pack_correct(correct: np.ndarray) -> str:
    """Per-example correctness as compact base64 (fits in an optuna user attribute)."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode()


def unpack_correct(text: str, count: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    return bits[:count].astype(bool)


@dataclass(frozen=True)
class Comparison:
    """``a`` versus ``b``: mean margin, its +-2 SE interval and whether it is separated."""

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

    def describe(self) -> str:
        verdict = "separated" if self.separated else "within the noise"
        seeds = (f"seed std {self.seed_std * 100:.2f} over {self.seeds_a}+{self.seeds_b} seeds"
                 if self.seed_std > 0 else "seed noise not measured")
        return (f"{self.a} vs {self.b}: {self.margin * 100:+.2f} points "
                f"(±2 SE {self.low * 100:+.2f} to {self.high * 100:+.2f}; example SE "
                f"{self.example_se * 100:.2f}, {seeds}) -> {verdict}")


def seed_std(values: list[float]) -> float:
    """Sample standard deviation; 0 with fewer than two values."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def pooled_seed_std(groups: list[list[float]]) -> float:
    """Pooled within-model std: ``sqrt(sum((n_i - 1) * s_i**2) / sum(n_i - 1))`` over the
    groups (one per model, its accuracies over seeds) with two or more values; 0 if none."""
    dof = sum(len(g) - 1 for g in groups if len(g) >= 2)
    if dof == 0:
        return 0.0
    return math.sqrt(sum((len(g) - 1) * seed_std(g) ** 2 for g in groups if len(g) >= 2) / dof)


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
            seed: int = 0, seeds_a: int = 1, seeds_b: int = 1) -> Comparison:
    """``a`` against ``b`` by the method in this module's docstring; ``noise`` is the (pooled)
    seed-to-seed std of one training run, ``seeds_a``/``seeds_b`` the seeds behind each."""
    if seeds_a < 1 or seeds_b < 1:
        raise ValueError(f"seeds_a and seeds_b must be >= 1, got {seeds_a} and {seeds_b}")
    margin, means = bootstrap_means(a, b, seed=seed)
    example_se = float(means.std(ddof=1))
    seed_se = noise * math.sqrt(1 / seeds_a + 1 / seeds_b)
    se = math.sqrt(example_se ** 2 + seed_se ** 2)
    separated = abs(margin) > 2 * se
    return Comparison(a_name, b_name, margin, margin - 2 * se, margin + 2 * se, noise,
                      separated, example_se, seeds_a, seeds_b)


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-a between two score lists over the same items (tied pairs count 0);
    NaN with fewer than two items."""
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    pairs = list(combinations(range(len(x)), 2))
    if not pairs:
        return float("nan")
    score = 0
    for i, j in pairs:
        score += int(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]))
    return score / len(pairs)


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
