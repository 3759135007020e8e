"""The classification head over a backbone: the network EfficientNet's papers measure."""

from __future__ import annotations

import torch
from torch import nn

from effscale.model.backbone import Backbone, init_weights
from effscale.model.blocks import ACTIVATION_LAYERS, ConvBNAct
from effscale.model.config import ModelConfig


class ClassifierNet(nn.Module):
    """Backbone, an optional 1x1 head conv, global pooling, dropout and a linear classifier."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = Backbone(config)
        act = ACTIVATION_LAYERS[config.activation]
        width = self.backbone.out_channels
        if config.head_channels:
            self.head = ConvBNAct(width, config.head_channels, 1, act=act)
            width = config.head_channels
        else:
            self.head = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(width, config.num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.backbone(x))).flatten(1)
        return self.classifier(self.dropout(x))
