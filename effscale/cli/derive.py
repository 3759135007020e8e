"""``effscale derive``: configs for any phi from coefficients, with their measured FLOPs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from effscale.cli import options as opt
from effscale.cli import render
from effscale.errors import EffscaleError
from effscale.model.config import (
    DEPTH_ROUNDING,
    HEAD_TYPES,
    UPSAMPLING,
    Head,
    ModelConfig,
    ScalingRules,
)
from effscale.model.cost import TRAIN_BATCH, CostMeter, run_cost_options
from effscale.model.flops import count_flops
from effscale.scaling.compound import check_coefficients
from effscale.scaling.derive import (
    PAPER_COEFFICIENTS,
    Coefficients,
    Matched,
    derive_config,
    derive_family,
    load_coefficients,
    measured_drift_warning,
    official_config,
    parse_phis,
    phi_label,
    reach_warning,
    with_head,
    write_family,
)
from effscale.scaling.derive import match_flops as match_flops_along
from effscale.scaling.equal_flops import FlopsMeter

DepthRounding = opt.choices("DepthRounding", DEPTH_ROUNDING)
HeadType = opt.choices("HeadType", HEAD_TYPES)
Upsampling = opt.choices("Upsampling", UPSAMPLING)


def register(app: typer.Typer) -> None:
    app.command(help=derive.__doc__)(derive)


def _rules(depth_rounding: DepthRounding, resolution_multiple: int, width_divisor: int,
           fixed_stem_head: bool) -> ScalingRules:
    return ScalingRules(width_divisor=width_divisor, depth_rounding=depth_rounding.value,
                        resolution_multiple=resolution_multiple,
                        scale_stem_head=not fixed_stem_head)


def _coefficients(path: Path | None, alpha: float | None, beta: float | None,
                  gamma: float | None) -> Coefficients:
    given = [v is not None for v in (alpha, beta, gamma)]
    if path is not None and any(given):
        raise EffscaleError("give either --coefficients or --alpha/--beta/--gamma, not both")
    if path is not None:
        return load_coefficients(path)
    if any(given) and not all(given):
        raise EffscaleError("--alpha, --beta and --gamma go together: give all three")
    if all(given):
        check_coefficients(alpha, beta, gamma)  # type: ignore[arg-type]
        return Coefficients(alpha, beta, gamma, source="command line")  # type: ignore[arg-type]
    return Coefficients(*PAPER_COEFFICIENTS, source="paper (Tan & Le 2019)")


def _head(head: HeadType, decoder_channels: str | None,
          upsampling: Upsampling | None) -> Head | None:
    """The head ``derive`` attaches, or ``None`` to keep the base's classifier."""
    if head is HeadType.classifier:
        if decoder_channels is not None or upsampling is not None:
            raise EffscaleError("--decoder-channels and --upsampling need --head unet")
        return None
    widths = Head().decoder_channels
    if decoder_channels is not None:
        try:
            widths = tuple(int(w) for w in decoder_channels.split(","))
        except ValueError:
            widths = ()
        if not widths or min(widths) < 1:
            raise EffscaleError("--decoder-channels must be a comma list of positive ints, "
                                f"got {decoder_channels!r}")
    return Head(type="unet", decoder_channels=widths,
                upsampling=(upsampling or Upsampling.nearest).value)


