"""The phi=1 compound-scaling search on the experiment engine: grid -> candidates at equal
full-size FLOPs -> screening (short proxy trainings; the winner is chosen) -> confirmation
(the base and the top candidates on fresh seeds, longer, round by round until decided) ->
the verdict.

Progress goes through :class:`~effscale.experiment.events.RunEvents`; this module never
prints.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import torch

from effscale import __version__
from effscale.datasets.registry import dataset_label, native_size
from effscale.errors import EffscaleError
from effscale.experiment.data import load_data
from effscale.experiment.engine import Outcome, run_experiment
from effscale.experiment.estimate import describe as describe_estimate
from effscale.experiment.events import RunEvents
from effscale.experiment.plan import Prepared
from effscale.experiment.pruning import make_pruner
from effscale.experiment.queue import item_key
from effscale.experiment.rundir import fingerprint, run_settings, stamped_run_dir
from effscale.experiment.settings import RunSettings
from effscale.model.bases import get_base
from effscale.model.config import ModelConfig
from effscale.model.cost import (
    CostMeter,
    CostOptions,
    cost_identity,
    describe_cost,
    get_cost,
    run_cost_options,
)
from effscale.scaling.equal_flops import FlopsMeter
from effscale.search.candidates import (
    BASE_KEY,
    Candidate,
    Skipped,
    build_candidates,
    extremes_found,
)
from effscale.search.confirm import ConfirmPlan, confirm_choices, next_round
from effscale.search.estimate_stages import ESTIMATE_ATTR, estimate_search
from effscale.search.grid import GridSpec, gamma_axis
from effscale.search.ladder import (
    LadderPlan,
    follow_ladder,
    ladder_choices,
    ladder_identity,
    plan_ladder,
    rung_models,
)
from effscale.search.outputs import write_outputs
from effscale.search.refine import Candidates, Maker
from effscale.search.refine import next_round as next_refinement
from effscale.search.refine import settings_section as refine_section
from effscale.search.repeats import enqueue_top, repeat_choices
from effscale.train.proxy import proxy_stem_stride, upsampling_note
from effscale.train.trainer import proxy_config


@dataclass(frozen=True, kw_only=True)
class SearchSettings(RunSettings):
    """A search: the run's settings plus its grid; ``identity()`` must match on resume."""

    grid: GridSpec
    flops_tolerance: float | None = None
    repeat_top: int = 0
    cost: str = "flops"  # the cost candidates are equal in (effscale.model.cost)
    cost_batch: int | None = None  # a timed cost's batch (default: 1 / the training batch)

    def cost_options(self) -> CostOptions:
        """How a timed cost is measured: at ``cost_batch``, or batch 1 for latency and the
        training batch for train-step, on the run's device and threads, in its runtime."""
        return run_cost_options(self.cost, self.cost_batch, self.recipe.batch_size,
                                self.device, self.threads, self.runtime)

    def cost_batch_used(self) -> int | None:
        """The batch a timed cost runs at (``None`` for a counted one)."""
        return get_cost(self.cost).batch(self.cost_options())

    def cost_meter(self) -> CostMeter | None:
        """The cost as the solvers take it; ``None`` for FLOPs (the FlopsMeter's path)."""
        return None if self.cost == "flops" else CostMeter(self.cost, self.cost_options())

    def identity(self, data_fingerprint: str) -> dict[str, Any]:
        budget = asdict(self.budget)
        budget.pop("description")
        budget.pop("expected")
        budget.pop("time_limit")  # how long to go on is not what the run is: a resume may
        # give more time
        extra = {"repeat_top": self.repeat_top} if self.repeat_top else {}
        extra.update(ladder_identity(budget))
        if self.allow_upsampling:
            extra["allow_upsampling"] = True
        if self.cost != "flops":  # FLOPs runs keep the fingerprints they always had
            extra["cost"] = cost_identity(self.cost, self.cost_options())
        return {
            **extra,
            "base": self.base, "dataset": self.dataset, "data_fingerprint": data_fingerprint,
            "budget": budget, "grid": self.grid.to_dict(), "recipe": self.recipe.to_dict(),
            "rules": asdict(self.rules), "seed": self.seed,
            "flops_tolerance": self.flops_tolerance, "counter": self.counter,
        }


