"""``effscale train CONFIG``: one config through the search's own trainer, with a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from effscale.cli import options as opt
from effscale.cli import render
from effscale.datasets.registry import dataset_label
from effscale.errors import EffscaleError
from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.rundir import check_writable_place
from effscale.experiment.settings import RunSettings
from effscale.experiment.single import train_single
from effscale.experiment.workers import interrupt_once, set_threads
from effscale.model.config import load_config
from effscale.train.trainer import DivergedError


def register(app: typer.Typer) -> None:
    app.command(help=train.__doc__)(train)


def train(
    config: opt.ConfigFile,
    dataset: opt.Dataset = "synthetic",
    data_dir: opt.DataDir = None,
    budget: opt.TrainBudget = opt.BudgetName.smoke,
    epochs: opt.Epochs = None,
    train_size: opt.TrainSize = None,
    val_size: opt.ValSize = None,
    batch_size: opt.BatchSize = None,
    resolution: opt.TrainResolution = None,
    seed: opt.Seed = 0,
    device: opt.DeviceOpt = opt.Device.auto,
    threads: opt.TrainThreads = None,
    compile: Annotated[bool, typer.Option(
        "--compile", help="torch.compile the model (inductor; on a 2-core CPU it did not pay at "
                          "32 px).")] = False,
    checkpoint: opt.CheckpointOut = None,
    out: opt.FileOut = None,
    init: opt.InitCheckpoint = None,
    as_json: opt.AsJson = False,
    quiet: opt.Quiet = False,
) -> None:
    """Train one config exactly as `effscale search` trains a candidate, and save a checkpoint.

    Same data split, recipe, seed and budgets (and the same overrides) as the search, so the
    accuracy is comparable with a search's trials. The checkpoint holds the weights and the
    config actually trained; load it with `effscale.load_checkpoint(path)`.
    """
    opt.refuse_file_out(out)
    model_config = load_config(config)
    chosen = get_budget(budget.value).override(
        epochs=epochs, train_size=train_size, val_size=val_size, batch_size=batch_size,
        resolution=resolution)
    settings = RunSettings(
        base=model_config.name, dataset=dataset, budget=chosen,
        recipe=budget_recipe(chosen),
        data_dir=str(data_dir) if data_dir else None, seed=seed, device=device.value,
        threads=threads)
    target = checkpoint or Path(f"{model_config.name}-{dataset_label(dataset)}.pt")
    _check_target(target)
    set_threads(settings)
    view = _View(quiet)
    try:
        with interrupt_once():
            run = train_single(model_config, settings, checkpoint=target,
                               compile_model=compile, message=view.message,
                               progress=view.step, on_epoch=view.epoch, init=init)
    except KeyboardInterrupt:
        render.err.print("interrupted: nothing was saved", markup=False)
        raise typer.Exit(130) from None
    except DivergedError as exc:
        raise EffscaleError(f"{config}: {exc}", 1) from None
    finally:
        view.close()
    result = run.result
    summary = {
        "config": str(config), "name": model_config.name, "dataset": dataset,
        "budget": chosen.name, "device": run.device, "resolution": result.resolution,
        "epochs": result.epochs_run, "batch_size": chosen.batch_size,
        "train_images": len(run.train), "val_images": len(run.val), "seed": seed,
        "val_accuracy": result.val_accuracy,
        "val_accuracy_per_epoch": result.val_accuracy_per_epoch,
        "train_loss_per_epoch": result.train_loss_per_epoch,
        "epoch_seconds": [round(s, 3) for s in result.epoch_seconds],
        "train_seconds": round(result.train_seconds, 3),
        "val_seconds": round(result.val_seconds, 3),
        "images_per_second": round(result.images_per_second, 1),
        "compiled": result.compiled, "compile_seconds": round(result.compile_seconds, 3),
        "precision": result.precision, "checkpoint": str(target),
    }
    if as_json:
        render.print_json(summary)
        return
    render.out.print(_epoch_table(summary))
    render.out.print(f"{model_config.name} @ {result.resolution}px on {dataset}: val acc "
                     f"{result.val_accuracy:.2%} after {result.epochs_run} epoch(s), "
                     f"{result.images_per_second:,.0f} img/s; checkpoint {target}",
                     markup=False, highlight=False)


def _check_target(target: Path) -> None:
    if target.is_dir():
        raise EffscaleError(f"--checkpoint {target}: is a directory; give a file name")
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise EffscaleError(f"--checkpoint {target}: {parent} is not a directory")
    check_writable_place(parent, "--checkpoint")


def _epoch_table(summary: dict) -> Table:
    table = render.data_table(
        f"{summary['name']} @ {summary['resolution']}px, {summary['train_images']} train / "
        f"{summary['val_images']} val images",
        ("epoch", "train loss", "val acc", "seconds", "img/s"))
    batch_images = summary["train_images"] // summary["batch_size"] * summary["batch_size"]
    for i, (loss, acc, secs) in enumerate(zip(summary["train_loss_per_epoch"],
                                              summary["val_accuracy_per_epoch"],
                                              summary["epoch_seconds"], strict=True)):
        table.add_row(str(i + 1), f"{loss:.4f}", f"{acc:.2%}", f"{secs:.1f}",
                      f"{batch_images / secs:,.0f}" if secs else "")
    return table


class _View:
    """A progress bar on a terminal, one line per epoch otherwise, nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task = None
        if not quiet and render.err.is_terminal:
            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=render.err, transient=True)

    def message(self, text: str) -> None:
        if not self.quiet:
            render.err.print(text, markup=False, highlight=False)

    def step(self, epoch: int, epochs: int, step: int, steps: int) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("training", total=epochs * steps)
        self.progress.update(self.task, completed=epoch * steps + step)

    def epoch(self, epoch: int, accuracy: float) -> None:
        if not self.quiet:
            console = self.progress.console if self.progress is not None else render.err
            console.print(f"epoch {epoch}: val acc {accuracy:.2%}", markup=False)

    def close(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.stop()
