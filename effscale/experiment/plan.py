"""What a run trains: its settings, data split, models and work items, and the protocol an
experiment (a search, a comparison) implements for the engine to run it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna

from effscale.datasets.images import ImageData
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings
from effscale.model.config import ModelConfig


class Trainable(Protocol):
    """One model of a run, as the trial runner takes it."""

    key: str
    config: ModelConfig  # the proxy config that is trained
    resolution: int  # its input size in px
    epochs_factor: int  # the recipe's epochs times this (the fidelity check's longer runs)

    @property
    def is_base(self) -> bool: ...
    @property
    def is_confirmation(self) -> bool: ...
    @property
    def seed_offset(self) -> int: ...  # its seed stream (experiment.settings.seed_for)
    def summary(self) -> dict[str, Any]: ...


@dataclass
class Prepared:
    """Data, models and identity: what every worker of a run computes the same way.

    ``items`` are enqueued when the study is created; ``choices`` lists every item that may
    ever be enqueued (follow-up items too), so all workers agree on the study's parameter.
    """

    settings: RunSettings
    train: ImageData
    val: ImageData
    candidates: dict[str, Trainable]
    items: list[str]
    identity: dict[str, Any]
    run_dir: Path = Path(".")
    choices: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)


class Experiment(Protocol):
    """What the engine (:func:`effscale.experiment.engine.run_experiment`) needs of a run's
    settings object. It is pickled into every ``--workers`` process, which calls
    :meth:`prepare` again and gets the same items."""

    @property
    def settings(self) -> RunSettings: ...

    def prepare(self, events: RunEvents) -> Prepared:
        """Load data, build and measure the models, list the items (the slow part)."""

    def check(self, prepared: Prepared, dry_run: bool, events: RunEvents) -> None:
        """Refuse (or warn about) what the prepared run would do; before anything is written."""

    def default_run_dir(self) -> Path: ...

    def settings_document(self, prepared: Prepared) -> dict[str, Any]:
        """``settings.yaml`` and the study's ``settings`` attribute."""

    def pruner(self) -> optuna.pruners.BasePruner: ...

    def follow_ups(self, study: optuna.Study, events: RunEvents) -> bool:
        """Enqueue more items once every item has settled (``True`` if any were added)."""

    def write_outputs(self, study: optuna.Study, prepared: Prepared, doc: dict[str, Any],
                      complete: bool) -> Any:
        """Write the run's outputs into ``prepared.run_dir``; return what the CLI shows."""
