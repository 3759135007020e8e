"""A candidate's design as its trials recorded it, typed.

A search stores each candidate's numbers (:meth:`~effscale.search.candidates.Candidate.summary`)
as trial user attributes, and they come back as the ``attrs`` dict of an
:class:`~effscale.experiment.rows.Row`. :func:`design` reads that dict once, here, into a
:class:`Design`; the pages, the plot and the terminal read fields, not string keys. A field
a run did not record (a compare run's rows, an older run) is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from effscale.experiment.rows import Row
from effscale.search.candidates import BASE_KEY
from effscale.search.grid import key_coefficients


def _float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


@dataclass(frozen=True)
class Design:
    """What a candidate is: its coefficients, sizes and measured costs (full size and proxy).

    ``flops_ratio`` is the full-size FLOPs over the base's, ``proxy_flops_ratio`` the same at
    the proxy, ``nominal_ratio`` ``α·β²·γ²``; ``cost``/``cost_value``/``cost_ratio`` the
    run's other cost when it is not FLOPs (``cost_note`` a timing caveat)."""

    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    resolution: int | None = None  # the proxy's
    full_resolution: int | None = None
    params: int | None = None
    flops_ratio: float | None = None
    proxy_flops_ratio: float | None = None
    nominal_ratio: float | None = None
    blocks: int | None = None
    aliases: str = ""
    cost: str | None = None
    cost_value: float | None = None
    cost_ratio: float | None = None
    cost_note: str = ""

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Design:
        get = attrs.get
        return cls(
            alpha=_float(get("alpha")), beta=_float(get("beta")), gamma=_float(get("gamma")),
            resolution=_int(get("resolution")), full_resolution=_int(get("full_resolution")),
            params=_int(get("params")), flops_ratio=_float(get("flops_ratio")),
            proxy_flops_ratio=_float(get("proxy_flops_ratio")),
            nominal_ratio=_float(get("nominal_ratio")), blocks=_int(get("blocks")),
            aliases=str(get("aliases") or ""), cost=get("cost") or None,
            cost_value=_float(get("cost_value")), cost_ratio=_float(get("cost_ratio")),
            cost_note=str(get("cost_note") or ""))

    @property
    def coefficients(self) -> tuple[float, float, float]:
        """``(α, β, γ)``; raises when the run did not record them."""
        if self.alpha is None or self.beta is None or self.gamma is None:
            raise ValueError("this row records no coefficients")
        return self.alpha, self.beta, self.gamma

    def label(self) -> str:
        """``α=1.00 β=1.111 γ=1.300``."""
        alpha, beta, gamma = self.coefficients
        return f"α={alpha:.2f} β={beta:.3f} γ={gamma:.3f}"


def design(row: Row | None) -> Design:
    """``row``'s design (all ``None`` for no row)."""
    return Design() if row is None else Design.from_attrs(row.attrs)


def design_of(key: str, row: Row | None) -> Design:
    """``row``'s design, or for a model not trained yet the α, β, γ its key spells (1, 1, 1
    for the base)."""
    if row is not None:
        return design(row)
    spelled = (1.0, 1.0, 1.0) if key == BASE_KEY else key_coefficients(key)
    return Design() if spelled is None else Design(*spelled)
