"""A scaling curve: the comparison at several phi in one run (the paper's Fig. 8 on your data).

Every direction (each coefficient set, each single rule) is solved at every phi to
``2**phi`` times the base's cost measured at full size, exactly as a one-phi comparison
solves it (:func:`effscale.compare.models.build_models`), and trained as a proxy under the
same rules. The base is the curve's common point at phi 0 and is trained once. A model is
named ``DIRECTION-phiPHI`` (``compound-phi2``, ``depth-phi-1``): its work items live in the
run's one study beside every other point's, so a curve resumes like any run and never trains
an item twice.

A direction that cannot reach a phi's cost within the window (``--flops-tolerance``, else
5 %; e.g. depth-only far below the base, where every stage is down to one block) is left out
at that phi with the closest figure rounding allows: a point off the target cost would not
be a point of the curve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from effscale.compare.models import CompareModel, build_models
from effscale.compare.settings import CompareSettings
from effscale.errors import EffscaleError
from effscale.scaling.derive import phi_label

DEFAULT_WINDOW = 0.05  # a point's cost within 5 % of 2^phi x the base's, unless the budget says


@dataclass(frozen=True)
class LeftOut:
    """A direction at a phi that no config reaches within the window, and its closest."""

    direction: str
    phi: float
    cost_ratio: float
    target_ratio: float

    def describe(self, window: float) -> str:
        return (f"{self.direction} at φ={phi_label(self.phi)}: no config lies within "
                f"{window:.0%} of ×{self.target_ratio:.3g} (rounding); the closest measures "
                f"×{self.cost_ratio:.3g}: left out")


def curve_key(direction: str, phi: float) -> str:
    """A curve point's model name: ``compound-phi2``, ``depth-phi-1``, ``paper-phi0.5``."""
    return f"{direction}-phi{phi_label(phi)}"


def directions(settings: CompareSettings) -> list[str]:
    """The curve's directions in order: the coefficient sets (the first is the one tested
    against the others), then the single rules."""
    return [*(c.name for c in settings.compounds), *settings.single]


def window(settings: CompareSettings) -> float:
    tolerance = settings.budget.flops_tolerance
    return DEFAULT_WINDOW if tolerance is None else tolerance


def build_curve_models(settings: CompareSettings, num_classes: int,
                       progress: Callable[[str], None] | None = None
                       ) -> tuple[list[CompareModel], list[LeftOut]]:
    """The base once, then every direction at every phi (in ``settings.phis`` order), each
    solved to its phi's target; the points no config reaches within the window, apart."""
    if not settings.phis:
        raise EffscaleError("a scaling curve needs --phi with several values (e.g. 1,2,3)")
    tolerance = window(settings)
    models: list[CompareModel] = []
    left_out: list[LeftOut] = []
    for phi in settings.phis:
        at_phi = build_models(dataclasses.replace(settings, phi=phi, phis=()), num_classes,
                              progress)
        for model in at_phi:
            if model.kind == "base" or phi == 0:  # the base is every direction at phi 0
                if not models:
                    models.append(dataclasses.replace(model, phi=0.0, direction="base"))
                continue
            if abs(model.full.target_error) > tolerance:
                left_out.append(LeftOut(model.full.name, phi, model.full.cost_ratio,
                                        model.full.target_ratio))
                continue
            full = dataclasses.replace(model.full, name=curve_key(model.full.name, phi))
            models.append(dataclasses.replace(model, full=full, phi=phi,
                                              direction=model.full.name))
    return models, left_out
