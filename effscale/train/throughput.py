"""How fast this machine trains one proxy model: images/s measured by a short timed run of
the real trainer, cached per device.

A run's estimate before it starts (:mod:`effscale.experiment.estimate`) needs each model's
training and validation speed at its proxy size. :func:`measure_throughput` trains the model
for a warm-up epoch and a timed epoch of a few steps on random uint8 images at the dataset's
native size (so the once-per-training resize is timed too), with the run's recipe (batch,
compile, precision) on the run's device and threads. The result is cached under
``cache_dir()/throughput/`` by the model's content, the speed-relevant recipe fields and
the device fingerprint (CPU model, cores, threads, torch, GPU); delete that folder to
measure again (a timing taken on a busy machine stays slow until then), or set
``EFFSCALE_NO_CACHE=1``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from effscale import __version__, atomic
from effscale.model.config import ModelConfig, dump_config
from effscale.model.cost import device_fingerprint
from effscale.paths import cache_dir
from effscale.train.trainer import ProxyTrainer, Recipe, resize_images

_CACHE_VERSION = 1
WARMUP_STEPS = 1
TIMED_STEPS = 3
_MEASURED: dict[str, Throughput] = {}  # this process's measurements, by cache key


@dataclass(frozen=True)
class Throughput:
    """One model's measured speed on one device.

    ``train_ips``: training images/s (data, forward, backward, step); ``eval_ips``:
    validation images/s; ``resize_ips``: images/s of the once-per-training resize from the
    native size; ``setup_s``: building the model and the optimizer; ``compile_s``: the
    compile time of a compiled model (0 otherwise)."""

    train_ips: float
    eval_ips: float
    resize_ips: float
    setup_s: float
    compile_s: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def throughput_cache_dir() -> Path:
    return cache_dir() / "throughput"


def throughput_key(config: ModelConfig, recipe: Recipe, native: int,
                   fingerprint: dict[str, Any]) -> str:
    """The model's content (name and provenance aside), what of the recipe changes its
    speed, the native image size and the device."""
    head = json.dumps({"version": _CACHE_VERSION, "effscale": __version__,
                       "batch": recipe.batch_size, "eval_batch": recipe.eval_batch_size,
                       "compile": recipe.compile, "precision": recipe.precision,
                       "native": native, "device": fingerprint}, sort_keys=True)
    body = dump_config(config.replace(name="-", provenance=None))
    return hashlib.sha256(f"{head}\n{body}".encode()).hexdigest()[:24]


def measure_throughput(config: ModelConfig, recipe: Recipe, device: torch.device,
                       native: int, steps: int = TIMED_STEPS,
                       warmup: int = WARMUP_STEPS) -> Throughput:
    """Time ``config`` (the model as trained, at its proxy resolution) under ``recipe`` on
    ``device``: one warm-up epoch of ``warmup`` steps, then a timed epoch of ``steps`` steps;
    validation on one evaluation batch after each (the second is timed)."""
    batch = recipe.batch_size
    images = torch.randint(0, 256, ((steps + warmup) * batch, 3, native, native),
                           dtype=torch.uint8)
    labels = torch.randint(0, config.num_classes, (images.shape[0],))
    start = time.perf_counter()
    resize_images(images, config.resolution)
    resize_ips = images.shape[0] / max(time.perf_counter() - start, 1e-9)
    val = min(recipe.eval_batch_size, images.shape[0])
    timed = replace(recipe, epochs=2, precise_bn=0)
    start = time.perf_counter()
    trainer = ProxyTrainer(config, images, labels, images[:val], labels[:val], recipe=timed,
                           device=device)
    # The constructor resized the training and validation images: not part of the setup.
    setup_s = max(0.0, time.perf_counter() - start - (images.shape[0] + val) / resize_ips)
    trainer.steps = warmup  # the warm-up epoch (its schedule has room for both epochs)
    trainer.run_epoch()
    val_before = trainer.result.val_seconds
    trainer.steps = steps
    trainer.run_epoch()
    result = trainer.result
    train_ips = steps * batch / max(result.epoch_seconds[-1], 1e-9)
    eval_ips = val / max(result.val_seconds - val_before, 1e-9)
    return Throughput(train_ips, eval_ips, resize_ips, setup_s, result.compile_seconds)


def cached_throughput(config: ModelConfig, recipe: Recipe, device: torch.device,
                      native: int, use_cache: bool = True) -> tuple[Throughput, bool]:
    """``(throughput, measured now)``: from the cache when this device measured this model
    before, else measured (:func:`measure_throughput`) and cached (on disk, and in this
    process for a second run in it, e.g. under the tests' per-test cache folders)."""
    use_cache = use_cache and os.environ.get("EFFSCALE_NO_CACHE", "") in ("", "0")
    key = throughput_key(config, recipe, native, device_fingerprint(device))
    path = throughput_cache_dir() / f"{key}.json"
    if use_cache and key in _MEASURED:  # this process measured it (any cache folder)
        return _MEASURED[key], False
    if use_cache and path.is_file():
        try:
            return Throughput(**json.loads(path.read_text())), False
        except (ValueError, TypeError):
            pass  # a damaged entry is measured again
    measured = measure_throughput(config, recipe, device, native)
    if use_cache:
        _MEASURED[key] = measured
        with contextlib.suppress(OSError):  # the cache is an optimisation
            atomic.write_text(path, json.dumps(measured.to_dict()))
    return measured, True
