"""Grid points -> candidates: full-size models at equal measured FLOPs, and their proxies.

A candidate is defined where its coefficients are used: the base at its full resolution (b0
at 224 px) scaled by depth ``alpha``, width ``beta`` and resolution ``gamma`` through the same
:func:`effscale.scaling.compound.scale_config` as ``effscale derive``. Its cost is that model's
measured FLOPs over the base's, and only candidates within ``rtol`` of the target (2x by
default, +-5 %) are kept and ranked. The proxy that is trained is the same depth and width at
a small input (``base proxy size x gamma``, see :mod:`effscale.train.proxy`); its own FLOPs ratio
is measured too and shown, as the proxy's distortion, never used as the cost.

Two ways to pick the points (``GridSpec.beta``):

- ``solve`` (default): for every ``(alpha, gamma)`` on the grid, ``beta`` is solved on
  measured full-size FLOPs (bisection with the rounding in place), so every candidate costs
  the target, up to the width-rounding staircase.
- ``grid``: NNI's grid of ``(alpha, beta, gamma)`` with ``|alpha beta^2 gamma^2 - 2| < tol``,
  then filtered on measured full-size FLOPs.

Grid points whose proxy model is identical (ceil rounding makes alpha = 1.8, 1.9 and 2.0 add
the same blocks to b0) are trained once; the point kept is the one whose nominal ratio is
closest to the measured one, and the others are listed as its aliases.

With another cost than FLOPs (``--cost latency``: a :class:`~effscale.model.cost.Meter`),
``beta`` is solved on that cost and the window is on its ratio to the base's; FLOPs are still
measured and shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from effscale.errors import EffscaleError
from effscale.experiment.settings import FRESH_SEED_OFFSET
from effscale.model.config import ModelConfig, ScalingRules, dump_config
from effscale.model.cost import CostMeter, Meter
from effscale.scaling.compound import scale_config
from effscale.scaling.equal_flops import FlopsMeter, as_cost, solve
from effscale.search.grid import (
    EXTREMES,
    GridSpec,
    Triple,
    alpha_gamma_points,
    feasible_grid,
    single_axis,
)

BASE_KEY = "base"
CONFIRM_PREFIX = "confirm/"
LADDER_PREFIX = "ladder/"  # the proxy ladder's models (effscale.search.ladder)
SOLVE_COUNTER = "torch"  # conv+linear on the meta device: 0.14-0.22 s a b0-sized model; fvcore ~6
BISECTIONS = 14
DEFAULT_RTOL = 0.05  # the budgets' cost window, relative


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One model to train: a grid point (or the base) as built for the proxy.

    ``flops``/``flops_ratio`` are measured on the FULL-size model (the cost the coefficients
    carry); ``proxy_flops``/``proxy_flops_ratio`` on the proxy that is trained. With another
    cost than FLOPs, ``cost_value``/``cost_ratio`` are that cost at full size.
    """

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
    full_resolution: int = 0
    proxy_flops: int = 0
    proxy_flops_ratio: float = 0.0
    epochs_factor: int = 1  # >1: a fidelity-check retraining under a longer schedule
    activations: int = 0  # full size
    cost: str = "flops"
    cost_value: float = 0.0
    cost_ratio: float = 0.0
    cost_note: str = ""  # a timed cost whose spread did not come under its bound says so

    @property
    def is_base(self) -> bool:
        return self.key == BASE_KEY

    @property
    def is_confirmation(self) -> bool:
        return self.key.startswith(CONFIRM_PREFIX)

    @property
    def seed_offset(self) -> int:
        """Its seed stream: the screening's, or the confirmation's fresh seeds."""
        return FRESH_SEED_OFFSET if self.is_confirmation else 0

    def summary(self) -> dict:
        """Plain numbers for trials.csv and trial user attributes."""
        stage_depths = [s.repeats for s in self.config.stages]
        return {
            "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
            "depth_multiplier": self.alpha, "width_multiplier": self.beta,
            "resolution": self.resolution, "full_resolution": self.full_resolution,
            "params": self.params, "flops": self.flops,
            "flops_ratio": round(self.flops_ratio, 4),
            "proxy_flops": self.proxy_flops,
            "proxy_flops_ratio": round(self.proxy_flops_ratio, 4),
            "nominal_ratio": round(self.nominal_ratio, 4),
            "blocks": sum(stage_depths), "aliases": ",".join(self.aliases),
            "epochs_factor": self.epochs_factor,
            **({"activations": self.activations} if self.activations else {}),
            **({"cost": self.cost, "cost_value": self.cost_value,
                "cost_ratio": round(self.cost_ratio, 4)} if self.cost != "flops" else {}),
            **({"cost_note": self.cost_note} if self.cost_note else {}),
        }

    def for_confirmation(self, factor: int) -> Candidate:
        """The same model as a fidelity-check item, trained ``factor`` times longer."""
        return replace(self, key=confirm_key(self.key), epochs_factor=factor)


