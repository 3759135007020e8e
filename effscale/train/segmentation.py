"""A synthetic segmentation task (shapes on backgrounds) and a short CPU training run.

It shows that an Eff-UNet's decoder *trains*, not just runs: :func:`train_segmentation`
reports the validation mIoU next to the trivial baseline that predicts the training set's
most frequent class everywhere.

By default each shape class has its own hue band on a greyish background, so that a run of a
minute on two CPU cores learns it: the outlines must still come back at full resolution from
stride-32 features through the decoder and its skips. With ``class_colours=False`` colours are
random and only the shape tells the class, a task that needs far longer training.
"""

from __future__ import annotations

import colorsys
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from effscale.errors import EffscaleError
from effscale.model.builder import build_model
from effscale.model.config import Head, ModelConfig

SHAPES = ("circle", "square", "triangle", "ring")
# Progress callback: (step, total_steps, training loss of the step).
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class ShapesDataset:
    """``images``: ``(N, 3, S, S)`` float32, roughly zero-mean; ``masks``: ``(N, S, S)`` int64
    with 0 for background and ``i`` for ``class_names[i]``."""

    images: torch.Tensor
    masks: torch.Tensor
    class_names: tuple[str, ...]


def _shape_mask(kind: str, ys: np.ndarray, xs: np.ndarray, cy: float, cx: float,
                r: float) -> np.ndarray:
    dist2 = (ys - cy) ** 2 + (xs - cx) ** 2
    if kind == "circle":
        return dist2 <= r * r
    if kind == "square":
        side = 0.8 * r  # half side; about the circle's area
        return (np.abs(ys - cy) <= side) & (np.abs(xs - cx) <= side)
    if kind == "triangle":  # upright equilateral, apex at cy - r, base at cy + r/2
        return (ys >= cy - r) & (ys <= cy + r / 2) & (np.abs(xs - cx) <= (ys - cy + r) / 3**0.5)
    return (dist2 <= r * r) & (dist2 >= (0.55 * r) ** 2)  # ring


def _hsv(rng: np.random.Generator, hue: float, saturation: tuple[float, float],
         value: tuple[float, float]) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(*saturation), rng.uniform(*value))
    return np.array(rgb, dtype=np.float32).reshape(3, 1)


def _colour(rng: np.random.Generator, label: int, num_classes: int, class_colours: bool,
            behind: np.ndarray) -> np.ndarray:
    if class_colours:  # hue bands a quarter turn apart at most, +-0.04 jitter
        hue = (label - 1) / (num_classes - 1) + rng.uniform(-0.04, 0.04)
        return _hsv(rng, hue, (0.6, 1.0), (0.55, 1.0))
    colour = rng.uniform(0, 1, (3, 1)).astype(np.float32)
    while np.abs(colour[:, 0] - behind).max() < 0.3:  # keep some contrast with what is behind
        colour = rng.uniform(0, 1, (3, 1)).astype(np.float32)
    return colour


def _draw(rng: np.random.Generator, size: int, num_classes: int,
          class_colours: bool) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    # Background: a gradient between two colours in a random direction (greyish when the
    # classes own the saturated hues), plus noise.
    angle = rng.uniform(0, 2 * math.pi)
    ramp = ((xs * math.cos(angle) + ys * math.sin(angle)) / size + 1) / 2
    if class_colours:
        low, high = (_hsv(rng, rng.uniform(0, 1), (0.0, 0.25), (0.15, 0.9)).reshape(3, 1, 1)
                     for _ in range(2))
    else:
        low, high = rng.uniform(0, 1, (2, 3, 1, 1)).astype(np.float32)
    image = low + (high - low) * ramp
    mask = np.zeros((size, size), dtype=np.int64)
    for _ in range(rng.integers(1, 4)):
        label = int(rng.integers(1, num_classes))
        r = rng.uniform(0.12, 0.24) * size
        cy, cx = rng.uniform(r * 0.6, size - r * 0.6, 2)
        region = _shape_mask(SHAPES[label - 1], ys, xs, cy, cx, r)
        colour = _colour(rng, label, num_classes, class_colours, image[:, int(cy), int(cx)])
        image[:, region] = colour
        mask[region] = label
    image += rng.normal(0, 0.04, image.shape).astype(np.float32)
    return image, mask


