"""The training precision (issue 13): bf16 only where the GPU computes it natively, fp16 with
a loss scaler on older GPUs, fp32 on the CPU. The GPU is faked by monkeypatching torch.cuda's
capability queries; the loss-scaler step runs for real on the CPU."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from effscale.model.bases import get_base
from effscale.scaling.compound import scale_config
from effscale.train import precision, trainer
from effscale.train.precision import Precision, choose_precision
from effscale.train.trainer import Recipe, proxy_config, train_config

GPU = torch.device("cuda", 0)


def fake_gpu(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], bf16: bool,
             emulation_parameter: bool = True) -> list[dict[str, Any]]:
    """torch.cuda answering as a GPU of ``capability`` would; ``bf16`` is what
    ``is_bf16_supported`` says (with emulation, where the parameter exists). Returns the
    keyword arguments it was asked with."""
    asked: list[dict[str, Any]] = []

    def is_bf16_supported(**kwargs: Any) -> bool:
        asked.append(kwargs)
        if kwargs.get("including_emulation") is False:
            return capability[0] >= 8
        return bf16

    def old_is_bf16_supported() -> bool:  # torch < 2.4: no emulation, no parameter
        asked.append({})
        return bf16

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        is_bf16_supported if emulation_parameter else old_is_bf16_supported)
    monkeypatch.setattr(torch.version, "hip", None)
    return asked


def test_the_cpu_trains_in_fp32_without_a_scaler() -> None:
    chosen = choose_precision(torch.device("cpu"))
    assert (chosen.name, chosen.scaler, chosen.dtype) == ("fp32", False, torch.float32)
    assert chosen.grad_scaler(torch.device("cpu")) is None
    with chosen.autocast(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("capability", [(8, 0), (8, 6), (9, 0), (12, 0)])
def test_ampere_and_later_get_bf16(monkeypatch: pytest.MonkeyPatch,
                                   capability: tuple[int, int]) -> None:
    asked = fake_gpu(monkeypatch, capability, bf16=True)
    chosen = choose_precision(GPU)
    assert (chosen.name, chosen.scaler) == ("bf16", False)
    assert f"{capability[0]}.{capability[1]}" in chosen.reason
    assert asked == [{"including_emulation": False}]


@pytest.mark.parametrize("capability", [(7, 0), (7, 5), (6, 1)])
def test_older_gpus_get_fp16_with_a_loss_scaler_even_where_bf16_is_emulated(
        monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int]) -> None:
    """torch >= 2.4 says is_bf16_supported() == True on a V100/T4 (emulated, slow). The old
    trainer used bf16 autocast on every CUDA device."""
    fake_gpu(monkeypatch, capability, bf16=True)
    assert torch.cuda.is_bf16_supported()  # the question alone would have said bf16
    chosen = choose_precision(GPU)
    assert (chosen.name, chosen.dtype, chosen.scaler) == ("fp16", torch.float16, True)
    assert "no native bf16" in chosen.reason


def test_a_torch_without_the_emulation_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpu(monkeypatch, (8, 0), bf16=True, emulation_parameter=False)
    assert choose_precision(GPU).name == "bf16"
    asked = fake_gpu(monkeypatch, (7, 5), bf16=False, emulation_parameter=False)
    assert choose_precision(GPU).name == "fp16"
    assert asked == []  # below 8.0 the capability alone decides


def test_an_old_cuda_toolkit_without_bf16_gets_fp16(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch 2.1's is_bf16_supported() also checks the CUDA version: an Ampere GPU under an
    old toolkit says no."""
    fake_gpu(monkeypatch, (8, 0), bf16=False, emulation_parameter=False)
    assert choose_precision(GPU).name == "fp16"


def test_rocm_follows_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpu(monkeypatch, (9, 0), bf16=True)
    monkeypatch.setattr(torch.version, "hip", "6.0")
    assert choose_precision(GPU).name == "bf16"


def test_the_fp16_scaler_on_every_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    fp16 = Precision(torch.float16, True, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available. Disabling" on this machine
        assert isinstance(fp16.grad_scaler(GPU), torch.amp.GradScaler)
        monkeypatch.delattr(torch.amp, "GradScaler")  # torch < 2.3
        assert type(fp16.grad_scaler(GPU)).__name__ == "GradScaler"


class RecordingScaler:
    """A real CPU GradScaler that records the calls the training step makes."""

    def __init__(self) -> None:
        self.inner = torch.amp.GradScaler("cpu")
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if callable(attr) and name in ("scale", "unscale_", "step", "update"):
            def recorded(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attr(*args, **kwargs)
            return recorded
        return attr


def test_the_scaled_step_scales_unscales_steps_and_updates(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A loss scaled by a power of two and unscaled again is the same training: with the
    scaler on (fp32 arithmetic, so the comparison is exact) every epoch matches."""
    config = proxy_config(scale_config(get_base("b0", 10), depth=0.3, width=0.25, name="t")
                          .replace(resolution=16), Recipe(), 4)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 4, (64,), generator=generator)
    recipe = Recipe(epochs=2, batch_size=16)

    def run() -> Any:
        return train_config(config, images, labels, images[:32], labels[:32], recipe=recipe,
                            device=torch.device("cpu"))

    plain = run()
    scalers: list[RecordingScaler] = []
    scaled = Precision(torch.float32, True, "fp32 with a loss scaler (test)")
    monkeypatch.setattr(trainer, "choose_precision", lambda device: scaled)
    monkeypatch.setattr(Precision, "grad_scaler",
                        lambda self, device: scalers.append(RecordingScaler()) or scalers[-1])
    with_scaler = run()
    steps = 2 * (64 // 16)
    assert scalers[0].calls == ["scale", "unscale_", "step", "update"] * steps
    assert with_scaler.val_accuracy_per_epoch == plain.val_accuracy_per_epoch
    assert with_scaler.train_loss_per_epoch == plain.train_loss_per_epoch
    assert with_scaler.precision == "fp32" and plain.precision_reason == precision.FP32.reason