def confirm_key(key: str) -> str:
    return CONFIRM_PREFIX + key


@dataclass(frozen=True)
class Skipped:
    """A grid point or model that is not trained, and why (for the feasible-set report)."""

    key: str
    reason: str
    flops_ratio: float | None = None
    proxy_flops_ratio: float | None = None
    cost_ratio: float | None = None  # the search's cost, when it is not FLOPs
    cost_note: str = ""


def solve_beta(full_base: ModelConfig, alpha: float, gamma: float, target: float,
               beta_max: float, rules: ScalingRules, measure: FlopsMeter | Meter,
               rtol: float | None = DEFAULT_RTOL, beta_low: float = 1.0
               ) -> tuple[float | None, str]:
    """``beta`` in ``[1, beta_max]`` whose full-size model's conv+linear FLOPs are closest to
    ``target`` times the base's, with ``alpha`` and ``gamma`` fixed; ``(None, why)`` when no
    beta in range comes within ``rtol`` (the run's cost window, relative; ``None``: any
    distance) of it: beta = 1 already over the target, or beta_max still under it. ``measure``
    should count conv+linear FLOPs with the fast :data:`SOLVE_COUNTER`; the kept model is
    measured again with the run's counter. A :class:`~effscale.model.cost.Meter` solves
    on its cost instead.
    """

    def build(beta: float) -> ModelConfig:
        return scale_config(full_base, depth=alpha, width=beta, resolution=gamma, rules=rules)

    cost = as_cost(measure)
    base_flops = cost(full_base)
    ratio = lambda b: cost(build(b)) / base_flops  # noqa: E731
    within = lambda r: rtol is None or abs(r / target - 1) <= rtol  # noqa: E731
    # growing: beta in [1, beta_max]; shrinking (target < 1): beta in [beta_low, 1]
    low, high = (1.0, beta_max) if target >= 1 else (beta_low, 1.0)
    at_low = ratio(low)
    if at_low >= target:
        if within(at_low):
            return low, ""
        return None, f"costs ×{at_low:.2f} at full size already with β = {low:.3g}"
    at_high = ratio(high)
    if at_high < target:
        if within(at_high):
            return high, ""
        return None, (f"needs β > --beta-max {beta_max:g} to reach ×{target:g}" if target >= 1
                      else f"costs ×{at_high:.2f} with β = 1, below ×{target:g}")
    lo, hi = low, high
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        if build(mid) == build(lo) or ratio(mid) < target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda b: abs(math.log(ratio(b) / target)))
    # Report beta to 3 decimals when that builds the same model (it does unless a channel
    # count changes within 0.0005 of it).
    short = round(best, 3)
    return (short if build(short) == build(best) else best), ""


def _short(value: float, build: Callable[[float], ModelConfig]) -> float:
    """``value`` to 2 (else 3) decimals when that builds the same model, else as it is."""
    for digits in (2, 3):
        if build(round(value, digits)) == build(value):
            return round(value, digits)
    return value


