"""``effscale compare``: flags -> CompareSettings, results -> a rich table."""

from __future__ import annotations

import signal
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from effscale import render
from effscale.budgets import get_budget
from effscale.cli_search import (
    BUDGET_HELP,
    BudgetName,
    Counter,
    Device,
    RichEvents,
    default_recipe,
)
from effscale.compare import CompareSettings, run_compare
from effscale.config import ScalingRules
from effscale.derive import PAPER_COEFFICIENTS, load_coefficients
from effscale.equal_flops import FAST_A
from effscale.errors import EffscaleError
from effscale.scaling import check_coefficients


class Target(str, Enum):
    compound = "compound"
    nominal = "nominal"


def register(app: typer.Typer) -> None:
    app.command(help=compare.__doc__)(compare)


def compare(
    base: Annotated[str, typer.Option(help="Base network: b0, mobilenetv2 or resnet50.")] = "b0",
    dataset: Annotated[str, typer.Option(
        help="cifar10, synthetic, or a folder with train/<class>/* images.")] = "synthetic",
    data_dir: Annotated[Path | None, typer.Option(
        help="Where cifar10 is looked up / downloaded.")] = None,
    budget: Annotated[BudgetName, typer.Option(help=BUDGET_HELP)] = BudgetName.smoke,
    phi: Annotated[float, typer.Option(
        help="Compound coefficient: target FLOPs ≈ 2^φ × the base (1: ≈2×, 2: ≈4×).")] = 1.0,
    coefficients: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False,
        help="coefficients.yaml from a search (default: the paper's 1.2/1.1/1.15).")] = None,
    fast: Annotated[bool, typer.Option(
        help="Also Dollár et al. 2021 fast scaling: d=s^((1-a)/2), w=s^(a/2), "
             "r=s^((1-a)/4).")] = False,
    fast_a: Annotated[float, typer.Option(help="The a of --fast.")] = FAST_A,
    target: Annotated[Target, typer.Option(
        help="FLOPs the single-dimension models are solved to: the compound model's measured "
             "FLOPs (compound), or 2^φ × the base's (nominal).")] = Target.compound,
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
        help="Build and measure the models, show them and stop.")] = False,
) -> None:
    """Compound scaling against depth-, width- and resolution-only scaling at equal FLOPs.

    Builds the compound-scaled model at φ, and single-dimension models solved (bisection
    over the one multiplier, rounding in place) to its MEASURED FLOPs, which at small proxy
    sizes can be far from 2^φ; the achieved ratios are shown. All are trained under one
    budget (the search's data, recipe and resolution rules) and several seeds, as resumable
    work items. Writes compare.csv, compare.yaml and compare.png.

    Compound vs each: separated when the margin exceeds 2 × sqrt(SE_examples² + SE_seeds²)
    (paired bootstrap over validation examples; pooled seed std × sqrt(1/n_a + 1/n_b)).
    """
    chosen = get_budget(budget.value).override(
        epochs=epochs, train_size=train_size, val_size=val_size, batch_size=batch_size,
        resolution=resolution, repeats=repeats)
    if coefficients is not None:
        loaded = load_coefficients(coefficients)
        coeffs, source = (loaded.alpha, loaded.beta, loaded.gamma), str(coefficients)
    else:
        coeffs, source = PAPER_COEFFICIENTS, "paper (Tan & Le 2019)"
    check_coefficients(*coeffs)
    settings = CompareSettings(
        base=base, dataset=dataset, budget=chosen, recipe=default_recipe(chosen), phi=phi,
        coefficients=coeffs, coefficients_source=source, fast=fast, fast_a=fast_a,
        target=target.value, rules=ScalingRules(resolution_multiple=chosen.resolution_step),
        data_dir=str(data_dir) if data_dir else None, seed=seed, device=device.value,
        counter=counter.value, out=str(out) if out else None, storage=storage, study=study,
        workers=workers, threads=threads)
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


def compare_table(models: list[Any], result: Any) -> Table:
    rows = {m.name: r for m, r in result.rows} if result is not None else {}
    table = Table(title="equal-FLOPs comparison (validation accuracy on the held-out split)",
                  title_justify="left")
    for name in ("model", "depth ×", "width ×", "px", "blocks", "params", "MFLOPs",
                 "FLOPs ×", "vs target", "activations", "val acc", "± std", "seeds"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for m in models:
        row = rows.get(m.name)
        done = row is not None and row.completed
        table.add_row(
            m.name, f"{m.depth:.3f}", f"{m.width:.3f}", str(m.config.resolution),
            str(sum(s.repeats for s in m.config.stages)), f"{m.complexity.params:,}",
            f"{m.complexity.flops / 1e6:.1f}", f"{m.ratio:.2f}",
            "" if m.name == "base" else f"{m.target_error:+.1%}",
            f"{m.complexity.activations:,}", f"{row.mean:.2%}" if done else "",
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
