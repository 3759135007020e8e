"""Runs that several test modules read, made once per ``pytest`` invocation.

A session fixture runs once per process; under ``pytest -n 2`` each worker would train its
own copy of the same smoke search. :func:`shared_run` keeps the run beside the workers' temp
folders instead, under a file lock: the first worker to ask trains it, the others wait for it
and read the same folder. Tests read a shared run and never change it (copy it first, as
``tests/report/conftest.py``'s ``in_progress`` does).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from effscale.cli.main import main_entry


@dataclass(frozen=True)
class SharedRun:
    """A finished CLI run: its ``--out`` folder, exit code and what it printed."""

    out: Path
    code: int
    stdout: str
    stderr: str


def _root(factory: pytest.TempPathFactory) -> Path:
    base = factory.getbasetemp()
    # under pytest-xdist each worker's basetemp is a folder of the run's common one
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_run(factory: pytest.TempPathFactory, name: str, *argv: str) -> SharedRun:
    """``effscale *argv --out <shared>/<name>``, run by the first test process that asks."""
    folder = _root(factory) / "shared-runs"
    folder.mkdir(parents=True, exist_ok=True)
    out, record = folder / name, folder / f"{name}.json"
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not record.is_file():
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = main_entry([*argv, "--out", str(out)])
            record.write_text(json.dumps({"argv": list(argv), "code": code,
                                          "stdout": stdout.getvalue(),
                                          "stderr": stderr.getvalue()}))
        done = json.loads(record.read_text())
    assert done["argv"] == list(argv), f"two shared runs named {name!r} with other arguments"
    return SharedRun(out, done["code"], done["stdout"], done["stderr"])


# The smoke search most search and report tests read (FLOPs counted by fvcore, the default).
# Its accuracies mean nothing at any size the suite can afford (tests assert plumbing and
# states), so it trains on 64 images, not smoke's 512. It is the suite's one end-to-end
# search of b0 itself (the plumbing tests search tests/tiny_base.py's base).
SMOKE_SEARCH = ("search", "--dataset", "synthetic", "--budget", "smoke", "--train-size", "64",
                "--val-size", "32", "--batch-size", "32", "--quiet")
