"""The negative control: a generated set where resolution cannot pay and capacity can.

Every image holds three soft blobs on a background of a random colour: one near the top,
one in the middle and one near the bottom, each in one of five colours (red, green, blue,
yellow, magenta, jittered per image). The class is the ordered pair (top colour, bottom
colour) of two different colours: 20 classes; the middle blob's colour is random and says
nothing. No single feature names the class: the colours present leave the order open and
the middle blob adds a colour that is not part of it, so the decision binds each colour to
its place, which is work for the network's width and depth, not for its pixels (mean colour,
nearest centroid, is at chance: 5.9 % for 5 %).

The blobs are Gaussian (sigma 0.07-0.09 image widths: 1.4-1.8 px at a 20 px input, 1.0 px
and more at 14 px), so the images hold no detail finer than a 14 px input keeps: a larger
proxy input is the smaller one interpolated (to within 1.3 grey levels on average, mostly
pixel noise, from 20 to 26 px), where the positive control's fine textures
(:mod:`effscale.datasets.synthetic`) differ by 13.6 (``tests/datasets/
test_synthetic_capacity.py``). A search on it should find no resolution-led direction above
the noise (``effscale search --dataset synthetic-capacity``). Every class is its own mirror
image (the horizontal flips of training keep the vertical order), and the 32 px native size
matches CIFAR-10's, so a search sees the same proxy sizes as on it.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from effscale.datasets.cache import Arrays, in_memory
from effscale.datasets.source import LoadRequest

COLOURS = {"red": (215, 45, 45), "green": (45, 185, 55), "blue": (45, 65, 215),
           "yellow": (220, 205, 40), "magenta": (200, 50, 200)}
PAIRS = tuple(permutations(COLOURS, 2))  # (upper, lower), two different colours
CLASSES = tuple(f"{upper}-over-{lower}" for upper, lower in PAIRS)
SIZES = {"train": 6_000, "test": 1_200}  # 300 training images per class
SIGMA = (0.07, 0.09)  # blob sigma in image widths: no detail a 14 px input loses
UPPER, MIDDLE, LOWER = (0.12, 0.28), (0.45, 0.55), (0.72, 0.88)  # the blobs' centre rows
NATIVE_SIZE = 32
_SPLIT_STREAM = {"train": 0, "test": 1}


def load_source(request: LoadRequest) -> tuple[Arrays, tuple[str, ...]]:
    """The registry's loader: the ``request.split`` drawn at ``request.image_size`` from
    ``request.seed``, in memory (not cached)."""
    images, labels = generate(request.split, request.image_size, request.seed)
    return in_memory(images, labels), CLASSES


def generate(split: str, image_size: int, seed: int,
             count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [count, 3, S, S] and int64 labels [count], equally many per class
    (``count`` defaults to 6,000 for train and 1,200 for test)."""
    count = SIZES[split] if count is None else count
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split], 7])
    labels = rng.permutation(np.arange(count) % len(CLASSES)).astype(np.int64)
    palette = np.array(list(COLOURS.values()), dtype=np.float32)  # [4, 3]
    index = {name: i for i, name in enumerate(COLOURS)}
    upper = np.array([index[PAIRS[k][0]] for k in labels])
    lower = np.array([index[PAIRS[k][1]] for k in labels])
    grid = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size
    x, y = grid[None, None, :], grid[None, :, None]
    images = np.broadcast_to(rng.uniform(60, 190, (count, 3, 1, 1)),
                             (count, 3, image_size, image_size)).astype(np.float32)
    middle = rng.integers(0, len(COLOURS), count)  # a distractor: any colour, no class
    for kinds, rows in ((middle, MIDDLE), (upper, UPPER), (lower, LOWER)):
        cx = rng.uniform(0.22, 0.78, (count, 1, 1)).astype(np.float32)
        cy = rng.uniform(*rows, (count, 1, 1)).astype(np.float32)
        sigma = rng.uniform(*SIGMA, (count, 1, 1)).astype(np.float32)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))  # [n, S, S]
        colour = palette[kinds] + rng.uniform(-35, 35, (count, 3))  # [n, 3]
        images += blob[:, None] * (colour[:, :, None, None] - images)
    images += rng.normal(0, 1, images.shape[:1] + images.shape[2:])[:, None] \
        * rng.uniform(2, 5, (count, 1, 1, 1))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels
