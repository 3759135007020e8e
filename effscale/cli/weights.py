"""``effscale weights import SOURCE CONFIG --checkpoint CKPT``: published weights onto an effscale
config, written as an effscale checkpoint (see :mod:`effscale.model.deploy.weights`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from effscale.cli import options as opt
from effscale.cli import render
from effscale.errors import EffscaleError
from effscale.model.config import PADDING, config_from_dict, config_to_dict, load_config

Padding = opt.choices("Padding", PADDING)

weights_app = typer.Typer(
    no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Published weights (torchvision, timm) in effscale models.")


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")


@weights_app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(
        help="A state-dict file: torch.save(model.state_dict()) of a torchvision or timm model "
             "(or a checkpoint dict holding one under 'state_dict' or 'model'), or "
             ".safetensors.")],
    config: opt.ConfigFile,
    checkpoint: opt.ImportedCheckpointOut = None,
    bn_eps: Annotated[float | None, typer.Option(
        min=0.0, help="Batch-norm epsilon the weights were trained with: 1e-3 "
                                     "for torchvision's efficientnet_b5-b7 and timm's tf_*.",
        show_default="the config's, else 1e-5")] = None,
    bn_momentum: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Batch-norm momentum for fine-tuning (PyTorch's convention).",
        show_default="the config's, else 0.1")] = None,
    padding: Annotated[Padding | None, typer.Option(
        help="same: TensorFlow's SAME padding of strided convolutions, for timm's tf_* "
             "weights; symmetric: PyTorch's.", show_default="the config's")] = None,
    as_json: opt.AsJson = False,
    out: opt.FileOut = None,
) -> None:
    """Map a torchvision or timm state dict onto CONFIG's model and save it as a checkpoint.

    Tensors are matched by name when the names are effscale's own, else walked in order
    (parameters and buffers, num_batches_tracked skipped) with every shape checked: the
    first that does not fit is named, in the file and in the model, and nothing is written.
    The config must describe what the weights were trained with; the options below override
    it and are stored in the checkpoint's config. Examples: torchvision efficientnet_b0 onto
    configs/b0.yaml; efficientnet_b7 onto configs/b7.yaml with
    --bn-eps 1e-3; timm tf_efficientnet_b0 onto b0.yaml with --bn-eps 1e-3 --padding same;
    resnet50 and mobilenet_v2 onto configs/resnet50.yaml and configs/mobilenetv2.yaml. The
    checkpoint feeds `effscale train --init`, `effscale segment-demo --init` (the encoder)
    and `effscale export`.
    """
    from effscale.model.deploy.weights import import_weights, save_imported

    opt.refuse_file_out(out)
    if checkpoint is None:
        raise EffscaleError("give the checkpoint file to write: --checkpoint FILE")
    if checkpoint.is_dir():
        raise EffscaleError(f"--checkpoint {checkpoint}: is a directory; give a file name")
    out = checkpoint
    model_config = load_config(config)
    changes = {"bn_eps": bn_eps, "bn_momentum": bn_momentum,
               "padding": padding.value if padding else None}
    model_config = model_config.replace(**{k: v for k, v in changes.items() if v is not None})
    model_config = config_from_dict(config_to_dict(model_config), f"{config} with the options")
    imported = import_weights(source, model_config)
    save_imported(imported, out)
    summary = {"source": str(source), "config": str(config), "name": model_config.name,
               "matched_by": imported.mapping.by, "tensors": len(imported.mapping.pairs),
               "bn_eps": model_config.bn_eps, "bn_momentum": model_config.bn_momentum,
               "padding": model_config.padding, "checkpoint": str(out)}
    if as_json:
        render.out.print_json(json.dumps(summary))
        return
    render.out.print(
        f"{source} -> {model_config.name}: {summary['tensors']} tensors matched by "
        f"{summary['matched_by']} (bn_eps {model_config.bn_eps:g}, padding "
        f"{model_config.padding}); wrote {out}", markup=False, highlight=False)
