"""A toy base network and a toy dataset, added through the registries alone.

Importing this module registers both as ``toy`` (one ``register_base`` and one
``register_dataset`` line at the bottom); nothing in effscale names them.
"""

from __future__ import annotations

import numpy as np

from effscale.datasets.cache import Arrays, in_memory
from effscale.datasets.cifar10 import resize
from effscale.datasets.registry import register_dataset
from effscale.datasets.source import LoadRequest
from effscale.model.bases import register_base
from effscale.model.bases.stages import mbconv
from effscale.model.config import ModelConfig

NATIVE_SIZE = 16
CLASSES = ("top-left", "top-right", "bottom-left", "bottom-right")
SIZES = {"train": 320, "test": 80}
SEED = 20240601  # fixed: the toy set is the same whatever seed the caller passes


def toy_base(num_classes: int = 1000) -> ModelConfig:
    """Two MBConv stages, 16 and 32 channels, at 32 px."""
    return ModelConfig(
        name="toy", family="toy", num_classes=num_classes, resolution=32,
        dropout=0.0, drop_path_rate=0.0, activation="relu",
        stem_channels=8, stem_kernel=3, stem_stride=2, stem_pool=False, head_channels=32,
        stages=(mbconv(1, 3, 2, 1, 16, 0.25), mbconv(2, 3, 2, 4, 32, 0.25)),
    )


def toy_images(split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 3, 16, 16] noise with one bright quadrant (the class), int64 labels."""
    rng = np.random.default_rng([SEED, 0 if split == "train" else 1])
    count = SIZES[split]
    labels = (np.arange(count) % len(CLASSES)).astype(np.int64)
    rng.shuffle(labels)
    images = rng.integers(0, 100, size=(count, 3, NATIVE_SIZE, NATIVE_SIZE), dtype=np.uint8)
    half = NATIVE_SIZE // 2
    for row, label in enumerate(labels):
        y, x = divmod(int(label), 2)
        images[row, :, y * half:(y + 1) * half, x * half:(x + 1) * half] += 120
    return images, labels


def load_toy(request: LoadRequest) -> tuple[Arrays, tuple[str, ...]]:
    images, labels = toy_images(request.split)
    if request.image_size != NATIVE_SIZE:
        images = resize(images, request.image_size)
    return in_memory(images, labels), CLASSES


register_base("toy", toy_base)
register_dataset("toy", load_toy, native_size=NATIVE_SIZE, help="4 classes of 16 px noise")
