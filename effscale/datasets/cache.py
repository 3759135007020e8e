"""Decode once, keep the arrays as ``.npy`` files, and map them read-only on every later load.

A memory map lets several worker processes share one copy of the pages (the OS page cache)
instead of each decoding or unpickling its own. Entries live under
``paths.cache_dir()/datasets/`` as ``<prefix>-<key>.{images.npy,labels.npy,json}``; the
``.json`` is written last, so an entry without it is incomplete and gets rebuilt.

Sources whose size is only known once decoded (image folders) stream their rows straight
into the cache file (:func:`cached_rows`), so decoding needs memory for one image, not for
the whole array. Row subsets of a mapped entry (a holdout split, a training subset) are
written once beside it as ``<entry>.subset-<key>.{images,labels}.npy`` (:func:`shared_rows`)
and mapped too, so every worker taking the same subset shares its pages as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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
    source: str | None = None  # the cache entry mapped (its file stem), None if in memory


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
    if _disabled():
        return in_memory(*build())
    stem = cache_root() / f"{prefix}-{key}"
    arrays = _load(stem)[0]
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
    return _load(stem)[0] or fresh


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy`` without copying, also for read-only memory maps.

    Torch warns that it cannot mark such a tensor read-only; callers must never write to it
    in place (a write to a read-only mapping crashes the process).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


class Rows:
    """Where a streaming decoder puts its rows: appended one at a time, in order.

    Backed by the cache file being written (nothing but one row in memory) or, with the
    cache off or unwritable, by an array of ``capacity`` rows.
    """

    def __init__(self, row_shape: tuple[int, ...], capacity: int,
                 handle: IO[bytes] | None = None) -> None:
        self.row_shape = tuple(int(n) for n in row_shape)
        self.capacity = capacity
        self.count = 0
        self._handle = handle
        self._array = None if handle else np.empty((capacity, *self.row_shape), np.uint8)

    def append(self, row: np.ndarray) -> None:
        if row.shape != self.row_shape or row.dtype != np.uint8:
            raise ValueError(f"expected a uint8 row of shape {self.row_shape}, got "
                             f"{row.dtype} {row.shape}")
        if self.count >= self.capacity:
            raise ValueError(f"more than the {self.capacity} rows announced")
        if self._handle is None:
            self._array[self.count] = row
        else:
            self._handle.write(np.ascontiguousarray(row).data)
        self.count += 1

    def array(self) -> np.ndarray:
        """The rows appended so far (in-memory backing only)."""
        assert self._array is not None
        return self._array[:self.count]


# fill(rows) appends every row and returns (labels int64 [rows.count], extra metadata).
Fill = Callable[[Rows], tuple[np.ndarray, dict[str, Any]]]


def cached_rows(prefix: str, key: str, row_shape: tuple[int, ...], capacity: int, fill: Fill,
                progress: Progress | None = None) -> tuple[Arrays, dict[str, Any]]:
    """Like :func:`cached`, for sources decoded one row at a time: ``fill`` streams at most
    ``capacity`` rows straight into the (temporary, then atomically renamed) cache file.

    Returns the mapped arrays and the ``extra`` dict ``fill`` returned (kept in the entry's
    ``.json``, so a later load gets it back without decoding). The content fingerprint is the
    same as :func:`content_fingerprint` of the arrays, computed by reading the file back in
    chunks.
    """
    if _disabled():
        return _fill_in_memory(row_shape, capacity, fill)
    stem = cache_root() / f"{prefix}-{key}"
    arrays, extra = _load(stem)
    if arrays is not None:
        return arrays, extra
    full = (capacity, *row_shape)
    length = _header_length(full)
    try:
        with atomic.atomic_open(_path(stem, "images.npy"), "w+b") as handle:
            handle.write(_npy_header(full, length))  # rewritten below with the final count
            rows = Rows(row_shape, capacity, handle)
            labels, extra = fill(rows)
            shape = (rows.count, *rows.row_shape)
            handle.seek(0)
            handle.write(_npy_header(shape, length))
            fingerprint = _file_fingerprint(handle, length, shape, labels)
        _save_rest(stem, labels, fingerprint, list(shape), extra)
    except OSError as err:  # a read-only or full cache is slower, not fatal
        if progress:
            progress(f"could not cache decoded data in {stem.parent}: {err}; decoding in memory")
        return _fill_in_memory(row_shape, capacity, fill)
    _prune(prefix, keep=stem)
    if progress:
        progress(f"cached decoded data in {stem.parent}")
    arrays, extra = _load(stem)
    if arrays is None:
        raise OSError(f"{stem}: the cache entry just written cannot be read back")
    return arrays, extra


def shared_rows(source: str, key: str, images: np.ndarray, labels: np.ndarray,
                index: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows ``index`` of the mapped entry ``source``, written once beside it as
    ``<source>.subset-<key>`` and memory-mapped, so every process taking the same subset
    shares one copy of its pages; ``key`` must identify the subset (its fingerprint).

    Rows are gathered in chunks (memory for one chunk, not for the subset). Subsets of one
    entry beyond ``SUBSET_BUDGET`` times the entry's size are removed least recently used
    first, unless used in the last ``SUBSET_FRESH_S`` seconds.
    None where the cache is off or cannot be written: the caller copies in memory.
    """
    if _disabled():
        return None
    stem = cache_root() / f"{source}.subset-{key}"
    shape = (len(index), *images.shape[1:])
    found = _load_subset(stem, shape)
    if found is not None:
        with contextlib.suppress(OSError):
            os.utime(_path(stem, "images.npy"))  # recently used: pruned last
        return found
    try:
        with atomic.atomic_open(_path(stem, "images.npy"), "wb") as handle:
            handle.write(_npy_header(shape, _header_length(shape)))
            step = max(1, _CHUNK_BYTES // max(1, int(np.prod(shape[1:], dtype=np.int64))))
            for start in range(0, len(index), step):
                handle.write(np.ascontiguousarray(images[index[start:start + step]]).data)
        with atomic.atomic_open(_path(stem, "labels.npy"), "wb") as handle:
            np.save(handle, np.ascontiguousarray(labels[index], dtype=np.int64))
    except OSError:
        return None
    _prune_subsets(source, keep=stem)
    return _load_subset(stem, shape)


# Subsets of one entry kept on disk, in multiples of the entry's own size (a search keeps
# train, val and a training subset: about 1x per seed).
SUBSET_BUDGET = 3
# Subsets used this recently are never removed: a search writes several, then its workers map
# them.
SUBSET_FRESH_S = 600
_CHUNK_BYTES = 8 << 20  # gathered at once when writing a subset


def _disabled() -> bool:
    return os.environ.get("EFFSCALE_NO_CACHE", "") not in ("", "0")


def _fill_in_memory(row_shape: tuple[int, ...], capacity: int,
                    fill: Fill) -> tuple[Arrays, dict[str, Any]]:
    rows = Rows(row_shape, capacity)
    labels, extra = fill(rows)
    return in_memory(rows.array(), np.asarray(labels, dtype=np.int64)), extra


def _header_length(shape: tuple[int, ...]) -> int:
    """Bytes of a .npy (version 1.0) header for uint8 ``shape`` or any shape no longer."""
    return -(-(10 + len(_header_text(shape)) + 1) // 64) * 64


def _header_text(shape: tuple[int, ...]) -> bytes:
    dims = tuple(int(n) for n in shape)
    return repr({"descr": "|u1", "fortran_order": False, "shape": dims}).encode("latin1")


def _npy_header(shape: tuple[int, ...], length: int) -> bytes:
    """A .npy header for C-order uint8 ``shape``, padded to exactly ``length`` bytes, so a
    header written before the row count is known can be overwritten in place once it is."""
    text = _header_text(shape)
    body = text + b" " * (length - 10 - len(text) - 1) + b"\n"
    if len(body) + 10 != length:
        raise ValueError(f"shape {shape} does not fit a {length}-byte header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def _file_fingerprint(handle: IO[bytes], offset: int, shape: tuple[int, ...],
                      labels: np.ndarray) -> str:
    # Same bytes in the same order as content_fingerprint(), read back with plain reads:
    # no mapping, so the pages do not count towards this process's resident memory.
    digest = hashlib.sha256(repr(tuple(int(n) for n in shape)).encode())
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    handle.flush()
    handle.seek(offset)
    remaining = int(np.prod(shape, dtype=np.int64))
    while remaining > 0:
        chunk = handle.read(min(remaining, 1 << 24))
        if not chunk:
            raise OSError("cache file shorter than the rows written")
        digest.update(chunk)
        remaining -= len(chunk)
    return digest.hexdigest()[:16]


def _load_subset(stem: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        images = np.load(_path(stem, "images.npy"), mmap_mode="r")
        labels = np.load(_path(stem, "labels.npy"), mmap_mode="r")
    except (OSError, ValueError):
        return None
    if (images.dtype != np.uint8 or labels.dtype != np.int64 or images.shape != shape
            or labels.shape != shape[:1]):
        return None
    return images, labels


def _prune_subsets(source: str, keep: Path) -> None:
    root = keep.parent
    try:
        budget = SUBSET_BUDGET * _path(root / source, "images.npy").stat().st_size
    except OSError:
        budget = 0
    found = []
    for path in root.glob(f"{source}.subset-*.images.npy"):
        with contextlib.suppress(OSError):
            found.append((path.stat().st_mtime_ns, path.stat().st_size, path))
    used, fresh = 0, time.time_ns() - int(SUBSET_FRESH_S * 1e9)
    for stamp, size, path in sorted(found, reverse=True):  # most recently used first
        used += size
        if used > budget and stamp < fresh and not path.name.startswith(f"{keep.name}."):
            for part in (path, path.with_name(path.name.replace(".images.npy", ".labels.npy"))):
                with contextlib.suppress(OSError):
                    part.unlink()


def _path(stem: Path, part: str) -> Path:
    return stem.with_name(f"{stem.name}.{part}")


def _load(stem: Path) -> tuple[Arrays | None, dict[str, Any]]:
    try:
        meta = json.loads(_path(stem, "json").read_text())
        images = np.load(_path(stem, "images.npy"), mmap_mode="r")
        labels = np.load(_path(stem, "labels.npy"), mmap_mode="r")
    except (OSError, ValueError):  # missing, partial or damaged: rebuild
        return None, {}
    consistent = (isinstance(meta, dict) and images.dtype == np.uint8
                  and labels.dtype == np.int64 and list(images.shape) == meta.get("shape")
                  and labels.shape == images.shape[:1])
    if not consistent:
        return None, {}
    return Arrays(images, labels, str(meta["fingerprint"]), stem.name), meta.get("extra") or {}


def _save(stem: Path, arrays: Arrays) -> None:
    # Always replace, never rewrite in place: truncating a file that another process has
    # mapped would kill that process (SIGBUS) on its next read.
    with atomic.atomic_open(_path(stem, "images.npy"), "wb") as handle:
        np.save(handle, np.ascontiguousarray(arrays.images))
    _save_rest(stem, arrays.labels, arrays.fingerprint, list(arrays.images.shape), {})


def _save_rest(stem: Path, labels: np.ndarray, fingerprint: str, shape: list[int],
               extra: dict[str, Any]) -> None:
    with atomic.atomic_open(_path(stem, "labels.npy"), "wb") as handle:
        np.save(handle, np.ascontiguousarray(labels, dtype=np.int64))
    meta = {"fingerprint": fingerprint, "shape": shape, "format": FORMAT_VERSION}
    if extra:
        meta["extra"] = extra
    atomic.write_text(_path(stem, "json"), json.dumps(meta) + "\n")


def _prune(prefix: str, keep: Path) -> None:
    # A process still mapping a removed file keeps its pages: unlinking is safe on POSIX.
    # Subsets of a stale entry (``<entry>.subset-<key>.*``) go with it.
    entry = re.compile(rf"{re.escape(prefix)}-[0-9a-f]{{16}}\."
                       r"(?:subset-[0-9a-f]{16}\.)?(images\.npy|labels\.npy|json)")
    for path in keep.parent.glob(f"{prefix}-*"):
        if entry.fullmatch(path.name) and not path.name.startswith(f"{keep.name}."):
            with contextlib.suppress(OSError):
                path.unlink()
