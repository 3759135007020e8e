"""``effscale compare``: compound scaling against single-dimension scaling at equal FLOPs.

The paper's Table 3 / Table 7 on your proxy: at FLOPs multiple ``2**phi``, the compound-scaled
model (coefficients from a search, or the paper's), depth-only, width-only and
resolution-only models solved to the compound model's MEASURED FLOPs (or to ``2**phi`` times
the base's), optionally Dollár et al.'s "fast" rule, and the base, all trained under one
budget and several seeds. Work items (``compound@0``, ``depth@1`` ...) live in an optuna
study exactly like a search's, so a run resumes and spreads over workers the same way.
Progress goes through :class:`effscale.search.SearchEvents`; this module never prints.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import yaml

from effscale import __version__, atomic, stats
from effscale.bases import get_base
from effscale.budgets import Budget
from effscale.candidates import BASE_KEY, Candidate
from effscale.config import ScalingRules
from effscale.derive import PAPER_COEFFICIENTS
from effscale.equal_flops import (
    DIMENSIONS,
    FAST_A,
    Measurer,
    Scaled,
    base_model,
    compound,
    solve_rule,
)
from effscale.errors import EffscaleError
from effscale.grid import GridSpec
from effscale.report import Row, collect_rows
from effscale.search import (
    SETTINGS_FILE,
    Prepared,
    SearchEvents,
    SearchSettings,
    check_run_dir,
    exit_worker,
    find_resumable,
    fingerprint,
    load_data,
    set_threads,
    work,
)
from effscale.study import item_key, open_storage, open_study, progress_counts
from effscale.train import Recipe, proxy_config

TARGETS = ("compound", "nominal")
CSV_FIELDS = ["model", "depth", "width", "resolution_multiplier", "resolution", "blocks",
              "params", "flops", "flops_ratio", "target_error", "activations", "seeds",
              "val_accuracy", "val_accuracy_std", "val_accuracies"]


@dataclass(frozen=True)
class CompareSettings:
    """Everything a comparison needs; ``identity()`` must match on resume."""

    base: str
    dataset: str
    budget: Budget
    recipe: Recipe
    phi: float = 1.0
    coefficients: tuple[float, float, float] = PAPER_COEFFICIENTS
    coefficients_source: str = "paper"
    fast: bool = False
    fast_a: float = FAST_A
    target: str = "compound"
    rules: ScalingRules = field(default_factory=ScalingRules)
    data_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    counter: str = "fvcore"
    out: str | None = None
    storage: str | None = None
    study: str = "effscale-compare"
    workers: int = 1
    threads: int | None = None

    def __post_init__(self) -> None:
        # Every model of a comparison trains to the end: a budget's pruner (halving on standard
        # and above) would leave most rows without a final accuracy.
        if self.budget.pruner != "none":
            object.__setattr__(self, "budget", self.budget.override(pruner="none"))

    def search_settings(self) -> SearchSettings:
        """The same data, recipe and devices as a search with these settings."""
        grid = GridSpec(base_resolution=self.budget.resolution,
                        resolution_step=self.rules.resolution_multiple)
        return SearchSettings(
            base=self.base, dataset=self.dataset, budget=self.budget, grid=grid,
            recipe=self.recipe, rules=self.rules, data_dir=self.data_dir, seed=self.seed,
            device=self.device, counter=self.counter, out=self.out, storage=self.storage,
            study=self.study, workers=self.workers, threads=self.threads)

    def identity(self, data_fingerprint: str) -> dict[str, Any]:
        budget = asdict(self.budget)
        budget.pop("description")
        return {
            "command": "compare", "base": self.base, "dataset": self.dataset,
            "data_fingerprint": data_fingerprint, "budget": budget,
            "recipe": self.recipe.to_dict(), "rules": asdict(self.rules), "seed": self.seed,
            "phi": self.phi, "coefficients": list(self.coefficients), "fast": self.fast,
            "fast_a": self.fast_a if self.fast else None, "target": self.target,
            "counter": self.counter,
        }


@dataclass
class ComparePrepared:
    """What every worker computes the same way: the search-style ``Prepared`` (data, items,
    identity) and the solved models."""

    prepared: Prepared
    models: list[Scaled]


def build_models(settings: CompareSettings, num_classes: int) -> list[Scaled]:
    """The proxy base and its scaled versions, FLOPs measured at their proxy input sizes."""
    if settings.target not in TARGETS:
        raise EffscaleError(f"--target must be one of {', '.join(TARGETS)}, got "
                            f"{settings.target!r}")
    if not math.isfinite(settings.phi):
        raise EffscaleError(f"--phi must be a finite number, got {settings.phi}")
    base = get_base(settings.base, num_classes).replace(resolution=settings.budget.resolution)
    proxy = proxy_config(base, settings.recipe, num_classes)
    measure = Measurer(settings.counter)
    alpha, beta, gamma = settings.coefficients
    nominal = measure(proxy).flops * 2 ** settings.phi
    target = None if settings.target == "compound" else nominal
    main = compound(proxy, alpha, beta, gamma, settings.phi, settings.rules, measure, target)
    models = [base_model(proxy, measure, main.target_flops), main]
    rules = [*DIMENSIONS, "fast"] if settings.fast else list(DIMENSIONS)
    models += [solve_rule(proxy, rule, main.target_flops, settings.rules, measure,
                          settings.fast_a) for rule in rules]
    return models


def candidate_of(model: Scaled) -> Candidate:
    """A model as the search's trainer takes it (``base`` keeps its key: never pruned)."""
    key = BASE_KEY if model.name == "base" else model.name
    return Candidate(key, model.depth, model.width, model.resolution, model.config.resolution,
                     model.config, model.complexity.params, model.complexity.flops,
                     model.ratio, model.target_flops / model.base_flops)


