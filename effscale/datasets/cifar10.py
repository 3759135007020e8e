"""CIFAR-10 in the official "python version" layout: find, download, extract, validate, decode."""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from effscale import paths
from effscale.datasets.cache import Arrays, Progress, cached, source_key
from effscale.datasets.source import LoadRequest
from effscale.errors import EffscaleError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
DIRNAME = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
META = "batches.meta"
SPLIT_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
# Rows in every official batch (5 x 10,000 train, 1 x 10,000 test); tests shrink it.
BATCH_ROWS = 10_000
NUM_CLASSES = 10
NATIVE_SIZE = 32
DOWNLOAD_TIMEOUT_S = 60


def load_source(request: LoadRequest) -> tuple[Arrays, tuple[str, ...]]:
    """The registry's loader: :func:`load` with ``data_dir`` defaulting to
    ``paths.data_dir()``."""
    where = Path(request.data_dir) if request.data_dir is not None else paths.data_dir()
    return load(request.split, where, download=request.download, image_size=request.image_size,
                progress=request.progress)


def load(split: str, data_dir: Path, *, download: bool, image_size: int,
         progress: Progress | None = None) -> tuple[Arrays, tuple[str, ...]]:
    """The ``split`` of CIFAR-10 found in (or downloaded to) ``data_dir``, at ``image_size``."""
    folder = locate(data_dir, download=download, progress=progress)
    classes = read_classes(folder / META)
    files = [folder / name for name in SPLIT_FILES[split]]
    identity = [(f.name, *_stat(f)) for f in files]
    key = source_key("cifar10", split, image_size, BATCH_ROWS, identity)

    def build() -> tuple[np.ndarray, np.ndarray]:
        return decode(files, image_size, progress)

    return cached(f"cifar10-{split}-{image_size}", key, build, progress), classes


def locate(data_dir: Path, *, download: bool, progress: Progress | None = None) -> Path:
    """The batches folder: ``data_dir/cifar-10-batches-py``, extracted from the archive,
    or downloaded. ``data_dir`` may also be the batches folder itself."""
    if (data_dir / DIRNAME).is_dir():
        return data_dir / DIRNAME
    if (data_dir / META).is_file():
        return data_dir
    archive = data_dir / ARCHIVE
    if not archive.is_file():
        if not download:
            raise EffscaleError(f"CIFAR-10 not found: {_where(data_dir)}, or allow downloading")
        fetch(URL, MD5, archive, progress)
    # A tarball the user placed is not checked against MD5: repacked or re-encoded copies
    # (like the JPEG-recompressed one we use) differ from the official bytes yet are valid;
    # the batch checks in decode() catch damage either way.
    return extract(archive, data_dir, progress)


def fetch(url: str, md5: str, archive: Path, progress: Progress | None = None) -> None:
    """Stream ``url`` into a ``.part`` file beside ``archive``; keep it only if its MD5 matches."""
    created = not archive.parent.exists()
    archive.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f"{archive.name}.", suffix=".part", dir=archive.parent)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
                    url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                actual = _copy_with_md5(response, out, url, progress)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            reason = getattr(err, "reason", None) or err
            raise EffscaleError(f"could not download CIFAR-10 from {url} ({reason}); "
                                f"{_where(archive.parent)}", exit_code=1) from None
        if actual != md5:
            raise EffscaleError(f"downloaded {url} has MD5 {actual}, expected {md5}; "
                                "discarded it", exit_code=1)
        os.replace(part, archive)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        if created and not archive.exists():
            with contextlib.suppress(OSError):  # leave no empty directory behind a failure
                archive.parent.rmdir()


def _copy_with_md5(response, out, url: str, progress: Progress | None) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    total = int(response.headers.get("Content-Length") or 0)
    done, reported = 0, -1
    while chunk := response.read(1 << 20):
        digest.update(chunk)
        out.write(chunk)
        done += len(chunk)
        tenth = done * 10 // total if total else -1
        if progress and tenth > reported:
            reported = tenth
            progress(f"downloading {url}: {done * 100 // total} %")
    if progress and not total:
        progress(f"downloaded {url}: {done / 1e6:.1f} MB")
    return digest.hexdigest()


