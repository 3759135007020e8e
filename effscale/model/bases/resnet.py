"""ResNet-50."""

from __future__ import annotations

from effscale.model.bases.stages import bottleneck
from effscale.model.config import ModelConfig


def resnet50(num_classes: int = 1000) -> ModelConfig:
    """ResNet-50 v1.5 (torchvision's): 7x7 stem with max-pool, bottlenecks 3-4-6-3."""
    return ModelConfig(
        name="resnet50", family="resnet", num_classes=num_classes, resolution=224,
        dropout=0.0, drop_path_rate=0.0, activation="relu",
        stem_channels=64, stem_kernel=7, stem_stride=2, stem_pool=True, head_channels=0,
        stages=(bottleneck(3, 1, 256), bottleneck(4, 2, 512), bottleneck(6, 2, 1024),
                bottleneck(3, 2, 2048)),
    )
