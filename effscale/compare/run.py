"""``effscale compare``: compound scaling against single-dimension scaling at equal FLOPs, on
the experiment engine.

The paper's Table 3 / Table 7 on your proxy. Every model's cost is measured at FULL size (the
base at its native resolution, b0 at 224 px; FLOPs are conv+linear multiply-adds as published)
and every model is solved to the same target, ``2**phi`` times the base's: each compound
direction (one per coefficient set: depth ``alpha**s``, width ``beta**s``, resolution
``gamma**s``, ``s`` solved), depth-only, width-only, resolution-only and optionally Dollár et
al.'s "fast" rule. Each is then TRAINED as a proxy (see :mod:`effscale.train.proxy`): the same
depth and width, input size ``round(budget.resolution x its full-size resolution ratio)`` and
the proxy stem stride of the base, recorded on the recipe. The FLOPs ratio of the proxies is
shown too: it is what the proxies cost, not what the coefficients claim.

Work items (``compound@0``, ``depth@1`` ...) live in an optuna study exactly like a search's,
so a run resumes, spreads over workers and stops on Ctrl-C the same way: it runs on
:func:`effscale.experiment.engine.run_experiment`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from effscale.compare.curve import LeftOut, build_curve_models, directions, window
from effscale.compare.curve_results import write_curve_outputs
from effscale.compare.models import CompareModel, build_models, candidate_of, upsampling_problem
from effscale.compare.recorded import RecordedCompare
from effscale.compare.results import write_outputs
from effscale.compare.settings import CompareSettings
from effscale.datasets.registry import dataset_label, native_size
from effscale.errors import EffscaleError
from effscale.experiment.data import load_data
from effscale.experiment.engine import Outcome, run_experiment
from effscale.experiment.events import RunEvents
from effscale.experiment.plan import Prepared
from effscale.experiment.queue import item_key
from effscale.experiment.rundir import fingerprint, stamped_run_dir
from effscale.model.cost import describe_cost, get_cost
from effscale.search.run import versions


@dataclass
class ComparePrepared(Prepared):
    """The engine's prepared run, plus the solved models."""

    models: list[CompareModel] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)  # a curve's unreachable points


@dataclass(frozen=True)
class Compare:
    """The comparison as an experiment the engine runs."""

    settings: CompareSettings

    def prepare(self, events: RunEvents) -> ComparePrepared:
        """Load data, build and measure the models, list the work items."""
        settings = self.settings
        # Loaded at the native size when known, else at an upper bound of the models' sizes.
        size = native_size(settings.dataset) or math.ceil(
            settings.budget.resolution * max(1.0, settings.gamma_max))
        train, val = load_data(settings, events, size)
        left_out: list[LeftOut] = []
        if settings.is_curve:
            models, left_out = build_curve_models(settings, len(train.classes), events.message)
            for point in left_out:
                events.message(f"note: {point.describe(window(settings))}")
        else:
            models = build_models(settings, len(train.classes), events.message)
        candidates: dict[str, Any] = {c.key: c for c in map(candidate_of, models)}
        items = [item_key(key, s) for s in range(settings.budget.repeats) for key in candidates]
        identity = settings.identity(f"{train.fingerprint}/{val.fingerprint}")
        return ComparePrepared(settings, train, val, candidates, items, identity, models=models,
                               left_out=left_out)

    def check(self, prepared: Prepared, dry_run: bool, events: RunEvents) -> None:
        """A proxy above the dataset's native size is an error unless ``allow_upsampling``
        (a warning in a dry run)."""
        assert isinstance(prepared, ComparePrepared)
        if problem := upsampling_problem(self.settings, prepared.models):
            if self.settings.allow_upsampling or dry_run:
                events.message(f"warning: {problem}")
            else:
                raise EffscaleError(problem)

    def default_run_dir(self) -> Path:
        return stamped_run_dir("compare", self.settings.base,
                               dataset_label(self.settings.dataset))

    def settings_document(self, prepared: Prepared) -> dict[str, Any]:
        assert isinstance(prepared, ComparePrepared)
        settings = self.settings
        costed = {} if settings.cost == "flops" else {"cost": describe_cost(
            settings.cost, get_cost(settings.cost).batch(settings.cost_options()),
            settings.runtime)}
        if settings.cost == "latency":  # what ran the timed models
            costed["runtime"] = settings.runtime
        curve: dict[str, Any] = {}
        if settings.is_curve:
            curve = {"phis": list(settings.phis), "directions": directions(settings),
                     "window": window(settings), "cost_name": settings.cost,
                     "left_out": [p.describe(window(settings)) for p in prepared.left_out]}
        return {
            **costed, "command": "compare", "base": settings.base, "dataset": settings.dataset,
            "budget": settings.budget.name, "num_classes": prepared.num_classes,
            "train_images": len(prepared.train), "val_images": len(prepared.val),
            "phi": settings.phi, "target": "2^phi x the base's FLOPs, measured at full size "
                                            "(conv+linear)",
            "compounds": [{"name": c.name, "alpha": c.coefficients[0],
                           "beta": c.coefficients[1], "gamma": c.coefficients[2],
                           "source": c.source} for c in settings.compounds],
            "single": list(settings.single), "proxy_resolution": settings.budget.resolution,
            "proxy_stem_stride": settings.recipe.stem_stride,
            "fingerprint": fingerprint(prepared.identity), "identity": prepared.identity,
            "items": len(prepared.items),
            "versions": versions(), **curve,
        }

    def pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()

    def follow_ups(self, study: optuna.Study, events: RunEvents) -> bool:
        return False

    def write_outputs(self, study: optuna.Study, prepared: Prepared, doc: dict[str, Any],
                      complete: bool) -> Any:
        """The table is written at every stop, complete or not (partial rows are marked)."""
        assert isinstance(prepared, ComparePrepared)
        recorded = RecordedCompare.from_document(doc)
        if recorded.is_curve:
            return write_curve_outputs(study, prepared.models, recorded, prepared.run_dir)
        return write_outputs(study, prepared.models, recorded, prepared.run_dir)


def run_compare(settings: CompareSettings, events: RunEvents, resume: str | None = None,
                dry_run: bool = False) -> Outcome:
    """Build, measure and (unless ``dry_run``) train every model; write the outputs.
    ``outcome.result`` is the :class:`~effscale.compare.results.CompareResult` and
    ``outcome.prepared.models`` the models."""
    return run_experiment(Compare(settings), events, resume, dry_run)
