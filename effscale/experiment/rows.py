"""A run's trials merged per model: accuracies over seeds, per-example correctness, costs.

The rows are what every run's outputs are built from (a search's ranking, a comparison's
table); a PRUNED trial counts as run but not as a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from effscale.experiment import stats
from effscale.experiment.queue import item_of, split_item


@dataclass
class Row:
    """One candidate, its trials over seeds merged."""

    candidate: str
    attrs: dict[str, Any]
    accuracies: list[float] = field(default_factory=list)
    correct: list[np.ndarray] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)  # the seed index of each accuracy
    per_epoch: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: list[float] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return bool(self.accuracies)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies)) if self.accuracies else float("nan")

    @property
    def std(self) -> float:
        return stats.seed_std(self.accuracies)

    @property
    def mean_correct(self) -> np.ndarray | None:
        return np.mean(self.correct, axis=0) if self.correct else None


def collect_rows(study: optuna.Study) -> dict[str, Row]:
    """Merge trials per candidate; a PRUNED trial counts as run but not as a result."""
    rows: dict[str, Row] = {}
    for trial in study.get_trials(deepcopy=False):
        item = item_of(trial)
        if item is None or trial.state == TrialState.WAITING:
            continue
        candidate, seed_index = split_item(item)
        row = rows.setdefault(candidate, Row(candidate, {}))
        attrs = trial.user_attrs
        if attrs.get("failure_kind") in ("duplicate",):
            continue
        row.attrs.update({k: v for k, v in attrs.items() if not k.startswith("_")})
        row.states.append(trial.state.name)
        row.seconds += float(attrs.get("train_seconds", 0.0))
        if "images_per_second" in attrs:
            row.images_per_second.append(float(attrs["images_per_second"]))
        if attrs.get("failure"):
            row.failures.append(f"{attrs.get('failure_kind', 'error')}: {attrs['failure']}")
        if "val_accuracy_per_epoch" in attrs:
            row.per_epoch.append(list(attrs["val_accuracy_per_epoch"]))
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            row.accuracies.append(float(trial.value))
            row.seeds.append(seed_index)
            if "val_correct" in attrs:
                row.correct.append(stats.unpack_correct(attrs["val_correct"],
                                                        int(attrs["val_size"])))
    return rows