def derive(
    phi: opt.Phis = "0-7",
    base: opt.BaseFromCoefficients = None,
    coefficients: opt.CoefficientsFile = None,
    alpha: Annotated[float | None, typer.Option(help="Depth coefficient (>= 1).")] = None,
    beta: opt.BetaCoefficient = None,
    gamma: Annotated[float | None, typer.Option(help="Resolution coefficient (>= 1).")] = None,
    out: opt.ConfigDirOut = opt.DERIVE_OUT,
    num_classes: opt.ClassifierClasses = 1000,
    official: Annotated[bool, typer.Option(
        help="Write EfficientNet's published B0-B7 table instead of applying coefficients "
             "(integer phi 0-7 only).")] = False,
    depth_rounding: Annotated[DepthRounding, typer.Option(
        help="ceil (official EfficientNet) or round (pycls).")] = DepthRounding.ceil,
    resolution_multiple: Annotated[int, typer.Option(
        min=1, help="Round the input size to a multiple of this.")] = 8,
    width_divisor: Annotated[int, typer.Option(
        min=1, help="Round channels to a multiple of this (never below 90 %).")] = 8,
    fixed_stem_head: Annotated[bool, typer.Option(
        help="Keep stem and head channels at the base's widths.")] = False,
    counter: opt.CounterOpt = opt.Counter.fvcore,
    head: Annotated[HeadType, typer.Option(
        help="classifier, or unet: a segmentation model with the scaled backbone as encoder, "
             "written as b{phi}-unet.yaml (--num-classes is then the number of "
             "segmentation classes).")] = HeadType.classifier,
    decoder_channels: Annotated[str | None, typer.Option(
        help="UNet decoder widths, deepest first (default 256,128,64,32,16).")] = None,
    upsampling: Annotated[Upsampling | None, typer.Option(
        help="UNet upsampling: nearest (default) or bilinear.")] = None,
    match_flops: Annotated[bool, typer.Option(
        "--match-flops",
        help="Also write a matched family to OUT/matched/: for each phi, depth alpha^s, width "
             "beta^s, resolution gamma^s with s (the 'effective phi', recorded in the "
             "config's provenance.source) solved so that B_phi's measured full-size FLOPs "
             "are 2^phi x B0's (within 3 %, or a warning with the closest figure rounding "
             "allows).")] = False,
    match: Annotated[opt.Cost | None, typer.Option(
        help="Also write a matched family to OUT/matched/, solved (as --match-flops) so that "
             "each B_phi's measured cost is 2^phi x B0's: within 3 % for flops, params and "
             "activations, 5 % for latency and train-step (measured on this device). "
             "--match flops is --match-flops.")] = None,
    cost: opt.CostOpt = opt.Cost.flops,
    cost_batch: opt.CostBatch = None,
    runtime: opt.RuntimeOpt = opt.Runtime.torch,
    device: opt.DeviceOpt = opt.Device.auto,
    threads: opt.DemoThreads = None,
    as_json: opt.AsJson = False,
) -> None:
    """Write the config for each phi: depth alpha^phi, width beta^phi, resolution gamma^phi.

    Coefficients come from --coefficients, from --alpha/--beta/--gamma, or default to the
    paper's (1.2, 1.1, 1.15). The table shows measured FLOPs (conv+linear, at each config's
    full size) against 2^phi, so you can see where rounding drifts from the formula; a
    warning says so when the measured B1/B0 ratio is more than 10 % from 2 (the paper's
    coefficients: 1.92 nominal, 2.23 measured). --match-flops adds the family solved to
    2^phi x B0's measured FLOPs, --match COST to 2^phi x B0's COST (e.g. latency on this
    device); --cost COST (or --match's) adds that cost and its ratio to phi 0 to the table;
    --json prints the coefficients, base, counter and rows as one object.
    """

    phis = parse_phis(phi)
    rules = _rules(depth_rounding, resolution_multiple, width_divisor, fixed_stem_head)
    coeffs = _coefficients(coefficients, alpha, beta, gamma)
    base_name = base or coeffs.base or "b0"
    head_config = _head(head, decoder_channels, upsampling)
    if match_flops and match is not None and match.value != "flops":
        raise EffscaleError(f"--match-flops and --match {match.value} ask for two matched "
                            "families: give one")
    matching = "flops" if match_flops else (match.value if match is not None else None)
    if matching and cost.value not in ("flops", matching):
        raise EffscaleError(f"--cost {cost.value} and --match {matching} name two costs: "
                            "the table shows the cost the family is matched on")
    shown = matching or cost.value
    match_flops = matching is not None
    if official and match_flops:
        raise EffscaleError("--match-flops solves along coefficients; it does not apply to "
                            "--official")
    runtime_name = opt.runtime_for(shown, runtime)  # latency's, and its extra is installed
    _precheck_out(out)  # before minutes of measuring, and before any warning
    # count_flops is looked up here at call time, so tests can replace derive.count_flops.
    # A spinner on a terminal while FLOPs are counted (B7 at 600 px takes tens of seconds).
    status = render.err.status("measuring FLOPs at full size", spinner="dots")

    def counted(config: ModelConfig, px: int, counter_name: str) -> Any:
        status.update(f"measuring FLOPs at full size ({counter_name}): a model at {px} px")
        return count_flops(config, px, counter_name)

    measure = FlopsMeter(counter.value, conv_linear=True, count=counted)
    with status:
        family = _measure_family(
            official, phis, num_classes, coeffs, base_name, rules, head_config, measure,
            shown, cost_batch, device.value, threads, runtime_name, match_flops,
            counter.value)
    rows, matched, costs, meter, ref_flops = (family.rows, family.matched, family.costs,
                                              family.meter, family.ref_flops)
    _check_writable(out)
    if matched:
        _check_writable(out / "matched")
    write_family(out, [config for _, config, _ in rows], [m.config for m in matched])
    if as_json:
        doc = _derive_json(coeffs, official, rows, matched, ref_flops, base_name,
                           counter.value)
        if meter is not None:
            _add_costs_json(doc, meter, costs, ref_flops)
        render.print_json(doc)
    else:
        render.out.print(_derive_table(coeffs, official, rows, ref_flops, base_name, matched,
                                       costs))
    # The files written: part of the result (stdout), a message beside --json's document.
    console = render.err if as_json else render.out
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    say(f"wrote {len(rows)} config(s) to {out}/")
    if matched:
        say(f"wrote {len(matched)} matched config(s) to {out / 'matched'}/")


