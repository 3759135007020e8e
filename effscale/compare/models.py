"""The models of a comparison: each solved at full size to the same FLOPs (or the same
``--cost``), trained as a proxy."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from effscale.compare.settings import CompareSettings
from effscale.datasets.registry import native_size
from effscale.errors import EffscaleError
from effscale.model.bases import get_base
from effscale.model.config import ModelConfig
from effscale.model.flops import Complexity
from effscale.scaling.equal_flops import FlopsMeter, Scaled, base_model, solve_direction, solve_rule
from effscale.search.candidates import BASE_KEY, Candidate
from effscale.train.proxy import upsampling_note
from effscale.train.trainer import proxy_config


@dataclass(frozen=True)
class CompareModel:
    """One model of a comparison: solved at full size, trained as a proxy.

    ``full`` is the full-size model (multipliers, config, FLOPs, ratio to the base's,
    error against the target); ``proxy_config`` is what is trained (same depth and width,
    input ``px``, the proxy stem stride) and ``proxy`` its measured complexity.
    """

    kind: str  # "base", "compound" or a single rule
    full: Scaled
    proxy_config: ModelConfig
    proxy: Complexity
    proxy_base_flops: int
    coefficients: tuple[float, float, float] | None = None
    phi: float | None = None  # a curve's point: the model's phi (its name then carries it)
    direction: str = ""  # a curve's direction ("compound", "depth", a set's name)

    @property
    def label(self) -> str:
        """The direction the model scales along (its name outside a curve)."""
        return self.direction or self.full.name

    @property
    def target_ratio(self) -> float:
        """The target over the base's cost (FLOPs unless the comparison's cost is another)."""
        return self.full.target_ratio

    @property
    def s(self) -> float | None:
        """The solved effective phi of a compound model."""
        return self.full.multiplier if self.kind == "compound" else None

    @property
    def px(self) -> int:
        return self.proxy_config.resolution

    @property
    def proxy_ratio(self) -> float:
        """Proxy FLOPs over the proxy base's."""
        return self.proxy.flops / self.proxy_base_flops


def proxy_size(settings: CompareSettings, full: Scaled, full_base: ModelConfig) -> int:
    """``round(budget.resolution x the model's full-size resolution ratio)``, half up."""
    ratio = full.config.resolution / full_base.resolution
    return max(8, int(math.floor(settings.budget.resolution * ratio + 0.5)))


def build_models(settings: CompareSettings, num_classes: int,
                 progress: Callable[[str], None] | None = None) -> list[CompareModel]:
    """The base, each compound direction and each single-dimension model, all solved to
    ``2**phi`` times the base's FLOPs measured at full size, with their proxies.
    ``progress`` hears a line before each model is solved (each takes seconds to minutes)."""
    say = progress or (lambda text: None)
    if not math.isfinite(settings.phi):
        raise EffscaleError(f"--phi must be a finite number, got {settings.phi}")
    full_base = get_base(settings.base, num_classes)
    measure = FlopsMeter(settings.counter, conv_linear=True)
    cost = settings.cost_meter()
    base_value = measure(full_base).flops if cost is None else cost(full_base)
    target = base_value * 2 ** settings.phi
    solved: list[tuple[str, Scaled, tuple[float, float, float] | None]] = [
        ("base", base_model(full_base, measure, target, cost), None)]
    total = len(settings.compounds) + len(settings.single)
    for i, spec in enumerate(settings.compounds, 1):
        say(f"solving {spec.name} to ×{2 ** settings.phi:g} the base's full-size "
            f"{settings.cost} ({i}/{total})")
        solved.append(("compound", solve_direction(full_base, spec.coefficients, target,
                                                   settings.rules, measure, name=spec.name,
                                                   cost=cost),
                       spec.coefficients))
    for i, rule in enumerate(settings.single, len(settings.compounds) + 1):
        say(f"solving {rule} to ×{2 ** settings.phi:g} the base's full-size "
            f"{settings.cost} ({i}/{total})")
        solved.append((rule, solve_rule(full_base, rule, target, settings.rules, measure,
                                        settings.fast_a, cost), None))
    proxy_measure = FlopsMeter(settings.counter, conv_linear=True)
    proxy_base = proxy_config(full_base.replace(resolution=settings.budget.resolution),
                              settings.recipe, num_classes)
    proxy_base_flops = proxy_measure(proxy_base).flops
    models = []
    for kind, full, coefficients in solved:
        config = proxy_config(full.config.replace(resolution=proxy_size(settings, full,
                                                                        full_base)),
                              settings.recipe, num_classes)
        models.append(CompareModel(kind, full, config, proxy_measure(config), proxy_base_flops,
                                   coefficients))
    return models


def upsampling_problem(settings: CompareSettings, models: list[CompareModel]) -> str | None:
    """A message when a proxy input is above the dataset's native size (an error unless
    ``allow_upsampling``)."""
    largest = max(m.px for m in models)
    native = native_size(settings.dataset)
    if native is None or largest <= native:
        return None
    if settings.allow_upsampling:
        return upsampling_note(settings.dataset, largest)
    worst = max(models, key=lambda m: m.px)
    fits = math.floor(native * settings.budget.resolution / worst.px)
    return (f"{worst.full.name} trains at {worst.px} px, above {settings.dataset}'s native "
            f"{native} px (upsampled pixels add no information): lower --resolution (about "
            f"{fits} fits) or pass --allow-upsampling")


def candidate_of(model: CompareModel) -> Candidate:
    """A model as the search's trainer takes it (``base`` keeps its key: never pruned):
    the proxy config at its proxy size; FLOPs at full size, proxy FLOPs beside them."""
    key = BASE_KEY if model.kind == "base" else model.full.name
    values: dict[str, Any] = dict(
        key=key, alpha=model.full.depth, beta=model.full.width,
        gamma=model.full.resolution, resolution=model.px, config=model.proxy_config,
        params=model.proxy.params, flops=model.full.complexity.flops,
        flops_ratio=model.full.flops_ratio, nominal_ratio=model.target_ratio,
        full_resolution=model.full.config.resolution, proxy_flops=model.proxy.flops,
        proxy_flops_ratio=model.proxy_ratio)
    known = {f.name for f in dataclasses.fields(Candidate)}
    return Candidate(**{k: v for k, v in values.items() if k in known})
