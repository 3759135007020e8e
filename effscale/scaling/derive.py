"""From coefficients (alpha, beta, gamma) and phi to a scaled config; the published B0-B7 table."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from effscale import __version__, atomic
from effscale.errors import EffscaleError
from effscale.model.bases import get_base
from effscale.model.config import (
    Head,
    ModelConfig,
    Provenance,
    ScalingRules,
    read_yaml_file,
    save_config,
)
from effscale.model.cost import COSTS, Meter
from effscale.scaling.compound import (
    check_coefficients,
    compound_multipliers,
    flops_factor,
    scale_config,
)
from effscale.scaling.equal_flops import AgainstBase, FlopsMeter, solve, solve_direction

PAPER_COEFFICIENTS = (1.2, 1.1, 1.15)
MATCH_TOLERANCE = 0.03  # --match-flops: a matched B_phi within 3 % of 2**phi x B0
# --match COST: each cost's own tolerance (5 % for the timed ones: see effscale.model.cost)
# --match: how far the width may leave the direction (either way) to close a rounding gap
MAX_WIDTH_TRIM = 1.25
DRIFT_TOLERANCE = 0.10  # warn when measured B1/B0 is more than 10 % from 2
MATCHED_SOURCE = "derive-matched"  # provenance.source prefix; the solved s follows

# EfficientNet's published table: (width, depth, resolution, dropout).
OFFICIAL_TABLE: dict[int, tuple[float, float, int, float]] = {
    0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3),
    3: (1.2, 1.4, 300, 0.3), 4: (1.4, 1.8, 380, 0.4), 5: (1.6, 2.2, 456, 0.4),
    6: (1.8, 2.6, 528, 0.5), 7: (2.0, 3.1, 600, 0.5),
}


@dataclass(frozen=True)
class Coefficients:
    """Compound-scaling coefficients: depth ``alpha``, width ``beta``, resolution ``gamma``."""

    alpha: float
    beta: float
    gamma: float
    base: str | None = None
    source: str = "paper"
    checked_phi: tuple[float, ...] | None = None  # where the answer was checked (see reach)

    @property
    def flops_factor(self) -> float:
        return flops_factor(self.alpha, self.beta, self.gamma)

    def drift_warning(self) -> str | None:
        """A warning when alpha*beta^2*gamma^2 is more than 10 % away from 2."""
        factor = self.flops_factor
        if abs(factor - 2.0) > 0.2:
            return (f"alpha*beta^2*gamma^2 = {factor:.3f} is more than 10 % from 2: "
                    f"FLOPs will grow by about {factor:.2f}^phi, not 2^phi")
        return None


def load_coefficients(path: str | Path) -> Coefficients:
    """Read ``alpha``, ``beta``, ``gamma`` (and ``base`` if present) from a YAML file,
    such as the ``coefficients.yaml`` a search writes."""
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise EffscaleError(f"{path}: expected a mapping with alpha, beta and gamma")
    values = []
    for key in ("alpha", "beta", "gamma"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EffscaleError(f"{path}: {key} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 1:
            raise EffscaleError(f"{path}: {key} must be a finite number >= 1, got {value}")
        values.append(float(value))
    base = data.get("base")
    return Coefficients(*values, base=base if isinstance(base, str) else None, source=str(path),
                        checked_phi=_checked(data.get(CHECKED_KEY), path))


# --------------------------------------------------------------------------- reach
# How far an answer was checked: a search checks its coefficients at its own phi (1, or the
# negative phi of a shrinking search) and writes ``checked_phi: [1.0]`` in coefficients.yaml;
# a scaling curve over the file (``effscale compare --coefficients FILE --phi 1,2,3``) adds
# the phi where the file's direction was trained. ``derive`` warns beyond that range.

CHECKED_KEY = "checked_phi"


def _checked(value: object, path: str | Path) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise EffscaleError(f"{path}: {CHECKED_KEY} must be a list of numbers, got {value!r}")
    return tuple(sorted(float(v) for v in value))


def checked_range(checked: tuple[float, ...]) -> tuple[float, float]:
    """The phi an answer checked at ``checked`` covers: from the base (phi 0) to the
    farthest checked phi on each side."""
    return min(0.0, *checked), max(0.0, *checked)


def reach_warning(coefficients: Coefficients, phis: list[float]) -> str | None:
    """One line when some of ``phis`` lie beyond the range the coefficients were checked in
    (``None`` when they do not, or when the file does not say)."""
    checked = coefficients.checked_phi
    if not checked:
        return None
    low, high = checked_range(checked)
    beyond = [p for p in phis if not low - 1e-9 <= p <= high + 1e-9]
    if not beyond:
        return None
    at = ", ".join(phi_label(p) for p in checked)
    return (f"{coefficients.source} was checked at φ = {at} only; φ = "
            f"{', '.join(phi_label(p) for p in beyond)} is beyond that, an extrapolation "
            f"(check it: effscale compare --coefficients {coefficients.source} --phi "
            f"{','.join(phi_label(p) for p in sorted({*checked, *beyond}))})")


REACH_KEY = "reach"  # the sentence beside checked_phi that says it in words


def reach_text(checked: tuple[float, ...] | list[float]) -> str:
    """``checked_phi`` in words, with the command that checks one step further."""
    low, high = checked_range(tuple(checked))
    nxt = high + 1 if high > 0 else low - 1
    at = ", ".join(phi_label(p) for p in sorted(checked))
    if len(checked) == 1:
        return (f"checked at φ = {at} only (a search): derive extrapolates beyond it; "
                f"`effscale compare --coefficients coefficients.yaml --phi {at},"
                f"{phi_label(nxt)}` checks further and records it here")
    return (f"checked at φ = {at} (a search, then scaling curves): derive extrapolates "
            f"beyond φ = {phi_label(high if high > 0 else low)}; `effscale compare "
            f"--coefficients coefficients.yaml --phi {phi_label(nxt)}` checks further")


def record_checked_phi(path: str | Path, phis: list[float]) -> tuple[float, ...]:
    """Add ``phis`` to the file's ``checked_phi`` and rewrite its ``reach`` sentence to match
    (atomically; every other line is kept as written); return the new list."""
    path = Path(path)
    text = path.read_text()
    old = load_coefficients(path).checked_phi or ()
    merged = tuple(sorted({*old, *(float(p) for p in phis)}))
    kept = text
    for key in (CHECKED_KEY, REACH_KEY):  # a top-level key and its continuation lines
        kept = re.sub(rf"(?m)^{key}:.*\n(?:[ \t-].*\n)*", "", kept)
    if kept and not kept.endswith("\n"):
        kept += "\n"
    line = f"{CHECKED_KEY}: [{', '.join(repr(p) for p in merged)}]\n"
    reach = yaml.safe_dump({REACH_KEY: reach_text(merged)}, allow_unicode=True, width=1000)
    atomic.write_text(path, kept + line + reach)
    return merged


_NUMBER = r"-?\d+(?:\.\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*(?:(?:-|\.\.|:)\s*({_NUMBER}))?\s*$")


# The compound coefficients effscale builds: at -4, B0 is 128 px with about half its blocks
# (below, stages are down to one block and only width and resolution shrink); at 10 it is
# about 2^10 x B0's FLOPs at 904 px, past EfficientNet-L2's scale, and measuring it with
# fvcore already takes minutes and ~20 GB of memory (phi 12 did not fit in 22 GB).
PHI_MIN, PHI_MAX = -4.0, 10.0
PHI_BOUNDS = (f"{PHI_MIN:g} <= φ <= {PHI_MAX:g} (φ=10, about 2^10 × B0's FLOPs, past "
              "EfficientNet-L2, already takes minutes and ~20 GB to measure)")


def check_phi(phi: float, option: str = "--phi") -> float:
    """``phi`` if effscale builds it, else a usage error (exit 2) saying the bounds."""
    if not math.isfinite(phi) or not PHI_MIN <= phi <= PHI_MAX:
        raise EffscaleError(f"{option} {phi_label(phi)} is out of range: {PHI_BOUNDS}")
    return phi


def parse_phis(text: str) -> list[float]:
    """``"7"`` -> [7]; ``"0-7"`` -> [0..7]; ``"-2-1"`` -> [-2..1]; ``"0.5,1.5"`` -> both.

    A range steps by 1 from its start and includes its end when reached.
    """
    phis: list[float] = []
    for part in str(text).split(","):
        match = _RANGE.match(part)
        if not match:
            raise EffscaleError(f"--phi must be a number, a range like 0-7 or a comma list, "
                                f"got {text!r}")
        start = float(match.group(1))
        end = float(match.group(2)) if match.group(2) is not None else start
        check_phi(start)
        check_phi(end)
        if end < start:
            raise EffscaleError(f"--phi range {part.strip()!r} ends before it starts")
        steps = int(math.floor(end - start + 1e-9))
        phis.extend(start + i for i in range(steps + 1))
    return phis


def phi_label(phi: float) -> str:
    """``7.0`` -> ``"7"``, ``0.5`` -> ``"0.5"``, ``-1.0`` -> ``"-1"``."""
    return f"{phi:g}"


# A base named like EfficientNet's: letters, then the index 0 (b0, or a registered lite0).
_INDEXED_BASE = re.compile(r"([A-Za-z]+)0")


def derived_name(base: str, phi: float) -> str:
    """The name of ``base`` scaled to ``phi``, for any registered base.

    A base named letters-then-0 numbers its family by phi as EfficientNet does: ``b0`` at phi 3
    is ``b3`` (``b0.5``, ``b-1``), a registered ``lite0`` at 2 is ``lite2``. Any other base
    keeps its name at phi 0 and adds ``-phi``: ``resnet50``, ``resnet50-phi2``, ``toy-phi-1``.
    """
    indexed = _INDEXED_BASE.fullmatch(base)
    if indexed:
        return f"{indexed.group(1)}{phi_label(phi)}"
    return base if phi == 0 else f"{base}-phi{phi_label(phi)}"


def derive_config(
    coefficients: Coefficients, phi: float, base: str = "b0", num_classes: int = 1000,
    rules: ScalingRules | None = None, head: Head | None = None,
) -> ModelConfig:
    """The base scaled by ``alpha**phi``, ``beta**phi``, ``gamma**phi`` under ``rules``,
    with ``head`` (see :func:`with_head`) when one is given."""
    check_coefficients(coefficients.alpha, coefficients.beta, coefficients.gamma)
    if not math.isfinite(phi):
        raise EffscaleError(f"--phi must be a finite number, got {phi}")
    rules = rules or ScalingRules()
    base_config = get_base(base, num_classes)
    depth, width, resolution = compound_multipliers(
        coefficients.alpha, coefficients.beta, coefficients.gamma, phi
    )
    provenance = Provenance(
        base=base, depth_multiplier=round(depth, 6), width_multiplier=round(width, 6),
        resolution_multiplier=round(resolution, 6), rules=rules, tool_version=__version__,
        phi=phi, alpha=coefficients.alpha, beta=coefficients.beta, gamma=coefficients.gamma,
        source="derive",
    )
    config = scale_config(base_config, depth=depth, width=width, resolution=resolution,
                          rules=rules, name=derived_name(base, phi), provenance=provenance)
    return config if head is None else with_head(config, head)


def derive_family(coefficients: Coefficients, phis: Iterable[float], base: str = "b0",
                  num_classes: int = 1000, rules: ScalingRules | None = None,
                  head: Head | None = None) -> list[ModelConfig]:
    """:func:`derive_config` at each phi: the family ``effscale derive`` and a search's
    configs/ both write (through :func:`write_family`)."""
    return [derive_config(coefficients, float(phi), base, num_classes, rules, head)
            for phi in phis]


def _save_family(configs: Iterable[ModelConfig], folder: Path, header: str = "") -> None:
    """Each config as ``folder/<name>.yaml``, written atomically, ``header`` lines first."""
    for config in configs:
        save_config(config, folder / f"{config.name}.yaml", header)


def write_family(folder: Path, configs: Iterable[ModelConfig],
                 matched: Iterable[ModelConfig] = (), header: str = "",
                 matched_header: str | None = None) -> None:
    """The one writer of a family, for ``effscale derive`` and a search's configs/ alike:
    ``folder/<name>.yaml`` for each config and ``folder/matched/<name>.yaml`` for each
    FLOPs-matched one, every file written atomically with ``header`` (in matched/,
    ``matched_header``, default the same) as its first comment lines."""
    _save_family(configs, folder, header)
    matched = list(matched)
    if matched:
        _save_family(matched, folder / "matched",
                     header if matched_header is None else matched_header)


def with_head(config: ModelConfig, head: Head) -> ModelConfig:
    """``config`` with another head. A UNet's name gains ``-unet`` (``b4-unet``), so its file
    sits beside the classifier's instead of replacing it. Decoder widths are not scaled."""
    if head == config.head:
        return config
    name = f"{config.name}-unet" if head.type == "unet" else config.name.removesuffix("-unet")
    return config.replace(head=head, name=name)


