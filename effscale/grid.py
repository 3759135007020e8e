"""The phi=1 search space: (alpha, beta, gamma) triples under alpha*beta^2*gamma^2 ~= 2.

Note:
    The resolution axis is the set of input sizes the proxy can actually take: multiples of
    ``resolution_step`` pixels from the proxy's base size up to ``gamma_max`` times it, so
    ``gamma = size / base size``. A gamma that rounds to an existing size would train the
    same model twice under another name, so it is not offered.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from effscale.errors import EffscaleError


@dataclass(frozen=True)
class GridSpec:
    """Ranges and tolerance of the grid. alpha and beta step by ``step`` from 1."""

    alpha_max: float = 2.0
    beta_max: float = 1.5
    gamma_max: float = 1.5
    step: float = 0.05
    tolerance: float = 0.1
    target: float = 2.0
    base_resolution: int = 32
    resolution_step: int | None = 8

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        for name in ("alpha_max", "beta_max", "gamma_max"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 1:
                flag = "--" + name.replace("_", "-")
                raise EffscaleError(f"{flag} must be a number >= 1, got {value}")
        if not math.isfinite(self.step) or not 0 < self.step <= 1:
            raise EffscaleError(f"--step must be in (0, 1], got {self.step}")
        if not math.isfinite(self.tolerance) or self.tolerance <= 0:
            raise EffscaleError(f"--tolerance must be a positive number, got {self.tolerance}")
        if (self.resolution_step is not None and self.resolution_step < 1) \
                or self.base_resolution < 8:
            raise EffscaleError("resolution step must be >= 1 and base resolution >= 8")


@dataclass(frozen=True)
class Triple:
    """One grid point and the proxy input size its gamma stands for."""

    alpha: float
    beta: float
    gamma: float
    resolution: int

    @property
    def nominal_ratio(self) -> float:
        return self.alpha * self.beta**2 * self.gamma**2

    @property
    def key(self) -> str:
        return f"a{self.alpha:.2f}_b{self.beta:.2f}_g{self.gamma:.3f}"


def axis(maximum: float, step: float) -> list[float]:
    """``1, 1 + step, ...`` up to ``maximum`` inclusive, free of float drift."""
    count = int(math.floor((maximum - 1.0) / step + 1e-9))
    return [round(1.0 + i * step, 6) for i in range(count + 1)]


def gamma_axis(spec: GridSpec) -> list[tuple[float, int]]:
    """``(gamma, size)`` for every proxy input size from the base size up to gamma_max.

    Without a ``resolution_step``, gamma steps like alpha and beta and the size is rounded.
    """
    if spec.resolution_step is None:
        return [(g, round(spec.base_resolution * g)) for g in axis(spec.gamma_max, spec.step)]
    sizes = range(spec.base_resolution,
                  int(math.floor(spec.base_resolution * spec.gamma_max + 1e-9)) + 1,
                  spec.resolution_step)
    return [(round(size / spec.base_resolution, 6), size) for size in sizes]


def feasible_grid(spec: GridSpec) -> list[Triple]:
    """Every triple with ``|alpha*beta^2*gamma^2 - target| < tolerance`` (strict, as NNI).

    Raises ``EffscaleError`` when none is feasible, saying how to widen the grid.
    """
    spec.check()
    triples = [
        Triple(alpha, beta, gamma, size)
        for gamma, size in gamma_axis(spec)
        for beta in axis(spec.beta_max, spec.step)
        for alpha in axis(spec.alpha_max, spec.step)
        if round(abs(alpha * beta**2 * gamma**2 - spec.target), 9) < spec.tolerance
    ]
    if not triples:
        raise EffscaleError(
            f"no (alpha, beta, gamma) on the grid has |alpha*beta^2*gamma^2 - {spec.target:g}| "
            f"< {spec.tolerance:g}; widen --tolerance, use a finer --step or raise the maxima"
        )
    return triples
