"""``effscale flops CONFIG``: parameters, FLOPs and activations of a config, per stage."""

from __future__ import annotations

import typer

from effscale.cli import options as opt
from effscale.cli import render
from effscale.model.config import ModelConfig, load_config
from effscale.model.flops import count_flops
from effscale.model.unet import output_stride


def register(app: typer.Typer) -> None:
    app.command(help=flops.__doc__)(flops)


def flops(
    config: opt.ConfigFile,
    resolution: opt.MeasuredResolution = None,
    counter: opt.CounterOpt = opt.Counter.fvcore,
    as_json: opt.AsJson = False,
) -> None:
    """Parameters, FLOPs and activations of a config, per stage, measured at batch 1.

    FLOPs are multiply-adds (one multiply-add = one FLOP, as in the EfficientNet paper). The
    total counts every op fvcore knows (convs, linear, batch norm, pooling); the conv+linear
    part is what published figures quote.
    """
    model_config = load_config(config)
    # a spinner on a terminal: B7 at 600 px takes tens of seconds to trace
    with render.err.status(f"counting {model_config.name}'s FLOPs at "
                           f"{resolution or model_config.resolution} px ({counter.value})"):
        report = count_flops(model_config, resolution, counter.value)
    if report.note:
        render.err.print(f"note: {report.note}", markup=False)
    if model_config.head.type == "unet":
        _unet_padding_note(model_config, report.resolution)
    if as_json:
        render.print_json(report.to_dict())
        return
    title = f"{config} — {model_config.name} @ {report.resolution}px, " \
            f"{model_config.num_classes} classes"
    render.out.print(render.complexity_table(title, report))
    for line in render.complexity_summary(report):
        render.out.print(line, markup=False, highlight=False)


def _unet_padding_note(config: ModelConfig, resolution: int) -> None:

    stride = output_stride(config)
    if resolution % stride:
        padded = -(-resolution // stride) * stride
        render.err.print(f"note: the UNet pads {resolution} px inputs to {padded} px (a "
                         f"multiple of its output stride {stride}); FLOPs are those of "
                         f"{padded} px", markup=False)