@dataclass
class _Family:
    """What ``derive`` measured: each phi's (phi, config, complexity), the matched family
    when asked, the other cost shown beside FLOPs (and its meter), and phi 0's FLOPs."""

    rows: list[tuple[float, ModelConfig, Any]]
    matched: list[Matched]
    costs: Any
    meter: CostMeter | None
    ref_flops: float


def _measure_family(official: bool, phis: list[float], num_classes: int, coeffs: Coefficients,
                    base_name: str, rules: ScalingRules, head_config: Head | None,
                    measure: FlopsMeter, shown: str, cost_batch: int | None, device: str,
                    threads: int | None, runtime_name: str, match_flops: bool, counter: str
                    ) -> _Family:
    """The configs ``derive`` writes, measured (the minutes of the command)."""
    meter = None if shown == "flops" else CostMeter(shown, run_cost_options(
        shown, cost_batch, TRAIN_BATCH, device, threads, runtime_name))
    if official:
        configs = [official_config(_official_index(p), num_classes) for p in phis]
        reference = official_config(0, num_classes)
    else:
        if warning := coeffs.drift_warning():
            render.err.print(f"warning: {warning}", markup=False)
        if warning := reach_warning(coeffs, phis):
            render.err.print(f"warning: {warning}", markup=False, highlight=False)
        configs = derive_family(coeffs, phis, base_name, num_classes, rules)
        reference = derive_config(coeffs, 0.0, base_name, num_classes, rules)
    if head_config:
        configs = [with_head(c, head_config) for c in configs]
        reference = with_head(reference, head_config)
    ref_flops = measure(reference).flops
    if not official:
        b1 = derive_config(coeffs, 1.0, base_name, num_classes, rules, head_config)
        if warning := measured_drift_warning(measure(b1).flops / ref_flops):
            render.err.print(f"warning: {warning}", markup=False)
    rows = [(p, c, measure(c)) for p, c in zip(phis, configs)]
    matched: list[Matched] = []
    if match_flops:
        matched = [match_flops_along(coeffs, p, base_name, num_classes, rules, counter,
                                     head_config, measure, meter) for p in phis]
        what = "FLOPs" if shown == "flops" else shown
        noise = " or noise" if meter is not None and meter.kind.timed else ""
        for m in matched:
            if m.width_trim != 1.0:
                render.err.print(
                    f"note: {m.config.name}: no config along these coefficients lies within "
                    f"{m.tolerance * 100:g} % of 2^{phi_label(m.phi)} = {m.target:g}x B0's "
                    f"{what} (rounding); its width was re-solved at {m.config.resolution} px: "
                    f"x{m.width_trim:.3f} off the direction, {m.cost_ratio:.3f}x "
                    f"({m.error:+.1%})", markup=False)
            if not m.within_tolerance:
                render.err.print(
                    f"warning: {m.config.name}: no config along these coefficients lies within "
                    f"{m.tolerance * 100:g} % of 2^{phi_label(m.phi)} = {m.target:g}x B0's "
                    f"{what} because of rounding{noise}; the closest (s = {m.s:.4f}) measures "
                    f"{m.cost_ratio:.3f}x ({m.error:+.1%})", markup=False)
    costs = _shown_costs(meter, reference, [c for _, c, _ in rows], matched)
    return _Family(rows, matched, costs, meter, ref_flops)


