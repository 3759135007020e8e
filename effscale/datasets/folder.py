"""Image folders: ``ROOT/train/<class>/*`` and optionally ``ROOT/val/<class>/*``.

Every file Pillow can open is an image (PNG, JPEG, WebP, TIFF, BMP, GIF, ...): the format
is decided by trying Pillow, not by the extension. Files with an extension that is plainly
not an image (``NOT_IMAGES``: .txt, .json, .csv, ...) and hidden files are ignored quietly.
Each image is read the way Pillow users expect:

- the EXIF orientation is applied (``ImageOps.exif_transpose``), so photos stand upright;
- only the first frame of an animated GIF or WebP is used;
- 16-bit images (modes ``I;16*`` and ``I``, e.g. 16-bit greyscale PNG or TIFF) are scaled
  from 0..65535 to 0..255 (``round(v * 255 / 65535)``) instead of being clipped at 255;
- transparency (RGBA, LA, PA, or a palette / tRNS transparent colour) is composited onto a
  **white** background (``BACKGROUND``), so a transparent pixel reads as white, not as
  whatever colour happens to be stored under alpha 0;
- the result is RGB, its shorter side resized to ``image_size`` (bilinear, antialiased) and
  the centre ``image_size`` x ``image_size`` square cropped out, so nothing is stretched.

A file Pillow cannot read (corrupt, truncated, not an image) is skipped: the load reports
one warning line through ``progress`` that counts the skipped files and names the first
few. A class folder left without any readable image is an error.

Decoding happens once: rows are streamed into a uint8 memory-mapped cache file (see
:mod:`effscale.datasets.cache`) keyed by the file names, sizes and modification times and
the image size; later loads and every worker process map that file instead of decoding.
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from effscale.datasets.cache import Arrays, Progress, Rows, cached_rows, source_key
from effscale.errors import EffscaleError

# A folder's splits are its train/ and val/ folders; a test/ folder is never read.
SPLIT_DIRS = {"train": "train", "val": "val"}
_LAYOUT = "expected train/<class>/ folders of images"
# Bump when decoding changes, so entries written by an older reader are not reused.
DECODE_VERSION = 2
# What transparent pixels are composited onto (RGB).
BACKGROUND = (255, 255, 255)
# Extensions of files that sit in image folders but are never images: skipped quietly.
NOT_IMAGES = frozenset({
    ".txt", ".json", ".jsonl", ".csv", ".tsv", ".md", ".rst", ".xml", ".yaml", ".yml",
    ".toml", ".ini", ".cfg", ".log", ".py", ".ipynb", ".sh", ".bat", ".html", ".htm",
    ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".npy", ".npz", ".pkl", ".pickle", ".pt",
    ".pth", ".h5", ".hdf5", ".mat", ".db", ".sqlite", ".zip", ".tar", ".gz", ".tgz", ".bz2",
    ".xz", ".7z", ".rar", ".mp4", ".avi", ".mov", ".mkv", ".wav", ".mp3", ".lock", ".tmp",
})
SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# Decoding threads (Pillow releases the GIL while decoding and resizing).
THREADS = max(1, min(8, os.cpu_count() or 1))
NAMED_SKIPS = 3  # skipped files named in the warning line


def load(root: Path, split: str, image_size: int,
         progress: Progress | None = None) -> tuple[Arrays, tuple[str, ...]]:
    """The ``split`` ("train" or "val") of the image folder at ``root``: its ``train/`` or
    ``val/`` folder, whose class folders must be train/'s (:func:`check_val_classes`)."""
    if split not in SPLIT_DIRS:
        raise EffscaleError(f"{root}: an image folder's splits are train/ and val/, not "
                            f"{split!r}; effscale never reads a test/ folder")
    classes = class_names(root)
    split_dir = root / SPLIT_DIRS[split]
    if not split_dir.is_dir():
        raise EffscaleError(f"{root}: no {SPLIT_DIRS[split]}/ folder, so no {split} split; "
                            f"add {SPLIT_DIRS[split]}/<class>/ images or hold out part of train/")
    if split == "val":
        check_val_classes(root)
    files, identity = list_images(split_dir, classes)
    key = source_key("folder", DECODE_VERSION, BACKGROUND, str(root.resolve()), split,
                     image_size, classes, identity)

    def fill(rows: Rows) -> tuple[np.ndarray, dict[str, Any]]:
        return decode(files, image_size, rows, split_dir, progress)

    arrays, extra = cached_rows(_prefix(root, split, image_size), key,
                                (3, image_size, image_size), len(files), fill, progress)
    if extra.get("skipped") and progress:
        progress(skipped_message(split_dir, extra["skipped"], extra.get("skipped_names", [])))
    return arrays, classes


