"""Which trainings a search plans, stage by stage, for the estimate before it runs
(:mod:`effscale.experiment.estimate`), and what each stage took at its end.

- **screening**: every work item (the base under ``--repeats`` seeds, each candidate once),
  plus ``--repeat-top``'s seeds of the best candidates (which ones is not known before:
  the candidates' mean time stands for them);
- **confirmation**: the base and the top ``confirm_top`` (the candidates' mean time stands
  for them) with ``confirm_factor`` x the epochs, ``confirm_seeds`` rounds always, then one
  round at a time up to ``confirm_max_seeds`` while undecided and within ``--time``.

A stage another part of the search adds (a refinement, a proxy ladder) appends its own
:class:`~effscale.experiment.estimate.StageEstimate` in :func:`search_stages` and its
actual trainings in :func:`actual_stages`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from statistics import mean
from typing import Any

import optuna
import torch

from effscale.devices import resolve_device
from effscale.experiment.estimate import (
    RunEstimate,
    StageEstimate,
    Step,
    Training,
    cap_optional,
    compare,
    training_seconds,
)
from effscale.experiment.events import RunEvents
from effscale.experiment.queue import split_item
from effscale.model.cost import device_fingerprint
from effscale.search.candidates import CONFIRM_PREFIX, LADDER_PREFIX
from effscale.search.confirm import ConfirmPlan, trial_seconds
from effscale.search.edges import REFINE_PREFIX
from effscale.train.throughput import Throughput, cached_throughput, throughput_cache_dir
from effscale.train.trainer import Recipe

Measure = Callable[[Any, Recipe, torch.device, int], tuple[Throughput, bool]]
ESTIMATE_ATTR = "estimate"  # the settings document's key


def search_stages(prepared: Any, seconds_of: Callable[[Any, int], float]) -> list[StageEstimate]:
    """The search's stages, each training's seconds from ``seconds_of(candidate, epochs)``
    (uncapped: :func:`~effscale.experiment.estimate.cap_optional` applies ``--time``)."""
    settings = prepared.settings
    budget, recipe = settings.budget, settings.recipe
    candidates = prepared.candidates
    grid = [c for c in candidates.values() if not c.is_base and not c.is_confirmation]
    screening_s = 0.0
    for item in prepared.items:
        key, _ = split_item(item)
        candidate = candidates[key]
        screening_s += seconds_of(candidate, recipe.epochs * candidate.epochs_factor)
    trainings = len(prepared.items)
    per_candidate = mean(seconds_of(c, recipe.epochs) for c in grid) if grid else 0.0
    extra = settings.repeat_top * max(0, budget.repeats - 1) if grid else 0
    screening = StageEstimate("screening", [Step(screening_s + extra * per_candidate,
                                                 trainings + extra)],
                              note="fewer if the pruner stops some" if budget.pruner != "none"
                              else "")
    stages = [screening]
    plan = ConfirmPlan.of(budget, settings.workers, settings.grid.target)
    top = min(plan.top, len(grid))
    if top >= 1:
        base = next(c for c in candidates.values() if c.is_base and not c.is_confirmation)
        epochs = recipe.epochs * plan.factor
        confirm_mean = mean(seconds_of(c, epochs) for c in grid)
        round_s = seconds_of(base, epochs) + top * confirm_mean
        step = Step(round_s, top + 1)
        optional = plan.max_seeds - plan.min_seeds
        stages.append(StageEstimate(
            "confirmation", [step] * plan.min_seeds, [step] * optional,
            note=f"{plan.min_seeds} rounds of {top + 1} models"
                 + (f", up to {plan.max_seeds} while undecided" if optional else "")))
    return stages


NO_ESTIMATE_ENV = "EFFSCALE_NO_ESTIMATE"


def estimate_search(prepared: Any, events: RunEvents, measure: Measure | None = None
                    ) -> RunEstimate:
    """The search's estimate from each model's throughput on the run's device (``measure``,
    by default :func:`~effscale.train.throughput.cached_throughput`: measured once per device
    and model, cached). With ``$EFFSCALE_NO_ESTIMATE`` set (the test suite sets it) the
    trainings are counted and nothing is measured."""
    counting_only = os.environ.get(NO_ESTIMATE_ENV, "") not in ("", "0")
    measure = None if counting_only else (measure or cached_throughput)
    settings = prepared.settings
    recipe, budget = settings.recipe, settings.budget
    device = resolve_device(settings.device)
    native = int(prepared.train.images.shape[-1])
    speeds: dict[str, Throughput] = {}
    started, fresh = time.perf_counter(), 0

    def speed(candidate: Any) -> Throughput:
        nonlocal fresh
        key = candidate.key.removeprefix(CONFIRM_PREFIX)
        if key not in speeds:
            speeds[key], measured = measure(candidate.config, recipe, device, native)
            fresh += measured
        return speeds[key]

    def seconds_of(candidate: Any, epochs: int) -> float:
        if measure is None:
            return 0.0
        training = Training(candidate.key, len(prepared.train), len(prepared.val), epochs,
                            recipe.batch_size, recipe.precise_bn)
        return training_seconds(training, speed(candidate))

    stages = search_stages(prepared, seconds_of)
    if measure is None:
        return RunEstimate(stages, settings.workers, f"no speeds measured (${NO_ESTIMATE_ENV})",
                           timed=False)
    limit = None if budget.time_limit is None else budget.time_limit * settings.workers
    stages = cap_optional(stages, limit)
    if fresh:
        events.message(f"measured the training speed of {fresh} model(s) on this device in "
                       f"{time.perf_counter() - started:.0f} s (once; cached in "
                       f"{throughput_cache_dir()})")
    where = device_fingerprint(device)
    source = (f"speeds measured on {where['device']}"
              + (f" {where.get('gpu', '')}" if device.type == "cuda" else
                 f" ({where['cpu']}, {where['threads']} threads)"))
    return RunEstimate(stages, settings.workers, source)


_STAGE_PREFIXES = ((CONFIRM_PREFIX, "confirmation"), (LADDER_PREFIX, "ladder"),
                   (REFINE_PREFIX, "refinement"))


def actual_stages(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """Each stage's finished trainings and their summed seconds (as the estimate's
    ``seconds``): confirmation, ladder and refinement items each apart (the ladder's six
    trainings were counted as screening: "11 of 5 trainings"), every other item screening."""
    out: dict[str, dict[str, Any]] = {}
    for key, seconds in trial_seconds(study).items():
        stage = next((name for prefix, name in _STAGE_PREFIXES if key.startswith(prefix)),
                     "screening")
        got = out.setdefault(stage, {"trainings": 0, "seconds": 0.0})
        got["trainings"] += len(seconds)
        got["seconds"] += sum(seconds)
    return out


def estimate_vs_actual(study: optuna.Study) -> list[dict[str, Any]] | None:
    """The run's estimate (from its settings) beside what each stage took; None for a run
    without one."""
    estimate = study.user_attrs.get("settings", {}).get(ESTIMATE_ATTR)
    if not estimate:
        return None
    return compare(estimate, actual_stages(study))
