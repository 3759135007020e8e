"""The base networks that compound scaling starts from, as plain config data."""

from __future__ import annotations

from effscale.errors import EffscaleError
from effscale.model.config import ModelConfig, Stage


def _mb(repeats: int, kernel: int, stride: int, expand: float, channels: int,
        se_ratio: float) -> Stage:
    return Stage(block="mbconv", repeats=repeats, kernel=kernel, stride=stride, expand=expand,
                 channels=channels, se_ratio=se_ratio)


def efficientnet_b0(num_classes: int = 1000) -> ModelConfig:
    """EfficientNet-B0 as the official code defines it (Tan & Le 2019, Table 1)."""
    return ModelConfig(
        name="b0", family="efficientnet", num_classes=num_classes, resolution=224,
        dropout=0.2, drop_path_rate=0.2, activation="silu",
        stem_channels=32, stem_kernel=3, stem_stride=2, stem_pool=False, head_channels=1280,
        stages=(
            _mb(1, 3, 1, 1, 16, 0.25), _mb(2, 3, 2, 6, 24, 0.25), _mb(2, 5, 2, 6, 40, 0.25),
            _mb(3, 3, 2, 6, 80, 0.25), _mb(3, 5, 1, 6, 112, 0.25), _mb(4, 5, 2, 6, 192, 0.25),
            _mb(1, 3, 1, 6, 320, 0.25),
        ),
    )


def mobilenetv2(num_classes: int = 1000) -> ModelConfig:
    """MobileNetV2 (Sandler et al. 2018): inverted residuals, ReLU6, no squeeze-excite."""
    return ModelConfig(
        name="mobilenetv2", family="mobilenetv2", num_classes=num_classes, resolution=224,
        dropout=0.2, drop_path_rate=0.0, activation="relu6",
        stem_channels=32, stem_kernel=3, stem_stride=2, stem_pool=False, head_channels=1280,
        stages=(
            _mb(1, 3, 1, 1, 16, 0), _mb(2, 3, 2, 6, 24, 0), _mb(3, 3, 2, 6, 32, 0),
            _mb(4, 3, 2, 6, 64, 0), _mb(3, 3, 1, 6, 96, 0), _mb(3, 3, 2, 6, 160, 0),
            _mb(1, 3, 1, 6, 320, 0),
        ),
    )


def resnet50(num_classes: int = 1000) -> ModelConfig:
    """ResNet-50 v1.5 (torchvision's): 7x7 stem with max-pool, bottlenecks 3-4-6-3."""

    def stage(repeats: int, stride: int, channels: int) -> Stage:
        return Stage(block="bottleneck", repeats=repeats, kernel=3, stride=stride, expand=4,
                     channels=channels, se_ratio=0.0)

    return ModelConfig(
        name="resnet50", family="resnet", num_classes=num_classes, resolution=224,
        dropout=0.0, drop_path_rate=0.0, activation="relu",
        stem_channels=64, stem_kernel=7, stem_stride=2, stem_pool=True, head_channels=0,
        stages=(stage(3, 1, 256), stage(4, 2, 512), stage(6, 2, 1024), stage(3, 2, 2048)),
    )


BASES = {"b0": efficientnet_b0, "mobilenetv2": mobilenetv2, "resnet50": resnet50}


def get_base(name: str, num_classes: int = 1000) -> ModelConfig:
    """The named base config; an unknown name's error lists the valid ones."""
    if name not in BASES:
        raise EffscaleError(f"unknown base {name!r} (valid: {', '.join(BASES)})")
    return BASES[name](num_classes)