def class_names(root: Path) -> tuple[str, ...]:
    """Sorted names of the class folders under ``root/train``."""
    train = root / "train"
    if not train.is_dir():
        raise EffscaleError(f"{root}: no train/ folder ({_LAYOUT})")
    names = tuple(sorted(d.name for d in train.iterdir() if d.is_dir() and not _hidden(d)))
    if not names:
        raise EffscaleError(f"{train}: no class folders ({_LAYOUT})")
    return names


def has_val(root: Path) -> bool:
    """Whether the image folder at ``root`` has a ``val/`` folder (its validation split)."""
    return (root / SPLIT_DIRS["val"]).is_dir()


def check_val_classes(root: Path) -> None:
    """One line, unless ``root/val`` holds exactly the class folders of ``root/train``."""
    train = set(class_names(root))
    val_dir = root / SPLIT_DIRS["val"]
    val = {d.name for d in val_dir.iterdir() if d.is_dir() and not _hidden(d)}
    if val == train:
        return
    extra, missing = sorted(val - train), sorted(train - val)
    parts = ([f"{', '.join(extra)} not in train/"] if extra else []) + (
        [f"{', '.join(missing)} missing" if val else "no class folders"] if missing else [])
    raise EffscaleError(f"{val_dir}: its classes must be train/'s ({len(train)}): "
                        f"{'; '.join(parts)}")


def list_images(split_dir: Path, classes: tuple[str, ...]) -> tuple[list[tuple[str, int]], str]:
    """(path, label) of every candidate image under ``split_dir``, sorted, and a digest of
    their names, sizes and modification times; each class folder must hold some. Whether a
    file really is an image is decided later, by decoding it. Paths are plain strings and
    the digest is computed on the fly: a million files cost tens of MB, not a gigabyte."""
    files: list[tuple[str, int]] = []
    digest = hashlib.sha256()
    for folder in sorted(d for d in split_dir.iterdir() if d.is_dir() and not _hidden(d)):
        if folder.name not in classes:
            raise EffscaleError(f"{folder}: class {folder.name!r} has no train/ folder")
        label = classes.index(folder.name)
        found = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if (entry.name.startswith(".") or not entry.is_file()
                        or os.path.splitext(entry.name)[1].lower() in NOT_IMAGES):
                    continue
                stat = entry.stat()
                found.append((entry.name, stat.st_size, stat.st_mtime_ns))
        if not found:
            raise EffscaleError(f"{folder}: no images ({_LAYOUT})")
        found.sort()
        for name, size, mtime in found:
            digest.update(f"{folder.name}/{name}\0{size}\0{mtime}\n".encode())
        base = str(folder)
        files += [(os.path.join(base, name), label) for name, _, _ in found]
    if not files:
        raise EffscaleError(f"{split_dir}: no class folders ({_LAYOUT})")
    return files, digest.hexdigest()


