"""Atomic writes: a file is whole or absent, with the permissions a plain write gives it
(the kill-while-writing run is in tests/experiment/test_resilience.py)."""

from __future__ import annotations

import os
from pathlib import Path

from effscale import atomic


def test_atomic_files_get_the_usual_permissions(tmp_path: Path) -> None:
    atomic.write_text(tmp_path / "x.yaml", "a: 1\n")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.yaml").stat().st_mode & 0o777 == 0o666 & ~mask
