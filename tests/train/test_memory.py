"""Out of memory and the GPU's memory (issue 13): one retry rule for the plain trainer and
for successive halving (half the batch, half the learning rate; evaluation retried alone),
OOM catching on every torch from 2.1, paused candidates offloaded, data placement, compile
time apart. All on the CPU: the out-of-memory errors are injected, the GPU is faked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import optuna
import pytest
import torch

from effscale.datasets.images import ImageData
from effscale.experiment import engine, halving, runner
from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.events import RunEvents
from effscale.experiment.plan import Prepared
from effscale.experiment.pruning import make_pruner
from effscale.experiment.queue import open_study
from effscale.experiment.settings import RunSettings
from effscale.experiment.storage import open_storage
from effscale.model.bases import get_base
from effscale.model.config import ModelConfig
from effscale.scaling.compound import scale_config
from effscale.train import memory, trainer
from effscale.train.trainer import ProxyTrainer, Recipe, proxy_config, train_config

CPU = torch.device("cpu")
OOM = torch.cuda.OutOfMemoryError  # on every torch from 1.13 (torch.OutOfMemoryError from 2.5)


# --------------------------------------------------------------------------- a tiny run


def tiny_config(name: str = "tiny", resolution: int = 16) -> ModelConfig:
    """b0 at a quarter of its width and a third of its depth: a training takes ~0.1 s."""
    small = scale_config(get_base("b0", 10), depth=0.3, width=0.25, name=name)
    return proxy_config(small.replace(resolution=resolution), Recipe(), 4)


def tiny_data(n: int, seed: int) -> ImageData:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 4, (n,), generator=generator)
    return ImageData(images, labels, ("a", "b", "c", "d"), f"toy{seed}", f"toy{seed}")


@dataclass
class Toy:
    """A model of a toy run, as the trial runner takes it."""

    key: str
    config: ModelConfig
    resolution: int = 16
    epochs_factor: int = 1

    @property
    def is_base(self) -> bool:
        return self.key == "base"

    @property
    def is_confirmation(self) -> bool:
        return False

    @property
    def seed_offset(self) -> int:
        return 0

    def summary(self) -> dict[str, Any]:
        return {"resolution": self.resolution}


class Events(RunEvents):
    """Progress events, with the messages kept."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)


def toy_run(tmp_path: Path, keys: list[str], *, pruner: str = "none", epochs: int = 1,
            batch_size: int = 64) -> tuple[Prepared, optuna.Study]:
    budget = get_budget("smoke").override(epochs=epochs, train_size=128, val_size=32,
                                          batch_size=batch_size, pruner=pruner, repeats=1)
    settings = RunSettings(base="b0", dataset="synthetic", budget=budget,
                           recipe=budget_recipe(budget))
    candidates = {key: Toy(key, tiny_config(key)) for key in keys}
    items = [f"{key}@0" for key in keys]
    prepared = Prepared(settings, tiny_data(128, 1), tiny_data(32, 2), candidates, items,  # type: ignore[arg-type]
                        {"toy": keys}, tmp_path)
    study = open_study(open_storage(None, tmp_path), "t", tmp_path, prepared.identity, items,
                       make_pruner(pruner))
    return prepared, study


def trials_by_key(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["candidate"]: t for t in study.get_trials(deepcopy=False)
            if "candidate" in t.user_attrs}


@pytest.fixture
def train_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Recipe]]:
    """The recipe of every training the trial runner starts."""
    calls: list[Recipe] = []
    real = runner.train_config

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["recipe"])
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "train_config", spy)
    yield calls


# --------------------------------------------------------------------------- the rule


def test_training_oom_halves_the_batch_and_the_learning_rate_together() -> None:
    shrunk, retry = memory.shrink_training(Recipe(batch_size=64, lr=3e-3))
    assert (shrunk.batch_size, shrunk.lr) == (32, pytest.approx(1.5e-3))
    assert retry.note.startswith("out of memory at batch size 64; retried at 32")
    assert "linear scaling" in retry.note
    odd, _ = memory.shrink_training(Recipe(batch_size=12, lr=1.2e-3))
    assert (odd.batch_size, odd.lr) == (8, pytest.approx(0.8e-3))  # lr ∝ batch, exactly
    assert memory.shrink_training(Recipe(batch_size=8)) is None  # the floor


