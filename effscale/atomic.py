"""Atomic file writes: a kill at any instant leaves the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TMP_MARK = ".effscale-tmp-"


def _file_mode() -> int:
    """What ``open()`` would give a new file: 0o666 less the umask (mkstemp gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temporary sibling of ``path``; on clean exit fsync it and ``os.replace`` it in.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TMP_MARK}", dir=target.parent)
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            if delay := float(os.environ.get("EFFSCALE_TEST_WRITE_DELAY", "0") or 0):
                time.sleep(delay)  # lets a test kill the writer with a temp file on disk
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def remove_stray_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files left in ``directory`` by a writer that was killed mid-write."""
    removed = []
    root = Path(directory)
    if not root.is_dir():
        return removed
    for stray in root.glob(f"*{TMP_MARK}*"):
        with contextlib.suppress(OSError):
            stray.unlink()
            removed.append(stray)
    return removed


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable; not every filesystem allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
