"""Config -> ``nn.Module``. The builder reads only the config, never a multiplier."""

from __future__ import annotations

from torch import nn

from effscale.model.classifier import ClassifierNet
from effscale.model.config import ModelConfig
from effscale.model.unet import UNet

HEADS = {"classifier": ClassifierNet, "unet": UNet}  # one entry per config.HEAD_TYPES


def build_model(config: ModelConfig) -> nn.Module:
    """The model a config describes: a classifier, or a UNet when ``config.head.type`` says so."""
    return HEADS[config.head.type](config)