def test_retry_training_shrinks_until_it_fits_and_stops_at_the_floor() -> None:
    tried: list[tuple[int, float]] = []
    heard: list[memory.Retry] = []

    def needs_16(recipe: Recipe) -> str:
        tried.append((recipe.batch_size, recipe.lr))
        if recipe.batch_size > 16:
            raise OOM("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "trained"

    assert memory.retry_training(needs_16, Recipe(batch_size=64, lr=4e-3), CPU,
                                 heard.append) == "trained"
    assert tried == [(64, 4e-3), (32, 2e-3), (16, 1e-3)]
    assert [(r.batch_size, r.new_batch_size) for r in heard] == [(64, 32), (32, 16)]
    assert memory.describe(heard) == {"batch_size_used": 16, "lr_used": 1e-3,
                                      "note": f"{heard[0].note}; {heard[1].note}"}

    tried.clear()

    def never(recipe: Recipe) -> None:
        tried.append((recipe.batch_size, recipe.lr))
        raise RuntimeError("CUDA error: out of memory")  # what older code paths raise

    with pytest.raises(memory.OutOfMemory, match="even at batch size 8") as failed:
        memory.retry_training(never, Recipe(batch_size=64), CPU)
    assert failed.value.kind == "out of memory"
    assert [b for b, _ in tried] == [64, 32, 16, 8]


def test_retry_training_passes_other_errors_and_spent_retries_through() -> None:
    calls = []

    def broken(recipe: Recipe) -> None:
        calls.append(recipe.batch_size)
        raise ValueError("not memory")

    with pytest.raises(ValueError):
        memory.retry_training(broken, Recipe(batch_size=64), CPU)

    def evaluation_spent(recipe: Recipe) -> None:
        calls.append(recipe.batch_size)
        raise memory.OutOfMemory("in evaluation even at batch size 8")

    with pytest.raises(memory.OutOfMemory):  # an evaluation OOM never retrains
        memory.retry_training(evaluation_spent, Recipe(batch_size=64), CPU)
    assert calls == [64, 64]


def test_retry_evaluation_halves_the_evaluation_batch_only() -> None:
    sizes: list[int] = []

    def evaluate(batch_size: int) -> float:
        sizes.append(batch_size)
        if batch_size > 128:
            raise OOM("CUDA out of memory")
        return 0.5

    heard: list[memory.Retry] = []
    assert memory.retry_evaluation(evaluate, 500, CPU, heard.append) == (0.5, 125)
    assert sizes == [500, 250, 125]
    assert memory.describe(heard)["eval_batch_size_used"] == 125
    assert heard[0].note == "out of memory in evaluation at batch size 500; evaluated at 250"
    with pytest.raises(memory.OutOfMemory, match="in evaluation even at batch size 8"):
        memory.retry_evaluation(lambda b: evaluate(1000), 16, CPU)


# --------------------------------------------------------------------------- torch versions


def test_oom_is_caught_on_a_torch_without_torch_OutOfMemoryError(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """torch 2.1-2.4 have only torch.cuda.OutOfMemoryError: ``except torch.OutOfMemoryError``
    raised AttributeError there, inside the except clause."""
    monkeypatch.delattr(torch, "OutOfMemoryError")
    assert memory.oom_types() == (torch.cuda.OutOfMemoryError,)
    assert memory.is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert not memory.is_oom(ValueError("x"))
    assert isinstance(memory.oom_error(), torch.cuda.OutOfMemoryError)
    attempts = iter([memory.oom_error(), None])

    def once(recipe: Recipe) -> int:
        exc = next(attempts)
        if exc is not None:
            raise exc
        return recipe.batch_size

    assert memory.retry_training(once, Recipe(batch_size=64), CPU) == 32


def test_oom_is_recognised_by_its_message_without_any_oom_class(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch, "OutOfMemoryError")
    monkeypatch.delattr(torch.cuda, "OutOfMemoryError")
    assert memory.oom_types() == ()
    assert memory.is_oom(RuntimeError("CUDA out of memory. Tried to allocate 20 MiB"))
    assert not memory.is_oom(RuntimeError("shapes do not match"))
    assert type(memory.oom_error()) is RuntimeError and memory.is_oom(memory.oom_error())


def test_the_runner_retries_an_oom_on_a_torch_without_torch_OutOfMemoryError(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch, "OutOfMemoryError")
    monkeypatch.setenv("EFFSCALE_TEST_FAULT", "base@0=oom")
    prepared, study = toy_run(tmp_path, ["base"])
    engine.work(prepared, study, Events(), wait_for_others=False)
    base = trials_by_key(study)["base"]
    assert base.state == optuna.trial.TrialState.COMPLETE
    assert base.user_attrs["batch_size_used"] == 32


# --------------------------------------------------------------------------- plain trainer


def test_a_training_oom_retrains_at_half_the_batch_and_learning_rate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, train_calls: list[Recipe]) -> None:
    monkeypatch.setenv("EFFSCALE_TEST_FAULT", "base@0=oom")  # training steps above batch 32
    prepared, study = toy_run(tmp_path, ["base"])
    events = Events()
    engine.work(prepared, study, events, wait_for_others=False)
    lr = prepared.settings.recipe.lr
    assert [(r.batch_size, r.lr) for r in train_calls] == [(64, lr), (32, pytest.approx(lr / 2))]
    base = trials_by_key(study)["base"]
    assert base.state == optuna.trial.TrialState.COMPLETE
    assert base.user_attrs["batch_size_used"] == 32
    assert base.user_attrs["lr_used"] == pytest.approx(lr / 2)
    assert base.user_attrs["note"].startswith("out of memory at batch size 64; retried at 32")
    assert any("base@0: out of memory at batch size 64" in m for m in events.messages)


def test_an_evaluation_oom_retries_the_evaluation_not_the_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, train_calls: list[Recipe]) -> None:
    """Before: an OOM in evaluation retrained at half the batch, with the same 500-image
    evaluation batch, until the candidate failed at batch 8."""
    real = trainer.evaluate
    sizes: list[int] = []

    def evaluate(model: Any, images: Any, labels: Any, device: Any, batch_size: int = 500,
                 **kwargs: Any) -> Any:
        sizes.append(batch_size)
        if batch_size > 128:
            raise OOM("CUDA out of memory. Tried to allocate 4.00 GiB")
        return real(model, images, labels, device, batch_size, **kwargs)

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    prepared, study = toy_run(tmp_path, ["base"], epochs=2)
    engine.work(prepared, study, Events(), wait_for_others=False)
    base = trials_by_key(study)["base"]
    assert base.state == optuna.trial.TrialState.COMPLETE, base.user_attrs
    assert len(train_calls) == 1  # trained once
    assert sizes == [500, 250, 125, 125]  # epoch 2 keeps the size that fitted
    assert base.user_attrs["eval_batch_size_used"] == 125
    assert "batch_size_used" not in base.user_attrs
    assert "out of memory in evaluation at batch size 500" in base.user_attrs["note"]


