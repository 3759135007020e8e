"""What a model costs, measured for the model as it is used (full size): a registry of costs.

- ``flops``: conv+linear multiply-adds (:func:`effscale.model.flops.count_flops`), the
  published convention and effscale's default.
- ``params``: parameters.
- ``activations``: output elements of every conv and linear layer (Dollár et al. 2021 find
  they track GPU runtime better than FLOPs do).
- ``latency``: inference time of one forward pass (eval mode, no autograd) at a batch size,
  1 by default, on this device, in a runtime: ``torch`` (default) or ``onnxruntime`` (the
  model exported to ONNX and run there, as it ships; the ``deploy`` extra).
- ``train-step``: time of one training step (forward, cross-entropy, backward, SGD step) at
  the training batch size.

The counted costs are exact and the same on every device. The timed ones are measured: a
few warm-up calls, then repeated timings until the relative spread (IQR / median) is at or
below a bound, or until a time or repeat limit, in which case the result says that it could
not get there (the median is still given). On a GPU each call is timed with CUDA events; on
the CPU with ``time.perf_counter``. The threads and the device are recorded with the result,
and timed results are cached on disk by config content plus a device fingerprint (CPU model,
cores, threads, torch version; GPU name; the runtime when it is not torch), so a resumed
search sees the same figures. The timer
is injectable: unit tests pass a fake one and time nothing. The timing itself is in
:mod:`effscale.model.cost_timing`, training memory (``effscale cost``) in
:mod:`effscale.model.cost_memory`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from effscale import atomic
from effscale.devices import resolve_device
from effscale.errors import EffscaleError
from effscale.model.builder import build_model
from effscale.model.config import ModelConfig, dump_config
from effscale.model.cost_timing import (
    Timer,
    Timing,
    TimingPlan,
    cpu_timer,
    cuda_timer,
    time_repeated,
)
from effscale.model.flops import config_params, count_flops, package_version
from effscale.paths import cache_dir

DEFAULT_COST = "flops"
TRAIN_BATCH = 64  # train-step's batch where no run gives one (the trainer's default batch)
LATENCY_BATCH = 1
RUNTIMES = ("torch", "onnxruntime")  # what runs the model that latency times
_CACHE_VERSION = 2  # 2: keyed by the whole timing plan; only settled timings are stored


# --------------------------------------------------------------------------- the device


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def device_fingerprint(device: str | torch.device = "cpu", threads: int | None = None,
                       runtime: str = "torch") -> dict[str, Any]:
    """What a timed cost depends on besides the model: device type, CPU model, cores, torch
    threads, torch version, on a GPU its name and the CUDA version, and a runtime other than
    torch with its version (absent for torch, so torch's cache keys stay as they were)."""
    resolved = resolve_device(str(device))
    fingerprint: dict[str, Any] = {
        "device": resolved.type, "cpu": cpu_model(), "cores": os.cpu_count() or 0,
        "threads": int(threads or torch.get_num_threads()), "torch": str(torch.__version__),
    }
    if resolved.type == "cuda":
        fingerprint["gpu"] = torch.cuda.get_device_name(resolved)
        fingerprint["cuda"] = str(torch.version.cuda)
    if runtime != "torch":
        fingerprint["runtime"] = f"{runtime} {_runtime_version(runtime)}"
    return fingerprint


def _runtime_version(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise EffscaleError(f"unknown runtime {runtime!r} (valid: {', '.join(RUNTIMES)})")
    from effscale.model.deploy.onnx import onnxruntime_version

    return onnxruntime_version()


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the block (nothing when ``None``)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class CostOptions:
    """How the costs are measured. ``batch``: latency's (default 1) or train-step's (default
    :data:`TRAIN_BATCH`); ``counter``: the FLOP counter of ``flops``; ``runtime``: what runs
    the model latency times (:data:`RUNTIMES`)."""

    batch: int | None = None
    device: str = "cpu"
    threads: int | None = None
    plan: TimingPlan = field(default_factory=TimingPlan)
    counter: str = "torch"
    runtime: str = "torch"


@dataclass(frozen=True)
class Measured:
    """One cost of one config: its value in ``unit``, and for a timed cost the timing, the
    batch and the device fingerprint it was measured on."""

    cost: str
    value: float
    unit: str
    batch: int | None = None
    timing: Timing | None = None
    device: dict[str, Any] | None = None
    cached: bool = False  # reused from the cache, not timed by this call

    @property
    def note(self) -> str:
        return self.timing.note() if self.timing is not None else ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["timing"] = self.timing.to_dict() if self.timing is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measured:
        timing = data.get("timing")
        return cls(**{**data, "timing": Timing.from_dict(timing) if timing else None})


MeasureFn = Callable[[ModelConfig, CostOptions, Timer | None], Measured]


@dataclass(frozen=True)
class CostKind:
    """A registered cost: how it is measured, its unit, and how close ``derive --match``
    must bring B_phi to ``2**phi`` x B0 on it."""

    name: str
    unit: str
    description: str
    measure: MeasureFn
    timed: bool = False
    match_tolerance: float = 0.03

    def batch(self, options: CostOptions) -> int | None:
        if not self.timed:
            return None
        return options.batch or (TRAIN_BATCH if self.name == "train-step" else LATENCY_BATCH)


COSTS: dict[str, CostKind] = {}


def register_cost(kind: CostKind) -> CostKind:
    """Add a cost to the registry (``--cost`` offers every registered name)."""
    COSTS[kind.name] = kind
    return kind


def cost_names() -> tuple[str, ...]:
    return tuple(COSTS)


def get_cost(name: str) -> CostKind:
    if name not in COSTS:
        raise EffscaleError(f"unknown cost {name!r} (valid: {', '.join(COSTS)})")
    return COSTS[name]


def describe_cost(name: str, batch: int | None = None, runtime: str = "torch") -> str:
    """One line for settings.yaml and tables: ``latency (s, batch 1): ...``, with the runtime
    when latency is timed in another than torch (``latency (s, batch 1, in onnxruntime)``)."""
    kind = get_cost(name)
    at = f", batch {batch}" if kind.timed and batch else ""
    where = f", in {runtime}" if name == "latency" and runtime != "torch" else ""
    return f"{kind.name} ({kind.unit}{at}{where}): {kind.description}"


def check_runtime(cost: str, runtime: str) -> None:
    """Refuse, in one line and before any slow work, a runtime that is unknown, one given
    with a cost it does not time (only latency runs the model in a runtime: the counted costs
    are the same in every runtime, train-step trains in torch), or one whose extra is not
    installed (``pip install -e ".[deploy]"``)."""
    if runtime not in RUNTIMES:
        raise EffscaleError(f"unknown runtime {runtime!r} (valid: {', '.join(RUNTIMES)})")
    if runtime == "torch":
        return
    if cost != "latency":
        raise EffscaleError(f"--runtime {runtime} runs the model that latency times and has "
                            f"no effect on {cost}: give it with --cost latency (derive: "
                            "--match latency), or leave it out")
    from effscale.model.deploy.onnx import check_extra

    check_extra(exit_code=2)


def run_cost_options(cost: str, batch: int | None, train_batch: int, device: str,
                     threads: int | None, runtime: str = "torch") -> CostOptions:
    """A run's options for ``cost``: ``batch``, else batch 1 for latency and the run's
    training batch for train-step; on the run's device and threads, in ``runtime``."""
    batch = batch or (train_batch if cost == "train-step" else None)
    return CostOptions(batch=batch, device=device, threads=threads, runtime=runtime)


def cost_identity(cost: str, options: CostOptions) -> dict[str, Any]:
    """What a run's identity records of its cost: the name, the batch, and for a timed cost the
    device fingerprint (another device would give other models)."""
    kind = get_cost(cost)
    identity: dict[str, Any] = {"name": cost, "batch": kind.batch(options)}
    if kind.timed:
        identity["device"] = device_fingerprint(options.device, options.threads,
                                                _runtime_of(cost, options))
    return identity


def _runtime_of(cost: str, options: CostOptions) -> str:
    """The runtime a cost is measured in: ``options.runtime`` for latency, torch otherwise
    (train-step trains in torch)."""
    return options.runtime if cost == "latency" else "torch"


def _counted(field_name: str) -> MeasureFn:
    def measure(config: ModelConfig, options: CostOptions, timer: Timer | None) -> Measured:
        counter = options.counter if field_name == "flops_conv_linear" else "torch"
        complexity = count_flops(config, counter=counter)
        name = {"flops_conv_linear": "flops"}.get(field_name, field_name)
        return Measured(name, float(getattr(complexity, field_name)), COSTS[name].unit)

    return measure


def _params(config: ModelConfig, options: CostOptions, timer: Timer | None) -> Measured:
    """Parameters need no forward pass: the model built on the meta device, counted (a
    ``--cost params`` solve measures dozens of full-size models)."""
    return Measured("params", float(config_params(config)), COSTS["params"].unit)


def sample_images(config: ModelConfig, batch: int, device: torch.device) -> torch.Tensor:
    """A fixed random batch at the config's own resolution (what the timed costs run on)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, config.resolution, config.resolution,
                       generator=generator).to(device)


def sample_targets(config: ModelConfig, image: torch.Tensor) -> torch.Tensor:
    """Class labels shaped like the model's output without its class dimension (one per image
    for a classifier, one per pixel for a UNet), found on the meta device."""
    with torch.device("meta"):
        shape = build_model(config).eval()(torch.empty(2, *image.shape[1:])).shape
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(config.num_classes, (image.shape[0], *shape[2:]),
                           generator=generator)
    return labels.to(image.device)


def training_step(model: nn.Module, image: torch.Tensor, targets: torch.Tensor,
                  optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """One SGD step on ``image`` (what ``train-step`` times and training memory measures)."""

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(image), targets).backward()
        optimizer.step()

    return step


def _timer_for(device: torch.device, timer: Timer | None) -> Timer:
    return timer or (cuda_timer(device) if device.type == "cuda" else cpu_timer)


def _latency(config: ModelConfig, options: CostOptions, timer: Timer | None) -> Measured:
    device = resolve_device(options.device)
    batch = COSTS["latency"].batch(options) or LATENCY_BATCH
    if options.runtime != "torch":
        _runtime_version(options.runtime)  # a known runtime, and installed
        from effscale.model.deploy.onnx import runner

        with torch_threads(options.threads):
            call = runner(build_model(config).eval(), sample_images(config, batch,
                          torch.device("cpu")), options.threads, str(device))
            timing = time_repeated(call, options.plan, timer or cpu_timer)
    else:
        with torch_threads(options.threads), torch.inference_mode():
            model = build_model(config).eval().to(device)
            image = sample_images(config, batch, device)
            timing = time_repeated(lambda: model(image), options.plan,
                                   _timer_for(device, timer))
    return Measured("latency", timing.median, COSTS["latency"].unit, batch, timing,
                    device_fingerprint(device, options.threads, options.runtime))


def _train_step(config: ModelConfig, options: CostOptions, timer: Timer | None) -> Measured:
    device = resolve_device(options.device)
    batch = COSTS["train-step"].batch(options) or TRAIN_BATCH
    with torch_threads(options.threads), torch.inference_mode(False):
        model = build_model(config).train().to(device)
        image = sample_images(config, batch, device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        step = training_step(model, image, sample_targets(config, image), optimizer)
        timing = time_repeated(step, options.plan, _timer_for(device, timer))
    return Measured("train-step", timing.median, COSTS["train-step"].unit, batch, timing,
                    device_fingerprint(device, options.threads))


register_cost(CostKind("flops", "multiply-adds", "conv+linear FLOPs of the full-size model "
                       "(the published convention)", _counted("flops_conv_linear")))
register_cost(CostKind("params", "parameters", "parameters of the full-size model",
                       _params))
register_cost(CostKind("activations", "elements", "output elements of every conv and linear "
                       "layer of the full-size model", _counted("activations")))
register_cost(CostKind("latency", "s", "median inference time of the full-size model on this "
                       "device (eval mode)", _latency, timed=True, match_tolerance=0.05))
register_cost(CostKind("train-step", "s", "median time of one training step (forward, "
                       "cross-entropy, backward, SGD) of the full-size model on this device",
                       _train_step, timed=True, match_tolerance=0.05))


# --------------------------------------------------------------------------- measuring, cached


def cost_cache_dir() -> Path:
    """``$EFFSCALE_COST_CACHE_DIR``, else ``cache_dir()/costs``: timed costs by config and
    device."""
    if os.environ.get("EFFSCALE_COST_CACHE_DIR"):
        return Path(os.environ["EFFSCALE_COST_CACHE_DIR"])
    return cache_dir() / "costs"


def cache_key(config: ModelConfig, cost: str, options: CostOptions,
              fingerprint: dict[str, Any]) -> str:
    """Config content (name and provenance aside) + cost + batch + every setting of the timing
    plan (warm-up, repeats, spread bound, time limit) + device (with the runtime)."""
    kind = get_cost(cost)
    head = json.dumps({"version": _CACHE_VERSION, "effscale": package_version(), "cost": cost,
                       "batch": kind.batch(options), "plan": asdict(options.plan),
                       "device": fingerprint}, sort_keys=True)
    body = dump_config(config.replace(name="-", provenance=None))
    return hashlib.sha256(f"{head}\n{body}".encode()).hexdigest()[:24]


def measure_cost(config: ModelConfig, cost: str = DEFAULT_COST,
                 options: CostOptions | None = None, timer: Timer | None = None,
                 use_cache: bool = True) -> Measured:
    """``cost`` of ``config`` at its own (full) resolution. Counted costs use
    :func:`count_flops` (cached there); timed costs are cached here by :func:`cache_key`,
    only once settled (the spread bound met): a timing a limit cut short is never reused.
    A result read from the cache says so (``cached``)."""
    kind = get_cost(cost)
    options = options or CostOptions()
    if not kind.timed:
        return kind.measure(config, options, timer)
    use_cache = use_cache and os.environ.get("EFFSCALE_NO_CACHE", "") in ("", "0")
    path = cost_cache_dir() / (cache_key(config, cost, options, device_fingerprint(
        options.device, options.threads, _runtime_of(cost, options))) + ".json")
    if use_cache and path.is_file():
        try:
            return replace(Measured.from_dict(json.loads(path.read_text())), cached=True)
        except (ValueError, TypeError, KeyError):
            pass  # a damaged entry is measured again
    result = kind.measure(config, options, timer)
    if use_cache and result.timing is not None and result.timing.converged:
        with contextlib.suppress(OSError):  # the cache is an optimisation
            atomic.write_text(path, json.dumps(result.to_dict()))
    return result


class Meter(Protocol):
    """What the solvers need of a cost: its name and a float per config."""

    name: str

    def __call__(self, config: ModelConfig) -> float: ...


class CostMeter:
    """A :class:`Meter` over the registry: each distinct config (name and provenance
    aside) measured once per meter, and timed costs cached on disk besides."""

    def __init__(self, cost: str, options: CostOptions | None = None,
                 timer: Timer | None = None, use_cache: bool = True) -> None:
        self.kind = get_cost(cost)
        self.name = cost
        self.options = options or CostOptions()
        self.timer = timer
        self.use_cache = use_cache
        self.results: dict[ModelConfig, Measured] = {}

    @property
    def unit(self) -> str:
        return self.kind.unit

    @property
    def batch(self) -> int | None:
        return self.kind.batch(self.options)

    def measured(self, config: ModelConfig) -> Measured:
        key = config.replace(name="-", provenance=None)
        if key not in self.results:
            self.results[key] = measure_cost(key, self.name, self.options, self.timer,
                                             self.use_cache)
        return self.results[key]

    def __call__(self, config: ModelConfig) -> float:
        return self.measured(config).value

    def notes(self) -> list[str]:
        """The timed measurements that did not reach their spread bound."""
        return [m.note for m in self.results.values() if m.note]

    def note(self, config: ModelConfig) -> str:
        """What ``config``'s measurement says of itself: empty when it met its spread bound
        (or the cost is not timed)."""
        return self.measured(config).note

    def drift(self, config: ModelConfig) -> tuple[float, float] | None:
        """Time ``config`` again, bypassing every cache, and return ``(first, again)``: the
        value the meter has used for it and the new one (``None`` for an untimed cost).

        The spread of one timing says nothing of the machine slowing down or speeding up
        between timings, nor of a cached value from another session; re-timing the base after
        the candidates does. Ratios to the base carry about ``again / first - 1`` besides
        their own spread."""
        if not self.kind.timed:
            return None
        first = self.measured(config).value
        again = measure_cost(config.replace(name="-", provenance=None), self.name,
                             self.options, self.timer, use_cache=False)
        return first, again.value

    def spread_summary(self) -> str:
        """One line on the timings that missed their spread bound, or empty when none did:
        how many of all, and the worst spread reached."""
        timings = [m.timing for m in self.results.values() if m.timing is not None]
        missed = [t for t in timings if not t.converged]
        if not missed:
            return ""
        worst = max(t.rel_spread for t in missed)
        return (f"{len(missed)} of {len(timings)} timings did not get their spread "
                f"(IQR/median) under {missed[0].spread_bound:.0%} (worst {worst:.1%}); the "
                "median is used anyway")


# --------------------------------------------------------------------------- how costs agree