def make_shapes_dataset(n: int, size: int = 32, num_classes: int = 4, seed: int = 0,
                        class_colours: bool = True) -> ShapesDataset:
    """``n`` images of 1-3 random shapes (circle, square, triangle, ring: the first
    ``num_classes - 1`` of them) on noisy gradient backgrounds; later shapes occlude earlier
    ones. Colours follow the class (see the module docstring) unless ``class_colours`` is off.
    Deterministic for a given ``seed``."""
    if n < 1:
        raise EffscaleError(f"n must be >= 1, got {n}")
    if size < 16:
        raise EffscaleError(f"size must be >= 16 pixels, got {size}")
    if not 2 <= num_classes <= len(SHAPES) + 1:
        raise EffscaleError(f"num_classes must be in [2, {len(SHAPES) + 1}] (background plus "
                            f"{', '.join(SHAPES)}), got {num_classes}")
    rng = np.random.default_rng(seed)
    pairs = [_draw(rng, size, num_classes, class_colours) for _ in range(n)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs]))
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return ShapesDataset((images - 0.5) / 0.3, masks, ("background", *SHAPES[:num_classes - 1]))


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(num_classes, num_classes)`` pixel counts; rows are targets, columns predictions."""
    index = target.reshape(-1) * num_classes + pred.reshape(-1)
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(confusion: torch.Tensor) -> tuple[list[float], float]:
    """Per-class IoU (``nan`` for a class in neither prediction nor target) and their mean
    over the other classes."""
    confusion = confusion.double()
    hits = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - hits
    iou = [float(h / u) if u > 0 else math.nan for h, u in zip(hits, union)]
    present = [v for v in iou if not math.isnan(v)]
    return iou, sum(present) / len(present) if present else math.nan


def mean_iou(pred: torch.Tensor, target: torch.Tensor,
             num_classes: int) -> tuple[list[float], float]:
    """IoU per class and mIoU of integer label maps, counted over all pixels together."""
    return iou_from_confusion(confusion_matrix(pred, target, num_classes))


@dataclass(frozen=True)
class SegmentationResult:
    """What :func:`train_segmentation` measured on the held-out images."""

    config: str
    class_names: tuple[str, ...]
    iou: tuple[float, ...]
    miou: float
    baseline_class: str
    baseline_iou: tuple[float, ...]
    baseline_miou: float
    pixel_accuracy: float
    train_images: int
    val_images: int
    size: int
    epochs: int
    final_loss: float
    seconds: float

    def to_dict(self) -> dict:
        data = asdict(self)
        # JSON has no NaN: a class absent from the validation set reads as null.
        for key in ("iou", "baseline_iou"):
            data[key] = [None if math.isnan(v) else v for v in data[key]]
        return data


def segmentation_config(config: ModelConfig, num_classes: int) -> ModelConfig:
    """``config`` as a UNet with ``num_classes`` outputs (its decoder settings kept if it
    already is one), without stochastic depth, which only slows a short run down."""
    head = config.head if config.head.type == "unet" else Head(type="unet")
    return config.replace(head=head, num_classes=num_classes, drop_path_rate=0.0)


def _predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([
            model(images[i:i + batch_size].contiguous(memory_format=torch.channels_last))
            .argmax(1) for i in range(0, len(images), batch_size)
        ])


def _fit(model: torch.nn.Module, data: ShapesDataset, epochs: int, batch_size: int, lr: float,
         progress: Progress | None) -> float:
    # A last batch of one is skipped: batch norm needs two samples.
    steps_per_epoch = len(data.images) // batch_size + (len(data.images) % batch_size >= 2)
    total = epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=total,
                                                   pct_start=0.15)
    step, loss_value = 0, math.nan
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data.images))
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            if len(batch) < 2:
                continue
            images = data.images[batch].contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(images), data.masks[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step, loss_value = step + 1, float(loss.detach())
            if progress is not None:
                progress(step, total, loss_value)
    return loss_value


def train_segmentation(
    config: ModelConfig, *, images: int = 384, size: int = 32, num_classes: int = 4,
    epochs: int = 6, batch_size: int = 32, lr: float = 3e-3, val_fraction: float = 0.25,
    seed: int = 0, class_colours: bool = True, progress: Progress | None = None,
    init: Path | None = None,
) -> SegmentationResult:
    """Train ``config`` as a UNet from scratch on :func:`make_shapes_dataset` and measure
    mIoU on held-out images against predicting the training set's majority class.

    AdamW with a one-cycle schedule, channels-last, cross-entropy. Runs under its own seed
    without changing the caller's random state. ``init``: an effscale checkpoint (a
    classifier's or a UNet's) whose stem and stages start the encoder.
    """
    if not 0 < val_fraction < 1:
        raise EffscaleError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(1, round(images * val_fraction))
    if images - n_val < 2:
        raise EffscaleError(f"images must leave at least 2 for training, got {images}")
    start = time.perf_counter()
    data = make_shapes_dataset(images, size, num_classes, seed, class_colours)
    train = ShapesDataset(data.images[n_val:], data.masks[n_val:], data.class_names)
    seg_config = segmentation_config(config, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(seg_config)
        if init is not None:
            from effscale.model.deploy.weights import load_init

            load_init(model, init, seg_config)
        model = model.to(memory_format=torch.channels_last)
        final_loss = _fit(model, train, epochs, batch_size, lr, progress)
    pred = _predict(model, data.images[:n_val], batch_size)
    target = data.masks[:n_val]
    confusion = confusion_matrix(pred, target, num_classes)
    iou, miou = iou_from_confusion(confusion)
    majority = int(torch.bincount(train.masks.reshape(-1), minlength=num_classes).argmax())
    base_iou, base_miou = mean_iou(torch.full_like(target, majority), target, num_classes)
    return SegmentationResult(
        config=config.name, class_names=data.class_names, iou=tuple(iou), miou=miou,
        baseline_class=data.class_names[majority], baseline_iou=tuple(base_iou),
        baseline_miou=base_miou,
        pixel_accuracy=float(confusion.diagonal().sum() / confusion.sum()),
        train_images=len(train.images), val_images=n_val, size=size, epochs=epochs,
        final_loss=final_loss, seconds=time.perf_counter() - start,
    )
