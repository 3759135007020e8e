"""Is a winner a winner? Seed noise, paired bootstrap over validation examples, rank stability.

Method (stated in ``--help`` and in coefficients.yaml):
  1. Seed noise: the standard deviation of the base's validation accuracy over its seeds.
  2. Paired bootstrap: both models are scored on the same validation examples; resampling the
     examples (with replacement, ``resamples`` times) gives a 95 % interval for the
     difference in accuracy (each model's per-example correctness averaged over its seeds).
  3. A margin is *separated* when the interval excludes 0 and the margin exceeds twice the
     seed noise; otherwise the two are statistically tied.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

RESAMPLES = 2000
METHOD = ("paired bootstrap over validation examples (95% interval of the accuracy difference, "
          f"{RESAMPLES} resamples) and margin > 2 x the base's seed-to-seed std")


def pack_correct(correct: np.ndarray) -> str:
    """Per-example correctness as compact base64 (fits in an optuna user attribute)."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode()


def unpack_correct(text: str, count: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    return bits[:count].astype(bool)


@dataclass(frozen=True)
class Comparison:
    """``a`` versus ``b``: mean margin, its 95 % interval and whether it is separated."""

    a: str
    b: str
    margin: float
    low: float
    high: float
    seed_std: float
    separated: bool

    def describe(self) -> str:
        verdict = "separated" if self.separated else "within the noise"
        return (f"{self.a} vs {self.b}: {self.margin * 100:+.2f} points "
                f"(95% CI {self.low * 100:+.2f} to {self.high * 100:+.2f}; "
                f"seed std {self.seed_std * 100:.2f}) -> {verdict}")


def seed_std(values: list[float]) -> float:
    """Sample standard deviation; 0 with fewer than two values."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its 95 % percentile interval; ``a``/``b`` are per-example scores
    in [0, 1] (correctness, averaged over seeds) on the same examples."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = diff.shape[0]
    means = np.empty(resamples)
    for start in range(0, resamples, 250):
        stop = min(resamples, start + 250)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diff[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def compare(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray, noise: float,
            seed: int = 0) -> Comparison:
    margin, low, high = paired_bootstrap(a, b, seed=seed)
    separated = (low > 0 or high < 0) and abs(margin) > 2 * noise
    return Comparison(a_name, b_name, margin, low, high, noise, separated)


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-a between two score lists over the same items (ties count as 0)."""
    pairs = list(combinations(range(len(x)), 2))
    if not pairs:
        return float("nan")
    score = 0
    for i, j in pairs:
        score += int(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]))
    return score / len(pairs)


def rank_stability(scores_by_seed: dict[int, dict[str, float]]) -> dict[str, object]:
    """Kendall's tau between every pair of seeds (over candidates scored by both) and how
    often each candidate wins its seed."""
    seeds = sorted(scores_by_seed)
    taus = []
    for s, t in combinations(seeds, 2):
        common = sorted(set(scores_by_seed[s]) & set(scores_by_seed[t]))
        if len(common) >= 2:
            taus.append(kendall_tau([scores_by_seed[s][k] for k in common],
                                    [scores_by_seed[t][k] for k in common]))
    wins: dict[str, int] = {}
    for seed in seeds:
        if scores_by_seed[seed]:
            best = max(scores_by_seed[seed].items(), key=lambda kv: kv[1])[0]
            wins[best] = wins.get(best, 0) + 1
    return {"kendall_tau": taus, "wins": wins}