def official_config(index: int, num_classes: int = 1000) -> ModelConfig:
    """EfficientNet-B``index`` from the published table (not from the coefficients)."""
    if index not in OFFICIAL_TABLE:
        raise EffscaleError(f"the official table has B0-B7, not B{index}")
    width, depth, resolution, dropout = OFFICIAL_TABLE[index]
    rules = ScalingRules()
    provenance = Provenance(
        base="b0", depth_multiplier=depth, width_multiplier=width,
        resolution_multiplier=round(resolution / 224, 6), rules=rules,
        tool_version=__version__, phi=float(index), source="official-table",
    )
    config = scale_config(get_base("b0", num_classes), depth=depth, width=width,
                          resolution_px=resolution, rules=rules, name=f"b{index}",
                          provenance=provenance)
    return config.replace(dropout=dropout)



# --------------------------------------------------------------------------- matched FLOPs


@dataclass(frozen=True)
class Matched(AgainstBase):
    """B_phi solved along the coefficients to ``2**phi`` times B0's measured FLOPs, or B0's
    ``cost`` (see :class:`~effscale.scaling.equal_flops.AgainstBase`)."""

    phi: float
    s: float  # the "effective phi": depth alpha**s, width beta**s, resolution gamma**s
    config: ModelConfig
    tolerance: float = MATCH_TOLERANCE
    # 1 on the direction; else the factor on beta**s that brought B_phi into the window when
    # no config along the direction was (see :func:`trim_width`)
    width_trim: float = 1.0

    @property
    def target(self) -> float:
        return 2.0 ** self.phi

    @property
    def error(self) -> float:
        """Measured cost ratio over ``2**phi``, minus 1 (0.03 = 3 % above)."""
        return self.cost_ratio / self.target - 1

    @property
    def within_tolerance(self) -> bool:
        return abs(self.error) <= self.tolerance


