"""Parameters, FLOPs and activations of a config, measured with fvcore or torch's counter.

FLOPs here are multiply-adds (one multiply-add = one FLOP), as fvcore and the EfficientNet
paper count them. fvcore's total also counts batch norm and pooling; published figures count
convolutions and linear layers only, so both are reported.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from effscale import atomic
from effscale.errors import EffscaleError
from effscale.model.builder import build_model
from effscale.model.config import ModelConfig, dump_config
from effscale.paths import flops_cache_dir

COUNTERS = ("fvcore", "torch")
# fvcore operator names that are convolutions or matrix products.
CONV_LINEAR_OPS = frozenset({"conv", "linear", "addmm", "matmul", "bmm", "einsum", "mm"})
_CACHE_VERSION = 1
# torch's public batch-norm layers (the lazy ones subclass these)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def package_version() -> str:
    """The installed effscale's version, for cache keys. Read from the package metadata, not
    from ``effscale.__version__``: the package face imports this module, so importing the face
    from here would be an import circle."""
    try:
        return importlib.metadata.version("effscale")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


@dataclass(frozen=True)
class PartComplexity:
    """One named part of the network (stem, a stage, head, classifier, decoder ...)."""

    name: str
    params: int
    flops: int
    flops_conv_linear: int


@dataclass(frozen=True)
class Complexity:
    """What :func:`count_flops` measures; ``flops`` is ``None``-free and in multiply-adds."""

    params: int
    flops: int
    flops_conv_linear: int
    activations: int
    resolution: int
    counter: str
    parts: list[PartComplexity] = field(default_factory=list)
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def groups(self) -> list[PartComplexity]:
        """Subtotals of the parts whose labels share a prefix before a dot, in order of first
        appearance: ``encoder`` and ``decoder`` for a UNet; empty for a classifier."""
        totals: dict[str, list[int]] = {}
        for part in self.parts:
            if "." in part.name:
                total = totals.setdefault(part.name.split(".", 1)[0], [0, 0, 0])
                total[0] += part.params
                total[1] += part.flops
                total[2] += part.flops_conv_linear
        return [PartComplexity(name, *total) for name, total in totals.items()]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stages"] = data.pop("parts")
        if groups := self.groups():
            data["groups"] = [asdict(group) for group in groups]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Complexity:
        data = dict(data)
        data.pop("groups", None)  # derived from the parts
        parts = [PartComplexity(**p) for p in data.pop("stages")]
        return cls(parts=parts, **data)


def model_parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The parts a complexity table shows, in forward order, as ``(label, module)``."""
    if hasattr(model, "parts"):
        return list(model.parts())
    backbone = model.backbone
    parts = [("stem", backbone.stem)]
    parts += [(f"stage{i + 1}", stage) for i, stage in enumerate(backbone.stages)]
    parts += [("head", model.head), ("classifier", model.classifier)]
    return parts


def _module_names(model: nn.Module) -> dict[int, str]:
    return {id(module): name for name, module in model.named_modules()}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def config_params(config: ModelConfig) -> int:
    """The parameters of ``config``'s model, built on the meta device: nothing is allocated
    and nothing runs forward (the same number as :func:`count_flops`' ``params``)."""
    with torch.device("meta"):
        return count_params(build_model(config))


def _conv_linear_calls(model: nn.Module, image: torch.Tensor) -> list[tuple[nn.Module, int, int]]:
    """One forward pass of ``image``: ``(layer, output elements, multiply-adds)`` for every
    call of a conv or linear layer, in call order."""
    calls: list[tuple[nn.Module, int, int]] = []

    def hook(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        elements = output.numel()
        if isinstance(module, nn.Conv2d):  # each output element: its group's inputs x kernel
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        else:
            per_output = module.in_features
        calls.append((module, elements, elements * per_output))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(image)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def count_activations(model: nn.Module, image: torch.Tensor) -> int:
    """Output elements of every conv and linear layer (fvcore's activation count)."""
    return sum(elements for _, elements, _ in _conv_linear_calls(model, image))


# Modules whose forward passes do no arithmetic that torch's counter counts (matrix products,
# convolutions) outside the Conv2d and Linear layers they hold: a model made of these alone is
# counted by hooks on those layers, which give torch's counter's numbers (tests/model/
# test_flops.py compares both ways on each kind of model effscale builds) without its
# per-operator dispatch (a b0 count: 0.138 s against 0.196 s).
# Anything else (a plugin's own block, attention, a transposed convolution) goes through
# torch's FlopCounterMode, which sees every operator.
_HOOK_COUNTED = frozenset({
    nn.Conv2d, nn.Linear, nn.Identity, nn.Dropout, nn.Sequential, nn.ModuleList,
    nn.ModuleDict, nn.ReLU, nn.ReLU6, nn.SiLU, nn.Sigmoid, nn.Hardswish, nn.Hardsigmoid,
    nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.Upsample, nn.Flatten,
    *BATCH_NORMS,
})
_HOOK_COUNTED_PACKAGE = "effscale.model."  # effscale's own blocks, backbone and heads


def _hooks_count_everything(model: nn.Module) -> bool:
    return all(type(m) in _HOOK_COUNTED or type(m).__module__.startswith(_HOOK_COUNTED_PACKAGE)
               for m in model.modules())


def _fvcore(model: nn.Module, image: torch.Tensor, resolution: int) -> Complexity:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, image)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_module = analysis.by_module_and_operator()
        total = int(analysis.total())
        uncounted = dict(analysis.unsupported_ops())
    names = _module_names(model)

    def conv_linear(ops: dict[str, int]) -> int:
        return int(sum(v for k, v in ops.items() if k in CONV_LINEAR_OPS))

    parts = [
        PartComplexity(label, count_params(module), int(sum(by_module[names[id(module)]].values())),
                       conv_linear(by_module[names[id(module)]]))
        for label, module in model_parts(model)
    ]
    return Complexity(
        params=count_params(model), flops=total, flops_conv_linear=conv_linear(by_module[""]),
        activations=count_activations(model, image), resolution=resolution, counter="fvcore",
        parts=parts, uncounted_ops={k: int(v) for k, v in sorted(uncounted.items())},
    )


