"""Grid points -> proxy models, with their measured params and FLOPs and the FLOPs window.

Every candidate is built through the same :func:`effscale.scaling.scale_config` as
``effscale derive``. Grid points whose rounded model is identical (ceil rounding makes
alpha = 1.05 and 1.2 add the same blocks to a small base) are trained once; the point kept
is the one whose nominal FLOPs ratio is closest to the measured one, and the others are
listed as its aliases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from effscale.config import ModelConfig, ScalingRules, dump_config
from effscale.errors import EffscaleError
from effscale.flops import count_flops
from effscale.grid import Triple
from effscale.scaling import scale_config

BASE_KEY = "base"


@dataclass(frozen=True)
class Candidate:
    """One model to train: a grid point (or the base) as built for the proxy."""

    key: str
    alpha: float
    beta: float
    gamma: float
    resolution: int
    config: ModelConfig
    params: int
    flops: int
    flops_ratio: float
    nominal_ratio: float
    aliases: tuple[str, ...] = field(default=())

    @property
    def is_base(self) -> bool:
        return self.key == BASE_KEY

    def summary(self) -> dict:
        """Plain numbers for trials.csv and trial user attributes."""
        stage_depths = [s.repeats for s in self.config.stages]
        return {
            "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
            "depth_multiplier": self.alpha, "width_multiplier": self.beta,
            "resolution": self.resolution, "params": self.params, "flops": self.flops,
            "flops_ratio": round(self.flops_ratio, 4),
            "nominal_ratio": round(self.nominal_ratio, 4),
            "blocks": sum(stage_depths), "aliases": ",".join(self.aliases),
        }


def _measure(config: ModelConfig, resolution: int, counter: str) -> tuple[int, int]:
    report = count_flops(config, resolution, counter)
    return report.params, report.flops


def build_candidates(
    proxy_base: ModelConfig,
    triples: list[Triple],
    rules: ScalingRules,
    counter: str = "fvcore",
    progress: Callable[[int, int], None] | None = None,
) -> list[Candidate]:
    """The base plus one candidate per distinct proxy model, FLOPs measured at its size."""
    base_params, base_flops = _measure(proxy_base, proxy_base.resolution, counter)
    base = Candidate(BASE_KEY, 1.0, 1.0, 1.0, proxy_base.resolution, proxy_base, base_params,
                     base_flops, 1.0, 1.0)
    groups: dict[str, list[tuple[Triple, ModelConfig]]] = {}
    for triple in triples:
        config = scale_config(proxy_base, depth=triple.alpha, width=triple.beta,
                              resolution_px=triple.resolution, rules=rules, name=triple.key)
        signature = dump_config(config.replace(name="-"))
        groups.setdefault(signature, []).append((triple, config))
    candidates = [base]
    for done, members in enumerate(groups.values(), 1):
        params, flops = _measure(members[0][1], members[0][0].resolution, counter)
        ratio = flops / base_flops
        members.sort(key=lambda m: (abs(m[0].nominal_ratio - ratio), m[0].key))
        triple, config = members[0]
        candidates.append(Candidate(
            triple.key, triple.alpha, triple.beta, triple.gamma, triple.resolution, config,
            params, flops, ratio, triple.nominal_ratio, tuple(m[0].key for m in members[1:]),
        ))
        if progress is not None:
            progress(done, len(groups))
    return candidates


def apply_flops_window(candidates: list[Candidate], target: float,
                       tolerance: float | None) -> tuple[list[Candidate], list[Candidate]]:
    """Split into (kept, dropped) by ``|measured ratio - target| <= tolerance``; the base is
    always kept. ``None`` keeps everything."""
    if tolerance is None:
        return list(candidates), []
    kept = [c for c in candidates if c.is_base or abs(c.flops_ratio - target) <= tolerance]
    dropped = [c for c in candidates if c not in kept]
    if len(kept) == 1:
        ratios = ", ".join(f"{c.flops_ratio:.2f}" for c in dropped[:8])
        raise EffscaleError(
            f"--flops-tolerance {tolerance:g} drops every candidate (measured FLOPs ratios: "
            f"{ratios}{', ...' if len(dropped) > 8 else ''}); widen it"
        )
    return kept, dropped