def solve_extremes(full_base: ModelConfig, spec: GridSpec, rules: ScalingRules,
                   measure: FlopsMeter | Meter, rtol: float | None = DEFAULT_RTOL,
                   gamma_cap: str = "", skip: set[str | None] | frozenset = frozenset()
                   ) -> tuple[list[Triple], list[Skipped]]:
    """The equal-cost curve's three single-axis ends for a growing target: depth-only
    (``beta = gamma = 1``, alpha solved on measured full-size cost), width-only (``alpha =
    gamma = 1``, beta solved) and resolution-only (``alpha = beta = 1``, gamma solved). One
    that lies outside the grid's maxima (``gamma_cap`` says why gamma's is what it is, e.g.
    the dataset's native size) or misses the cost window is returned as :class:`Skipped`
    under its name (``depth-only``...), with the reason. Shrinking targets have none; the
    names in ``skip`` are not solved (the grid holds them)."""
    if spec.shrinks:
        return [], []
    cost = as_cost(measure)
    base_cost = cost(full_base)
    target = spec.target * base_cost
    within = lambda r: rtol is None or abs(r / spec.target - 1) <= rtol  # noqa: E731
    largest_px = int(math.floor(spec.base_resolution * spec.gamma_max + 1e-9))
    triples: list[Triple] = []
    skipped: list[Skipped] = []
    for name in EXTREMES:
        if name in skip:
            continue
        if name == "width-only":
            beta, why = solve_beta(full_base, 1.0, 1.0, spec.target, spec.beta_max, rules,
                                   measure, rtol)
            if beta is None:
                skipped.append(Skipped(name, f"not reached: {why}"))
            else:
                triples.append(Triple(1.0, beta, 1.0, spec.base_resolution))
            continue
        axis = "depth" if name == "depth-only" else "resolution"
        build = lambda m, axis=axis: scale_config(  # noqa: E731
            full_base, rules=rules, **{"depth": 1.0, "width": 1.0, "resolution": 1.0, axis: m})
        if cost(build(2.0)) <= base_cost:
            # a cost the axis does not move (params against resolution): no end to solve
            skipped.append(Skipped(name, f"not reached: the {cost.name} cost does not grow "
                                   f"with {axis}, so no {name} model costs ×{spec.target:g}"))
            continue
        m, config = solve(build, target, measure)
        m = _short(m, build)
        ratio = cost(config) / base_cost
        if not within(ratio):
            skipped.append(Skipped(name, f"not reached: the closest model measures "
                                   f"×{ratio:.3f} at full size, outside the cost window",
                                   ratio))
        elif name == "depth-only":
            # ceil rounding: a smaller alpha may build the same blocks; keep the grid's
            if m > spec.alpha_max and build(spec.alpha_max) == config:
                m = spec.alpha_max
            if m > spec.alpha_max + 1e-9:
                skipped.append(Skipped(name, f"not reached: needs α {m:g}, above --alpha-max "
                                       f"{spec.alpha_max:g}", ratio))
            else:
                triples.append(Triple(m, 1.0, 1.0, spec.base_resolution))
        else:
            px = round(spec.base_resolution * m)
            if px > largest_px:
                cap = gamma_cap or f"--gamma-max {spec.gamma_max:g}"
                skipped.append(Skipped(name, f"not reached: needs γ {m:g} ({px} px proxy from "
                                       f"{spec.base_resolution} px), above the γ axis' largest "
                                       f"{largest_px} px ({cap})", ratio))
            else:
                triples.append(Triple(1.0, 1.0, m, px))
    return triples, skipped


def extremes_found(kept: list[Candidate], dropped: list[Skipped]) -> dict[str, str]:
    """Each of the curve's ends (:data:`~effscale.search.grid.EXTREMES`): the candidate that
    is it, or why it is not in the feasible set ("not reached: ..."; "not solved" for NNI's
    grid or a shrinking target, which do not solve for them)."""
    found = {name: "not solved (NNI's --beta grid or a shrinking target)" for name in EXTREMES}
    for d in dropped:
        if d.key in found:
            found[d.key] = d.reason
    for c in kept:
        if not c.is_base and (name := single_axis(c.alpha, c.beta, c.gamma)) is not None:
            found[name] = c.key
    return found


def grid_points(full_base: ModelConfig, spec: GridSpec, rules: ScalingRules,
                measure: FlopsMeter, rtol: float | None = DEFAULT_RTOL, gamma_cap: str = ""
                ) -> tuple[list[Triple], list[Skipped]]:
    """The (alpha, beta, gamma, proxy size) points of ``spec``: solved (within ``rtol`` of the
    target, the run's window) or NNI's grid. A solved grid of a growing target also holds
    the three single-axis extremes (:func:`solve_extremes`)."""
    if spec.beta == "grid":
        return feasible_grid(spec), []
    triples: list[Triple] = []
    skipped: list[Skipped] = []
    for alpha, gamma, size in alpha_gamma_points(spec):
        beta, why = solve_beta(full_base, alpha, gamma, spec.target, spec.beta_max, rules,
                               measure, rtol, spec.beta_low)
        if beta is None:
            skipped.append(Skipped(f"a{alpha:.2f}_g{gamma:.3f}", why))
        else:
            triples.append(Triple(alpha, beta, gamma, size))
    # the curve's ends the axes do not hold already (depth-only often is an axis point
    # whose solved beta is 1; resolution-only rarely is)
    have = {single_axis(t.alpha, t.beta, t.gamma) for t in triples}
    ends, missed = solve_extremes(full_base, spec, rules, measure, rtol, gamma_cap,
                                  skip=have)
    triples, skipped = triples + ends, skipped + missed
    if not triples:
        raise EffscaleError(f"no (alpha, gamma) on the grid has a beta in "
                            f"[{spec.beta_low:.3g}, {spec.beta_high:g}]"
                            f" that costs ×{spec.target:g}; raise --beta-max or lower "
                            "--alpha-max/--gamma-max")
    return triples, skipped


