"""Where a point of the equal-cost curve sits: interior, at a bound of the feasible set, or at
an edge of the searched grid, and the line-search points that refine past such an edge.

Note:
    At a growing target the searched set is the surface ``alpha * beta**2 * gamma**2 = target``
    with beta solved per (alpha, gamma). Its **feasible bounds** are alpha >= 1, gamma >= 1,
    beta >= 1 (going further in alpha or gamma would need beta < 1) and the γ cap: the
    dataset's native size (the proxy never trains on upsampled pixels). A grid point is
    looked at along its two lines: the alpha line (gamma fixed, alpha moves, beta solved) and
    the gamma line (alpha fixed). In each of the four directions it has a screened neighbour
    on that line, a feasible bound, or neither: then it lies on an **edge** of the grid, a
    place the grid stopped though the curve goes on (``--alpha-max``, a ``--gamma-max`` under
    the native size, a coarse step that jumps from a feasible point to an infeasible one).

    A refinement point (:func:`refine_key`) lies on one line and is looked at along that line
    only. Everything here is pure: points in, words and keys out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

REFINE_PREFIX = "refine/"
BETA_AT_BOUND = 0.02  # a solved beta this close to 1 is at the beta = 1 bound
SAME = 1e-6
LINES = ("alpha", "gamma")
DIRECTIONS = (("alpha", 1), ("alpha", -1), ("gamma", 1), ("gamma", -1))
SYMBOL = {"alpha": "α", "gamma": "γ"}


@dataclass(frozen=True)
class Point:
    """A screened model: its coefficients, and the line it was refined on (``None``: a grid
    point, looked at along both lines)."""

    key: str
    alpha: float
    beta: float
    gamma: float
    resolution: int
    line: str | None = None

    @property
    def lines(self) -> tuple[str, ...]:
        return LINES if self.line is None else (self.line,)


@dataclass(frozen=True)
class Bounds:
    """The feasible set's limits and the grid's steps (half a step is the line search's)."""

    alpha_step: float
    gamma_step: float
    base_resolution: int
    cap_px: int  # the largest proxy input: the native size, or the data's loaded size
    cap_is_native: bool = True
    target: float = 2.0

    @property
    def cap_gamma(self) -> float:
        return self.cap_px / self.base_resolution

    def cap_name(self) -> str:
        return (f"the native-size cap ({self.cap_px} px)" if self.cap_is_native
                else f"the largest proxy size the data was loaded at ({self.cap_px} px)")


@dataclass(frozen=True)
class Side:
    """One direction from a point: a screened ``neighbour``, a feasible ``bound`` (named), or
    an ``edge`` of the grid."""

    axis: str
    sign: int
    status: str
    bound: str = ""
    neighbour: Point | None = None

    @property
    def name(self) -> str:
        return f"{'+' if self.sign > 0 else '−'}{SYMBOL[self.axis]}"


def _other(axis: str) -> str:
    return "gamma" if axis == "alpha" else "alpha"


def on_line(point: Point, other: Point, axis: str) -> bool:
    """``other`` lies on ``point``'s ``axis`` line (the other coefficient equal)."""
    fixed = _other(axis)
    return abs(getattr(point, fixed) - getattr(other, fixed)) <= SAME and other.key != point.key


def side(point: Point, axis: str, sign: int, screened: list[Point], bounds: Bounds) -> Side:
    """What lies in one direction along ``axis`` from ``point``."""
    here = getattr(point, axis)
    ahead = [p for p in screened if on_line(point, p, axis)
             and (getattr(p, axis) - here) * sign > SAME]
    if ahead:
        nearest = min(ahead, key=lambda p: abs(getattr(p, axis) - here))
        return Side(axis, sign, "neighbour", neighbour=nearest)
    if sign < 0 and here <= 1 + SAME:
        return Side(axis, sign, "bound", f"{SYMBOL[axis]} = 1")
    if sign > 0 and point.beta <= 1 + BETA_AT_BOUND:
        return Side(axis, sign, "bound", "β = 1")
    if axis == "gamma" and sign > 0 and point.resolution >= bounds.cap_px:
        return Side(axis, sign, "bound", bounds.cap_name())
    return Side(axis, sign, "edge")


def sides(point: Point, screened: list[Point], bounds: Bounds) -> list[Side]:
    """Every direction along the point's lines."""
    return [side(point, axis, sign, screened, bounds) for axis, sign in DIRECTIONS
            if axis in point.lines]


@dataclass(frozen=True)
class Position:
    """Where the answer sits: ``interior``, ``bound`` or ``edge``, in words."""

    kind: str
    text: str
    bounds: tuple[str, ...] = ()
    edges: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "text": self.text, "bounds": list(self.bounds),
                "edges": list(self.edges)}


