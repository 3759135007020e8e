"""Image folders: ``ROOT/train/<class>/*.png`` and optionally ``ROOT/val/<class>/*``.

Images are converted to RGB, their shorter side resized to ``image_size`` (bilinear), and
the centre ``image_size`` x ``image_size`` square cropped out, so nothing is stretched.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
from PIL import Image

from effscale.datasets.cache import Arrays, Progress, cached, source_key
from effscale.errors import EffscaleError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
SPLIT_DIRS = {"train": "train", "test": "val"}
_LAYOUT = "expected train/<class>/ folders of .png, .jpg, .jpeg or .bmp images"


def load(root: Path, split: str, image_size: int,
         progress: Progress | None = None) -> tuple[Arrays, tuple[str, ...]]:
    """The ``split`` ("train" or "test" = ``val/``) of the image folder at ``root``."""
    classes = class_names(root)
    split_dir = root / SPLIT_DIRS[split]
    if not split_dir.is_dir():
        raise EffscaleError(f"{root}: no {SPLIT_DIRS[split]}/ folder, so no {split} split; "
                            f"add {SPLIT_DIRS[split]}/<class>/ images or hold out part of train/")
    files = list_images(split_dir, classes)
    identity = [(str(path.relative_to(root)), *_stat(path)) for path, _ in files]
    key = source_key("folder", str(root.resolve()), split, image_size, classes, identity)

    def build() -> tuple[np.ndarray, np.ndarray]:
        return decode(files, image_size, progress)

    return cached(_prefix(root, split, image_size), key, build, progress), classes


def class_names(root: Path) -> tuple[str, ...]:
    """Sorted names of the class folders under ``root/train``."""
    train = root / "train"
    if not train.is_dir():
        raise EffscaleError(f"{root}: no train/ folder ({_LAYOUT})")
    names = tuple(sorted(d.name for d in train.iterdir() if d.is_dir() and not _hidden(d)))
    if not names:
        raise EffscaleError(f"{train}: no class folders ({_LAYOUT})")
    return names


def list_images(split_dir: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    """(path, label) of every image under ``split_dir``; each class folder must hold some."""
    files = []
    for folder in sorted(d for d in split_dir.iterdir() if d.is_dir() and not _hidden(d)):
        if folder.name not in classes:
            raise EffscaleError(f"{folder}: class {folder.name!r} has no train/ folder")
        images = sorted(p for p in folder.iterdir()
                        if p.suffix.lower() in EXTENSIONS and p.is_file() and not _hidden(p))
        if not images:
            raise EffscaleError(f"{folder}: no images ({', '.join(EXTENSIONS)})")
        files += [(path, classes.index(folder.name)) for path in images]
    if not files:
        raise EffscaleError(f"{split_dir}: no class folders ({_LAYOUT})")
    return files


def decode(files: list[tuple[Path, int]], image_size: int,
           progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((len(files), 3, image_size, image_size), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        if progress and i % 1000 == 0:
            progress(f"decoding images: {i} of {len(files)}")
        images[i] = read_image(path, image_size).transpose(2, 0, 1)
    return images, np.array([label for _, label in files], dtype=np.int64)


def read_image(path: Path, size: int) -> np.ndarray:
    """``path`` as uint8 [size, size, 3]: shorter side resized to ``size``, centre crop."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG only: decode at a reduced scale, >= size
            return np.asarray(_fit(image.convert("RGB"), size), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise EffscaleError(f"{path}: cannot read image ({err})") from None


def _fit(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return image.crop((left, top, left + size, top + size))


def _prefix(root: Path, split: str, image_size: int) -> str:
    # The folder's name for people reading the cache, a hash of its full path for uniqueness.
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", root.resolve().name)[:40] or "root"
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return f"folder-{readable}-{digest}-{split}-{image_size}"


def _stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")
