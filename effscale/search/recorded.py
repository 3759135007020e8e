"""A search's settings as its study recorded them, read once into a typed object.

A run stores its settings document in its study when it starts (settings.yaml is a copy);
:meth:`RecordedSearch.from_document` reads the fields the answer and its outputs use, so that
past this point they are attributes, not string keys. ``document`` keeps the whole
document for the stages that take it as it is (the ladder, the refinement, the plots).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from effscale.errors import EffscaleError
from effscale.experiment.rundir import run_settings
from effscale.model.config import ScalingRules, rules_from_dict
from effscale.search.grid import GridSpec

GRID_FIELDS = {f.name for f in fields(GridSpec)}


@dataclass(frozen=True)
class RecordedSearch:
    """What a search was asked to do, as it recorded it."""

    base: str
    dataset: str
    num_classes: int
    budget: str = ""
    grid: GridSpec | None = None  # None: a run that recorded no grid
    rules: ScalingRules = field(default_factory=ScalingRules)
    flops_window: tuple[float, float] | None = None
    cost: str = ""  # the --cost asked for ("" or "flops": FLOPs)
    cost_name: str = "flops"  # the cost the candidates are equal in
    runtime: str = "torch"  # where a timed cost was measured
    feasible_grid_points: int | None = None
    cost_timing: Mapping[str, Any] = field(default_factory=dict)
    confirm_top: int = 0  # the budget's confirmation: how many candidates it retrains
    document: Mapping[str, Any] = field(default_factory=dict)  # the whole document

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> RecordedSearch:
        """The typed settings of a run's settings document (a clear error when it is not
        one: no class count, which every search records)."""
        if "num_classes" not in doc:
            raise EffscaleError("the run's settings have no num_classes: not a search's "
                                "settings document")
        identity = doc.get("identity") or {}
        grid = doc.get("grid")
        window = doc.get("flops_window")
        points = doc.get("feasible_grid_points")
        return cls(
            base=str(doc.get("base") or ""), dataset=str(doc.get("dataset") or ""),
            num_classes=int(doc["num_classes"]), budget=str(doc.get("budget") or ""),
            grid=GridSpec(**{k: v for k, v in grid.items() if k in GRID_FIELDS})
            if grid else None,
            rules=rules_from_dict(doc.get("rules") or identity.get("rules") or {}),
            flops_window=(float(window[0]), float(window[1])) if window else None,
            cost=str(doc.get("cost") or ""), cost_name=str(doc.get("cost_name") or "flops"),
            runtime=str(doc.get("runtime") or "torch"),
            feasible_grid_points=int(points) if points is not None else None,
            cost_timing=dict(doc.get("cost_timing") or {}),
            confirm_top=int((identity.get("budget") or {}).get("confirm_top", 0)),
            document=doc)

    @property
    def target(self) -> float:
        """The candidates' FLOPs over the base's at full size (2 for phi = 1)."""
        return self.grid.target if self.grid is not None else 2.0

    @property
    def phi(self) -> float:
        """The phi the candidates cost: log2 of the target (1 for 2x the base)."""
        return round(math.log2(self.target), 6)

    @property
    def family_phis(self) -> tuple[int, ...]:
        """The family a search writes to configs/: B0-B7 when it grew, B0 down to B-3 when
        it shrank (a shrinking answer is checked below the base, not above it)."""
        return tuple(range(8)) if self.phi > 0 else (0, -1, -2, -3)

    @property
    def chance(self) -> float:
        """Accuracy by guessing: one over the class count."""
        return 1.0 / self.num_classes


def recorded_search(study: Any) -> RecordedSearch:
    """The typed settings a run stored in its study when it started."""
    return RecordedSearch.from_document(run_settings(study))
