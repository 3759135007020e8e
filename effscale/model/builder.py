"""Config -> ``nn.Module``. The builder reads only the config, never a multiplier."""

from __future__ import annotations

from torch import nn

from effscale.model.blocks import apply_layer_options
from effscale.model.classifier import ClassifierNet
from effscale.model.config import ModelConfig
from effscale.model.unet import UNet

HEADS = {"classifier": ClassifierNet, "unet": UNet}  # one entry per config.HEAD_TYPES


def build_model(config: ModelConfig) -> nn.Module:
    """The model a config describes: a classifier, or a UNet when ``config.head.type`` says so,
    with the config's batch-norm epsilon and momentum and its padding
    (:func:`~effscale.model.blocks.apply_layer_options`)."""
    model = HEADS[config.head.type](config)
    return apply_layer_options(model, config.bn_eps, config.bn_momentum, config.padding)