def _official_index(phi: float) -> int:
    if phi != int(phi) or not 0 <= phi <= 7:
        raise EffscaleError(f"--official covers phi 0-7 in whole steps, got {phi_label(phi)}")
    return int(phi)


def _precheck_out(out: Path) -> None:
    """Refuse an unusable --out without creating anything: a file in the way, or no write
    permission where the directory is or would be created."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == out and not out.is_dir():
        raise EffscaleError(f"{out}: cannot create output directory (File exists)")
    if existing != out and not existing.is_dir():
        raise EffscaleError(f"{out}: cannot create output directory ({existing} is a file)")
    if not os.access(existing, os.W_OK):
        raise EffscaleError(f"{out}: output directory is not writable", exit_code=1)


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EffscaleError(f"{out}: cannot create output directory ({exc.strerror})") from None
    if not out.is_dir():
        raise EffscaleError(f"{out}: not a directory")
    if not os.access(out, os.W_OK):
        raise EffscaleError(f"{out}: output directory is not writable", exit_code=1)


def _shown_costs(meter: CostMeter | None, reference: ModelConfig, configs: list[ModelConfig],
                 matched: list[Matched]) -> dict[str, Any] | None:
    """The shown cost's name, unit, phi-0 value and each row's value (plain rows by config
    name, matched rows by ``matched/NAME``); ``None`` for FLOPs (the table's own columns)."""
    if meter is None:
        return None
    values = {c.name: meter(c) for c in configs}
    values.update({f"matched/{m.config.name}": m.cost_value for m in matched})
    notes = list(dict.fromkeys(meter.notes()))
    for note in notes:
        render.err.print(f"warning: {meter.name}: {note}", markup=False)
    runtime = meter.options.runtime if meter.name == "latency" else "torch"
    return {"name": meter.name + ("" if runtime == "torch" else f" ({runtime})"),
            "unit": meter.unit, "batch": meter.batch,
            "reference": meter(reference), "values": values, "notes": notes}


def _cost_text(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.2f} ms"
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value:,.0f}"


def _add_costs_json(doc: dict[str, Any], meter: CostMeter, costs: dict[str, Any] | None,
                    ref_flops: int) -> None:
    """``derive --json`` with --cost/--match: the cost's value and ratio to phi 0 per row (a
    matched row's ``ratio`` is then its cost's, and ``flops_ratio`` its FLOPs')."""
    if costs is None:
        return
    doc["cost"] = {"name": meter.name, "unit": meter.unit, "batch": meter.batch,
                   "runtime": meter.options.runtime if meter.name == "latency" else "torch",
                   "phi0": costs["reference"], "device": next(
                       (m.device for m in meter.results.values() if m.device), None),
                   "notes": costs["notes"]}
    for row in doc["rows"]:
        value = costs["values"][row["name"]]
        row.update(cost=value, cost_ratio=round(value / costs["reference"], 6))
    for row in doc.get("matched", []):
        value = costs["values"][f"matched/{row['name']}"]
        row.update(cost=value, cost_ratio=round(value / costs["reference"], 6),
                   flops_ratio=round(row["flops"] / ref_flops, 6))


