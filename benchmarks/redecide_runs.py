"""Re-decide the recorded CIFAR-10 confirmations in docs/runs with the current rule, from the
numbers the runs recorded (nothing retrained).

    python benchmarks/redecide_runs.py

The runs' study journals are not kept in docs/runs, so ``effscale report`` cannot re-print
them; what they did keep is enough for the per-model test: each confirmed model's seeds,
mean and seed std (trials.csv; any values with that mean and std give the same test) and
each pair's example SE (the comparison lines of coefficients.yaml, to 0.01 points). Prints
each comparison as the current rule decides it, the old verdict's first words beside it, and
the power line for the answer against the base now and with more seeds (each at the level
of the looks those seeds imply).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import yaml

from effscale.experiment import stats

RUNS = ("quick-cifar10", "quick-cifar10-seed100", "down-cifar10")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "runs"


def seeds_of(n: int, mean: float, std: float) -> list[float]:
    """``n`` accuracies with this mean and sample std (2 or 3 seeds)."""
    if n == 2:
        return [mean - std / math.sqrt(2), mean + std / math.sqrt(2)]
    return [mean - std, mean, mean + std]


def main() -> None:
    for run in RUNS:
        folder = DOCS / run
        models = {}
        with open(folder / "trials.csv") as handle:
            for row in csv.DictReader(handle):
                if row["candidate"].startswith("confirm/"):
                    models[row["candidate"][len("confirm/"):]] = seeds_of(
                        int(row["seeds"]), float(row["val_accuracy"]),
                        float(row["val_accuracy_std"] or 0))
        coefficients = yaml.safe_load((folder / "coefficients.yaml").read_text())
        confirmation = coefficients["confirmation"]
        looks = int(confirmation["looks"])
        family = []
        for line in confirmation["comparisons"]:
            a, b = re.match(r"(\S+) vs (\S+):", line).groups()
            example_se = float(re.search(r"example SE ([0-9.]+)", line).group(1)) / 100
            margin = sum(models[a]) / len(models[a]) - sum(models[b]) / len(models[b])
            family.append(stats.compare_summary(a, b, margin, example_se, 4999, models[a],
                                                models[b]))
        family = stats.holm_family(family, looks=looks)
        print(f"{run}: recorded verdict: {coefficients['verdict'].split(':')[0]}")
        for c in family:
            print(f"  {c.describe()}")
        first = family[0]
        alpha = stats.ALPHA / len(family) / looks
        seeds = min(first.seeds_a, first.seeds_b)
        now = stats.procedure_detectable(first.example_se, first.seed_std,
                                         first.seed_std_b or 0.0, [seeds], alpha)
        more = []
        for k in (1, 2, 4):
            looks_k = max(looks, seeds + k - 1)  # the plans began at 2 seeds
            more.append(f"+{k} seeds: {stats.procedure_detectable(first.example_se, first.seed_std, first.seed_std_b or 0.0, [seeds + k], stats.ALPHA / len(family) / looks_k) * 100:.2f}")  # noqa: E501
        print(f"  power {first.a} vs {first.b}: detects {now * 100:.2f} points with 80 % "
              f"power at level {alpha:.4f}; {', '.join(more)}")


if __name__ == "__main__":
    main()