def matched_source(s: float) -> str:
    """The provenance ``source`` of a matched config: ``derive-matched s=1.073412``."""
    return f"{MATCHED_SOURCE} s={s:.6f}"


def load_config_matched_s(config: ModelConfig) -> float | None:
    """The solved s of a matched config (from its provenance), or ``None``."""
    return matched_s(config.provenance)


def matched_s(provenance: Provenance | None) -> float | None:
    """The solved s recorded by :func:`matched_source`, or ``None`` for other configs."""
    if provenance is None or not provenance.source.startswith(MATCHED_SOURCE + " s="):
        return None
    return float(provenance.source.removeprefix(MATCHED_SOURCE + " s=").split()[0])


def match_flops(
    coefficients: Coefficients, phi: float, base: str = "b0", num_classes: int = 1000,
    rules: ScalingRules | None = None, counter: str = "fvcore", head: Head | None = None,
    measure: FlopsMeter | None = None, cost: Meter | None = None,
) -> Matched:
    """B_phi along the coefficients with ``s`` solved so that its MEASURED FLOPs (conv+linear,
    at full size: the base at its own resolution, b0 at 224 px) are closest to ``2**phi``
    times the base's. Rounding may leave no config within :data:`MATCH_TOLERANCE`; the
    achieved figure is in the result (``cost_ratio``, ``error``), never adjusted.

    ``measure`` shares measurements between calls (a
    :class:`~effscale.scaling.equal_flops.FlopsMeter` with ``conv_linear=True``);
    ``count_flops`` caches on disk either way. With ``cost`` (a
    :class:`~effscale.model.cost.Meter`, e.g. latency on this device) B_phi is matched to
    ``2**phi`` times the base's cost instead, within that cost's tolerance.
    """
    check_coefficients(coefficients.alpha, coefficients.beta, coefficients.gamma)
    if not math.isfinite(phi):
        raise EffscaleError(f"--phi must be a finite number, got {phi}")
    rules = rules or ScalingRules()
    measure = measure or FlopsMeter(counter, conv_linear=True)
    base_config = get_base(base, num_classes)
    attach = (lambda c: c) if head is None else (lambda c: with_head(c, head))
    if cost is not None and cost.name == "flops":
        cost = None  # FLOPs through ``measure``, exactly as without a cost
    base_value = measure(attach(base_config)).flops if cost is None else \
        cost(attach(base_config))
    target = 2.0 ** phi * base_value if phi else None  # phi 0: the base itself
    coeffs = (coefficients.alpha, coefficients.beta, coefficients.gamma)
    solved = solve_direction(base_config, coeffs, target, rules, measure,
                             name=derived_name(base, phi), build=attach, cost=cost)
    s = solved.multiplier
    provenance = Provenance(
        base=base, depth_multiplier=round(solved.depth, 6),
        width_multiplier=round(solved.width, 6), resolution_multiplier=round(solved.resolution, 6),
        rules=rules, tool_version=__version__, phi=phi, alpha=coefficients.alpha,
        beta=coefficients.beta, gamma=coefficients.gamma, source=matched_source(s),
    )
    config = solved.config.replace(provenance=provenance)
    if cost is None:
        matched = Matched(phi, s, config, complexity=solved.complexity,
                          base_flops=solved.base_flops)
        if target is not None and not matched.within_tolerance:
            trimmed = trim_width(matched, solved.depth, solved.width, target, base_config,
                                 rules, measure, attach)
            if trimmed is not None:
                return trimmed
        return matched
    return Matched(phi, s, config, match_tolerance(cost.name), complexity=solved.complexity,
                   base_flops=solved.base_flops, cost=cost.name, cost_value=solved.cost_value,
                   base_cost=solved.base_cost)