def test_the_evaloom_fault_and_the_evaluation_floor(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFSCALE_TEST_FAULT", "base@0=evaloom,other@0=evaloom")
    monkeypatch.setattr(memory, "SMALLEST_BATCH", 250)  # so the floor is reached above 128
    prepared, study = toy_run(tmp_path, ["base", "other"])
    engine.work(prepared, study, Events(), wait_for_others=False)
    for trial in trials_by_key(study).values():
        assert trial.state == optuna.trial.TrialState.FAIL
        assert trial.user_attrs["failure_kind"] == "out of memory"
        assert trial.user_attrs["failure"] == "in evaluation even at batch size 250"
        assert trial.user_attrs["eval_batch_size_used"] == 250


def test_a_training_oom_at_the_floor_fails_as_out_of_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFSCALE_TEST_FAULT", "base@0=oom")
    monkeypatch.setattr(memory, "SMALLEST_BATCH", 64)
    prepared, study = toy_run(tmp_path, ["base"])
    engine.work(prepared, study, Events(), wait_for_others=False)
    base = trials_by_key(study)["base"]
    assert base.state == optuna.trial.TrialState.FAIL
    assert (base.user_attrs["failure_kind"], base.user_attrs["failure"]) == \
        ("out of memory", "even at batch size 64")


# --------------------------------------------------------------------------- halving


class Flaky(ProxyTrainer):
    """A real trainer that runs out of memory above batch 32 when its model is called
    ``oomy``, fails when it is called ``broken``, and counts its pauses."""

    pauses: ClassVar[list[tuple[str, str, int]]] = []

    def __init__(self, config: ModelConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.name = config.name

    def run_epoch(self, progress: Any = None) -> float:
        if self.name == "oomy" and self.recipe.batch_size > 32:
            raise OOM("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.name == "broken":
            raise ValueError("injected: not a RuntimeError")
        return super().run_epoch(progress)

    def offload(self) -> None:
        Flaky.pauses.append((self.name, "offload", self.result.epochs_run))
        super().offload()

    def reload(self) -> None:
        Flaky.pauses.append((self.name, "reload", self.result.epochs_run))
        super().reload()


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> type[Flaky]:
    Flaky.pauses = []
    monkeypatch.setattr(halving, "ProxyTrainer", Flaky)
    return Flaky


@pytest.mark.slow  # trains a halving run end to end (3 s)
def test_halving_retries_an_oom_and_records_any_other_error(tmp_path: Path,
                                                           flaky: type[Flaky]) -> None:
    """Before: halving recorded the OOM as a plain error, and the ValueError crashed the
    search."""
    prepared, study = toy_run(tmp_path, ["base", "oomy", "broken", "fine"], pruner="halving",
                              epochs=3)
    engine.work(prepared, study, Events(), wait_for_others=False)
    trials = trials_by_key(study)
    lr = prepared.settings.recipe.lr
    oomy = trials["oomy"]
    assert oomy.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert (oomy.user_attrs["batch_size_used"], oomy.user_attrs["lr_used"]) == \
        (32, pytest.approx(lr / 2))
    assert "retried at 32" in oomy.user_attrs["note"]
    broken = trials["broken"]
    assert broken.state == optuna.trial.TrialState.FAIL
    assert broken.user_attrs["failure_kind"] == "error"
    assert broken.user_attrs["failure"] == "ValueError: injected: not a RuntimeError"
    assert trials["base"].state == optuna.trial.TrialState.COMPLETE
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials.values()) == 2


@pytest.mark.slow  # trains a halving run end to end (2.5 s)
def test_halving_retries_an_evaluation_oom_without_retraining(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFSCALE_TEST_FAULT", "c1@0=evaloom")
    prepared, study = toy_run(tmp_path, ["base", "c1"], pruner="halving", epochs=3)
    engine.work(prepared, study, Events(), wait_for_others=False)
    c1 = trials_by_key(study)["c1"]
    assert c1.state == optuna.trial.TrialState.COMPLETE
    assert c1.user_attrs["eval_batch_size_used"] == 125
    assert "batch_size_used" not in c1.user_attrs
    assert len(c1.intermediate_values) == 3  # epochs 1..3 once each: nothing retrained


@pytest.mark.slow  # trains a halving run end to end (2.5 s)
def test_paused_halving_candidates_are_offloaded_between_rungs(tmp_path: Path,
                                                               flaky: type[Flaky]) -> None:
    prepared, study = toy_run(tmp_path, ["base", "fine", "good"], pruner="halving", epochs=3)
    engine.work(prepared, study, Events(), wait_for_others=False)
    trials = trials_by_key(study)
    winner = next(k for k in ("fine", "good")
                  if trials[k].state == optuna.trial.TrialState.COMPLETE)
    loser = "good" if winner == "fine" else "fine"
    assert (loser, "offload", 1) in flaky.pauses and (winner, "offload", 1) in flaky.pauses
    assert (winner, "reload", 1) in flaky.pauses  # before its rung-2 epochs
    assert (loser, "reload", 1) not in flaky.pauses
    assert not [p for p in flaky.pauses if p[2] == 3 and p[1] == "offload"]  # done: kept


# --------------------------------------------------------------------------- offloading


def small_trainer(seed: int = 0, **recipe: Any) -> ProxyTrainer:
    data = tiny_data(64, 3)
    return ProxyTrainer(tiny_config(), data.images, data.labels, data.images[:32],
                        data.labels[:32], recipe=Recipe(epochs=3, batch_size=32, **recipe),
                        device=CPU, seed=seed)


def test_placing_a_trainer_moves_its_model_and_optimizer_state() -> None:
    """The move ``offload``/``reload`` make, to a device that is not the CPU: "meta"."""
    run = small_trainer()
    run.run_epoch()
    params = list(run.model.parameters())
    run._place(torch.device("meta"))
    assert all(p.device.type == "meta" for p in run.model.parameters())
    assert all(b.device.type == "meta" for b in run.model.buffers())
    moments = [v for state in run.optimizer.state.values() for k, v in state.items()
               if k != "step"]
    assert moments and all(v.device.type == "meta" for v in moments)
    steps = [s["step"] for s in run.optimizer.state.values()]
    assert all(s.device.type == "cpu" for s in steps)  # where torch keeps a non-fused step
    # The optimizer still updates the model's own parameters and keeps their state (the
    # move to meta replaced the parameter objects; CPU <-> CUDA moves them in place).
    moved = list(run.model.parameters())
    assert {id(p) for g in run.optimizer.param_groups for p in g["params"]} == set(map(id, moved))
    assert set(map(id, run.optimizer.state)) == set(map(id, moved))
    assert not set(map(id, params)) & set(map(id, moved))


def test_offload_and_reload_move_to_the_cpu_and_back_once(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    run = small_trainer()
    moves: list[torch.device] = []
    monkeypatch.setattr(run, "_place", moves.append)
    run.offload()
    assert moves == [] and not run.offloaded  # a no-op on the CPU
    run.device = torch.device("cuda", 1)  # as if it trained on a GPU
    run.offload()
    run.offload()
    assert moves == [CPU] and run.offloaded
    run.reload()
    run.reload()
    assert moves == [CPU, torch.device("cuda", 1)] and not run.offloaded


@pytest.mark.slow  # trains two runs end to end (2 s)
def test_a_paused_and_reloaded_run_is_the_run_trained_straight_through() -> None:
    straight = small_trainer(seed=5)
    paused = small_trainer(seed=5)
    while not straight.done:
        straight.run_epoch()
        paused.run_epoch()
        paused.offload()
        paused.reload()
    assert paused.result.val_accuracy_per_epoch == straight.result.val_accuracy_per_epoch
    assert paused.result.train_loss_per_epoch == straight.result.train_loss_per_epoch


# --------------------------------------------------------------------------- placement, timing


def test_the_dataset_stays_on_the_device_when_it_takes_a_quarter_of_free_memory_at_most(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from effscale.train import placement

    cifar = 50_000 * 3 * 32 * 32  # 150 MB as uint8
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 << 30, 141 << 30))
    assert placement.resident(cifar, torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (400 << 20, 16 << 30))
    assert not placement.resident(cifar, torch.device("cuda", 0))
    assert not placement.resident(cifar, CPU)
    assert placement.fits_on_device(25, 100) and not placement.fits_on_device(26, 100)


def test_host_data_is_served_as_before_on_the_cpu() -> None:
    from effscale.train.placement import DeviceData

    data = tiny_data(16, 4)
    served = DeviceData(data.images, data.labels, CPU)
    assert served.where == "host" and not served.pinned
    index = served.order(torch.tensor([3, 1, 2]))
    images, labels = served.batch(index)
    assert torch.equal(images, data.images[[3, 1, 2]])
    assert torch.equal(labels, data.labels[[3, 1, 2]])


def test_compile_time_is_the_first_steps_extra() -> None:
    assert trainer.split_compile_time(first_step=30.5, epoch_seconds=40.5, steps=21) == \
        pytest.approx(30.0)
    assert trainer.split_compile_time(1.0, 1.0, 1) == 0.0
    assert trainer.split_compile_time(0.4, 10.0, 21) == 0.0  # no slower than the rest


def test_train_result_records_precision_and_evaluation_batch() -> None:
    data = tiny_data(64, 3)
    result = train_config(tiny_config(), data.images, data.labels, data.images[:32],
                          data.labels[:32], recipe=Recipe(epochs=1, batch_size=32), device=CPU)
    assert (result.precision, result.data_on, result.eval_batch_size) == ("fp32", "host", 500)
    assert result.compile_seconds == 0.0 and not result.compiled
