"""A comparison's settings as its study recorded them, read once into a typed object.

A comparison (or a scaling curve) stores its settings document in its study when it starts
(settings.yaml is a copy; :meth:`effscale.compare.run.Compare.settings_document` writes it).
:meth:`RecordedCompare.from_document` reads the fields its outputs, plot and page use, so that
past this point they are attributes, not string keys; ``document`` keeps the whole document
for the page's settings section, which shows it as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from effscale.errors import EffscaleError
from effscale.model.config import ScalingRules, rules_from_dict


@dataclass(frozen=True)
class RecordedCompound:
    """A set of compound coefficients a comparison scaled the base with."""

    name: str
    alpha: float
    beta: float
    gamma: float
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "alpha": self.alpha, "beta": self.beta,
                "gamma": self.gamma, "source": self.source}


@dataclass(frozen=True)
class RecordedCompare:
    """What a comparison was asked to do, as it recorded it. A scaling curve (``phis``
    given) also records its directions, its cost window and the models it left out."""

    base: str
    dataset: str
    num_classes: int
    budget: str = ""
    phi: float = 1.0
    target: str = ""  # what the models were solved to, in words
    compounds: tuple[RecordedCompound, ...] = ()
    single: tuple[str, ...] = ()  # the single-dimension rules compared against
    proxy_resolution: int | None = None
    proxy_stem_stride: int | None = None
    rules: ScalingRules = field(default_factory=ScalingRules)
    cost_name: str = "flops"
    phis: tuple[float, ...] = ()  # a scaling curve's phis (empty: a comparison at one phi)
    directions: tuple[str, ...] = ()  # a curve's lines, the tested one first
    window: Any = None  # a curve's cost window, as recorded
    left_out: tuple[str, ...] = ()  # a curve's models outside its window, described
    document: Mapping[str, Any] = field(default_factory=dict)  # the whole document

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> RecordedCompare:
        """The typed settings of a comparison's settings document (a clear error when it is
        not one)."""
        if doc.get("command") != "compare" or "num_classes" not in doc:
            raise EffscaleError("not a comparison's settings document (no command: compare "
                                "and class count)")
        identity = doc.get("identity") or {}
        return cls(
            base=str(doc.get("base") or ""), dataset=str(doc.get("dataset") or ""),
            num_classes=int(doc["num_classes"]), budget=str(doc.get("budget") or ""),
            phi=float(doc.get("phi", 1.0)), target=str(doc.get("target") or ""),
            compounds=tuple(RecordedCompound(str(c["name"]), float(c["alpha"]),
                                             float(c["beta"]), float(c["gamma"]),
                                             str(c.get("source") or ""))
                            for c in doc.get("compounds") or ()),
            single=tuple(doc.get("single") or ()),
            proxy_resolution=doc.get("proxy_resolution"),
            proxy_stem_stride=doc.get("proxy_stem_stride"),
            rules=rules_from_dict(doc.get("rules") or identity.get("rules") or {}),
            cost_name=str(doc.get("cost_name") or doc.get("cost") or "flops"),
            phis=tuple(float(p) for p in doc.get("phis") or ()),
            directions=tuple(doc.get("directions") or ()), window=doc.get("window"),
            left_out=tuple(doc.get("left_out") or ()), document=doc)

    @property
    def is_curve(self) -> bool:
        return bool(self.phis)

    @property
    def compound_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.compounds)

    @property
    def model_names(self) -> list[str]:
        """The models of a comparison in its table's order: base, compounds, single rules."""
        return ["base", *self.compound_names, *self.single]