def trim_width(matched: Matched, depth: float, width: float, target: float, base: ModelConfig,
               rules: ScalingRules, measure: FlopsMeter,
               attach: Callable[[ModelConfig], ModelConfig]) -> Matched | None:
    """When rounding leaves no config along the direction within the window (an input size
    step of 8 px near 160 px moves FLOPs by 20 %: the last feature maps go from 5x5 to 6x6),
    keep B_phi's depth and input size and solve the width alone, whose rounding steps are
    finer, to the target; at the next input size towards the target too when that is not
    enough. Returns the config within the window whose width moved least, by at most
    :data:`MAX_WIDTH_TRIM` either way (``None`` when none is: the miss is then reported as
    is), its provenance saying how far (``width_trim``)."""
    config = matched.config
    assert config.provenance is not None
    step = rules.resolution_multiple
    towards = -step if matched.error > 0 else step
    best: Matched | None = None
    for px in (config.resolution, config.resolution + towards):
        if px < max(step, 8):
            continue
        # ``depth`` unrounded: the provenance's 6-decimal figure can fall on the other side
        # of a ceil and change the block count

        def build(t: float, px: int = px) -> ModelConfig:
            return attach(scale_config(base, depth=depth, width=width * t, resolution_px=px,
                                       rules=rules, name=config.name))

        try:
            t, trimmed = solve(build, target, measure)
        except EffscaleError:  # no width reaches the target at this input size
            continue
        candidate = Matched(matched.phi, matched.s, trimmed.replace(provenance=replace(
            config.provenance, width_multiplier=round(width * t, 6),
            resolution_multiplier=round(px / base.resolution, 6),
            source=f"{matched_source(matched.s)} width-trim={t:.6f}")),
            complexity=measure(trimmed), base_flops=matched.base_flops, width_trim=t)
        if candidate.within_tolerance and abs(math.log(t)) <= math.log(MAX_WIDTH_TRIM) and (
                best is None or abs(math.log(t)) < abs(math.log(best.width_trim))):
            best = candidate
    return best


