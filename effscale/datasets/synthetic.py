"""A tiny generated dataset for smoke tests and demos: no files, deterministic, quick to learn.

Six classes, each drawn at a random position, size, period and phase in random foreground and
background colours with random contrast and a little Gaussian noise:

- three **fine textures** (vertical stripes, horizontal stripes, a checkerboard) whose period,
  2.6-3.0 px at the native 32 px, lies beyond what a 20 px input can resolve (under 2 px
  there) and within what a 26 px input can (2.1-2.5 px): on this set resolution pays, so a
  search has a real difference to find;
- three **coarse shapes** (a disc, a square, a ring) that any input size shows.

Every class is its own mirror image, so the training's horizontal flips never turn one class
into another. The colours carry no class information, so mean colour does not separate the
classes; the local structure does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from effscale.datasets.cache import Arrays, in_memory
from effscale.datasets.source import LoadRequest

CLASSES = ("stripes-vertical", "stripes-horizontal", "checkerboard", "disc", "square", "ring")
FINE_CLASSES = CLASSES[:3]
# 700 training images per class: a run holds out up to a fifth (840) for validation.
SIZES = {"train": 4_200, "test": 1_200}
# The fine textures' period, in image widths: 2.6-3.0 px at 32 px, 1.6-1.9 px at 20 px.
FINE_PERIOD = (0.08, 0.095)
# Drawn at any size; the proxy treats 32 px (CIFAR-10's) as native, so a search on it sees
# the same sizes as one on CIFAR-10.
NATIVE_SIZE = 32
_SPLIT_STREAM = {"train": 0, "test": 1}  # train and test draw from different random streams

# A pattern maps (x, y, per-image parameters) to a signed distance from its edge, in image
# widths, positive inside; drawing it as clip(distance * size + 0.5) antialiases at any size.
Pattern = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def load_source(request: LoadRequest) -> tuple[Arrays, tuple[str, ...]]:
    """The registry's loader: the ``request.split`` drawn at ``request.image_size`` from
    ``request.seed``, in memory (not cached)."""
    images, labels = generate(request.split, request.image_size, request.seed)
    return in_memory(images, labels), CLASSES


def generate(split: str, image_size: int, seed: int,
             count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [count, 3, S, S] and int64 labels [count], equally many per class
    (``count`` defaults to 4,200 for train and 1,200 for test)."""
    count = SIZES[split] if count is None else count
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    labels = rng.permutation(np.arange(count) % len(CLASSES)).astype(np.int64)
    grid = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size
    x, y = grid[None, None, :], grid[None, :, None]
    masks = np.empty((count, image_size, image_size), dtype=np.float32)
    for label, pattern in enumerate(_PATTERNS):
        rows = np.flatnonzero(labels == label)
        distance = pattern(x, y, _Params(rng, len(rows)))
        masks[rows] = np.clip(distance * image_size + 0.5, 0, 1)
    return _paint(masks, rng), labels


class _Params:
    """Draws one value per image, shaped to broadcast against [n, H, W] coordinates."""

    def __init__(self, rng: np.random.Generator, count: int) -> None:
        self.rng, self.count = rng, count

    def uniform(self, low: float, high: float) -> np.ndarray:
        return self.rng.uniform(low, high, (self.count, 1, 1)).astype(np.float32)


def _paint(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    count = len(masks)
    background = rng.uniform(0, 255, (count, 3, 1, 1))
    # Foreground differs by 100-180 per channel, toward whichever side has room.
    step = rng.uniform(100, 180, (count, 3, 1, 1)) * np.where(background > 127.5, -1, 1)
    noise = rng.normal(0, 1, masks.shape)[:, None] * rng.uniform(2, 6, (count, 1, 1, 1))
    images = background + masks[:, None] * step + noise
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def _stripes(degrees: float) -> Pattern:
    def pattern(x: np.ndarray, y: np.ndarray, p: _Params) -> np.ndarray:
        angle = np.deg2rad(degrees + p.uniform(-5, 5))
        period, phase = p.uniform(*FINE_PERIOD), p.uniform(0, 2 * np.pi)
        along = x * np.cos(angle) + y * np.sin(angle)
        return period / (2 * np.pi) * np.sin(2 * np.pi * along / period + phase)
    return pattern


def _checkerboard(x: np.ndarray, y: np.ndarray, p: _Params) -> np.ndarray:
    cell = p.uniform(FINE_PERIOD[0] / 2, FINE_PERIOD[1] / 2)
    wave = np.pi / cell
    return (cell / np.pi * np.sin(wave * (x + p.uniform(0, 1)))
            * np.sin(wave * (y + p.uniform(0, 1))))


def _centred(x: np.ndarray, y: np.ndarray, p: _Params) -> tuple[np.ndarray, np.ndarray]:
    return x - p.uniform(0.3, 0.7), y - p.uniform(0.3, 0.7)


def _disc(x: np.ndarray, y: np.ndarray, p: _Params) -> np.ndarray:
    dx, dy = _centred(x, y, p)
    return p.uniform(0.15, 0.3) - np.hypot(dx, dy)


def _square(x: np.ndarray, y: np.ndarray, p: _Params) -> np.ndarray:
    dx, dy = _centred(x, y, p)
    return p.uniform(0.13, 0.27) - np.maximum(abs(dx), abs(dy))


def _ring(x: np.ndarray, y: np.ndarray, p: _Params) -> np.ndarray:
    dx, dy = _centred(x, y, p)
    return p.uniform(0.03, 0.05) - abs(np.hypot(dx, dy) - p.uniform(0.15, 0.3))


_PATTERNS: tuple[Pattern, ...] = (_stripes(0), _stripes(90), _checkerboard, _disc, _square, _ring)
