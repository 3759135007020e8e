"""Datasets for the proxy search: the registered sources (CIFAR-10, a synthetic set, any added
with :func:`effscale.datasets.registry.register_dataset`) and image folders, as uint8 tensors.

    data = load_dataset("cifar10")                 # 50,000 x 3 x 32 x 32, decoded once, cached
    train, val = holdout_split(data, 5_000, seed=0)

Decoded arrays are cached under ``paths.cache_dir()/datasets`` and memory-mapped on later
loads, so worker processes share one copy of the pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from effscale.datasets import folder
from effscale.datasets.cache import Arrays, shared_rows, to_tensor
from effscale.datasets.registry import dataset_names, get_dataset
from effscale.datasets.source import LoadRequest
from effscale.errors import EffscaleError

# Registered sources have train and test; image folders train (train/) and val (val/).
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageData:
    """Images and labels of one split, with the class names and an identity for the content.

    ``fingerprint`` is a short hex digest of the exact content (pixels, labels and order):
    stable across runs and machines, different whenever the content differs.

    Note:
        ``images`` may be a view of a read-only memory map shared with other processes.
        Never modify it in place (``images.mul_(...)``, ``images[0] = ...``): that crashes
        the process. Operations that return new tensors (``images.float() / 255``, indexing
        with a tensor of indices) are fine.

    ``source`` names the cache entry the images are mapped from (None when they live in this
    process's memory); :meth:`subset` uses it to share subsets between processes too.
    """

    images: torch.Tensor  # uint8 [N, 3, H, W], CPU
    labels: torch.Tensor  # int64 [N]
    classes: tuple[str, ...]
    name: str
    fingerprint: str
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {self.images.dtype} "
                             f"{list(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 [{len(self.images)}], got "
                             f"{self.labels.dtype} {list(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor | Sequence[int], name_suffix: str = "") -> ImageData:
        """A new ImageData over rows ``indices`` (in that order), sharing memory where it can.

        A run of consecutive indices is a view of this one (no copy). Other rows of data
        mapped from the cache are gathered once into a cache file of their own (named by the
        subset's fingerprint) and mapped, so every process that takes the same subset, like
        the workers of a search, shares one copy of its pages. Otherwise (cache off or not
        writable, data built in memory) the rows are copied.
        """
        index = torch.as_tensor(indices)
        if index.numel() == 0:
            index = index.to(torch.int64)
        if index.dim() != 1 or index.dtype.is_floating_point or index.dtype == torch.bool:
            raise TypeError(f"indices must be a 1-D sequence of integers, got {index.dtype} "
                            f"{list(index.shape)}")
        index = index.to(torch.int64)
        if index.numel() and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"indices must be in 0..{len(self) - 1}, got "
                             f"{int(index.min())}..{int(index.max())}")
        digest = hashlib.sha256(f"{self.fingerprint}:".encode())
        digest.update(index.numpy().astype("<i8").tobytes())
        fingerprint = digest.hexdigest()[:16]
        images, labels, source = self._rows(index, fingerprint)
        return ImageData(images, labels, self.classes, self.name + name_suffix, fingerprint,
                         source)

    def _rows(self, index: torch.Tensor,
              fingerprint: str) -> tuple[torch.Tensor, torch.Tensor, str | None]:
        count = index.numel()
        if count and bool((index.diff() == 1).all()):  # consecutive rows: a view
            start = int(index[0])
            return (self.images[start:start + count], self.labels[start:start + count],
                    self.source)
        if count and self.source is not None:
            shared = shared_rows(self.source, fingerprint, self.images.numpy(),
                                 self.labels.numpy(), index.numpy())
            if shared is not None:
                return to_tensor(shared[0]), to_tensor(shared[1]), self.source
        return self.images.index_select(0, index), self.labels.index_select(0, index), None


def load_dataset(spec: str, split: str = "train", data_dir: Path | None = None, *,
                 download: bool = True, image_size: int = 32, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> ImageData:
    """Load ``split`` of ``spec``: "train" or "test" of a registered dataset name
    (:func:`~effscale.datasets.registry.dataset_names`), "train" (``train/``) or "val"
    (``val/``) of an image folder; a folder's ``test/`` is never read.

    ``data_dir`` is where downloadable sources (cifar10) are looked up and downloaded to
    (default ``paths.data_dir()``). Every source is returned at ``image_size`` x
    ``image_size``: cifar10 is resized from 32 if asked (antialiased bilinear), folders resize
    the shorter side and crop the centre. ``seed`` only affects generated sources (synthetic).
    ``progress`` receives one-line messages about downloading, extracting and decoding.
    """
    if split not in SPLITS:
        raise EffscaleError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise EffscaleError(f"image size must be a positive integer, got {image_size!r}")
    source = get_dataset(spec)
    if source is not None:
        if split == "val":
            raise EffscaleError(f"dataset {spec!r} has no val split: a run holds its "
                                "validation images out of train")
        request = LoadRequest(split, image_size, Path(data_dir) if data_dir is not None else None,
                              download, seed, progress)
        arrays, classes = source.load(request)
        shape = tuple(arrays.images.shape)
        if shape[2:] != (image_size, image_size):
            raise EffscaleError(f"dataset {spec!r}: its loader returned images of shape "
                                f"{list(shape)}, not [N, 3, {image_size}, {image_size}]")
        return _image_data(arrays, tuple(classes), spec)
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise EffscaleError(f"unknown dataset {spec!r}: expected one of "
                            f"{', '.join(dataset_names())} or a folder laid out as "
                            "train/<class>/<image files> (any format Pillow reads: PNG, "
                            "JPEG, WebP, ...)")
    arrays, classes = folder.load(root, split, image_size, progress)
    return _image_data(arrays, classes, spec)


def holdout_split(data: ImageData, val_size: int, seed: int) -> tuple[ImageData, ImageData]:
    """(train, val): ``val_size`` rows drawn at random with ``seed``, stratified by class.

    Each class gives ``val_size`` x its share of the data (rounded by largest remainder), so
    class proportions match in both parts. Both keep the original row order.
    """
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not (
            1 <= val_size < len(data)):
        raise EffscaleError(f"validation size must be between 1 and {len(data) - 1} for "
                            f"{data.name} ({len(data)} images), got {val_size!r}")
    val = _stratified_sample(data.labels.numpy(), val_size, np.random.default_rng(seed))
    keep = np.ones(len(data), dtype=bool)
    keep[val] = False
    return data.subset(np.flatnonzero(keep), ":train"), data.subset(val, ":val")


def sample(data: ImageData, size: int, seed: int) -> ImageData:
    """``size`` rows of ``data`` drawn at random with ``seed``, stratified by class as
    :func:`holdout_split` draws them, in the original order; all of ``data`` when ``size``
    is 0 or not below its length."""
    if not size or size >= len(data):
        return data
    rows = _stratified_sample(data.labels.numpy(), size, np.random.default_rng(seed))
    return data.subset(rows, f":{size}")


def _stratified_sample(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    classes, counts = np.unique(labels, return_counts=True)
    share, remainder = np.divmod(counts * size, len(labels))
    # The classes with the largest remainders take the rows left over by rounding down.
    share[np.argsort(-remainder, kind="stable")[: size - share.sum()]] += 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:n]
             for c, n in zip(classes, share, strict=True)]
    return np.sort(np.concatenate(picks))


def _image_data(arrays: Arrays, classes: tuple[str, ...], name: str) -> ImageData:
    return ImageData(to_tensor(arrays.images), to_tensor(arrays.labels), tuple(classes), name,
                     arrays.fingerprint, arrays.source)
