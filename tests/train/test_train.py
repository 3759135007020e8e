"""`effscale train`, checkpoints, rung-synchronous halving and the FLOP counter fallback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import effscale
from effscale.errors import EffscaleError
from effscale.experiment.halving import planned_epochs, promote, rung_epochs
from effscale.model.bases import get_base
from effscale.model.flops import count_flops

Cli = Callable[..., tuple[int, str, str]]
TINY = ("--dataset", "synthetic", "--train-size", "64", "--val-size", "32", "--batch-size",
        "32", "--resolution", "16", "--threads", "1", "--quiet")


# --------------------------------------------------------------------------- train command


@pytest.mark.slow
def test_train_json_and_checkpoint_reproduce_accuracy(cli: Cli, tmp_path: Path) -> None:
    from effscale.experiment.data import load_data
    from effscale.experiment.events import RunEvents
    from effscale.train.trainer import evaluate, resize_images

    target = tmp_path / "ck" / "b0.pt"
    code, out, err = cli("train", "configs/b0.yaml", *TINY, "--epochs", "2", "--json",
                         "--checkpoint", target)
    assert code == 0, err
    doc = json.loads(out)
    assert {"val_accuracy", "val_accuracy_per_epoch", "train_loss_per_epoch", "epoch_seconds",
            "images_per_second", "checkpoint", "resolution", "epochs"} <= set(doc)
    assert (doc["epochs"], doc["resolution"], doc["train_images"]) == (2, 16, 64)
    assert len(doc["epoch_seconds"]) == 2 and doc["images_per_second"] > 0
    assert doc["train_seconds"] == pytest.approx(sum(doc["epoch_seconds"]), abs=0.01)
    assert doc["val_seconds"] > 0  # validation is timed apart from the training steps
    assert doc["checkpoint"] == str(target)

    config, model = effscale.load_checkpoint(target)
    assert (config.num_classes, config.resolution, config.dropout) == (6, 16, 0.0)
    assert not model.training
    # The same split the command trained on: the search's holdout of the same data.
    from effscale.experiment.budgets import budget_recipe, get_budget
    from effscale.experiment.settings import RunSettings

    budget = get_budget("smoke").override(train_size=64, val_size=32, batch_size=32,
                                          resolution=16, epochs=2)
    settings = RunSettings(base="b0", dataset="synthetic", budget=budget,
                           recipe=budget_recipe(budget))
    _, val = load_data(settings, RunEvents(), 32)
    accuracy, _ = evaluate(model.to(memory_format=torch.channels_last),
                           resize_images(val.images, 16), val.labels, torch.device("cpu"))
    assert accuracy == pytest.approx(doc["val_accuracy"], abs=1e-9)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    config = get_base("b0", 7).replace(resolution=32)
    model = effscale.build_model(config).eval()
    path = tmp_path / "m.pt"
    effscale.save_checkpoint(path, config, model.to(memory_format=torch.channels_last),
                             {"val_accuracy": 0.5})
    loaded_config, loaded = effscale.load_checkpoint(path)
    assert loaded_config == config
    original = model.state_dict()
    assert all(torch.equal(original[k], v) for k, v in loaded.state_dict().items())
    assert loaded.state_dict().keys() == original.keys()
    assert not list(tmp_path.glob("*tmp*"))  # written atomically, nothing left beside it


@pytest.mark.parametrize(("content", "message"), [
    (b"not a checkpoint", "not a readable checkpoint"),
    (None, "no such checkpoint"),
])
def test_bad_checkpoint(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EffscaleError, match=message):
        effscale.load_checkpoint(path)


def test_foreign_torch_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(EffscaleError, match="not an effscale checkpoint"):
        effscale.load_checkpoint(path)


@pytest.mark.parametrize(("argv", "code", "message"), [
    (("configs/nope.yaml",), 2, "nope.yaml"),
    (("configs/b0.yaml", "--budget", "huge"), 2, "huge"),
    (("configs/b0.yaml", "--dataset", "nowhere"), 2, "unknown dataset 'nowhere'"),
    (("configs/b0.yaml", "--train-size", "8", "--batch-size", "16"), 2,
     "fewer than one batch"),
    (("configs/b0.yaml", "--checkpoint", "."), 2, "is a directory"),
    (("configs/b0.yaml", "--out", "b0.pt"), 2, "give it as --checkpoint b0.pt"),
    (("configs/b0.yaml", "--epochs", "0"), 2, "--epochs"),
])
def test_train_bad_input_is_one_line(cli: Cli, argv: tuple[str, ...], code: int,
                                     message: str) -> None:
    got, out, err = cli("train", *argv)
    assert got == code, err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and out == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_train_cuda_without_gpu(cli: Cli) -> None:
    code, _, err = cli("train", "configs/b0.yaml", *TINY, "--device", "cuda")
    assert code == 2 and "no CUDA GPU" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- halving


@pytest.mark.parametrize(("epochs", "eta", "rungs"), [
    (1, 3, [1]), (3, 3, [1, 3]), (9, 3, [1, 3, 9]), (10, 3, [1, 3, 9, 10]),
    (30, 3, [1, 3, 9, 27, 30]), (4, 2, [1, 2, 4]),
])
def test_rung_epochs(epochs: int, eta: int, rungs: list[int]) -> None:
    assert rung_epochs(epochs, eta) == rungs


def test_promote_keeps_best_third_whatever_the_order() -> None:
    scores = {"a": 0.30, "b": 0.55, "c": 0.41, "d": 0.52, "e": 0.12, "f": 0.49, "g": 0.50}
    assert promote(scores) == ["b", "d", "g"]  # ceil(7 / 3) = 3
    assert promote(dict(reversed(list(scores.items())))) == ["b", "d", "g"]
    assert promote({"only": 0.1}) == ["only"]
    assert promote({"x": 0.5, "y": 0.5}) == ["x"]  # ties: the earlier key, deterministically


@pytest.mark.parametrize(("candidates", "epochs", "spent"), [
    (12, 3, 12 + 4 * 2), (12, 9, 12 + 4 * 2 + 2 * 6), (27, 9, 27 + 9 * 2 + 3 * 6),
    (1, 3, 3), (12, 1, 12),
])
def test_planned_epochs(candidates: int, epochs: int, spent: int) -> None:
    assert planned_epochs(candidates, epochs) == spent
    assert planned_epochs(27, 9) * 3 < 27 * 9  # >= 3x fewer epochs than the grid from 9 epochs


@pytest.mark.slow  # 20 s or more on 2 shared cores
def test_rung_synchronous_search_is_order_free(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """A fake trainer whose accuracy is fixed per candidate: every rung keeps the true best
    third, the base runs in full, and the winner is the one a full grid would pick."""
    import optuna

    from effscale.experiment import engine, halving, runner
    from effscale.experiment.budgets import budget_recipe, get_budget
    from effscale.experiment.events import RunEvents
    from effscale.experiment.pruning import make_pruner
    from effscale.experiment.queue import open_study
    from effscale.experiment.storage import open_storage
    from effscale.search.grid import GridSpec
    from effscale.search.run import Search, SearchSettings
    from effscale.train.trainer import TrainResult

    budget = get_budget("smoke").override(epochs=9, train_size=64, val_size=32, batch_size=32,
                                          pruner="halving", repeats=1, confirm_top=0)
    settings = SearchSettings(base="tiny", dataset="synthetic", budget=budget,
                              grid=GridSpec(step=0.1, gamma_max=1.25, base_resolution=32),
                              recipe=budget_recipe(budget), counter="torch")
    prepared = Search(settings).prepare(RunEvents())
    keys = sorted(k for k in prepared.candidates if k != "base")
    quality = {k: (i * 7919 % 97) / 100 for i, k in enumerate(keys)}  # a scrambled order
    quality["base"] = 0.5

    class FakeTrainer:
        def __init__(self, config, *args, seed: int, **kwargs) -> None:
            self.key = config.name if config.name in quality else "base"
            self.result = TrainResult(0.0, [], [], [], [], 0.0, 0.0, 0, 32)
            self.result.val_correct = torch.ones(4, dtype=torch.bool)

        def run_epoch(self, progress=None) -> float:
            self.result.epochs_run += 1
            self.result.val_accuracy = quality[self.key] * self.result.epochs_run / 9
            self.result.val_accuracy_per_epoch.append(self.result.val_accuracy)
            return self.result.val_accuracy

        def finish(self) -> TrainResult:
            self.result.model = None
            return self.result

        def offload(self) -> None:  # paused between rungs
            pass

        def reload(self) -> None:
            pass

    def fake_train_config(config, *args, **kwargs) -> TrainResult:
        trainer = FakeTrainer(config, seed=0)
        while trainer.result.epochs_run < 9:
            kwargs["on_epoch"](trainer.result.epochs_run + 1, trainer.run_epoch())
        return trainer.finish()

    monkeypatch.setattr(halving, "ProxyTrainer", FakeTrainer)
    monkeypatch.setattr(runner, "train_config", fake_train_config)
    study = open_study(open_storage(None, tmp_path), "t", tmp_path, prepared.identity,
                       prepared.items, make_pruner("halving"))
    engine.work(prepared, study, RunEvents(), wait_for_others=False)

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    spent = sum(len(t.intermediate_values) for t in trials)
    n = len(keys)
    assert n >= 6, keys  # enough for the rungs to cut (the tests' tiny base; b0 has 7)
    assert spent == 9 + planned_epochs(n, 9)  # the base in full, candidates by rungs
    assert spent * 2 < 9 * (n + 1)
    best = max(keys, key=lambda k: quality[k])
    winner = max((t for t in complete if t.user_attrs["candidate"] != "base"),
                 key=lambda t: t.value)
    assert winner.user_attrs["candidate"] == best
    assert any(t.user_attrs["candidate"] == "base" for t in complete)


# --------------------------------------------------------------------------- FLOP counters


def test_fvcore_missing_falls_back_to_torch(monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    for name in [m for m in sys.modules if m == "fvcore" or m.startswith("fvcore.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fvcore", None)  # makes `import fvcore` raise
    report = count_flops(get_base("b0", 10), resolution=32, counter="fvcore", use_cache=False)
    torch_report = count_flops(get_base("b0", 10), resolution=32, counter="torch")
    assert report.counter == "torch" and "fvcore unavailable" in report.note
    assert report.flops_conv_linear == torch_report.flops_conv_linear
    # measured afresh: an fvcore result cached by an earlier test is still right to reuse
    monkeypatch.setenv("EFFSCALE_NO_CACHE", "1")
    code, out, err = cli("flops", "configs/b0.yaml", "--json")
    assert code == 0 and "note: fvcore unavailable" in err
    assert json.loads(out)["counter"] == "torch"


def test_fvcore_trace_failure_falls_back_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    from effscale.model import flops

    def broken(*args: object) -> None:
        raise RuntimeError("tracing failed")

    monkeypatch.setattr(flops, "_fvcore", broken)
    report = count_flops(get_base("b0", 10), resolution=32)
    assert report.counter == "torch" and "could not trace (RuntimeError)" in report.note
    assert report.flops > 0
    assert not flops._cache_path(get_base("b0", 10), 32, "fvcore").exists()  # not cached


def test_search_has_counter_option(cli: Cli) -> None:
    for command in ("search", "flops", "derive"):
        code, out, _ = cli(command, "--help")
        assert code == 0 and "--counter" in out