def _torch_counter(config: ModelConfig, resolution: int, note: str = "") -> Complexity:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(config).eval()
        image = torch.empty(1, 3, resolution, resolution)
    params = count_params(model)
    part_params = [count_params(module) for _, module in model_parts(model)]
    _drop_batch_norms(model)
    labelled = model_parts(model)
    if _hooks_count_everything(model):
        calls = _conv_linear_calls(model, image)
        activations = sum(elements for _, elements, _ in calls)
        total = sum(macs for _, _, macs in calls)
        part_flops = []
        for _, module in labelled:
            inside = {id(m) for m in module.modules()}
            part_flops.append(sum(macs for layer, _, macs in calls if id(layer) in inside))
    else:
        counter = FlopCounterMode(display=False)
        with counter:  # one forward pass counts both
            activations = count_activations(model, image)
        counts = counter.get_flop_counts()
        root = type(model).__name__

        def flops_of(name: str) -> int:
            # torch counts a multiply-add as two FLOPs; effscale reports multiply-adds.
            key = f"{root}.{name}" if name else "Global"
            return int(sum(counts.get(key, {}).values())) // 2

        names = _module_names(model)
        part_flops = [flops_of(names[id(module)]) for _, module in labelled]
        total = flops_of("")
    parts = [PartComplexity(label, part_param, flops, flops) for (label, _), part_param, flops
             in zip(labelled, part_params, part_flops, strict=True)]
    return Complexity(
        params=params, flops=total, flops_conv_linear=total,
        activations=activations, resolution=resolution, counter="torch",
        parts=parts, note=note,
    )


def _drop_batch_norms(model: nn.Module) -> None:
    """Batch norms become identities, for torch's counter only: it counts no batch-norm
    FLOPs, the layer keeps its input's shape, and on the meta device its decomposition ran
    in Python at about half of a measurement's time (72 of 141 s in a ``--cost params``
    smoke search). Call after counting the parameters."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, BATCH_NORMS):
                setattr(module, name, nn.Identity())


def _cache_path(config: ModelConfig, resolution: int, counter: str) -> Path:

    key = f"{_CACHE_VERSION}|{package_version()}|{torch.__version__}|{counter}|{resolution}|"
    digest = hashlib.sha256((key + dump_config(config)).encode()).hexdigest()[:24]
    return flops_cache_dir() / f"{digest}.json"


def _measure(config: ModelConfig, resolution: int, counter: str) -> Complexity:
    if counter == "torch":
        return _torch_counter(config, resolution)
    try:
        import fvcore.nn  # noqa: F401
    except Exception as exc:
        return _torch_counter(config, resolution,
                              note=f"fvcore unavailable ({exc}); counted with torch (conv+linear)")
    model = build_model(config).eval()
    image = torch.zeros(1, 3, resolution, resolution)
    try:
        return _fvcore(model, image, resolution)
    except Exception as exc:
        return _torch_counter(config, resolution,
                              note=f"fvcore could not trace ({exc.__class__.__name__}); "
                                   "counted with torch (conv+linear)")


def count_flops(
    config: ModelConfig, resolution: int | None = None, counter: str = "fvcore",
    use_cache: bool = True,
) -> Complexity:
    """Measure a config at ``resolution`` (default: the config's), batch 1, eval mode.

    Results are cached on disk, keyed by the config's content, the resolution, the counter
    and the versions of effscale and torch.
    """
    if counter not in COUNTERS:
        raise EffscaleError(f"unknown counter {counter!r} (valid: {', '.join(COUNTERS)})")
    resolution = config.resolution if resolution is None else resolution
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8:
        raise EffscaleError(f"resolution must be an int >= 8, got {resolution}")
    use_cache = use_cache and os.environ.get("EFFSCALE_NO_CACHE", "") in ("", "0")
    path = _cache_path(config, resolution, counter)
    if use_cache and path.is_file():
        try:
            return Complexity.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError):
            pass  # a damaged cache entry is simply measured again
    with torch.inference_mode(False):
        result = _measure(config, resolution, counter)
    if use_cache and not result.note:
        try:
            atomic.write_text(path, json.dumps(result.to_dict()))
        except OSError:
            pass  # the cache is an optimisation; an unwritable cache dir is not an error
    return result
