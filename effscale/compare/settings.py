"""What a comparison is told: the coefficient sets, the single-dimension rules, phi."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from effscale.errors import EffscaleError
from effscale.experiment.settings import RunSettings
from effscale.model.bases import get_base
from effscale.model.cost import CostMeter, CostOptions, cost_identity, run_cost_options
from effscale.scaling.derive import PAPER_COEFFICIENTS
from effscale.scaling.rules import DIMENSIONS, FAST_A, RULES, SHRINK_ONLY
from effscale.train.proxy import proxy_stem_stride

SINGLE_RULES = tuple(RULES)
RESERVED_NAMES = ("base", *SINGLE_RULES)


@dataclass(frozen=True)
class CompoundSet:
    """One compound direction: its model's name, (alpha, beta, gamma) and where they came
    from."""

    name: str
    coefficients: tuple[float, float, float]
    source: str


PAPER_SET = CompoundSet("compound", PAPER_COEFFICIENTS, "paper (Tan & Le 2019)")


@dataclass(frozen=True, kw_only=True)
class CompareSettings(RunSettings):
    """Everything a comparison needs; ``identity()`` must match on resume.

    ``rules`` round the FULL-size models (derive's defaults: channels to 8, input size to a
    multiple of 8 at 224 px). ``single`` lists the single-dimension models (``depth``,
    ``width``, ``resolution``, ``fast``). The recipe's ``stem_stride``, when not given, is
    the proxy stem stride of the base at ``budget.resolution``.
    """

    phi: float = 1.0
    phis: tuple[float, ...] = ()  # a scaling curve: several phi in one run (see compare.curve)
    compounds: tuple[CompoundSet, ...] = (PAPER_SET,)
    single: tuple[str, ...] = DIMENSIONS
    fast_a: float = FAST_A
    study: str = "effscale-compare"
    cost: str = "flops"  # what the models are solved to equal (effscale.model.cost)
    cost_batch: int | None = None  # a timed cost's batch (default: 1 / the training batch)

    def __post_init__(self) -> None:
        # Every model of a comparison trains to the end: a budget's pruner (halving on standard
        # and above) would leave most rows without a final accuracy.
        if self.budget.pruner != "none":
            object.__setattr__(self, "budget", self.budget.override(pruner="none"))
        if self.recipe.stem_stride is None:
            stride = proxy_stem_stride(get_base(self.base), self.budget.resolution)
            object.__setattr__(self, "recipe", dataclasses.replace(self.recipe,
                                                                   stem_stride=stride))
        unknown = [r for r in self.single if r not in SINGLE_RULES]
        if unknown:
            raise EffscaleError(f"--rules: unknown {', '.join(unknown)} (valid: "
                                f"{', '.join(SINGLE_RULES)}, or none)")
        grows = [p for p in (self.phis or (self.phi,)) if p > 0]
        if grows and (shrink := [r for r in self.single if r in SHRINK_ONLY]):
            raise EffscaleError(f"--rules {shrink[0]} only shrinks: use it at phi <= 0, not "
                                f"phi {grows[0]:g}")
        if len(set(self.phis)) != len(self.phis):
            raise EffscaleError(f"--phi lists a value twice: {', '.join(map(str, self.phis))}")
        names = [c.name for c in self.compounds]
        if not names:
            raise EffscaleError("compare needs at least one coefficient set")
        if len(set(names)) != len(names):
            raise EffscaleError(f"coefficient sets need distinct names, got {', '.join(names)}")
        if clash := [n for n in names if n in RESERVED_NAMES]:
            raise EffscaleError(f"a coefficient set cannot be named {clash[0]!r} (a model of "
                                "its own): name it with --coefficients NAME=PATH")

    def cost_options(self) -> CostOptions:
        """How a timed cost is measured: at ``cost_batch``, or batch 1 for latency and the
        training batch for train-step, on the run's device and threads, in its runtime."""
        return run_cost_options(self.cost, self.cost_batch, self.recipe.batch_size,
                                self.device, self.threads, self.runtime)

    def cost_meter(self) -> CostMeter | None:
        """The cost the models are solved on; ``None`` for FLOPs (the FlopsMeter's path)."""
        return None if self.cost == "flops" else CostMeter(self.cost, self.cost_options())

    @property
    def is_curve(self) -> bool:
        """Several phi in one run: a scaling curve (:mod:`effscale.compare.curve`)."""
        return bool(self.phis)

    @property
    def gamma_max(self) -> float:
        """An upper bound of the models' resolution ratios (data loading of image folders)."""
        phi = max(abs(p) for p in (self.phis or (self.phi,)))
        return max([1.0, *(max(c.coefficients[2], 1.0) ** (phi + 2)
                           for c in self.compounds), 2.0 ** (phi / 2 + 1)])

    def identity(self, data_fingerprint: str) -> dict[str, Any]:
        budget = asdict(self.budget)
        budget.pop("description")
        extra: dict[str, Any] = {}
        if self.cost != "flops":  # FLOPs runs keep the fingerprints they always had
            extra["cost"] = cost_identity(self.cost, self.cost_options())
        if self.phis:  # a curve; a single phi keeps the fingerprint it always had
            extra["phis"] = list(self.phis)
        return {
            **extra, "command": "compare", "base": self.base, "dataset": self.dataset,
            "data_fingerprint": data_fingerprint, "budget": budget,
            "recipe": self.recipe.to_dict(), "rules": asdict(self.rules), "seed": self.seed,
            "phi": self.phi, "flops_at": "full size, conv+linear",
            "compounds": [[c.name, list(c.coefficients)] for c in self.compounds],
            "single": list(self.single),
            "fast_a": self.fast_a if "fast" in self.single else None,
            "counter": self.counter, "allow_upsampling": self.allow_upsampling,
        }