def direction_of(point: Point, target: Target) -> str:
    """The direction from ``point`` a refinement target lies in (``+α``, ``−γ``...)."""
    value = target.alpha if target.line == "alpha" else target.gamma
    grows = target.solve != "beta" or value > getattr(point, target.line)
    return f"{'+' if grows else '−'}{SYMBOL[target.line]}"


def position(point: Point, screened: list[Point], bounds: Bounds, stopped: str = "",
             closed: tuple[str, ...] = ()) -> Position:
    """The answer's place on the curve: "at the edge ..., refinement stopped by ..." when a
    direction is still an edge (``stopped`` says what stopped it: the budget, the time),
    else "at the feasible bound X" when one or more directions end at a bound, else
    "interior optimum" (a screened neighbour on both sides of every line). ``closed``: the
    directions a refinement searched and found no other model at the target cost in (the
    rounding of depth or size leaves a gap); they count as bounds."""
    found = [replace(s, status="bound", bound=f"{s.name}: no other model at the target cost")
             if s.status == "edge" and s.name in closed else s
             for s in sides(point, screened, bounds)]
    order = ("α = 1", "β = 1", "γ = 1")
    at = tuple(sorted(dict.fromkeys(s.bound for s in found if s.status == "bound"),
                      key=lambda b: order.index(b) if b in order else len(order)))
    open_ = tuple(s.name for s in found if s.status == "edge")
    if open_:
        why = stopped or "the budget"
        text = (f"at the edge of the searched grid ({', '.join(open_)}), refinement stopped "
                f"by {why}")
        return Position("edge", text, at, open_)
    if at:
        return Position("bound", f"at the feasible bound {', '.join(at)}", at)
    return Position("interior", "interior optimum (screened neighbours on both sides along "
                    + " and ".join(f"the {SYMBOL[line]} line" for line in point.lines) + ")")


def refine_key(line: str, alpha: float | None = None, gamma: float | None = None) -> str:
    """A refinement point's key: ``refine/alpha:a1.200_g1.300`` (beta solved), or the line's
    beta = 1 end: ``refine/alpha:g1.300_b1`` (alpha solved), ``refine/gamma:a1.000_b1``
    (gamma solved)."""
    if alpha is not None and gamma is not None:
        return f"{REFINE_PREFIX}{line}:a{alpha:.3f}_g{gamma:.3f}"
    if line == "alpha" and gamma is not None:
        return f"{REFINE_PREFIX}alpha:g{gamma:.3f}_b1"
    if line == "gamma" and alpha is not None:
        return f"{REFINE_PREFIX}gamma:a{alpha:.3f}_b1"
    raise ValueError(f"refine_key: line {line!r} needs alpha and gamma, or its fixed one")


@dataclass(frozen=True)
class Target:
    """A refinement point to build: on ``line``, at (alpha, gamma) with beta solved, or with
    ``solve`` = the line's own axis solved at beta = 1 (the other one fixed)."""

    key: str
    line: str
    alpha: float
    gamma: float
    solve: str = "beta"  # "beta", or "alpha"/"gamma": that axis solved at beta = 1
    kind: str = "beyond"  # "beyond" the edge, or "between" the point and a neighbour


def parse_key(key: str) -> Target:
    """The :class:`Target` a :func:`refine_key` stands for (``ValueError`` if it is none)."""
    if not key.startswith(REFINE_PREFIX) or ":" not in key:
        raise ValueError(f"not a refinement key: {key!r}")
    line, _, rest = key[len(REFINE_PREFIX):].partition(":")
    parts = dict((p[0], p[1:]) for p in rest.split("_"))
    if line not in LINES:
        raise ValueError(f"not a refinement key: {key!r}")
    if parts.get("b") == "1":
        fixed = float(parts["g"] if line == "alpha" else parts["a"])
        alpha, gamma = (1.0, fixed) if line == "alpha" else (fixed, 1.0)
        return Target(key, line, alpha, gamma, solve=line)
    return Target(key, line, float(parts["a"]), float(parts["g"]))


