"""Paths and small helpers shared by the tests and ``update_golden.py`` (not fixtures)."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from effscale.experiment.budgets import get_budget
from effscale.model.bases import get_base
from effscale.model.config import ModelConfig, ScalingRules
from effscale.model.cost import CostMeter, Measured, Meter
from effscale.model.cost_timing import Timing
from effscale.search.candidates import Candidate, Skipped, build_candidates
from effscale.search.grid import budget_grid
from effscale.train.proxy import proxy_stem_stride
from effscale.train.trainer import Recipe, proxy_config

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
GOLDEN = CONFIGS / "complexity.json"
GOLDEN_FIELDS = ("params", "flops", "flops_conv_linear", "activations", "resolution")


def shipped_configs() -> list[str]:
    """Every committed config, relative to the repository root (``configs/b0.yaml``), sorted."""
    files = sorted(CONFIGS.glob("*.yaml")) + sorted((CONFIGS / "paper-rule").glob("*.yaml"))
    return [path.relative_to(REPO).as_posix() for path in files]


class FakeLatency:
    """A deterministic stand-in for measured latency (no timing): input pixels times the
    channel-weighted blocks, so depth, width and resolution all cost, not in FLOPs'
    proportions."""

    name = "latency"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, config: ModelConfig) -> float:
        self.calls += 1
        blocks = sum(s.repeats * (s.channels ** 1.5) for s in config.stages)
        return config.resolution ** 2 * blocks * 1e-9


class NoisyLatency(CostMeter):
    """FakeLatency's values as timed measurements, where the timings of models above 224 px
    miss their spread bound (as on a busy machine)."""

    def __init__(self) -> None:
        super().__init__("latency", use_cache=False)
        self.fake = FakeLatency()

    def measured(self, config: ModelConfig) -> Measured:
        key = config.replace(name="-", provenance=None)
        if key not in self.results:
            value = self.fake(config)
            noisy = config.resolution > 224
            samples = (value * 0.8, value, value * 1.25) * 3 if noisy else (value,) * 7
            timing = Timing(value, 0.0, samples, 0, 0.05, not noisy,
                            "repeat limit" if noisy else "")
            self.results[key] = Measured("latency", value, "s", 1, timing)
        return self.results[key]


def demo_candidates(cost: Meter) -> tuple[list[Candidate], list[Skipped]]:
    """The demo budget's candidates for b0 on 10 classes, equal in ``cost``."""
    spec = budget_grid(get_budget("demo"))
    full = get_base("b0", 10)
    recipe = Recipe(stem_stride=proxy_stem_stride(full, spec.base_resolution))
    return build_candidates(
        full, lambda c, size: proxy_config(c.replace(resolution=size), recipe, 10),
        spec.base_resolution, spec, ScalingRules(), "torch", 0.05, cost=cost)


class FakeTimer:
    """Returns the given seconds in turn (the last one forever) without calling anything."""

    def __init__(self, seconds: list[float]) -> None:
        self.values: Iterator[float] = itertools.chain(seconds, itertools.repeat(seconds[-1]))
        self.calls = 0

    def __call__(self, fn: Callable[[], object]) -> float:
        self.calls += 1
        return next(self.values)


def needs_modules(*names: str) -> pytest.MarkDecorator:
    """Skip a test (or, as ``pytestmark``, a module) where one of ``names`` is not installed.
    Unlike a module-level ``pytest.importorskip`` this imports nothing: onnxscript and onnx
    took about 3 s to import in each test process's collection, for tests marked slow."""
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")
