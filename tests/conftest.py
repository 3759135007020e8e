"""Shared fixtures: an isolated cache for every test and a helper that drives the CLI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from shared_runs import SharedRun

CliResult = tuple[int, str, str]

# One OpenMP/BLAS thread in every test process from its start (the pytest-xdist workers
# inherit the controller's environment, which this module sets before they start; torch's
# and numpy's thread pools read it when they load): two processes on two cores, each with a
# pool of two, spin-wait against each other. A value you set yourself is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")


# Fixtures that train a run once for every test process (tests/shared_runs.py): the first
# process to ask trains it, any other that asks meanwhile waits.
SHARED_RUNS = ("smoke_search_run", "smoke_compare")
SCHEDULE_CHUNK = 2  # tests handed to a pytest-xdist process at a time


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the order in which tests are handed out: longest first. The first
    test that needs each shared run; the slow tests that need none; the other shared-run
    tests; the fast ones last, to even out the end. Each group in collection order (where the
    Eff-UNet test, 46 s, is among the last)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    first: set[int] = set()
    for name in SHARED_RUNS:
        users = [i for i, item in enumerate(items) if name in item.fixturenames]
        first.update(users[:1])

    def group(index: int) -> int:
        item = items[index]
        if index in first:
            return 0
        if any(name in item.fixturenames for name in SHARED_RUNS):
            return 2
        return 1 if item.get_closest_marker("slow") else 3

    items[:] = [items[i] for i in sorted(range(len(items)), key=group)]


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n 2``: the controller hands tests out :data:`SCHEDULE_CHUNK` at a time
    (``--maxschedchunk``), unless told otherwise. pytest-xdist's own first hand-out is a
    quarter of all tests per process, in a row: with the slow tests first in the order, one
    process got every one of them and the other sat idle for minutes.

    Every process that runs tests gets the tests' small base ("tiny", registered as a plugin
    registers its bases) and one torch thread. The controller runs no test: it skips the
    imports (torch's alone is ~3 s, before any worker starts)."""
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        if config.getoption("maxschedchunk", None) is None:
            config.option.maxschedchunk = SCHEDULE_CHUNK
        return
    import tiny_base  # noqa: F401
    import torch

    # The tests run small models on a shared 2-core machine, where intra-op threads spin-wait
    # against other processes: one thread was up to 50x faster for a b0 backward pass under
    # load.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Module- and session-scoped fixtures run before function-scoped ones: give them a cache
    outside ``~/.cache`` too."""
    from effscale.train import levers

    path = tmp_path_factory.mktemp("effscale-cache")
    # Measured FLOPs depend only on the config: under pytest-xdist the workers share one
    # cache beside their temp folders (each entry is written atomically), so a full-size model
    # is measured once per run, not once per worker.
    flops = path / "flops"
    if os.environ.get("PYTEST_XDIST_WORKER"):
        flops = tmp_path_factory.getbasetemp().parent / "effscale-flops"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EFFSCALE_CACHE_DIR", str(path))
        patch.setenv("EFFSCALE_FLOPS_CACHE_DIR", str(flops))
        # One torch thread in every search a test runs, in process or as a subprocess
        # (effscale.experiment.workers.default_threads reads it): the workers of `pytest -n 2`
        # would otherwise each take both cores and spin-wait against each other.
        patch.setenv("OMP_NUM_THREADS", "1")
        patch.delenv("EFFSCALE_NO_CACHE", raising=False)
        # A search's estimate counts its trainings but times no model (seconds a model,
        # minutes a test on a busy machine); tests/experiment/test_estimate.py unsets it.
        patch.setenv("EFFSCALE_NO_ESTIMATE", "1")
        # One worker process per search unless a test asks for more: the CPU's default of two
        # (levers.CPU_DEFAULTS) would start a second process in every search a test runs, on
        # cores pytest-xdist already fills. tests/experiment/test_devices.py tests the default.
        patch.setitem(levers.DEVICE_DEFAULTS, "cpu", replace(levers.CPU_DEFAULTS, workers=1))
        yield path


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    """Back to one thread before each test, whatever the previous test set."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own empty cache, so no test sees another's (or the user's) entries,
    except measured FLOPs: they depend only on the config, and re-measuring full-size models
    in every search test would cost minutes. tests/model/test_flops.py, which tests that cache,
    isolates it again."""
    path = tmp_path / "cache"
    monkeypatch.setenv("EFFSCALE_CACHE_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _subprocesses_only_in_slow_tests(request: pytest.FixtureRequest,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that starts a process (directly, through ``subprocess.run`` or any library) is
    marked slow, so ``pytest -m "not slow"`` stays the quick edit loop: starting one from an
    unmarked test fails it, saying so. (Module and session fixtures run before this one.)"""
    if request.node.get_closest_marker("slow") is not None:
        return
    name = request.node.nodeid

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{name} starts a subprocess: mark it @pytest.mark.slow")

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``cli("flops", "configs/b0.yaml")`` -> ``(exit code, stdout, stderr)`` of that run only."""

    from effscale.cli.main import main_entry

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()  # drop anything printed before this run
        code = main_entry([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def smoke_search_run(tmp_path_factory: pytest.TempPathFactory) -> SharedRun:
    """The smoke search (:data:`shared_runs.SMOKE_SEARCH`), trained once for every test
    process of this pytest run; read it, never change it."""
    from shared_runs import SMOKE_SEARCH, shared_run

    return shared_run(tmp_path_factory, "smoke-search", *SMOKE_SEARCH)
