"""EfficientNet-B0, the base of the published B0-B7 family."""

from __future__ import annotations

from effscale.model.bases.stages import mbconv
from effscale.model.config import ModelConfig


def efficientnet_b0(num_classes: int = 1000) -> ModelConfig:
    """EfficientNet-B0 as the official code defines it (Tan & Le 2019, Table 1)."""
    return ModelConfig(
        name="b0", family="efficientnet", num_classes=num_classes, resolution=224,
        dropout=0.2, drop_path_rate=0.2, activation="silu",
        stem_channels=32, stem_kernel=3, stem_stride=2, stem_pool=False, head_channels=1280,
        stages=(
            mbconv(1, 3, 1, 1, 16, 0.25), mbconv(2, 3, 2, 6, 24, 0.25),
            mbconv(2, 5, 2, 6, 40, 0.25), mbconv(3, 3, 2, 6, 80, 0.25),
            mbconv(3, 5, 1, 6, 112, 0.25), mbconv(4, 5, 2, 6, 192, 0.25),
            mbconv(1, 3, 1, 6, 320, 0.25),
        ),
    )
