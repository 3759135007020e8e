"""The part every head shares: stem and stages, and the weight initialisation."""

from __future__ import annotations

import torch
from torch import nn

from effscale.model.blocks import ACTIVATION_LAYERS, BLOCK_LAYERS, ConvBNAct
from effscale.model.config import ModelConfig


class Backbone(nn.Module):
    """Stem and stages; :meth:`forward_features` returns the output of the stem and each stage."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        act = ACTIVATION_LAYERS[config.activation]
        stem: list[nn.Module] = [
            ConvBNAct(3, config.stem_channels, config.stem_kernel, config.stem_stride, act=act)
        ]
        if config.stem_pool:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        total = sum(stage.repeats for stage in config.stages)
        channels, index = config.stem_channels, 0
        stages = []
        for stage in config.stages:
            blocks = []
            for repeat in range(stage.repeats):
                # Stochastic depth rises linearly with the block's index over the whole network.
                blocks.append(BLOCK_LAYERS[stage.block](
                    channels, stage.channels, stage.kernel, stage.stride if repeat == 0 else 1,
                    stage.expand, stage.se_ratio, act, config.drop_path_rate * index / total,
                ))
                channels, index = stage.channels, index + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.out_channels = channels

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.stem(x)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


def init_weights(model: nn.Module) -> None:
    """He init for convs, identity BN, and a fan-in uniform classifier.

    The classifier bound is ``1/sqrt(fan_in)``: torchvision's ``1/sqrt(num_classes)`` is
    +-0.32 for 10 classes, large enough to stall short from-scratch proxy training.
    A model on the meta device (built to count its FLOPs) holds no values: it is left as is.
    """
    if any(p.is_meta for p in model.parameters()):
        return
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / module.in_features**0.5
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)
