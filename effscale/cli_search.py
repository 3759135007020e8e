"""``effscale search`` and ``effscale report``: flags -> SearchSettings, events -> rich."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from effscale import atomic, render
from effscale.budgets import BUDGETS, get_budget
from effscale.candidates import Candidate
from effscale.config import ScalingRules
from effscale.errors import EffscaleError
from effscale.grid import GridSpec
from effscale.search import (
    SearchEvents,
    SearchInterrupted,
    SearchSettings,
    interrupt_once,
    run_search,
)
from effscale.train import Recipe

BUDGET_HELP = "; ".join(f"{b.name}: {b.train_size or 'all'} train images, {b.epochs} epochs, "
                        f"{b.resolution}px, step {b.step} — {b.description}"
                        for b in BUDGETS.values())


class BudgetName(str, Enum):
    smoke = "smoke"
    quick = "quick"
    standard = "standard"
    full = "full"


class Pruner(str, Enum):
    none = "none"
    median = "median"
    halving = "halving"


class Counter(str, Enum):
    fvcore = "fvcore"
    torch = "torch"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class RichEvents(SearchEvents):
    """Live view on a terminal, plain log lines otherwise, nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = render.err.is_terminal and not quiet
        self.progress: Progress | None = None
        self.overall = self.current = None
        self.last_log = 0.0

    def message(self, text: str) -> None:
        if not self.quiet:
            render.err.print(text, markup=False, highlight=False)

    def measuring(self, done: int, total: int) -> None:
        if not self.quiet and (done == total or time.monotonic() - self.last_log > 5):
            self.last_log = time.monotonic()
            render.err.print(f"measured FLOPs of {done}/{total} candidate models", markup=False)

    def feasible(self, candidates: list[Candidate], dropped: list[Candidate],
                 grid_points: int) -> None:
        if self.quiet:
            return
        render.err.print(feasible_table(candidates, dropped, grid_points))

    def _start(self, total: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=render.err, transient=False)
        self.progress.start()
        self.overall = self.progress.add_task("trainings", total=total)
        self.current = self.progress.add_task("current", total=1)

    def trial_start(self, item: str, candidate: Candidate, counts: dict[str, int]) -> None:
        if self.quiet:
            return
        if self.live:
            if self.progress is None:
                self._start(counts["items"])
            self.progress.update(self.overall, completed=counts["settled"], total=counts["items"])
            self.progress.update(self.current, description=f"{item} @{candidate.resolution}px",
                                 completed=0)
        else:
            render.err.print(f"[{counts['settled'] + 1}/{counts['items']}] training {item} "
                             f"({candidate.params:,} params, FLOPs ×{candidate.flops_ratio:.2f}, "
                             f"{candidate.resolution}px)", markup=False)

    def step(self, epoch: int, epochs: int, step: int, steps: int) -> None:
        if self.live and self.progress is not None:
            self.progress.update(self.current, completed=epoch * steps + step,
                                 total=epochs * steps)

    def epoch_end(self, item: str, epoch: int, epochs: int, accuracy: float) -> None:
        if self.quiet:
            return
        text = f"    {item} epoch {epoch}/{epochs}: val acc {accuracy:.2%}"
        if self.live and self.progress is not None:
            self.progress.console.print(text, markup=False)
        else:
            render.err.print(text, markup=False)

    def trial_end(self, item: str, outcome: str, accuracy: float | None, seconds: float) -> None:
        if self.quiet:
            return
        text = f"{item}: {outcome}" + (f", val acc {accuracy:.2%}" if accuracy is not None
                                       else "") + f" ({seconds:.0f} s)"
        if self.live and self.progress is not None:
            self.progress.advance(self.overall)
            self.progress.console.print(text, markup=False)
        else:
            render.err.print(text, markup=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def feasible_table(candidates: list[Candidate], dropped: list[Candidate], grid_points: int
                   ) -> Table:
    table = Table(title=f"feasible set: {len(candidates) - 1} distinct φ=1 models from "
                        f"{grid_points} grid points (+ the base)"
                        + (f"; {len(dropped)} dropped by --flops-tolerance" if dropped else ""),
                  title_justify="left")
    for name in ("candidate", "α", "β", "γ", "px", "params", "MFLOPs", "measured ×",
                 "nominal ×", "same model as"):
        table.add_column(name, justify="left" if name in ("candidate", "same model as")
                         else "right")
    for c in candidates:
        table.add_row(c.key, f"{c.alpha:.2f}", f"{c.beta:.2f}", f"{c.gamma:.3f}",
                      str(c.resolution), f"{c.params:,}", f"{c.flops / 1e6:.1f}",
                      f"{c.flops_ratio:.2f}", f"{c.nominal_ratio:.2f}",
                      ", ".join(c.aliases[:3]) + (" …" if len(c.aliases) > 3 else ""))
    return table


def summary_table(selection: Any, top: int = 8) -> Table:
    table = Table(title="search result (validation accuracy on the held-out split)",
                  title_justify="left")
    for name in ("", "candidate", "α", "β", "γ", "px", "FLOPs ×", "val acc", "± std", "seeds"):
        table.add_column(name, justify="left" if name in ("", "candidate") else "right")
    rows = ([("base", selection.base)] if selection.base and selection.base.completed else [])
    rows += [("winner" if i == 0 else str(i + 1), r) for i, r in enumerate(selection.ranked[:top])]
    for label, row in rows:
        a = row.attrs
        table.add_row(label, row.candidate, f"{a.get('alpha', 1):.2f}", f"{a.get('beta', 1):.2f}",
                      f"{a.get('gamma', 1):.3f}", str(a.get("resolution", "")),
                      f"{float(a.get('flops_ratio', 1)):.2f}", f"{row.mean:.2%}",
                      f"{row.std:.2%}" if len(row.accuracies) > 1 else "",
                      str(len(row.accuracies)))
    return table


def print_selection(selection: Any, run_dir: Path) -> None:
    render.out.print(summary_table(selection))
    w, base, runner = selection.winner, selection.base, selection.runner_up
    if w is not None:
        line = (f"winner: α={w.attrs['alpha']:.2f} β={w.attrs['beta']:.2f} "
                f"γ={w.attrs['gamma']:.3f}  val acc {w.mean:.2%}  measured FLOPs "
                f"×{float(w.attrs['flops_ratio']):.2f} "
                f"(nominal ×{float(w.attrs['nominal_ratio']):.2f})")
        render.out.print(line, markup=False, highlight=False)
        if base is not None and base.completed:
            margin = (w.mean - base.mean) * 100
            render.out.print(f"  {'beats' if margin >= 0 else 'trails'} the base ({base.mean:.2%}) "
                             f"by {abs(margin):.2f} points", markup=False, highlight=False)
        if runner is not None:
            render.out.print(f"  beats the runner-up {runner.candidate} ({runner.mean:.2%}) by "
                             f"{(w.mean - runner.mean) * 100:+.2f} points", markup=False,
                             highlight=False)
    for comparison in selection.comparisons[:3]:
        render.out.print("  " + comparison.describe(), markup=False, highlight=False)
    if selection.stability:
        render.out.print("  " + stability_line(selection.stability), markup=False,
                         highlight=False)
    for row in getattr(selection, "failed", []):
        render.out.print(f"  failed: {row.candidate}: {'; '.join(row.failures)}", markup=False,
                         highlight=False)
    render.out.print(f"verdict: {selection.verdict}", markup=False, highlight=False)
    render.out.print(f"outputs in {run_dir}/: settings.yaml trials.csv coefficients.yaml "
                     "configs/ (phi 0-7) search.png", markup=False, highlight=False)


def stability_line(stability: dict[str, Any]) -> str:
    """One line on how the top-k ranking holds up over seeds."""
    wins = ", ".join(f"{k} {v}" for k, v in stability["wins"].items())
    seeds = len(stability["kendall_tau"])
    return (f"rank stability of the top {len(stability['candidates'])} over seeds: Kendall's τ "
            f"{stability['mean_kendall_tau']:+.2f} (mean of {seeds} seed pair(s)); "
            f"wins per seed: {wins}")


def register(app: typer.Typer) -> None:
    app.command(help=search.__doc__)(search)
    app.command(help=report.__doc__)(report)


def search(
    base: Annotated[str, typer.Option(help="Base network: b0, mobilenetv2 or resnet50.")] = "b0",
    dataset: Annotated[str, typer.Option(
        help="cifar10, synthetic, or a folder with train/<class>/* images.")] = "synthetic",
    data_dir: Annotated[Path | None, typer.Option(
        help="Where cifar10 is looked up / downloaded (default: $EFFSCALE_DATA_DIR or the "
             "effscale cache).")] = None,
    budget: Annotated[BudgetName, typer.Option(help=BUDGET_HELP)] = BudgetName.smoke,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override the budget's epochs.")] = None,
    train_size: Annotated[int | None, typer.Option(min=1, help="Training images.")] = None,
    val_size: Annotated[int | None, typer.Option(min=1, help="Held-out validation images.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=2, help="Batch size.")] = None,
    resolution: Annotated[int | None, typer.Option(
        min=8, help="Proxy base input size in px (candidates use it × γ).")] = None,
    alpha_max: Annotated[float, typer.Option(help="Largest α on the grid.")] = 2.0,
    beta_max: Annotated[float, typer.Option(help="Largest β on the grid.")] = 1.5,
    gamma_max: Annotated[float | None, typer.Option(help="Largest γ on the grid.")] = None,
    step: Annotated[float | None, typer.Option(help="Grid step for α and β.")] = None,
    tolerance: Annotated[float, typer.Option(
        help="Keep triples with |α·β²·γ² − 2| < this (the paper's 1.2/1.1/1.15 is 1.92).")] = 0.1,
    resolution_step: Annotated[int | None, typer.Option(
        min=1, help="γ axis: proxy sizes step by this many px (budget's default).")] = None,
    flops_tolerance: Annotated[float | None, typer.Option(
        help="Drop candidates whose MEASURED FLOPs ratio is not within 2 ± this "
             "(budget's default; a negative value keeps all).")] = None,
    repeats: Annotated[int | None, typer.Option(
        min=1, help="Seeds for the base, to measure seed-to-seed noise.")] = None,
    repeat_top: Annotated[int, typer.Option(
        min=0, help="After the grid, train the N best candidates under the other --repeats "
                    "seeds too (mean ± std, rank stability).")] = 0,
    pruner: Annotated[Pruner | None, typer.Option(
        help="none, median, or halving: every candidate trains 1 epoch, the best third go on "
             "to 3, and so on (the budget's default).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the split, subset and training.")] = 0,
    counter: Annotated[Counter, typer.Option(
        help="FLOP counter for the candidates: fvcore (default) or torch (conv+linear, "
             "meta device; falls back to it anyway when fvcore is missing).")] = Counter.fvcore,
    device: Annotated[Device, typer.Option(help="auto uses CUDA when present.")] = Device.auto,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on this machine.")] = 1,
    threads: Annotated[int | None, typer.Option(
        min=1, help="Torch threads per worker (default: cores ÷ workers).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<time>-<base>-"
                                             "<dataset>).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this run directory.")] = None,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL (e.g. postgresql://...) shared by many machines.")] = None,
    study: Annotated[str, typer.Option(help="Study name within --storage.")] = "effscale",
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
    dry_run: Annotated[bool, typer.Option(
        help="Show the feasible set and stop: nothing is trained or written.")] = False,
) -> None:
    """The φ=1 grid search over α (depth), β (width), γ (resolution) with α·β²·γ² ≈ 2.

    Each feasible candidate is trained briefly on a held-out split of the proxy dataset
    and compared with the base under the same budget. Rerunning the same command resumes
    an unfinished run.

    Verdict: a margin is separated when it exceeds 2 x sqrt(SE_examples² + SE_seeds²), where
    SE_examples comes from a paired bootstrap over validation examples and SE_seeds is the
    pooled seed-to-seed std (base under --repeats, top candidates under --repeat-top) times
    sqrt(1/n_a + 1/n_b); a winner within that noise is reported as tied, with the tied
    candidates named.
    """
    chosen = get_budget(budget.value).override(
        epochs=epochs, train_size=train_size, val_size=val_size, batch_size=batch_size,
        resolution=resolution, step=step, gamma_max=gamma_max, repeats=repeats,
        pruner=pruner.value if pruner else None, resolution_step=resolution_step,
        flops_tolerance=flops_tolerance)
    window = None if chosen.flops_tolerance is None or chosen.flops_tolerance < 0 \
        else chosen.flops_tolerance
    grid = GridSpec(alpha_max=alpha_max, beta_max=beta_max, gamma_max=chosen.gamma_max,
                    step=chosen.step, tolerance=tolerance, base_resolution=chosen.resolution,
                    resolution_step=chosen.resolution_step)
    recipe = default_recipe(chosen)
    settings = SearchSettings(
        base=base, dataset=dataset, budget=chosen, grid=grid, recipe=recipe,
        rules=ScalingRules(), data_dir=str(data_dir) if data_dir else None, seed=seed,
        device=device.value, flops_tolerance=window, counter=counter.value,
        out=str(out) if out else None,
        storage=storage, study=study, workers=workers, threads=threads, repeat_top=repeat_top)
    if repeat_top and chosen.repeats < 2:
        raise typer.BadParameter("needs --repeats 2 or more", param_hint="--repeat-top")
    events = RichEvents(quiet)
    started = time.monotonic()
    try:
        with interrupt_once():  # a second Ctrl-C stops at once
            outcome = run_search(settings, events, str(resume) if resume else None, dry_run)
    except SearchInterrupted as stop:
        events.close()
        counts = stop.counts
        render.err.print(
            f"interrupted: {counts['settled']} of {counts['items']} trainings are saved in "
            f"{stop.run_dir}; the interrupted one will run again. To continue, rerun the same "
            f"command (or add --resume {stop.run_dir})", markup=False, highlight=False)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        events.close()
        render.err.print("interrupted before any training started; nothing to resume",
                         markup=False)
        raise typer.Exit(130) from None
    events.close()
    if dry_run:
        render.err.print(f"dry run: {outcome.counts['items']} trainings would run in "
                         f"{outcome.run_dir}", markup=False)
        return
    minutes = (time.monotonic() - started) / 60
    if not outcome.complete:
        raise EffscaleError(f"{outcome.run_dir}: {outcome.counts['settled']} of "
                            f"{outcome.counts['items']} trainings settled; rerun to continue", 1)
    render.err.print(f"search finished in {minutes:.1f} min", markup=False)
    print_selection(outcome.selection, outcome.run_dir)


def default_recipe(budget: Any) -> Recipe:
    return Recipe(epochs=budget.epochs, batch_size=budget.batch_size)


def report(
    run: Annotated[Path | None, typer.Argument(help="A run directory.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL.")] = None,
    study: Annotated[str, typer.Option(help="Study name.")] = "effscale",
    out: Annotated[Path | None, typer.Option(help="Where to write the outputs (default: the "
                                             "run directory, or ./report-<study>).")] = None,
) -> None:
    """Write a search's outputs (coefficients, trials.csv, configs, plot) from its study, at any
    time, also while it runs."""
    import optuna

    from effscale.report import write_outputs
    from effscale.study import JOURNAL_NAME, open_storage, progress_counts

    if run is None and storage is None:
        raise EffscaleError("give a run directory or --storage URL --study NAME")
    if run is not None and not (run / "settings.yaml").is_file():
        raise EffscaleError(f"{run}: not an effscale run directory (no settings.yaml)")
    if run is not None and storage is None and not (run / JOURNAL_NAME).is_file():
        raise EffscaleError(f"{run}: its study is not in the run directory (no {JOURNAL_NAME}); "
                            "give the search's --storage URL and --study NAME")
    target = out or run or Path(f"report-{study}")
    backend = open_storage(storage, run or target, render.err.print)
    try:
        loaded = optuna.load_study(study_name=study, storage=backend)
    except KeyError:
        raise EffscaleError(f"no study named {study!r} in that storage") from None
    if "settings" not in loaded.user_attrs:
        raise EffscaleError(f"study {study!r} was not written by effscale search")
    atomic.remove_stray_temps(target)
    atomic.remove_stray_temps(target / "configs")
    counts = progress_counts(loaded)
    selection = write_outputs(loaded, target)
    render.err.print(f"{counts['settled']} of {counts['items']} trainings settled "
                     f"({counts['running']} running)", markup=False)
    print_selection(selection, target)
