"""MobileNetV2."""

from __future__ import annotations

from effscale.model.bases.stages import mbconv
from effscale.model.config import ModelConfig


def mobilenetv2(num_classes: int = 1000) -> ModelConfig:
    """MobileNetV2 (Sandler et al. 2018): inverted residuals, ReLU6, no squeeze-excite."""
    return ModelConfig(
        name="mobilenetv2", family="mobilenetv2", num_classes=num_classes, resolution=224,
        dropout=0.2, drop_path_rate=0.0, activation="relu6",
        stem_channels=32, stem_kernel=3, stem_stride=2, stem_pool=False, head_channels=1280,
        stages=(
            mbconv(1, 3, 1, 1, 16), mbconv(2, 3, 2, 6, 24), mbconv(3, 3, 2, 6, 32),
            mbconv(4, 3, 2, 6, 64), mbconv(3, 3, 1, 6, 96), mbconv(3, 3, 2, 6, 160),
            mbconv(1, 3, 1, 6, 320),
        ),
    )
