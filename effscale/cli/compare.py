"""``effscale compare``: flags -> CompareSettings, results -> a rich table."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from effscale.cli import render
from effscale.cli.search import (
    BUDGET_HELP,
    BudgetName,
    Counter,
    Device,
    RichEvents,
    default_recipe,
)
from effscale.compare.run import PAPER_SET, SINGLE_RULES, CompareSettings, CompoundSet, run_compare
from effscale.errors import EffscaleError
from effscale.experiment.budgets import default_budget, get_budget
from effscale.model.config import ScalingRules
from effscale.scaling.derive import PAPER_COEFFICIENTS, load_coefficients
from effscale.scaling.equal_flops import DIMENSIONS, FAST_A


def register(app: typer.Typer) -> None:
    app.command(help=compare.__doc__)(compare)


def compare(
    base: Annotated[str, typer.Option(help="Base network: b0, mobilenetv2 or resnet50.")] = "b0",
    dataset: Annotated[str, typer.Option(
        help="cifar10, synthetic, or a folder with train/<class>/* images.")] = "synthetic",
    data_dir: Annotated[Path | None, typer.Option(
        help="Where cifar10 is looked up / downloaded.")] = None,
    budget: Annotated[BudgetName | None, typer.Option(
        help="Default: demo for the synthetic set, quick otherwise. " + BUDGET_HELP)] = None,
    phi: Annotated[float, typer.Option(
        help="Compound coefficient: target FLOPs ≈ 2^φ × the base (1: ≈2×, 2: ≈4×).")] = 1.0,
    coefficients: Annotated[list[str] | None, typer.Option(
        help="A coefficients.yaml (from a search) to compare, as PATH or NAME=PATH; repeat "
             "for several sets. A file's model is named NAME, else after the file (its "
             "folder's name for coefficients.yaml). Default: the paper's 1.2/1.1/1.15.")] = None,
    paper: Annotated[bool, typer.Option(
        "--paper", help="Add the paper's 1.2/1.1/1.15 as one more compound model, named "
                        "'paper' (the default when no --coefficients is given). With one "
                        "coefficient set in all, its model is named 'compound'.")] = False,
    rules: Annotated[str, typer.Option(
        "--rules", help="Single-dimension models, a comma list of depth, width, resolution, "
                        "fast; or none.")] = ",".join(DIMENSIONS),
    fast: Annotated[bool, typer.Option(
        help="Also Dollár et al. 2021 fast scaling (same as adding fast to --rules): "
             "d=s^((1-a)/2), w=s^(a/2), r=s^((1-a)/4).")] = False,
    fast_a: Annotated[float, typer.Option(help="The a of --fast.")] = FAST_A,
    allow_upsampling: Annotated[bool, typer.Option(
        help="Let proxies train above the dataset's native size (upsampled pixels).")] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override the budget's epochs.")] = None,
    train_size: Annotated[int | None, typer.Option(min=1, help="Training images.")] = None,
    val_size: Annotated[int | None, typer.Option(min=1, help="Held-out validation images.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=2, help="Batch size.")] = None,
    resolution: Annotated[int | None, typer.Option(min=8, help="Proxy base size in px.")] = None,
    repeats: Annotated[int | None, typer.Option(
        min=1, help="Seeds per model (budget's default).")] = None,
    counter: Annotated[Counter, typer.Option(help="FLOP counter.")] = Counter.fvcore,
    seed: Annotated[int, typer.Option(help="Seed for the split, subset and training.")] = 0,
    device: Annotated[Device, typer.Option(help="auto uses CUDA when present.")] = Device.auto,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on this machine.")] = 1,
    threads: Annotated[int | None, typer.Option(min=1, help="Torch threads per worker.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Run directory (default runs/<time>-compare-<base>-<dataset>).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this run directory.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL.")] = None,
    study: Annotated[str, typer.Option(help="Study name within --storage.")] = "effscale-compare",
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
    dry_run: Annotated[bool, typer.Option(
        help="Build and measure the models, show them (with both FLOPs ratios) and "
             "stop.")] = False,
) -> None:
    """Compound scaling against depth-, width- and resolution-only scaling at equal FLOPs.

    Every model is solved, at FULL size (b0 at 224 px; conv+linear FLOPs), to the same
    target: 2^φ × the base's measured FLOPs. Compound models scale along their coefficients
    (depth α^s, width β^s, resolution γ^s, s solved); single-dimension models along one
    multiplier; rounding is in place and the achieved ratios are shown. Each model is then
    trained as a proxy: same depth and width, input round(budget resolution × its full-size
    resolution ratio), the base's proxy stem stride; the proxies' own FLOPs ratio is shown
    beside the full-size one. Several seeds, resumable work items; writes compare.csv,
    compare.yaml and compare.png.

    Models: one coefficient set -> 'compound'; several -> each by name ('paper' for
    --paper, NAME or the file's name for --coefficients). Each compound model is compared
    with every other model: a 95 % t interval on the pooled seed degrees of freedom (paired
    bootstrap over validation examples plus pooled seed noise), separated only with >= 2
    seeds on both sides and a Holm-adjusted p < 0.05 (see the method in compare.yaml).
    """
    chosen = get_budget(budget.value if budget else default_budget(dataset)).override(
        epochs=epochs, train_size=train_size, val_size=val_size, batch_size=batch_size,
        resolution=resolution, repeats=repeats)
    compounds = coefficient_sets(coefficients or [], paper)
    single = parse_rules(rules, fast)
    settings = CompareSettings(
        base=base, dataset=dataset, budget=chosen, recipe=default_recipe(chosen), phi=phi,
        compounds=compounds, single=single, fast_a=fast_a, rules=ScalingRules(),
        data_dir=str(data_dir) if data_dir else None, seed=seed, device=device.value,
        counter=counter.value, out=str(out) if out else None, storage=storage, study=study,
        workers=workers, threads=threads, allow_upsampling=allow_upsampling)
    events = RichEvents(quiet)
    started = time.monotonic()
    try:
        outcome = run_compare(settings, events, str(resume) if resume else None, dry_run)
    except KeyboardInterrupt:
        events.close()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        render.err.print("interrupted: finished trainings are saved; rerun the same command "
                         "(or use --resume RUN) to continue", markup=False)
        raise typer.Exit(130) from None
    events.close()
    if dry_run:
        render.out.print(compare_table(outcome.models, None))
        render.err.print(f"dry run: {outcome.counts['items']} trainings would run in "
                         f"{outcome.run_dir}", markup=False)
        return
    render.err.print(f"compare finished in {(time.monotonic() - started) / 60:.1f} min",
                     markup=False)
    print_result(outcome)
    if not outcome.complete:
        raise EffscaleError(f"{outcome.run_dir}: {outcome.counts['settled']} of "
                            f"{outcome.counts['items']} trainings settled; rerun to continue", 1)


def coefficient_sets(specs: list[str], paper: bool) -> tuple[CompoundSet, ...]:
    """--coefficients PATH / NAME=PATH (repeatable) and --paper -> named compound sets."""
    sets: list[CompoundSet] = []
    for spec in specs:
        name, path = None, Path(spec)
        if "=" in spec and not path.exists():
            name, _, rest = spec.partition("=")
            path = Path(rest)
            if not name.strip():
                raise EffscaleError(f"--coefficients {spec!r}: empty NAME before '='")
        if not path.is_file():
            raise EffscaleError(f"--coefficients {path}: no such file")
        loaded = load_coefficients(path)
        if name is None:
            name = path.parent.name if path.stem == "coefficients" and path.parent.name \
                else path.stem
        sets.append(CompoundSet(name.strip(), (loaded.alpha, loaded.beta, loaded.gamma),
                                str(path)))
    if paper or not sets:
        sets.append(CompoundSet("paper", PAPER_COEFFICIENTS, PAPER_SET.source))
    if len(sets) == 1:
        return (CompoundSet("compound", sets[0].coefficients, sets[0].source),)
    return tuple(sets)


def parse_rules(text: str, fast: bool) -> tuple[str, ...]:
    """--rules depth,width,resolution[,fast] or none (plus --fast)."""
    names = [] if text.strip().lower() == "none" else \
        [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in names if r not in SINGLE_RULES]
    if unknown or (not names and text.strip().lower() != "none"):
        raise EffscaleError(f"--rules must be a comma list of {', '.join(SINGLE_RULES)}, or "
                            f"none; got {text!r}")
    if fast and "fast" not in names:
        names.append("fast")
    return tuple(dict.fromkeys(names))


def compare_table(models: list[Any], result: Any) -> Table:
    rows = {m.name: r for m, r in result.rows} if result is not None else {}
    target = next((m.target_ratio for m in models), 0.0)
    table = Table(title=f"equal-FLOPs comparison at {target:.2f}× the base's FLOPs (measured "
                        "at full size; validation accuracy on the held-out split)",
                  title_justify="left")
    for name in ("model", "s", "depth ×", "width ×", "full px", "proxy px", "blocks",
                 "params", "GFLOPs full", "FLOPs × full", "vs target", "FLOPs × proxy",
                 "val acc", "± std", "seeds"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for m in models:
        row = rows.get(m.name)
        done = row is not None and row.completed
        table.add_row(
            m.name, f"{m.s:.3f}" if m.s is not None else "", f"{m.depth:.3f}",
            f"{m.width:.3f}", str(m.config.resolution), str(m.px),
            str(sum(s.repeats for s in m.config.stages)), f"{m.complexity.params:,}",
            f"{m.complexity.flops / 1e9:.3f}", f"{m.ratio:.3f}",
            "" if m.kind == "base" else f"{m.target_error:+.1%}", f"{m.proxy_ratio:.2f}",
            f"{row.mean:.2%}" if done else "",
            f"{row.std:.2%}" if done and len(row.accuracies) > 1 else "",
            str(len(row.accuracies)) if row is not None else "0")
    return table


def print_result(outcome: Any) -> None:
    result = outcome.result
    render.out.print(compare_table(outcome.models, result))
    for comparison in result.comparisons:
        render.out.print("  " + comparison.describe(), markup=False, highlight=False)
    if result.seed_std == 0:
        render.out.print("  seed noise not measured (one seed per model): use --repeats 2 or "
                         "more", markup=False, highlight=False)
    render.out.print(f"outputs in {outcome.run_dir}/: settings.yaml compare.csv compare.yaml "
                     "compare.png", markup=False, highlight=False)
