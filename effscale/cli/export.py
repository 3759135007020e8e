"""``effscale export CONFIG_OR_CHECKPOINT --onnx FILE``: the model as ONNX, checked in
onnxruntime against torch (see :mod:`effscale.model.deploy.onnx`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from effscale.cli import options as opt
from effscale.cli import render
from effscale.errors import EffscaleError


def register(app: typer.Typer) -> None:
    app.command(help=export.__doc__)(export)


def export(
    model: Annotated[Path, typer.Argument(
        help="A model config YAML file (random weights) or an effscale checkpoint (.pt from "
             "`effscale weights import` or `effscale train`).")],
    onnx: Annotated[Path, typer.Option(help="ONNX file to write.")],
    opset: Annotated[int | None, typer.Option(
        min=7, help="ONNX opset version.", show_default="torch's exporter's")] = None,
    resolution: opt.MeasuredResolution = None,
    max_diff: Annotated[float, typer.Option(
        min=0.0, help="Fail when onnxruntime's output differs from torch's by more than this "
                      "times max(1, the largest output).")] = 1e-4,
    as_json: opt.AsJson = False,
) -> None:
    """Export a config or checkpoint to ONNX, with a dynamic batch axis, and check it.

    The graph takes `image` (N, 3, PX, PX) float32, normalised as in training, and gives
    `logits`: (N, classes) for a classifier, (N, classes, PX, PX) for an Eff-UNet. It is
    torch's own export (torch.onnx.export, dynamo) at one input size, --resolution (the
    config's by default); any batch. The file is then run in onnxruntime on a random batch
    of 3 and compared with torch: the largest absolute difference is printed, and above
    --max-diff × max(1, the largest output) the command fails (the file stays, to inspect).
    A config file's random weights give tiny outputs; check a checkpoint for a telling
    comparison. Needs the deploy extra: pip install -e ".[deploy]".
    """
    from effscale.experiment.rundir import check_writable_place
    from effscale.model.deploy import onnx as deploy

    if onnx.is_dir():
        raise EffscaleError(f"--onnx {onnx}: is a directory; give a file name")
    check_writable_place(onnx.parent, "--onnx")  # before the export's minutes, in one line
    deploy.require("onnxruntime")
    config, net, weights = deploy.load_model(model)
    px = resolution or config.resolution
    if not as_json:
        render.err.print(f"exporting {config.name} ({config.head.type}, weights {weights}) at "
                         f"{px} px", markup=False, highlight=False)
    size = deploy.export(net, onnx, px, opset)
    checked = deploy.verify(onnx, net, px)
    summary = {"model": str(model), "name": config.name, "head": config.head.type,
               "weights": weights, "onnx": str(onnx), "bytes": size, "opset": opset,
               "resolution": px, "dynamic_axes": {"image": [0], "logits": [0]},
               "onnxruntime": deploy.onnxruntime_version(), "verify_batch": checked.batch,
               "max_abs_diff": checked.max_abs_diff, "max_abs_output": checked.max_abs_output,
               "max_diff": max_diff, "ok": checked.relative <= max_diff}
    if as_json:
        render.out.print_json(json.dumps(summary))
    else:
        render.out.print(
            f"wrote {onnx} ({size / 2**20:.1f} MiB, input image [N, 3, {px}, {px}]); "
            f"onnxruntime {summary['onnxruntime']} vs torch on a batch of {checked.batch}: "
            f"max abs diff {checked.max_abs_diff:.3g} (largest output "
            f"{checked.max_abs_output:.3g})", markup=False, highlight=False)
    if not summary["ok"]:
        raise EffscaleError(f"{onnx}: onnxruntime differs from torch by "
                            f"{checked.max_abs_diff:.3g}, above --max-diff {max_diff:g} × "
                            f"max(1, {checked.max_abs_output:.3g})", 1)