def prepare(settings: CompareSettings, events: SearchEvents) -> ComparePrepared:
    """Load data, build and measure the models, list the work items."""
    if settings.workers < 1:
        raise EffscaleError(f"--workers must be >= 1, got {settings.workers}")
    search_settings = settings.search_settings()
    train, val = load_data(search_settings, events)
    models = build_models(settings, len(train.classes))
    candidates = {c.key: c for c in map(candidate_of, models)}
    items = [item_key(key, s) for s in range(settings.budget.repeats) for key in candidates]
    identity = settings.identity(f"{train.fingerprint}/{val.fingerprint}")
    prepared = Prepared(search_settings, train, val, candidates, [], 0, items, identity,
                        Path("."))
    return ComparePrepared(prepared, models)


def default_run_dir(settings: CompareSettings) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-compare-{settings.base}-{Path(settings.dataset).name}"


def resolve_run_dir(settings: CompareSettings, identity: dict[str, Any],
                    resume: str | None) -> Path:
    """``--resume`` / ``--out`` / the newest unfinished run with these settings / a new one."""
    run_fp = fingerprint(identity)
    if resume:
        run_dir = Path(resume)
        if not (run_dir / SETTINGS_FILE).is_file():
            raise EffscaleError(f"--resume {resume}: not an effscale run (no {SETTINGS_FILE})")
        check_run_dir(run_dir, run_fp, identity)
        return run_dir
    if settings.out:
        check_run_dir(Path(settings.out), run_fp, identity)
        return Path(settings.out)
    if settings.storage is None and (found := find_resumable(Path("runs"), run_fp)):
        return found
    return default_run_dir(settings)


def settings_document(cp: ComparePrepared, settings: CompareSettings) -> dict[str, Any]:
    prepared = cp.prepared
    alpha, beta, gamma = settings.coefficients
    return {
        "command": "compare", "base": settings.base, "dataset": settings.dataset,
        "budget": settings.budget.name, "num_classes": len(prepared.train.classes),
        "train_images": len(prepared.train), "val_images": len(prepared.val),
        "phi": settings.phi, "alpha": alpha, "beta": beta, "gamma": gamma,
        "coefficients_source": settings.coefficients_source, "target": settings.target,
        "fingerprint": fingerprint(prepared.identity), "identity": prepared.identity,
        "items": len(prepared.items),
        "versions": {"effscale": __version__, "torch": _torch_version(),
                     "optuna": optuna.__version__},
    }


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


@dataclass
class CompareOutcome:
    run_dir: Path
    complete: bool
    counts: dict[str, int]
    models: list[Scaled]
    result: CompareResult | None = None


def run_compare(settings: CompareSettings, events: SearchEvents, resume: str | None = None,
                dry_run: bool = False) -> CompareOutcome:
    """Build, measure and (unless ``dry_run``) train every model; write the outputs."""
    set_threads(settings.search_settings())
    cp = prepare(settings, events)
    run_dir = resolve_run_dir(settings, cp.prepared.identity, resume)
    cp.prepared.run_dir = run_dir
    if dry_run:
        return CompareOutcome(run_dir, False, {"items": len(cp.prepared.items)}, cp.models)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.remove_stray_temps(run_dir)
    doc = settings_document(cp, settings)
    storage = open_storage(settings.storage, run_dir)
    study = open_study(storage, settings.study, run_dir, cp.prepared.identity, cp.prepared.items,
                       optuna.pruners.NopPruner())
    _write_settings(run_dir, doc, "running")
    counts = progress_counts(study)
    if counts["settled"]:
        events.message(f"resuming {run_dir}: {counts['settled']} of {counts['items']} "
                       "trainings already done")
    extra = _start_workers(settings, run_dir)
    try:
        work(cp.prepared, study, events, wait_for_others=True)
    finally:
        for process in extra:
            process.join()
    counts = progress_counts(study)
    complete = counts["settled"] == counts["items"]
    result = write_outputs(study, cp.models, doc, run_dir)
    _write_settings(run_dir, doc, "complete" if complete else "running")
    return CompareOutcome(run_dir, complete, counts, cp.models, result)


