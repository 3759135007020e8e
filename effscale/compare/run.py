"""``effscale compare``: compound scaling against single-dimension scaling at equal FLOPs.

The paper's Table 3 / Table 7 on your proxy. Every model's cost is measured at FULL size (the
base at its native resolution, b0 at 224 px; FLOPs are conv+linear multiply-adds as published)
and every model is solved to the same target, ``2**phi`` times the base's: each compound
direction (one per coefficient set: depth ``alpha**s``, width ``beta**s``, resolution
``gamma**s``, ``s`` solved), depth-only, width-only, resolution-only and optionally Dollár et
al.'s "fast" rule. Each is then TRAINED as a proxy (see :mod:`effscale.train.proxy`): the same depth
and width, input size ``round(budget.resolution x its full-size resolution ratio)`` and the
proxy stem stride of the base, recorded on the recipe. The FLOPs ratio of the proxies is
shown too: it is what the proxies cost, not what the coefficients claim.

Work items (``compound@0``, ``depth@1`` ...) live in an optuna study exactly like a search's,
so a run resumes and spreads over workers the same way. Progress goes through
:class:`effscale.search.run.SearchEvents`; this module never prints.
"""

from __future__ import annotations

import csv
import dataclasses
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

from effscale import __version__, atomic
from effscale.errors import EffscaleError
from effscale.experiment import stats
from effscale.experiment.budgets import Budget
from effscale.experiment.study import item_key, open_storage, open_study, progress_counts
from effscale.model.bases import get_base
from effscale.model.config import ModelConfig, ScalingRules
from effscale.model.flops import Complexity
from effscale.scaling.derive import PAPER_COEFFICIENTS
from effscale.scaling.equal_flops import (
    DIMENSIONS,
    FAST_A,
    Measurer,
    Scaled,
    base_model,
    solve_direction,
    solve_rule,
)
from effscale.search.candidates import BASE_KEY, Candidate
from effscale.search.grid import GridSpec
from effscale.search.report import Row, collect_rows
from effscale.search.run import (
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
from effscale.train.proxy import native_size, proxy_stem_stride, upsampling_note
from effscale.train.trainer import Recipe, proxy_config

SINGLE_RULES = (*DIMENSIONS, "fast")
RESERVED_NAMES = ("base", *SINGLE_RULES)
CSV_FIELDS = ["model", "kind", "s", "depth", "width", "resolution_multiplier",
              "full_resolution", "resolution", "blocks", "params", "flops", "flops_ratio",
              "target_ratio", "target_error", "proxy_flops", "proxy_flops_ratio",
              "activations", "seeds", "val_accuracy", "val_accuracy_std", "val_accuracies"]


@dataclass(frozen=True)
class CompoundSet:
    """One compound direction: its model's name, (alpha, beta, gamma) and where they came
    from."""

    name: str
    coefficients: tuple[float, float, float]
    source: str


PAPER_SET = CompoundSet("compound", PAPER_COEFFICIENTS, "paper (Tan & Le 2019)")


@dataclass(frozen=True)
class CompareSettings:
    """Everything a comparison needs; ``identity()`` must match on resume.

    ``rules`` round the FULL-size models (derive's defaults: channels to 8, input size to a
    multiple of 8 at 224 px). ``single`` lists the single-dimension models (``depth``,
    ``width``, ``resolution``, ``fast``). The recipe's ``stem_stride``, when not given, is
    the proxy stem stride of the base at ``budget.resolution``.
    """

    base: str
    dataset: str
    budget: Budget
    recipe: Recipe
    phi: float = 1.0
    compounds: tuple[CompoundSet, ...] = (PAPER_SET,)
    single: tuple[str, ...] = DIMENSIONS
    fast_a: float = FAST_A
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
    allow_upsampling: bool = False

    def __post_init__(self) -> None:
        # Every model of a comparison trains to the end: a budget's pruner (halving on standard
        # and above) would leave most rows without a final accuracy.
        if self.budget.pruner != "none":
            object.__setattr__(self, "budget", self.budget.override(pruner="none"))
        if self.recipe.stem_stride is None:
            stride = proxy_stem_stride(get_base(self.base), self.budget.resolution)
            object.__setattr__(self, "recipe", dataclasses.replace(self.recipe,
                                                                   stem_stride=stride))
        unknown = [r for r in self.single if r not in SINGLE_RULES]
        if unknown:
            raise EffscaleError(f"--rules: unknown {', '.join(unknown)} (valid: "
                                f"{', '.join(SINGLE_RULES)}, or none)")
        names = [c.name for c in self.compounds]
        if not names:
            raise EffscaleError("compare needs at least one coefficient set")
        if len(set(names)) != len(names):
            raise EffscaleError(f"coefficient sets need distinct names, got {', '.join(names)}")
        if clash := [n for n in names if n in RESERVED_NAMES]:
            raise EffscaleError(f"a coefficient set cannot be named {clash[0]!r} (a model of "
                                "its own): name it with --coefficients NAME=PATH")

    def search_settings(self) -> SearchSettings:
        """The same data, recipe and devices as a search with these settings."""
        grid = GridSpec(base_resolution=self.budget.resolution, resolution_step=None,
                        gamma_max=max(1.0, self.gamma_max), gamma_step=0.05)
        return SearchSettings(
            base=self.base, dataset=self.dataset, budget=self.budget, grid=grid,
            recipe=self.recipe, rules=self.rules, data_dir=self.data_dir, seed=self.seed,
            device=self.device, counter=self.counter, out=self.out, storage=self.storage,
            study=self.study, workers=self.workers, threads=self.threads,
            allow_upsampling=self.allow_upsampling)

    @property
    def gamma_max(self) -> float:
        """An upper bound of the models' resolution ratios (data loading of image folders)."""
        return max([1.0, *(max(c.coefficients[2], 1.0) ** (abs(self.phi) + 2)
                           for c in self.compounds), 2.0 ** (abs(self.phi) / 2 + 1)])

    def identity(self, data_fingerprint: str) -> dict[str, Any]:
        budget = asdict(self.budget)
        budget.pop("description")
        return {
            "command": "compare", "base": self.base, "dataset": self.dataset,
            "data_fingerprint": data_fingerprint, "budget": budget,
            "recipe": self.recipe.to_dict(), "rules": asdict(self.rules), "seed": self.seed,
            "phi": self.phi, "flops_at": "full size, conv+linear",
            "compounds": [[c.name, list(c.coefficients)] for c in self.compounds],
            "single": list(self.single),
            "fast_a": self.fast_a if "fast" in self.single else None,
            "counter": self.counter, "allow_upsampling": self.allow_upsampling,
        }


@dataclass(frozen=True)
class CompareModel:
    """One model of a comparison: solved at full size, trained as a proxy.

    ``full`` is the full-size model (multipliers, config, FLOPs, ratio to the base's,
    error against the target); ``proxy_config`` is what is trained (same depth and width,
    input ``px``, the proxy stem stride) and ``proxy`` its measured complexity.
    """

    kind: str  # "base", "compound" or a single rule
    full: Scaled
    proxy_config: ModelConfig
    proxy: Complexity
    proxy_base_flops: int
    coefficients: tuple[float, float, float] | None = None

    @property
    def name(self) -> str:
        return self.full.name

    @property
    def depth(self) -> float:
        return self.full.depth

    @property
    def width(self) -> float:
        return self.full.width

    @property
    def resolution(self) -> float:
        return self.full.resolution

    @property
    def config(self) -> ModelConfig:
        return self.full.config

    @property
    def complexity(self) -> Complexity:
        return self.full.complexity

    @property
    def ratio(self) -> float:
        """Full-size FLOPs over the full-size base's."""
        return self.full.ratio

    @property
    def target_ratio(self) -> float:
        return self.full.target_flops / self.full.base_flops

    @property
    def target_error(self) -> float:
        return self.full.target_error

    @property
    def s(self) -> float | None:
        """The solved effective phi of a compound model."""
        return self.full.multiplier if self.kind == "compound" else None

    @property
    def px(self) -> int:
        return self.proxy_config.resolution

    @property
    def proxy_ratio(self) -> float:
        """Proxy FLOPs over the proxy base's."""
        return self.proxy.flops / self.proxy_base_flops


@dataclass
class ComparePrepared:
    """What every worker computes the same way: the search-style ``Prepared`` (data, items,
    identity) and the solved models."""

    prepared: Prepared
    models: list[CompareModel]


def proxy_size(settings: CompareSettings, full: Scaled, full_base: ModelConfig) -> int:
    """``round(budget.resolution x the model's full-size resolution ratio)``, half up."""
    ratio = full.config.resolution / full_base.resolution
    return max(8, int(math.floor(settings.budget.resolution * ratio + 0.5)))


def build_models(settings: CompareSettings, num_classes: int) -> list[CompareModel]:
    """The base, each compound direction and each single-dimension model, all solved to
    ``2**phi`` times the base's FLOPs measured at full size, with their proxies."""
    if not math.isfinite(settings.phi):
        raise EffscaleError(f"--phi must be a finite number, got {settings.phi}")
    full_base = get_base(settings.base, num_classes)
    measure = Measurer(settings.counter, conv_linear=True)
    target = measure(full_base).flops * 2 ** settings.phi
    solved: list[tuple[str, Scaled, tuple[float, float, float] | None]] = [
        ("base", base_model(full_base, measure, target), None)]
    for spec in settings.compounds:
        solved.append(("compound", solve_direction(full_base, spec.coefficients, target,
                                                   settings.rules, measure, name=spec.name),
                       spec.coefficients))
    for rule in settings.single:
        solved.append((rule, solve_rule(full_base, rule, target, settings.rules, measure,
                                        settings.fast_a), None))
    proxy_measure = Measurer(settings.counter, conv_linear=True)
    proxy_base = proxy_config(full_base.replace(resolution=settings.budget.resolution),
                              settings.recipe, num_classes)
    proxy_base_flops = proxy_measure(proxy_base).flops
    models = []
    for kind, full, coefficients in solved:
        config = proxy_config(full.config.replace(resolution=proxy_size(settings, full,
                                                                        full_base)),
                              settings.recipe, num_classes)
        models.append(CompareModel(kind, full, config, proxy_measure(config), proxy_base_flops,
                                   coefficients))
    return models


def upsampling_problem(settings: CompareSettings, models: list[CompareModel]) -> str | None:
    """A message when a proxy input is above the dataset's native size (an error unless
    ``allow_upsampling``)."""
    largest = max(m.px for m in models)
    native = native_size(settings.dataset)
    if native is None or largest <= native:
        return None
    if settings.allow_upsampling:
        return upsampling_note(settings.dataset, largest)
    worst = max(models, key=lambda m: m.px)
    fits = math.floor(native * settings.budget.resolution / worst.px)
    return (f"{worst.name} trains at {worst.px} px, above {settings.dataset}'s native "
            f"{native} px (upsampled pixels add no information): lower --resolution (about "
            f"{fits} fits) or pass --allow-upsampling")


def candidate_of(model: CompareModel) -> Candidate:
    """A model as the search's trainer takes it (``base`` keeps its key: never pruned):
    the proxy config at its proxy size; FLOPs at full size, proxy FLOPs beside them."""
    key = BASE_KEY if model.kind == "base" else model.name
    values: dict[str, Any] = dict(
        key=key, alpha=model.depth, beta=model.width, gamma=model.resolution,
        resolution=model.px, config=model.proxy_config, params=model.proxy.params,
        flops=model.complexity.flops, flops_ratio=model.ratio, nominal_ratio=model.target_ratio,
        full_resolution=model.config.resolution, proxy_flops=model.proxy.flops,
        proxy_flops_ratio=model.proxy_ratio)
    known = {f.name for f in dataclasses.fields(Candidate)}
    return Candidate(**{k: v for k, v in values.items() if k in known})


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
    return {
        "command": "compare", "base": settings.base, "dataset": settings.dataset,
        "budget": settings.budget.name, "num_classes": len(prepared.train.classes),
        "train_images": len(prepared.train), "val_images": len(prepared.val),
        "phi": settings.phi, "target": "2^phi x the base's FLOPs, measured at full size "
                                        "(conv+linear)",
        "compounds": [{"name": c.name, "alpha": c.coefficients[0], "beta": c.coefficients[1],
                       "gamma": c.coefficients[2], "source": c.source}
                      for c in settings.compounds],
        "single": list(settings.single), "proxy_resolution": settings.budget.resolution,
        "proxy_stem_stride": settings.recipe.stem_stride,
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
    models: list[CompareModel]
    result: CompareResult | None = None


def run_compare(settings: CompareSettings, events: SearchEvents, resume: str | None = None,
                dry_run: bool = False) -> CompareOutcome:
    """Build, measure and (unless ``dry_run``) train every model; write the outputs."""
    set_threads(settings.search_settings())
    cp = prepare(settings, events)
    run_dir = resolve_run_dir(settings, cp.prepared.identity, resume)
    cp.prepared.run_dir = run_dir
    if problem := upsampling_problem(settings, cp.models):
        if settings.allow_upsampling or dry_run:
            events.message(f"warning: {problem}")
        else:
            raise EffscaleError(problem)
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
    """The table's rows (model, its training results) and each compound model against every
    other model."""

    rows: list[tuple[CompareModel, Row | None]]
    comparisons: list[stats.Comparison]
    seed_std: float
    settings: dict[str, Any]
    seed_dof: int = 0


def summarize(study: optuna.Study, models: list[CompareModel], settings: dict[str, Any]
              ) -> CompareResult:
    collected = collect_rows(study)
    rows = [(m, collected.get(BASE_KEY if m.kind == "base" else m.name)) for m in models]
    done = {m.name: (m, r) for m, r in rows
            if r is not None and r.completed and r.mean_correct is not None}
    noise, dof = stats.pooled_seed_noise([r.accuracies for _, r in done.values()])
    comparisons = []
    seen: set[frozenset[str]] = set()
    for name, (model, row) in done.items():
        if model.kind != "compound":
            continue
        for other, (_, other_row) in done.items():
            pair = frozenset((name, other))
            if other == name or pair in seen:
                continue
            seen.add(pair)
            comparisons.append(stats.compare(
                name, row.mean_correct, other, other_row.mean_correct, noise,
                seeds_a=len(row.accuracies), seeds_b=len(other_row.accuracies),
                noise_dof=dof))
    # Several planned comparisons: Holm-adjusted together, like a search's.
    return CompareResult(rows, stats.holm_family(comparisons) if comparisons else [], noise,
                         settings, dof)


def write_outputs(study: optuna.Study, models: list[CompareModel], settings: dict[str, Any],
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
        "compounds": settings["compounds"], "single": settings["single"],
        "proxy_resolution": settings["proxy_resolution"],
        "proxy_stem_stride": settings["proxy_stem_stride"],
        "method": stats.METHOD, "seed_std_pooled": round(result.seed_std, 5),
        "seed_std_dof": result.seed_dof,
        "models": table_records(result),
        "comparisons": [c.describe() for c in result.comparisons],
        "tool_version": __version__,
    }
    atomic.write_text(run_dir / "compare.yaml", yaml.safe_dump(json.loads(json.dumps(doc)),
                                                                 sort_keys=False))
    from effscale.search.plot import plot_compare

    atomic.write_bytes(run_dir / "compare.png", plot_compare(result))
    return result


def model_record(model: CompareModel) -> dict[str, Any]:
    """A model's numbers: FLOPs and ratio at full size, proxy FLOPs and ratio beside them."""
    c = model.complexity
    return {
        "model": model.name, "kind": model.kind,
        "s": round(model.s, 4) if model.s is not None else None,
        "depth": round(model.depth, 4), "width": round(model.width, 4),
        "resolution_multiplier": round(model.resolution, 4),
        "full_resolution": model.config.resolution, "resolution": model.px,
        "blocks": sum(s.repeats for s in model.config.stages), "params": c.params,
        "flops": c.flops, "flops_ratio": round(model.ratio, 4),
        "target_ratio": round(model.target_ratio, 4),
        "target_error": round(model.target_error, 4), "proxy_flops": model.proxy.flops,
        "proxy_flops_ratio": round(model.proxy_ratio, 4),
        "activations": model.proxy.activations,
    }


def table_records(result: CompareResult) -> list[dict[str, Any]]:
    records = []
    for model, row in result.rows:
        accs = row.accuracies if row is not None else []
        records.append({
            **model_record(model), "seeds": len(accs),
            "val_accuracy": round(sum(accs) / len(accs), 5) if accs else None,
            "val_accuracy_std": round(stats.seed_std(accs), 5) if len(accs) > 1 else None,
            "val_accuracies": " ".join(f"{a:.4f}" for a in accs),
        })
    return records
