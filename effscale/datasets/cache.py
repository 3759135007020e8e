"""Decode once, keep the arrays as ``.npy`` files, and map them read-only on every later load.

A memory map lets several worker processes share one copy of the pages (the OS page cache)
instead of each decoding or unpickling its own. Entries live under
``paths.cache_dir()/datasets/`` as ``<prefix>-<key>.{images.npy,labels.npy,json}``; the
``.json`` is written last, so an entry without it is incomplete and gets rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from effscale import atomic, paths

# Bump when decoding changes, so entries written by an older effscale are not reused.
FORMAT_VERSION = 1

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Arrays:
    """Decoded content: ``images`` uint8 [N, 3, H, W], ``labels`` int64 [N]."""

    images: np.ndarray
    labels: np.ndarray
    fingerprint: str


def cache_root() -> Path:
    return paths.cache_dir() / "datasets"


def source_key(*parts: object) -> str:
    """A short digest of whatever identifies a source: file names, sizes, mtimes, options."""
    text = json.dumps([FORMAT_VERSION, *parts], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of shape, labels and every pixel: stable across runs, different for other content."""
    digest = hashlib.sha256(repr(tuple(images.shape)).encode())
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    flat = images.reshape(len(images), -1)
    for start in range(0, len(flat), 4096):  # in chunks: no second full-size copy
        digest.update(np.ascontiguousarray(flat[start:start + 4096]).data)
    return digest.hexdigest()[:16]


def in_memory(images: np.ndarray, labels: np.ndarray) -> Arrays:
    return Arrays(images, labels, content_fingerprint(images, labels))


def cached(prefix: str, key: str, build: Callable[[], tuple[np.ndarray, np.ndarray]],
           progress: Progress | None = None) -> Arrays:
    """The arrays cached under ``prefix-key``, memory-mapped; ``build()`` them on a miss.

    ``prefix`` names the source and its options (safe file-name characters only); entries
    with the same prefix and another key are stale and are removed after a rebuild.
    ``EFFSCALE_NO_CACHE=1`` decodes in memory every time and writes nothing.
    """
    if os.environ.get("EFFSCALE_NO_CACHE", "") not in ("", "0"):
        return in_memory(*build())
    stem = cache_root() / f"{prefix}-{key}"
    arrays = _load(stem)
    if arrays is not None:
        return arrays
    fresh = in_memory(*build())
    try:
        _save(stem, fresh)
    except OSError as err:  # a read-only cache is slower, not fatal
        if progress:
            progress(f"could not cache decoded data in {stem.parent}: {err}")
        return fresh
    _prune(prefix, keep=stem)
    if progress:
        progress(f"cached decoded data in {stem.parent}")
    return _load(stem) or fresh


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy`` without copying, also for read-only memory maps.

    Torch warns that it cannot mark such a tensor read-only; callers must never write to it
    in place (a write to a read-only mapping crashes the process).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _path(stem: Path, part: str) -> Path:
    return stem.with_name(f"{stem.name}.{part}")


def _load(stem: Path) -> Arrays | None:
    try:
        meta = json.loads(_path(stem, "json").read_text())
        images = np.load(_path(stem, "images.npy"), mmap_mode="r")
        labels = np.load(_path(stem, "labels.npy"), mmap_mode="r")
    except (OSError, ValueError):  # missing, partial or damaged: rebuild
        return None
    consistent = (images.dtype == np.uint8 and labels.dtype == np.int64
                  and list(images.shape) == meta.get("shape") and labels.shape == images.shape[:1])
    return Arrays(images, labels, str(meta["fingerprint"])) if consistent else None


def _save(stem: Path, arrays: Arrays) -> None:
    # Always replace, never rewrite in place: truncating a file that another process has
    # mapped would kill that process (SIGBUS) on its next read.
    with atomic.atomic_open(_path(stem, "images.npy"), "wb") as handle:
        np.save(handle, np.ascontiguousarray(arrays.images))
    with atomic.atomic_open(_path(stem, "labels.npy"), "wb") as handle:
        np.save(handle, np.ascontiguousarray(arrays.labels, dtype=np.int64))
    meta = {"fingerprint": arrays.fingerprint, "shape": list(arrays.images.shape),
            "format": FORMAT_VERSION}
    atomic.write_text(_path(stem, "json"), json.dumps(meta) + "\n")


def _prune(prefix: str, keep: Path) -> None:
    # A process still mapping a removed file keeps its pages: unlinking is safe on POSIX.
    entry = re.compile(rf"{re.escape(prefix)}-[0-9a-f]{{16}}\.(images\.npy|labels\.npy|json)")
    for path in keep.parent.glob(f"{prefix}-*"):
        if entry.fullmatch(path.name) and not path.name.startswith(f"{keep.name}."):
            with contextlib.suppress(OSError):
                path.unlink()