def _write_settings(run_dir: Path, doc: dict[str, Any], status: str) -> None:
    atomic.write_text(run_dir / SETTINGS_FILE,
                      yaml.safe_dump({**doc, "status": status}, sort_keys=False))


def _worker_process(settings: CompareSettings, run_dir: str) -> None:
    """Entry point of an extra ``--workers`` process (spawned, so it re-imports cleanly)."""
    set_threads(settings.search_settings())
    events = SearchEvents()
    try:
        cp = prepare(settings, events)
        storage = open_storage(settings.storage, Path(run_dir))
        study = open_study(storage, settings.study, Path(run_dir), cp.prepared.identity,
                           cp.prepared.items, optuna.pruners.NopPruner())
        work(cp.prepared, study, events, wait_for_others=False)
    except KeyboardInterrupt:
        pass
    except EffscaleError as exc:
        exit_worker(exc)


def _start_workers(settings: CompareSettings, run_dir: Path) -> list[Any]:
    context = multiprocessing.get_context("spawn")
    processes = []
    for _ in range(settings.workers - 1):
        process = context.Process(target=_worker_process, args=(settings, str(run_dir)))
        process.start()
        processes.append(process)
    return processes


@dataclass
class CompareResult:
    """The table's rows (model, its training results) and compound against each other."""

    rows: list[tuple[Scaled, Row | None]]
    comparisons: list[stats.Comparison]
    seed_std: float
    settings: dict[str, Any]


def summarize(study: optuna.Study, models: list[Scaled], settings: dict[str, Any]
              ) -> CompareResult:
    collected = collect_rows(study)
    rows = [(m, collected.get(BASE_KEY if m.name == "base" else m.name)) for m in models]
    done = {m.name: r for m, r in rows if r is not None and r.completed}
    noise = stats.pooled_seed_std([r.accuracies for r in done.values()])
    comparisons = []
    main = done.get("compound")
    if main is not None and main.mean_correct is not None:
        for name, row in done.items():
            if name != "compound" and row.mean_correct is not None:
                comparisons.append(stats.compare(
                    "compound", main.mean_correct, name, row.mean_correct, noise,
                    seeds_a=len(main.accuracies), seeds_b=len(row.accuracies)))
    return CompareResult(rows, comparisons, noise, settings)


def write_outputs(study: optuna.Study, models: list[Scaled], settings: dict[str, Any],
                  run_dir: Path) -> CompareResult:
    """compare.csv, compare.yaml and compare.png, atomically, for the study's current state."""
    result = summarize(study, models, settings)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for record in table_records(result):
        writer.writerow(record)
    atomic.write_text(run_dir / "compare.csv", buffer.getvalue())
    doc = {
        "base": settings["base"], "dataset": settings["dataset"], "budget": settings["budget"],
        "phi": settings["phi"], "target": settings["target"],
        "coefficients": {k: settings[k] for k in ("alpha", "beta", "gamma")},
        "coefficients_source": settings["coefficients_source"],
        "method": stats.METHOD, "seed_std_pooled": round(result.seed_std, 5),
        "models": table_records(result),
        "comparisons": [c.describe() for c in result.comparisons],
        "tool_version": __version__,
    }
    atomic.write_text(run_dir / "compare.yaml", yaml.safe_dump(json.loads(json.dumps(doc)),
                                                                 sort_keys=False))
    from effscale.plot import plot_compare

    atomic.write_bytes(run_dir / "compare.png", plot_compare(result))
    return result


def table_records(result: CompareResult) -> list[dict[str, Any]]:
    records = []
    for model, row in result.rows:
        c = model.complexity
        accs = row.accuracies if row is not None else []
        records.append({
            "model": model.name, "depth": round(model.depth, 4), "width": round(model.width, 4),
            "resolution_multiplier": round(model.resolution, 4),
            "resolution": model.config.resolution,
            "blocks": sum(s.repeats for s in model.config.stages), "params": c.params,
            "flops": c.flops, "flops_ratio": round(model.ratio, 4),
            "target_error": round(model.target_error, 4), "activations": c.activations,
            "seeds": len(accs),
            "val_accuracy": round(sum(accs) / len(accs), 5) if accs else None,
            "val_accuracy_std": round(stats.seed_std(accs), 5) if len(accs) > 1 else None,
            "val_accuracies": " ".join(f"{a:.4f}" for a in accs),
        })
    return records