@dataclass
class SearchPrepared(Prepared):
    """The engine's prepared run, plus the grid points left out of the feasible set."""

    dropped: list[Skipped] = field(default_factory=list)
    grid_points: int = 0
    cost_timing: dict[str, Any] = field(default_factory=dict)  # see :func:`cost_timing`
    extremes: dict[str, str] = field(default_factory=dict)  # see :func:`extremes_found`
    ladder: LadderPlan | None = None  # the proxy ladder (effscale.search.ladder)
    refine: dict[str, Any] = field(default_factory=dict)  # see :func:`refine.settings_section`
    estimate: dict[str, Any] = field(default_factory=dict)  # see :func:`estimate_run`


def resolve_proxy(settings: SearchSettings, events: RunEvents) -> SearchSettings:
    """Settings with the proxy convention applied (see :mod:`effscale.train.proxy`): the stem
    stride that keeps the base's final maps at least 2x2 at the proxy base size, and a gamma
    axis that stops at the dataset's native size unless ``allow_upsampling``."""
    grid, base_px = settings.grid, settings.grid.base_resolution
    native = native_size(settings.dataset)
    if native is not None and not settings.allow_upsampling:
        if base_px > native:
            raise EffscaleError(
                f"--resolution {base_px} is above {settings.dataset}'s native {native} px: the "
                "proxy would train on upsampled pixels; lower it, or pass --allow-upsampling")
        largest = max(px for _, px in gamma_axis(grid))
        if largest > native:
            grid = replace(grid, gamma_max=native / base_px)
            events.message(f"γ axis capped at {native / base_px:.3f} ({native} px, "
                           f"{settings.dataset}'s native size; it asked for {largest} px): "
                           "pass --allow-upsampling to train on upsampled pixels")
    elif note := upsampling_note(settings.dataset, max(px for _, px in gamma_axis(grid))):
        events.message(f"warning: {note}")
    recipe = settings.recipe
    if recipe.stem_stride is None:
        base = get_base(settings.base)
        recipe = replace(recipe, stem_stride=proxy_stem_stride(base, base_px))
    return replace(settings, grid=grid, recipe=recipe)


def proxy_cap(settings: SearchSettings) -> tuple[int, bool]:
    """The largest proxy input a refinement may use, and whether it is the dataset's native
    size (else it is the largest grid size, which the data is loaded at)."""
    native = native_size(settings.dataset)
    if native is not None and not settings.allow_upsampling:
        return native, True
    return max(px for _, px in gamma_axis(settings.grid)), False


def refine_maker(settings: SearchSettings, num_classes: int, base: Candidate | None = None,
                 cap_px: int | None = None, resolved: bool = False) -> Maker:
    """Builds refinement candidates as :meth:`Search.prepare` builds the grid's (the same
    proxy convention, solver, counter and window); ``settings`` are resolved first unless
    ``resolved``. Without ``base``, the base is measured again (cached on disk)."""
    if not resolved and base is None:
        settings = resolve_proxy(settings, RunEvents())
    full_base = get_base(settings.base, num_classes)

    def to_proxy(full: ModelConfig, px: int) -> ModelConfig:
        return proxy_config(full.replace(resolution=px), settings.recipe, num_classes)

    cost = settings.cost_meter()
    if base is None:
        measure = FlopsMeter(settings.counter, conv_linear=True)
        proxy = to_proxy(full_base, settings.grid.base_resolution)
        full = measure(full_base)
        base = Candidate(key=BASE_KEY, alpha=1.0, beta=1.0, gamma=1.0,
                         resolution=settings.grid.base_resolution, config=proxy,
                         params=full.params, flops=full.flops, flops_ratio=1.0,
                         nominal_ratio=1.0, full_resolution=full_base.resolution,
                         proxy_flops=measure(proxy).flops, proxy_flops_ratio=1.0,
                         cost_value=cost(full_base) if cost is not None else 0.0)
    return Maker(full_base, to_proxy, settings.grid, settings.rules, base,
                 cap_px if cap_px is not None else proxy_cap(settings)[0], settings.counter,
                 settings.flops_tolerance, cost)


