"""The speed levers: compile (guarded), precision (bf16 autocast on the CPU), linear
learning-rate scaling, per-device defaults, and a run identity they leave alone."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from effscale.errors import EffscaleError
from effscale.experiment import budgets
from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.workers import plan_workers
from effscale.model.bases import get_base
from effscale.scaling.compound import scale_config
from effscale.train import levers
from effscale.train.trainer import Recipe, proxy_config, train_config

CPU = torch.device("cpu")
Cli = Callable[..., tuple[int, str, str]]


def tiny(resolution: int = 16):
    small = scale_config(get_base("b0", 10), depth=0.3, width=0.25, name="tiny")
    return proxy_config(small.replace(resolution=resolution), Recipe(), 4)


def data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=generator),
            torch.randint(0, 4, (n,), generator=generator))


def test_bf16_autocast_trains_on_the_cpu_with_a_finite_loss() -> None:
    images, labels = data()
    result = train_config(tiny(), images, labels, images[:32], labels[:32],
                          recipe=Recipe(epochs=1, batch_size=32, precision="bf16"), device=CPU)
    assert result.precision == "bf16" and "asked for" in result.precision_reason
    assert math.isfinite(result.train_loss_per_epoch[0]) and result.train_loss_per_epoch[0] > 0
    assert 0.0 <= result.val_accuracy <= 1.0


def test_fp32_stays_the_cpu_default() -> None:
    images, labels = data()
    result = train_config(tiny(), images, labels, images[:32], labels[:32],
                          recipe=Recipe(epochs=1, batch_size=32), device=CPU)
    assert result.precision == "fp32" and not result.compiled


def test_levers_at_their_defaults_leave_the_recipe_identity_as_it_was() -> None:
    """A run from before the levers keeps its fingerprint: the identity's recipe has exactly
    the fields it had then."""
    before = {"epochs", "batch_size", "optimizer", "lr", "weight_decay", "warmup_fraction",
              "label_smoothing", "crop_padding", "flip", "proxy_regularization",
              "zero_init_residual", "stem_stride", "eval_batch_size", "precise_bn"}
    assert set(Recipe().to_dict()) == before
    asked = Recipe(compile=True, precision="bf16").to_dict()
    assert (asked["compile"], asked["precision"]) == (True, "bf16")


def test_budgets_keep_their_learning_rate_unless_listed_for_linear_scaling(
        monkeypatch: pytest.MonkeyPatch) -> None:
    quick = get_budget("quick")
    assert budget_recipe(quick).lr == Recipe.lr
    assert budget_recipe(quick.override(batch_size=128)).lr == Recipe.lr  # not listed
    monkeypatch.setattr(budgets, "LINEAR_LR_BUDGETS", frozenset({"quick"}))
    assert budget_recipe(quick.override(batch_size=128)).lr == pytest.approx(2 * Recipe.lr)
    assert budget_recipe(quick.override(batch_size=256)).lr == pytest.approx(4 * Recipe.lr)
    assert budget_recipe(quick).lr == pytest.approx(Recipe.lr)  # batch 64: the reference


def test_linear_lr() -> None:
    assert levers.linear_lr(128, 3e-3) == pytest.approx(6e-3)
    assert levers.linear_lr(32, 3e-3, reference_batch=64) == pytest.approx(1.5e-3)
    with pytest.raises(ValueError):
        levers.linear_lr(0, 3e-3)


def test_device_defaults_decide_compile_and_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not levers.wants_compile(None, CPU)
    assert levers.wants_compile(True, CPU) and not levers.wants_compile(False, CPU)
    assert plan_workers(None, None, None, "cpu") == (1, 1)
    flipped = replace(levers.DEVICE_DEFAULTS["cpu"], compile=True, workers=2)
    monkeypatch.setitem(levers.DEVICE_DEFAULTS, "cpu", flipped)
    assert levers.wants_compile(None, CPU) and not levers.wants_compile(False, CPU)
    assert plan_workers(None, None, None, "cpu") == (2, 2)
    assert plan_workers(3, None, None, "cpu") == (3, 3)  # --workers still wins


def test_a_missing_compiler_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(levers.shutil, "which", lambda name: None)
    problem = levers.compiler_problem(CPU)
    assert problem is not None and "C++ compiler" in problem and "\n" not in problem
    with pytest.raises(EffscaleError, match="C\\+\\+ compiler"):
        levers.check_levers(True, "auto", CPU)
    levers.check_levers(None, "auto", CPU)  # no compile asked: nothing to find


def test_train_compile_without_a_compiler_exits_2_in_one_line(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(levers.shutil, "which", lambda name: None)
    code, _out, err = cli("train", "configs/b0.yaml", "--dataset", "synthetic", "--train-size",
                         "64", "--val-size", "32", "--batch-size", "32", "--resolution", "16",
                         "--threads", "1", "--quiet", "--compile", "--checkpoint",
                         tmp_path / "b0.pt")
    assert code == 2
    assert "C++ compiler" in err and "Traceback" not in err
    assert not (tmp_path / "b0.pt").exists()


def test_precision_checks() -> None:
    with pytest.raises(EffscaleError, match="fp16 needs a CUDA GPU"):
        levers.check_levers(None, "fp16", CPU)
    with pytest.raises(EffscaleError, match="unknown precision"):
        levers.check_levers(None, "int8", CPU)


def test_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    flags = levers.cpu_flags(str(info))
    assert {"avx2", "avx512_bf16", "amx_tile"} <= flags
    assert levers.native_cpu_bf16(flags)
    assert not levers.native_cpu_bf16({"avx2", "avx512f"})
    assert levers.cpu_flags(str(tmp_path / "missing")) == set()


@pytest.mark.slow
def test_compile_on_the_cpu_trains_with_a_finite_loss() -> None:
    """Inductor on the CPU (a minute or more on 2 cores): the compiled path is real."""
    if levers.compiler_problem(CPU):
        pytest.skip("no C++ compiler")
    images, labels = data()
    result = train_config(tiny(), images, labels, images[:32], labels[:32],
                          recipe=Recipe(epochs=1, batch_size=32, compile=True), device=CPU)
    assert result.compiled and math.isfinite(result.train_loss_per_epoch[0])
