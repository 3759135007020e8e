"""Workers spread over GPUs (issue 13): ``--devices``, ``--workers-per-device`` and which
device each worker process trains on. Before, every worker trained on ``cuda:0``. The GPUs
are faked by monkeypatching torch.cuda's queries; nothing touches CUDA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from effscale.errors import EffscaleError
from effscale.experiment import engine, workers
from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings
from effscale.train import levers

Cli = Callable[..., tuple[int, str, str]]
SMOKE = ("--dataset", "synthetic", "--budget", "smoke", "--counter", "torch", "--threads", "1")


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def settings(**fields: Any) -> RunSettings:
    budget = get_budget("smoke")
    return RunSettings(base="b0", dataset="synthetic", budget=budget,
                       recipe=budget_recipe(budget), **fields)


def test_devices_0_1_with_4_workers_puts_two_on_each() -> None:
    workers_, per_device = workers.plan_workers(4, (0, 1), None)
    assert (workers_, per_device) == (4, 2)
    assert workers.assign_devices(4, (0, 1), 2) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]


@pytest.mark.parametrize(("given", "devices", "per_device", "planned", "assigned"), [
    (None, (0, 1), None, (2, 1), ["cuda:0", "cuda:1"]),  # one per GPU
    (None, (0, 1), 3, (6, 3), ["cuda:0"] * 3 + ["cuda:1"] * 3),
    (3, (0, 1), None, (3, 2), ["cuda:0", "cuda:0", "cuda:1"]),
    (3, (0, 1, 2), 2, (3, 2), ["cuda:0", "cuda:0", "cuda:1"]),
    (None, (1,), 4, (4, 4), ["cuda:1"] * 4),  # four candidates in flight on GPU 1
    (1, (3, 1), None, (1, 1), ["cuda:3"]),  # the list's order is kept
])
def test_the_assignment_rule(given: int | None, devices: tuple[int, ...],
                             per_device: int | None, planned: tuple[int, int],
                             assigned: list[str]) -> None:
    assert workers.plan_workers(given, devices, per_device) == planned
    assert workers.assign_devices(*planned[:1], devices, planned[1]) == assigned


def test_without_devices_the_worker_count_is_as_before() -> None:
    assert workers.plan_workers(None, None, None) == (1, 1)  # the suite's default: one
    assert workers.plan_workers(3, None, None) == (3, 3)  # all on --device
    assert workers.plan_workers(None, None, 2) == (2, 2)


def test_more_workers_than_places_is_refused() -> None:
    with pytest.raises(EffscaleError, match="--workers 5 is more than 2 device"):
        workers.plan_workers(5, (0, 1), 2)
    with pytest.raises(ValueError):
        workers.assign_devices(5, (0, 1), 2)
    with pytest.raises(EffscaleError, match=">= 1"):
        workers.plan_workers(0, None, None)


def test_devices_on_a_machine_without_cuda_is_a_one_line_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert workers.parse_devices(None) is None
    with pytest.raises(EffscaleError, match="no CUDA GPU is available") as error:
        workers.parse_devices("0,1")
    assert "\n" not in str(error.value)
    with pytest.raises(EffscaleError, match="does not go with --device cpu"):
        workers.parse_devices("auto", "cpu")


def test_devices_are_parsed_against_the_visible_gpus(two_gpus: None) -> None:
    assert workers.parse_devices("auto") == (0, 1)
    assert workers.parse_devices("1,0") == (1, 0)
    assert workers.parse_devices(" 1 ") == (1,)
    for text, message in [("2", "no GPU 2"), ("0,0", "listed twice"), ("gpu0", "comma list"),
                          ("", "comma list")]:
        with pytest.raises(EffscaleError, match=message):
            workers.parse_devices(text)


def test_worker_devices_follow_the_settings(two_gpus: None) -> None:
    assert workers.worker_devices(settings(device="cpu", workers=3)) == [torch.device("cpu")] * 3
    spread = workers.worker_devices(settings(workers=4, devices=(0, 1), workers_per_device=2))
    assert spread == [torch.device("cuda", i) for i in (0, 0, 1, 1)]


def test_worker_devices_refuse_gpus_on_the_cpu() -> None:
    with pytest.raises(EffscaleError, match="--device cpu"):
        workers.worker_devices(settings(device="cpu", devices=(0,)))


def test_each_worker_process_gets_its_device(two_gpus: None, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """The engine hands worker i its device: the main process (worker 0) trains on cuda:0,
    the three spawned ones on cuda:0, cuda:1, cuda:1. Before, all of them used --device."""
    started: dict[str, Any] = {}
    worked: list[torch.device | None] = []

    def fake_start(count: int, target: Any, args: tuple[Any, ...],
                   per_worker: Any = ()) -> list[Any]:
        started.update(count=count, per_worker=per_worker)
        return []

    def fake_work(prepared: Any, study: Any, events: Any, wait_for_others: bool,
                  device: torch.device | None = None) -> None:
        worked.append(device)

    monkeypatch.setattr(engine, "start_workers", fake_start)
    monkeypatch.setattr(engine, "work", fake_work)

    class Experiment:
        settings = settings(workers=4, devices=(0, 1), workers_per_device=2)

    class Prepared:
        run_dir = tmp_path

    engine._work_with_workers(Experiment(), Prepared(), None, RunEvents())  # type: ignore[arg-type]
    assert started["count"] == 3
    assert list(started["per_worker"]) == [("cuda:0",), ("cuda:1",), ("cuda:1",)]
    assert worked == [torch.device("cuda", 0)]


def test_the_cli_counts_workers_from_the_devices(two_gpus: None) -> None:
    from effscale.cli import options as opt

    budget = get_budget("smoke")
    fields = opt.settings_fields(opt.RunOptions(devices="0,1", workers=4), budget)
    assert (fields["devices"], fields["workers"], fields["workers_per_device"]) == ((0, 1), 4, 2)
    fields = opt.settings_fields(opt.RunOptions(devices="auto", workers_per_device=3), budget)
    assert (fields["devices"], fields["workers"], fields["workers_per_device"]) == ((0, 1), 6, 3)
    fields = opt.settings_fields(opt.RunOptions(), budget)
    assert (fields["devices"], fields["workers"], fields["workers_per_device"]) == (None, 1, 1)


@pytest.mark.parametrize("command", ["search", "compare"])
def test_devices_without_cuda_fails_in_one_line_before_any_work(
        cli: Cli, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = cli(command, *SMOKE, "--devices", "0,1", "--workers", "4", "--dry-run")
    assert code != 0
    assert err.strip() == "error: --devices: no CUDA GPU is available (on the CPU, use --workers)"
    assert out == ""


@pytest.mark.parametrize(("cores", "omp", "threads", "planned"), [
    (2, None, None, 2),  # the measured default: 2 processes x 1 thread on 2 cores
    (16, None, None, 2),
    (1, None, None, 1),  # never more processes than cores
    (2, "2", None, 1),  # OMP_NUM_THREADS=2 fills 2 cores with one process
    (2, "1", 2, 1),  # --threads beats OMP_NUM_THREADS
    (4, None, 2, 2),
])
def test_a_cpu_runs_two_workers_by_default_within_its_cores(
        monkeypatch: pytest.MonkeyPatch, cores: int, omp: str | None, threads: int | None,
        planned: int) -> None:
    """The shipped CPU default (the suite runs one worker, tests/conftest.py): two
    single-thread processes measured 1.5x one of two threads (docs/benchmarks.md)."""
    monkeypatch.setitem(levers.DEVICE_DEFAULTS, "cpu", levers.CPU_DEFAULTS)
    monkeypatch.setattr(workers, "available_cores", lambda: cores)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert workers.plan_workers(None, None, None, "cpu", threads) == (planned, planned)
    assert workers.plan_workers(3, None, None, "cpu", threads) == (3, 3)  # asked: as asked
    assert levers.CUDA_DEFAULTS.workers == 1