def gamma_cap_reason(asked: SearchSettings, resolved: SearchSettings) -> str:
    """What caps the γ axis: the dataset's native size when :func:`resolve_proxy` lowered
    ``gamma_max`` to it, else the grid's own ``--gamma-max``."""
    native = native_size(asked.dataset)
    if native is not None and resolved.grid.gamma_max < asked.grid.gamma_max:
        return (f"{asked.dataset}'s native {native} px caps γ at "
                f"{resolved.grid.gamma_max:.3g}; --allow-upsampling lifts it")
    return f"--gamma-max {resolved.grid.gamma_max:g}"


def cost_timing(cost: CostMeter, base: ModelConfig, tolerance: float | None
                ) -> dict[str, Any]:
    """What a timed-cost search records of its timings (empty for an untimed cost): how many
    missed their spread bound, and the base re-timed after the candidates (``drift``: the
    change from the timing the ratios are to), with the line that says what that means."""
    timed = cost.drift(base)
    if timed is None:
        return {}
    first, again = timed
    return {"spread": cost.spread_summary(), "base_first_s": first, "base_again_s": again,
            "drift": round(again / first - 1, 4),
            "drift_line": _drift_words(cost.name, first, again, tolerance)}


def _drift_words(name: str, first: float, again: float, tolerance: float | None) -> str:
    """The re-timed base in words: a warning when the machine drifted by more than the
    equal-cost window (``None``: no window, every candidate kept)."""
    change = again / first - 1
    said = (f"{name}: the base re-timed after the candidates at {again * 1e3:.2f} ms, "
            f"{change:+.1%} from the {first * 1e3:.2f} ms their ratios are to")
    if tolerance is None:
        return f"{said} (no equal-cost window: every candidate is kept)"
    if abs(change) <= tolerance:
        return f"{said}: within the ±{tolerance:.0%} window"
    return (f"warning: {said}: the machine's speed drifted by more than the ±{tolerance:.0%} "
            "window during (or since) the timings, so which candidates fall inside it is "
            "uncertain by about that much; time on an idle machine, or widen --flops-tolerance")


