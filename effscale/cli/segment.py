"""``effscale segment-demo CONFIG``: train a config as an Eff-UNet on synthetic shapes."""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from effscale.cli import options as opt
from effscale.cli import render
from effscale.model.config import load_config
from effscale.train.segmentation import SHAPES, SegmentationResult, train_segmentation


def register(app: typer.Typer) -> None:
    app.command("segment-demo", help=segment_demo.__doc__)(segment_demo)


def segment_demo(
    config: opt.ConfigFile,
    images: Annotated[int, typer.Option(
        min=8, help="Synthetic images; a quarter are held out for the mIoU.")] = 384,
    size: Annotated[int, typer.Option(
        min=16, help="Image size in px (a multiple of 32 avoids padding).")] = 32,
    num_classes: opt.SegmentClasses = 4,
    epochs: opt.DemoEpochs = 6,
    batch_size: opt.DemoBatchSize = 32,
    lr: Annotated[float, typer.Option(min=1e-6, help="Peak AdamW learning rate.")] = 3e-3,
    seed: opt.Seed = 0,
    random_colours: Annotated[bool, typer.Option(
        "--random-colours", help="Random shape colours: only the shape tells the class "
                                 "(much harder; needs far more epochs).")] = False,
    threads: opt.DemoThreads = None,
    init: opt.InitCheckpoint = None,
    as_json: opt.AsJson = False,
    classes: Annotated[int | None, typer.Option(
        "--classes", min=2, max=len(SHAPES) + 1, hidden=True,
        help="Deprecated spelling of --num-classes.")] = None,
) -> None:
    """Train CONFIG as an Eff-UNet on synthetic shapes and compare its mIoU with a baseline.

    The config's stem and stages become the encoder of a UNet (its own decoder settings are
    kept if it already has a unet head). Training runs from scratch on the CPU (AdamW,
    one-cycle, channels-last); the baseline predicts the training set's most frequent class
    everywhere. Both are measured on held-out images.
    """
    import torch

    if classes is not None:  # the old name (derive's is --num-classes): still accepted
        render.err.print("note: --classes is now --num-classes", markup=False, highlight=False)
        num_classes = classes

    model_config = load_config(config)
    if threads is not None:
        torch.set_num_threads(threads)
    progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
                        console=render.err, transient=True)
    task = progress.add_task("training", total=None, loss="-")

    def step(done: int, total: int, loss: float) -> None:
        progress.update(task, completed=done, total=total, loss=f"{loss:.3f}")

    with progress:
        result = train_segmentation(
            model_config, images=images, size=size, num_classes=num_classes, epochs=epochs,
            batch_size=batch_size, lr=lr, seed=seed, class_colours=not random_colours,
            progress=step, init=init)
    if as_json:
        render.print_json({"config_file": str(config), **result.to_dict()})
        return
    render.out.print(_iou_table(result))
    for line in _summary(result):
        render.out.print(line, markup=False, highlight=False)


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def _iou_table(result: SegmentationResult) -> Table:
    table = render.data_table(
        f"{result.config} as Eff-UNet @ {result.size}px: IoU on {result.val_images} held-out "
        "images", ("class", "Eff-UNet", f"baseline ({result.baseline_class} everywhere)"),
        text={"class"})
    for name, iou, base in zip(result.class_names, result.iou, result.baseline_iou):
        table.add_row(name, _percent(iou), _percent(base))
    table.add_section()
    table.add_row("mIoU", _percent(result.miou), _percent(result.baseline_miou), style="bold")
    return table


def _summary(result: SegmentationResult) -> list[str]:
    return [
        f"mIoU {result.miou:.3f} vs baseline {result.baseline_miou:.3f} "
        f"({result.miou - result.baseline_miou:+.3f}); pixel accuracy "
        f"{result.pixel_accuracy:.1%}",
        f"{result.train_images} training images, {result.epochs} epochs, final loss "
        f"{result.final_loss:.3f}, {result.seconds:.1f} s",
    ]