def decode(files: list[tuple[str, int]], image_size: int, rows: Rows,
           split_dir: Path, progress: Progress | None = None,
           ) -> tuple[np.ndarray, dict[str, Any]]:
    """Append every readable file of ``files`` to ``rows`` in order; return its labels and
    what was skipped. Unreadable files are skipped; a class left empty is an error."""
    labels: list[int] = []
    skipped: list[tuple[str, str]] = []
    every = max(1000, len(files) // 20)
    if progress:
        progress(f"decoding {len(files)} images from {split_dir} at {image_size} px")

    def attempt(path: str) -> np.ndarray | str:
        try:
            return read_image(path, image_size)
        except Exception as err:  # any failure on one file skips that file, never the load
            return _reason(err)

    Image.init()  # register every format plugin once, before threads open files
    with ThreadPoolExecutor(THREADS) as pool:
        chunk = 64 * THREADS  # in flight at once: bounds memory to a few images per thread
        for start in range(0, len(files), chunk):
            part = files[start:start + chunk]
            for (path, label), result in zip(
                    part, pool.map(attempt, [f[0] for f in part]), strict=True):
                if isinstance(result, str):
                    skipped.append((path, result))
                else:
                    rows.append(result.transpose(2, 0, 1))
                    labels.append(label)
            done = start + len(part)
            if progress and (done // every > start // every or done == len(files)):
                progress(f"decoding images: {done} of {len(files)}")
    _check_classes(files, labels, skipped, split_dir)
    extra: dict[str, Any] = {}
    if skipped:
        extra = {"skipped": len(skipped),
                 "skipped_names": [f"{os.path.relpath(path, split_dir)} ({reason})"
                                   for path, reason in skipped[:NAMED_SKIPS]]}
    return np.array(labels, dtype=np.int64), extra


def skipped_message(split_dir: Path, count: int, names: list[str]) -> str:
    """The one warning line about unreadable files."""
    more = f" and {count - len(names)} more" if count > len(names) else ""
    files = "file" if count == 1 else "files"
    return (f"warning: skipped {count} unreadable image {files} in {split_dir}: "
            f"{', '.join(names)}{more}")


def read_image(path: str | Path, size: int) -> np.ndarray:
    """``path`` as uint8 [size, size, 3]: upright, RGB, shorter side resized to ``size``,
    centre crop. Raises whatever Pillow raises on a file it cannot read."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG only: decode at a reduced scale, >= size
        try:
            image.getexif()
        except Exception:  # damaged EXIF: the pixels may still be fine, read them unrotated
            upright = image.copy()
        else:
            upright = ImageOps.exif_transpose(image)  # a loaded copy, first frame only
    return np.asarray(_fit(to_rgb(upright), size), dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` in mode RGB: 16-bit scaled to 8-bit, transparency composited on BACKGROUND."""
    if image.mode in SIXTEEN_BIT:
        values = np.asarray(image).astype(np.int64)  # I;16B is big-endian: astype handles it
        grey = (np.clip(values, 0, 65535) * 255 + 32767) // 65535  # round(v * 255 / 65535)
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    if image.mode == "F":
        return image.convert("L").convert("RGB")
    transparent = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info)
    if transparent:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _fit(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return image.crop((left, top, left + size, top + size))


def _check_classes(files: list[tuple[str, int]], labels: list[int],
                   skipped: list[tuple[str, str]], split_dir: Path) -> None:
    present = {label for _, label in files}
    empty = sorted(present - set(labels))
    if not empty:
        return
    folder = next(os.path.dirname(path) for path, label in files if label == empty[0])
    unreadable = [(path, reason) for path, reason in skipped if os.path.dirname(path) == folder]
    others = f"; {len(empty) - 1} other class folders too" if len(empty) > 1 else ""
    first, reason = os.path.basename(unreadable[0][0]), unreadable[0][1]
    raise EffscaleError(f"{folder}: no readable images: all {len(unreadable)} files failed "
                        f"to decode (e.g. {first}: {reason}){others}")


def _reason(err: Exception) -> str:
    if isinstance(err, Image.UnidentifiedImageError):
        return "not an image Pillow can read"
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:80]


def _prefix(root: Path, split: str, image_size: int) -> str:
    # The folder's name for people reading the cache, a hash of its full path for uniqueness.
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", root.resolve().name)[:40] or "root"
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return f"folder-{readable}-{digest}-{split}-{image_size}"


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")