@dataclass(frozen=True)
class Search:
    """The search as an experiment the engine runs (see
    :class:`effscale.experiment.plan.Experiment`)."""

    settings: SearchSettings

    def prepare(self, events: RunEvents) -> SearchPrepared:
        """Load data; enumerate, build and measure candidates at full size; keep those at the
        target cost; list the work items."""
        settings = resolve_proxy(self.settings, events)
        # Loaded at the native size when known, else at the largest proxy size: every
        # candidate then sees its input downsampled, never upsampled.
        size = native_size(settings.dataset) or max(px for _, px in gamma_axis(settings.grid))
        train, val = load_data(settings, events, size)
        num_classes = len(train.classes)
        full_base = get_base(settings.base, num_classes)

        def to_proxy(full: ModelConfig, px: int) -> ModelConfig:
            return proxy_config(full.replace(resolution=px), settings.recipe, num_classes)

        cost = settings.cost_meter()
        kept, dropped = build_candidates(full_base, to_proxy, settings.grid.base_resolution,
                                         settings.grid, settings.rules, settings.counter,
                                         settings.flops_tolerance, events.measuring, cost,
                                         gamma_cap_reason(self.settings, settings))
        extremes = extremes_found(kept, dropped)
        for name, found in extremes.items():
            if found.startswith("not reached"):
                events.message(f"the equal-cost curve's {name} end is {found}")
        timing = {} if cost is None else cost_timing(cost, full_base, settings.flops_tolerance)
        if timing.get("spread"):
            events.message(f"warning: {settings.cost}: {timing['spread']}. A candidate's own is "
                           "marked ! in the table below: its ratio is uncertain by about its "
                           "spread; the others were steps of the β solve")
        if timing:
            events.message(timing["drift_line"])
        items = [item_key(BASE_KEY, s) for s in range(settings.budget.repeats)]
        items += [item_key(c.key, 0) for c in kept if not c.is_base]
        identity = settings.identity(f"{train.fingerprint}/{val.fingerprint}")
        choices = list(items)
        if settings.repeat_top:
            choices += repeat_choices([c.key for c in kept if not c.is_base],
                                      settings.budget.repeats)
        cap_px, cap_is_native = proxy_cap(settings)
        refine = refine_section(settings.grid, settings.budget, cap_px, cap_is_native, kept)
        make = refine_maker(settings, num_classes, kept[0], cap_px)
        candidates = Candidates({c.key: c for c in kept}, make, settings.budget.confirm_factor)
        choices += [item_key(key, 0) for key in refine["keys"]]
        if settings.budget.confirm_top:
            for c in kept:
                check = c.for_confirmation(settings.budget.confirm_factor)
                candidates[check.key] = check
            choices += confirm_choices([c.key for c in kept] + refine["keys"],
                                       max(settings.budget.confirm_seeds,
                                           settings.budget.confirm_max_seeds))
        ladder = plan_ladder(settings.budget, kept, size)
        on_ladder = rung_models(ladder, [c for c in candidates.values()
                                         if not c.is_confirmation])
        candidates.update(on_ladder)
        choices += ladder_choices(on_ladder, ladder.seeds)
        prepared = SearchPrepared(settings, train, val, candidates, items, identity,
                                  choices=choices, dropped=dropped,
                                  grid_points=len(kept) - 1 + len(dropped), cost_timing=timing,
                                  extremes=extremes, ladder=ladder, refine=refine)
        events.feasible([c for c in kept], dropped, prepared.grid_points)
        return prepared

    def check(self, prepared: Prepared, dry_run: bool, events: RunEvents) -> None:
        """The run's estimate, before anything trains (main process only)."""
        assert isinstance(prepared, SearchPrepared)
        prepared.estimate = estimate_run(prepared, events)

    def default_run_dir(self) -> Path:
        return stamped_run_dir(self.settings.base, dataset_label(self.settings.dataset))

    def settings_document(self, prepared: Prepared) -> dict[str, Any]:
        """settings.yaml and the study's ``settings`` attribute: everything the report
        needs."""
        s = prepared.settings
        assert isinstance(s, SearchSettings) and isinstance(prepared, SearchPrepared)
        tolerance = s.flops_tolerance
        window = None if tolerance is None else [s.grid.target * (1 - tolerance),
                                                 s.grid.target * (1 + tolerance)]
        doc = {
            "base": s.base, "dataset": s.dataset, "budget": s.budget.name,
            "num_classes": prepared.num_classes, "classes": list(prepared.train.classes),
            "train_images": len(prepared.train), "val_images": len(prepared.val),
            "fingerprint": fingerprint(prepared.identity), "identity": prepared.identity,
            "rules": asdict(s.rules), "flops_window": window, "pruner": s.budget.pruner,
            "grid": s.grid.to_dict(), "proxy_stem_stride": s.recipe.stem_stride,
            "cost": "conv+linear FLOPs (multiply-adds) of the full-size model: the base at its "
                    f"own resolution, scaled; counted by {s.counter}",
            "feasible_grid_points": prepared.grid_points, "extremes": prepared.extremes,
            "refine": prepared.refine,
            "candidates": sum(not c.is_base and not c.is_confirmation
                              for c in prepared.candidates.values()),
            "items": len(prepared.items),
            "versions": versions(), "cost_name": s.cost,
        }
        if s.cost != "flops":  # the window is on the cost; FLOPs are shown, not bounded
            doc.update(flops_window=None, cost_window=window,
                       cost=f"{describe_cost(s.cost, s.cost_batch_used(), s.runtime)}; "
                            "measured on the full-size model: the base at its own resolution, "
                            "scaled")
        if s.cost == "latency":  # what ran the timed models (the identity has its version)
            doc["runtime"] = s.runtime
        if prepared.cost_timing:
            doc["cost_timing"] = prepared.cost_timing
        if prepared.ladder is not None:
            doc["ladder"] = prepared.ladder.to_dict()
        if prepared.estimate:
            doc[ESTIMATE_ATTR] = prepared.estimate
        return doc

    def pruner(self) -> optuna.pruners.BasePruner:
        return make_pruner(self.settings.budget.pruner)

    def plan(self) -> ConfirmPlan:
        return ConfirmPlan.of(self.settings.budget, self.settings.workers,
                              self.settings.grid.target)

    def follow_ups(self, study: optuna.Study, events: RunEvents) -> bool:
        """``--repeat-top`` first (screening seeds), then the confirmation, a round at a time;
        each choice is made once, so a call after they were enqueued adds nothing."""
        settings = self.settings
        if settings.repeat_top:
            added = enqueue_top(study, settings.repeat_top, settings.budget.repeats)
            if added:
                events.message(f"--repeat-top {settings.repeat_top}: {len(added)} more "
                               "screening trainings of the best candidates under further seeds")
                return True
        if self.refine_round(study, events):
            return True
        plan = self.plan()
        if plan.top < 1:
            return False
        num_classes = int(run_settings(study)["num_classes"])
        step = next_round(study, plan, num_classes)
        if step.stopped:  # the proxy ladder, once decided (it says the stop's reason)
            return follow_ladder(study, events, step.stopped, settings.workers)
        if not step.added:
            return False
        epochs = settings.recipe.epochs * plan.factor
        if step.round == 1:
            events.message(plan.describe(settings.recipe.epochs))
        over = (" (past the time budget, but a verdict needs "
                f"{plan.min_seeds} seeds a model)" if step.over_time else "")
        events.message(f"confirmation round {step.round}: {len(step.added)} trainings of "
                       f"{epochs} epochs (the base and the top {len(step.added) - 1}, fresh "
                       f"seed {step.round}); estimated {step.estimated_s / 60:.1f} min{over}")
        if step.skipped:  # racing: the models whose comparisons are settled
            events.message(f"confirmation round {step.round} {step.describe_skipped()}")
        return True

    def refine_round(self, study: optuna.Study, events: RunEvents) -> bool:
        """The next refinement round (:mod:`effscale.search.refine`), before the
        confirmation: ``True`` when it added trainings."""
        num_classes = int(run_settings(study)["num_classes"])
        settings = self.settings
        makers: list[Maker] = []

        def make(key: str) -> Candidate | Skipped:
            if not makers:  # built once, and only when a round needs models
                makers.append(refine_maker(settings, num_classes))
            return makers[0](key)

        added, line = next_refinement(study, settings.budget, make, settings.workers)
        if line:
            events.message(line if added else f"refinement stopped: {line}")
        return bool(added)

    def write_outputs(self, study: optuna.Study, prepared: Prepared, doc: dict[str, Any],
                      complete: bool) -> Any:
        return write_outputs(study, prepared.run_dir) if complete else None


def estimate_run(prepared: SearchPrepared, events: RunEvents) -> dict[str, Any]:
    """The estimate's document, said in one line; empty (with a warning) when the speeds
    cannot be measured: an estimate never stops a run."""
    try:
        estimate = estimate_search(prepared, events)
    except Exception as exc:
        events.message(f"warning: no time estimate ({exc.__class__.__name__}: {exc})")
        return {}
    events.message(describe_estimate(estimate))
    return estimate.to_dict()


def versions() -> dict[str, str]:
    return {"effscale": __version__, "torch": str(torch.__version__),
            "optuna": optuna.__version__, "python": platform.python_version()}


def run_search(settings: SearchSettings, events: RunEvents, resume: str | None = None,
               dry_run: bool = False) -> Outcome:
    """Run (or resume) a search to completion and write its outputs; ``outcome.result`` is
    the :class:`~effscale.search.answer.SearchAnswer` they were written from (None while
    trainings are still open). ``dry_run`` stops after showing the feasible set, before
    anything is written or trained."""
    return run_experiment(Search(settings), events, resume, dry_run)