def match_tolerance(cost: str) -> float:
    """How close ``derive --match`` brings B_phi to its target on ``cost``."""
    return COSTS[cost].match_tolerance if cost in COSTS else MATCH_TOLERANCE


def match_cost(
    coefficients: Coefficients, phi: float, cost: Meter, base: str = "b0",
    num_classes: int = 1000, rules: ScalingRules | None = None, head: Head | None = None,
    measure: FlopsMeter | None = None, counter: str = "fvcore",
) -> Matched:
    """B_phi along the coefficients matched to ``2**phi`` times the base's ``cost`` (see
    :func:`match_flops`; FLOPs are measured beside it)."""
    return match_flops(coefficients, phi, base, num_classes, rules, counter, head, measure, cost)


def matched_config(
    coefficients: Coefficients, phi: float, base: str = "b0", num_classes: int = 1000,
    rules: ScalingRules | None = None, counter: str = "fvcore",
) -> tuple[ModelConfig, float, float]:
    """``(config, s, ratio)``: B_phi matched to ``2**phi`` x B0's measured full-size FLOPs
    (see :func:`match_flops`); ``ratio`` is the achieved measured ratio, which may be off by
    more than 3 % when rounding allows nothing closer."""
    matched = match_flops(coefficients, phi, base, num_classes, rules, counter)
    return matched.config, matched.s, matched.cost_ratio


def measured_drift_warning(b1_over_b0: float) -> str | None:
    """A warning when the measured B1/B0 FLOPs ratio is more than 10 % away from 2."""
    if abs(b1_over_b0 / 2.0 - 1) > DRIFT_TOLERANCE:
        return (f"measured FLOPs of B1 are {b1_over_b0:.2f}x B0's (full size), more than 10 % "
                f"from 2: rounding makes the family grow by about {b1_over_b0:.2f}^phi, not "
                "2^phi; --match-flops solves each B_phi to 2^phi x B0")
    return None