def _derive_table(coeffs: Coefficients, official: bool, rows: list, ref_flops: int,
                  base: str, matched: list[Matched] | None = None,
                  costs: dict[str, Any] | None = None) -> Table:
    if official:
        title = "EfficientNet's published table (b0 base)"
    else:
        title = (f"{base} scaled by alpha={coeffs.alpha:g}, beta={coeffs.beta:g}, "
                 f"gamma={coeffs.gamma:g} (alpha*beta^2*gamma^2 = {coeffs.flops_factor:.3f}; "
                 f"{coeffs.source})")
    what = costs["name"] if costs else "FLOPs"
    if matched:
        title += (f"; plain: s = phi, matched: s solved so {what} = 2^phi x phi 0's "
                  "(measured at full size)")
    shown = [what, f"{what} ÷ φ0"] if costs else []
    columns = ["config", *(["family", "s"] if matched else []), "phi", "depth", "width",
               "res ×", "res px", "params", "FLOPs (conv+fc)", "FLOPs ÷ φ0", *shown, "2^φ"]
    table = render.data_table(title, columns, text={"config", "family"})
    by_phi = {m.phi: m for m in matched or []}
    for phi_value, config, report in rows:
        prov = config.provenance
        cells = [f"{prov.depth_multiplier:.3f}", f"{prov.width_multiplier:.3f}",
                 f"{prov.resolution_multiplier:.3f}", str(config.resolution),
                 f"{report.params:,}", render.giga(report.flops_conv_linear),
                 f"{report.flops_conv_linear / ref_flops:.2f}",
                 *_cost_cells(costs, config.name), f"{2 ** phi_value:.2f}"]
        if not matched:
            table.add_row(config.name, phi_label(phi_value), *cells)
            continue
        table.add_row(config.name, "plain", phi_label(phi_value), phi_label(phi_value), *cells)
        m = by_phi[phi_value]
        mprov = m.config.provenance
        ratio = f"{m.cost_ratio:.2f}" + ("" if m.within_tolerance else f" ({m.error:+.1%}!)")
        flops_ratio = f"{m.flops_ratio:.2f}" if costs else ratio
        cost_cells = _cost_cells(costs, f"matched/{m.config.name}")
        if costs:
            cost_cells[-1] = ratio
        table.add_row(
            f"matched/{m.config.name}", "matched", f"{m.s:.3f}", phi_label(phi_value),
            f"{mprov.depth_multiplier:.3f}", f"{mprov.width_multiplier:.3f}",
            f"{mprov.resolution_multiplier:.3f}", str(m.config.resolution),
            f"{m.complexity.params:,}", render.giga(m.complexity.flops), flops_ratio,
            *cost_cells, f"{2 ** phi_value:.2f}", end_section=True)
    return table


def _cost_cells(costs: dict[str, Any] | None, key: str) -> list[str]:
    if not costs:
        return []
    value = costs["values"][key]
    return [_cost_text(value, costs["unit"]), f"{value / costs['reference']:.2f}"]


def _derive_json(coeffs: Coefficients, official: bool, rows: list, matched: list[Matched],
                 ref_flops: int, base: str, counter: str) -> dict[str, Any]:
    """``derive --json``: every number of the table, FLOPs as conv+linear multiply-adds."""

    def row(phi_value: float, config: ModelConfig, params: int, flops: int) -> dict[str, Any]:
        prov = config.provenance
        return {"name": config.name, "phi": phi_value, "depth": prov.depth_multiplier,
                "width": prov.width_multiplier, "resolution": prov.resolution_multiplier,
                "px": config.resolution, "params": params, "flops": flops,
                "ratio": round(flops / ref_flops, 6), "nominal": 2 ** phi_value}

    doc: dict[str, Any] = {
        "coefficients": None if official else {
            "alpha": coeffs.alpha, "beta": coeffs.beta, "gamma": coeffs.gamma,
            "flops_factor": round(coeffs.flops_factor, 6), "source": coeffs.source},
        "official": official, "base": base, "counter": counter,
        "flops": "conv+linear multiply-adds at each config's full resolution",
        "rows": [row(p, c, r.params, r.flops_conv_linear) for p, c, r in rows],
    }
    if matched:
        doc["matched"] = [{**row(m.phi, m.config, m.complexity.params, m.complexity.flops),
                           "ratio": round(m.cost_ratio, 6), "s": round(m.s, 6),
                           "error": round(m.error, 6), "width_trim": round(m.width_trim, 6),
                           "within_tolerance": m.within_tolerance} for m in matched]
    return doc
