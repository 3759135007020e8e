"""What a dataset source is: a loader that answers a :class:`LoadRequest` with the decoded split.

A loader returns the split as :class:`~effscale.datasets.cache.Arrays` (uint8 [N, 3, S, S]
images at exactly the requested size S, int64 labels) and the class names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from effscale.datasets.cache import Arrays, Progress


@dataclass(frozen=True)
class LoadRequest:
    """What :func:`~effscale.datasets.images.load_dataset` asks a loader for.

    ``data_dir`` is where downloadable sources look and download (``None``: their default,
    ``paths.data_dir()``); ``seed`` is for generated sources; ``progress`` takes one-line
    messages about downloading and decoding.
    """

    split: str  # "train" or "test"
    image_size: int
    data_dir: Path | None = None
    download: bool = True
    seed: int = 0
    progress: Progress | None = None


Loader = Callable[[LoadRequest], tuple[Arrays, Sequence[str]]]


@dataclass(frozen=True)
class DatasetSource:
    """A registered dataset: its loader, native image size (px, ``None`` when it has none)
    and a one-line help text for the CLI."""

    name: str
    load: Loader
    native_size: int | None
    help: str