def _at(point: Point, axis: str, value: float, line: str, kind: str) -> Target:
    alpha, gamma = (value, point.gamma) if axis == "alpha" else (point.alpha, value)
    alpha, gamma = round(alpha, 3), round(gamma, 3)
    return Target(refine_key(line, alpha, gamma), line, alpha, gamma, kind=kind)


def beyond(point: Point, edge: Side, bounds: Bounds, steps: int = 2) -> list[Target]:
    """The next ``steps`` half-steps along the curve past ``edge``: positions whose nominal
    cost leaves no room for beta >= 1 become the line's beta = 1 end, and gamma stops at the
    cap."""
    axis, sign = edge.axis, edge.sign
    half = (bounds.alpha_step if axis == "alpha" else bounds.gamma_step) / 2
    out: list[Target] = []
    for k in range(1, steps + 1):
        value = getattr(point, axis) + sign * k * half
        if value < 1 - SAME:
            break
        if axis == "gamma" and value > bounds.cap_gamma + SAME:
            value = bounds.cap_gamma
        alpha, gamma = (value, point.gamma) if axis == "alpha" else (point.alpha, value)
        if sign > 0 and alpha * gamma ** 2 > bounds.target + SAME:
            out += [end for end in line_end(point, edge) if end.key not in
                    {t.key for t in out}]
            break
        target = _at(point, axis, value, axis, "beyond")
        if all(t.key != target.key for t in out):
            out.append(target)
    return out


def line_end(point: Point, edge: Side) -> list[Target]:
    """The edge's line at beta = 1 (its axis solved there): the furthest the curve goes in
    a growing direction. The measured cost can leave no room for beta >= 1 before the
    nominal one does, so a round tries this when a half-step past the edge is over cost."""
    if edge.sign < 0:
        return []
    axis = edge.axis
    fixed = point.gamma if axis == "alpha" else point.alpha
    return [Target(refine_key(axis, **{_other(axis): fixed}), axis,
                   1.0 if axis == "alpha" else point.alpha,
                   point.gamma if axis == "alpha" else 1.0, solve=axis)]


def between(point: Point, edge: Side, screened: list[Point], bounds: Bounds) -> list[Target]:
    """The midpoint between ``point`` and its neighbour on the edge's line, behind it."""
    behind = side(point, edge.axis, -edge.sign, screened, bounds)
    if behind.neighbour is None:
        return []
    middle = (getattr(point, edge.axis) + getattr(behind.neighbour, edge.axis)) / 2
    return [_at(point, edge.axis, middle, edge.axis, "between")]


def refinement(point: Point, screened: list[Point], bounds: Bounds, limit: int,
               steps: int = 2) -> list[Target]:
    """At most ``limit`` line-search points for a point on an edge: past each of its edges
    first (half-steps, then the line's beta = 1 end; the first of every edge before the
    second of any), then between it and its neighbour behind; none for a point at bounds
    only. Keys already screened are left out."""
    done = {p.key for p in screened}
    edges = [s for s in sides(point, screened, bounds) if s.status == "edge"]
    per_edge = [beyond(point, edge, bounds, steps) + line_end(point, edge) for edge in edges]
    # the first point past every edge, then the second of each...: a small limit still
    # looks past each edge
    found: list[Target] = [t for k in range(max(map(len, per_edge), default=0))
                           for targets in per_edge if k < len(targets)
                           for t in [targets[k]]]
    if point.line is None:  # a refined point already has its neighbour half a step behind
        for edge in edges:
            found += between(point, edge, screened, bounds)
    unique = list({t.key: t for t in found if t.key not in done}.values())
    return unique[:max(0, limit)]


def lattice(point: Point, screened: list[Point], bounds: Bounds, rounds: int) -> list[str]:
    """Every refinement key a search may add from ``point`` over ``rounds`` rounds: the
    beyond points of each edge out to ``2 * rounds`` half-steps (a later round goes on from
    the furthest one, on the same half-step lattice), the lines' beta = 1 ends and the
    midpoints. A run lists them all up front (its work items are fixed when the
    study is made); it trains only those its rounds choose."""
    if rounds < 1:
        return []
    keys: list[str] = []
    for edge in (s for s in sides(point, screened, bounds) if s.status == "edge"):
        keys += [t.key for t in beyond(point, edge, bounds, 2 * rounds)]
        keys += [t.key for t in line_end(point, edge)]
        keys += [t.key for t in between(point, edge, screened, bounds)]
    return list(dict.fromkeys(keys))