def build_candidates(
    full_base: ModelConfig,
    to_proxy: Callable[[ModelConfig, int], ModelConfig],
    base_resolution: int,
    spec: GridSpec,
    rules: ScalingRules,
    counter: str = "fvcore",
    rtol: float | None = 0.05,
    progress: Callable[[int, int], None] | None = None,
    cost: Meter | None = None,
    gamma_cap: str = "",
) -> tuple[list[Candidate], list[Skipped]]:
    """The base plus one candidate per distinct proxy model within ``rtol`` of the target
    full-size FLOPs ratio (``None``: keep all), and what was left out and why.

    ``to_proxy(full_config, size)`` makes the model that is trained from a full-size one.
    ``cost`` (not FLOPs) solves beta and sets the window on that cost instead.
    ``gamma_cap`` says what caps the γ axis (the dataset's native size), for an extreme it
    leaves out.
    """
    if cost is not None and cost.name == "flops":
        cost = None
    # conv+linear FLOPs, the published convention and what `derive` and `compare` report
    measure = FlopsMeter(counter, conv_linear=True)
    triples, skipped = grid_points(full_base, spec, rules,
                                   cost or FlopsMeter(SOLVE_COUNTER, conv_linear=True), rtol,
                                   gamma_cap)
    base = measure(full_base)
    base_params, base_flops, base_activations = base.params, base.flops, base.activations
    def note_of(config: ModelConfig) -> str:
        return cost.note(config) if isinstance(cost, CostMeter) else ""

    base_cost = cost(full_base) if cost is not None else 0.0
    extra = {} if cost is None else {"cost": cost.name, "cost_value": base_cost,
                                     "cost_ratio": 1.0, "cost_note": note_of(full_base)}
    proxy_base = to_proxy(full_base, base_resolution)
    base_proxy_flops = measure(proxy_base).flops
    base = Candidate(key=BASE_KEY, alpha=1.0, beta=1.0, gamma=1.0, resolution=base_resolution,
                     config=proxy_base, params=base_params, flops=base_flops, flops_ratio=1.0,
                     nominal_ratio=1.0, full_resolution=full_base.resolution,
                     proxy_flops=base_proxy_flops, proxy_flops_ratio=1.0,
                     activations=base_activations, **extra)
    groups: dict[str, list[tuple[Triple, ModelConfig, ModelConfig]]] = {}
    for triple in triples:
        full = scale_config(full_base, depth=triple.alpha, width=triple.beta,
                            resolution=triple.gamma, rules=rules, name=triple.key)
        proxy = to_proxy(full, triple.resolution)
        signature = dump_config(proxy.replace(name="-"))
        groups.setdefault(signature, []).append((triple, full, proxy))
    candidates = [base]
    for done, members in enumerate(groups.values(), 1):
        full_complexity = measure(members[0][1])
        params, flops = full_complexity.params, full_complexity.flops
        ratio = flops / base_flops
        members.sort(key=lambda m: (abs(m[0].nominal_ratio - ratio), m[0].key))
        triple, full, proxy = members[0]
        if cost is not None:
            value = cost(full)
            extra = {"cost": cost.name, "cost_value": value, "cost_ratio": value / base_cost,
                     "cost_note": note_of(full)}
        proxy_flops = measure(proxy).flops
        candidate = Candidate(
            key=triple.key, alpha=triple.alpha, beta=triple.beta, gamma=triple.gamma,
            resolution=triple.resolution, config=proxy, params=params, flops=flops,
            flops_ratio=ratio, nominal_ratio=triple.nominal_ratio,
            aliases=tuple(m[0].key for m in members[1:]), full_resolution=full.resolution,
            proxy_flops=proxy_flops, proxy_flops_ratio=proxy_flops / base_proxy_flops,
            activations=full_complexity.activations, **extra,
        )
        kept_ratio = ratio if cost is None else candidate.cost_ratio
        if rtol is not None and abs(kept_ratio / spec.target - 1) > rtol:
            what = "" if cost is None else f" in {cost.name}"
            skipped.append(Skipped(candidate.key, f"measures ×{kept_ratio:.3f}{what} at full "
                                   f"size, outside ×{spec.target:g} ± {rtol:.0%}", ratio,
                                   candidate.proxy_flops_ratio,
                                   None if cost is None else candidate.cost_ratio,
                                   candidate.cost_note))
        else:
            candidates.append(candidate)
        if progress is not None:
            progress(done, len(groups))
    if len(candidates) == 1:
        window = f" ± {rtol:.0%}" if rtol is not None else ""
        what = "" if cost is None else f" in {cost.name}"
        raise EffscaleError(
            f"no candidate measures ×{spec.target:g}{window}{what} at full size "
            f"({len(skipped)} left out); widen --flops-tolerance or use --beta solve")
    return candidates, skipped