def extract(archive: Path, data_dir: Path, progress: Progress | None = None) -> Path:
    """Extract ``archive`` into a temporary sibling folder, then rename it into place."""
    target = data_dir / DIRNAME
    if progress:
        progress(f"extracting {archive}")
    scratch = Path(tempfile.mkdtemp(prefix=f".{DIRNAME}.", dir=data_dir))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = [m for m in tar.getmembers() if _wanted(m)]
                safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(scratch, members=members, **safety)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise EffscaleError(f"{archive}: not a readable CIFAR-10 archive ({err})") from None
        required = [META, *SPLIT_FILES["train"], *SPLIT_FILES["test"]]
        missing = [name for name in required if not (scratch / DIRNAME / name).is_file()]
        if missing:
            raise EffscaleError(f"{archive}: no {DIRNAME}/{missing[0]} inside "
                                f"(missing {len(missing)} of {len(required)} files)")
        try:
            os.rename(scratch / DIRNAME, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process extracted it first; its copy is as good as ours.
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def read_classes(path: Path) -> tuple[str, ...]:
    meta = _unpickle(path)
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise EffscaleError(f"{path}: expected {NUM_CLASSES} label_names in the CIFAR-10 meta file")
    return tuple(n.decode("ascii", "replace") if isinstance(n, bytes) else str(n) for n in names)


def decode(files: list[Path], image_size: int,
           progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validated batches as uint8 [N, 3, S, S] images and int64 [N] labels."""
    if progress:
        progress(f"decoding {len(files)} CIFAR-10 batch file(s) in {files[0].parent}")
    batches = [read_batch(path) for path in files]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    if image_size != NATIVE_SIZE:
        images = resize(images, image_size)
    return images, labels


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file, checked: keys b"data"/b"labels", BATCH_ROWS x 3072 uint8, labels 0..9."""
    batch = _unpickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise EffscaleError(f"{path}: not a CIFAR-10 batch (expected keys b'data' and b'labels')")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    expected = (BATCH_ROWS, 3 * NATIVE_SIZE * NATIVE_SIZE)
    if not isinstance(data, np.ndarray):
        raise EffscaleError(f"{path}: expected data as a numpy array, found {type(data).__name__}")
    if data.dtype != np.uint8 or data.shape != expected:
        raise EffscaleError(f"{path}: expected data of shape {expected} uint8, "
                            f"found {data.shape} {data.dtype}")
    if labels.shape != (BATCH_ROWS,) or labels.dtype.kind not in "iu":
        raise EffscaleError(f"{path}: expected {BATCH_ROWS} integer labels, "
                            f"found {labels.shape} {labels.dtype}")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise EffscaleError(f"{path}: labels must be in 0..{NUM_CLASSES - 1}, "
                            f"found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, NATIVE_SIZE, NATIVE_SIZE), labels.astype(np.int64)


def resize(images: np.ndarray, size: int, chunk: int = 2048) -> np.ndarray:
    """Bilinear, antialiased resize of uint8 [N, 3, H, W] to [N, 3, size, size]."""
    out = np.empty((len(images), 3, size, size), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        block = torch.from_numpy(np.ascontiguousarray(images[start:start + chunk])).float()
        block = F.interpolate(block, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
        out[start:start + chunk] = block.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


class _BatchUnpickler(pickle.Unpickler):
    """Builds only what CIFAR-10 files contain (numpy arrays), never arbitrary objects."""

    # Official files name numpy.core (Python 2 era); numpy 2 pickles name numpy._core.
    _ALLOWED = {
        (f"numpy.{core}.multiarray", name): function
        for core in ("core", "_core")
        for name, function in (("_reconstruct", np.zeros(1).__reduce__()[0]),
                               ("scalar", np.int64(0).__reduce__()[0]))
    } | {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes pickled by Python 3 at protocol 2
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}") from None


def _unpickle(path: Path) -> object:
    try:
        with open(path, "rb") as handle:
            return _BatchUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise EffscaleError(f"{path}: missing from the CIFAR-10 folder") from None
    except Exception as err:  # a damaged pickle can fail in many ways; all mean "bad file"
        raise EffscaleError(f"{path}: not a readable CIFAR-10 file "
                            f"({type(err).__name__}: {err})") from None


def _stat(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise EffscaleError(f"{path}: missing from the CIFAR-10 folder") from None
    return stat.st_size, stat.st_mtime_ns


def _wanted(member: tarfile.TarInfo) -> bool:
    parts = Path(member.name).parts
    return (len(parts) >= 1 and parts[0] == DIRNAME and ".." not in parts
            and (member.isfile() or member.isdir()))


def _where(data_dir: Path) -> str:
    return (f"put the {DIRNAME}/ folder or {ARCHIVE} (from {URL}) in {data_dir}")
