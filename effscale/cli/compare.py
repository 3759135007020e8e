"""``effscale compare``: flags -> CompareSettings, results -> a rich table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from effscale.cli import options as opt
from effscale.cli import render
from effscale.cli.running import RichEvents, dry_run_line, report_end, run_with_progress
from effscale.compare.run import run_compare
from effscale.compare.settings import PAPER_SET, SINGLE_RULES, CompareSettings, CompoundSet
from effscale.errors import EffscaleError
from effscale.report.html import write_run_report
from effscale.scaling.derive import (
    PAPER_COEFFICIENTS,
    check_phi,
    load_coefficients,
    parse_phis,
    phi_label,
    record_checked_phi,
)
from effscale.scaling.rules import DIMENSIONS, FAST_A


def register(app: typer.Typer) -> None:
    app.command(help=compare.__doc__)(opt.grouped(compare))


def compare(
    *,
    phi: opt.PhiCurve = "1",
    coefficients: opt.CoefficientSets = None,
    paper: Annotated[bool, typer.Option(
        "--paper", help="Add the paper's 1.2/1.1/1.15 as one more compound model, named "
                        "'paper' (the default when no --coefficients is given). With one "
                        "coefficient set in all, its model is named 'compound'.")] = False,
    rules: Annotated[str, typer.Option(
        "--rules", help=f"Single-dimension models, a comma list of {', '.join(SINGLE_RULES)}; "
                        "or none.")] = ",".join(DIMENSIONS),
    fast: Annotated[bool, typer.Option(
        help="Also Dollár et al. 2021 fast scaling (same as adding fast to --rules): "
             "d=s^((1-a)/2), w=s^(a/2), r=s^((1-a)/4).")] = False,
    fast_a: Annotated[float, typer.Option(help="The a of --fast.")] = FAST_A,
    repeats: opt.ModelRepeats = None,
    study: opt.StudyName = "effscale-compare",
    cost: opt.CostOpt = opt.Cost.flops,
    cost_batch: opt.CostBatch = None,
    runtime: opt.RuntimeOpt = opt.Runtime.torch,
    as_json: opt.AsJson = False,
    run: opt.RunOptions,
) -> None:
    """Compound scaling against depth-, width- and resolution-only scaling at equal FLOPs.

    Every model is solved, at FULL size (b0 at 224 px; conv+linear FLOPs), to the same
    target: 2^φ × the base's measured FLOPs (or, with --cost latency and the like, 2^φ × the
    base's cost measured on this device). Compound models scale along their coefficients
    (depth α^s, width β^s, resolution γ^s, s solved); single-dimension models along one
    multiplier; rounding is in place and the achieved ratios are shown. Each model is then
    trained as a proxy: same depth and width, input round(budget resolution × its full-size
    resolution ratio), the base's proxy stem stride; the proxies' own FLOPs ratio is shown
    beside the full-size one. Several seeds, resumable work items; writes compare.csv,
    compare.yaml and compare.png.

    Models: one coefficient set -> 'compound'; several -> each by name ('paper' for
    --paper, NAME or the file's name for --coefficients). Each compound model is compared
    with every other model: a 95 % t interval on the pooled seed degrees of freedom (paired
    bootstrap over validation examples plus pooled seed noise), separated only with >= 2
    seeds on both sides and a Holm-adjusted p < 0.05 (see the method in compare.yaml).
    """
    try:  # one number: bounds checked as every --phi is (nan, -100 say "out of range")
        phis = [check_phi(float(phi))]
    except ValueError:
        phis = parse_phis(phi)
    chosen = run.chosen_budget(repeats=repeats)
    compounds = coefficient_sets(coefficients or [], paper)
    single = parse_rules(rules, fast)
    # Every model's trained weights are kept (RUN/weights/): `effscale cam` draws from them.
    curve = tuple(phis) if len(phis) > 1 else ()
    settings = CompareSettings(**opt.settings_fields(run, chosen), phi=phis[0], phis=curve,
                               compounds=compounds, single=single, fast_a=fast_a, study=study,
                               cost=cost.value, cost_batch=cost_batch,
                               runtime=opt.runtime_for(cost.value, runtime),
                               keep_weights=True)
    events = RichEvents(run.quiet)
    started = time.monotonic()
    outcome = run_with_progress(
        lambda: run_compare(settings, events, run.resume_text(), run.dry_run), events)
    if run.dry_run:
        if as_json:
            render.print_json(plan_document(outcome))
        elif settings.is_curve:
            render.out.print(curve_table(outcome.prepared.models, None))
        else:
            render.out.print(compare_table(outcome.prepared.models, None))
        dry_run_line(outcome)
        return
    if settings.is_curve and outcome.complete:
        record_reach(outcome, compounds)
    try:  # the run's page; a failure is a warning, never the run's
        write_run_report(outcome.run_dir, settings.storage, settings.study)
    except Exception as exc:
        render.err.print(f"warning: report.html not written: {exc.__class__.__name__}: {exc}",
                         markup=False, highlight=False)
    if as_json:
        render.print_json(result_document(outcome.run_dir, settings.is_curve))
    elif settings.is_curve:
        print_curve(outcome)
    else:
        print_result(outcome)
    report_end(outcome, "compare", started)


def model_document(model: Any) -> dict[str, Any]:
    """One model of a comparison as it will be trained: solved at full size, its proxy."""
    full = model.full
    return {
        "model": full.name, "kind": model.kind, "s": model.s, "depth": full.depth,
        "width": full.width, "full_resolution": full.config.resolution,
        "proxy_resolution": model.px, "blocks": sum(s.repeats for s in full.config.stages),
        "params": full.complexity.params, "flops_full": full.complexity.flops,
        "flops_ratio_full": round(full.flops_ratio, 6), "cost": full.cost,
        "cost_ratio_full": round(full.cost_ratio, 6),
        "target_error": None if model.kind == "base" else round(full.target_error, 6),
        "flops_ratio_proxy": round(model.proxy_ratio, 6),
    }


def plan_document(outcome: Any) -> dict[str, Any]:
    """``compare --dry-run --json``: the models that would be trained, and how many runs."""
    return {"run_dir": str(outcome.run_dir), "trainings": outcome.counts["items"],
            "models": [model_document(m) for m in outcome.prepared.models]}


def result_document(run_dir: Path, curve: bool = False) -> dict[str, Any]:
    """``compare --json``: compare.yaml (a curve's curve.yaml) as written, and where the run
    is."""
    import yaml

    doc = yaml.safe_load((run_dir / ("curve.yaml" if curve else "compare.yaml")).read_text())
    return {**doc, "run_dir": str(run_dir)}


def coefficient_sets(specs: list[str], paper: bool) -> tuple[CompoundSet, ...]:
    """--coefficients PATH / NAME=PATH (repeatable) and --paper -> named compound sets."""
    sets: list[CompoundSet] = []
    for spec in specs:
        name, path = None, Path(spec)
        if "=" in spec and not path.exists():
            name, _, rest = spec.partition("=")
            path = Path(rest)
            if not name.strip():
                raise EffscaleError(f"--coefficients {spec!r}: empty NAME before '='")
        if not path.is_file():
            raise EffscaleError(f"--coefficients {path}: no such file")
        loaded = load_coefficients(path)
        if name is None:
            name = path.parent.name if path.stem == "coefficients" and path.parent.name \
                else path.stem
        sets.append(CompoundSet(name.strip(), (loaded.alpha, loaded.beta, loaded.gamma),
                                str(path)))
    if paper or not sets:
        sets.append(CompoundSet("paper", PAPER_COEFFICIENTS, PAPER_SET.source))
    if len(sets) == 1:
        return (CompoundSet("compound", sets[0].coefficients, sets[0].source),)
    return tuple(sets)


def parse_rules(text: str, fast: bool) -> tuple[str, ...]:
    """--rules depth,width,resolution[,fast] or none (plus --fast)."""
    names = [] if text.strip().lower() == "none" else \
        [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in names if r not in SINGLE_RULES]
    if unknown or (not names and text.strip().lower() != "none"):
        raise EffscaleError(f"--rules must be a comma list of {', '.join(SINGLE_RULES)}, or "
                            f"none; got {text!r}")
    if fast and "fast" not in names:
        names.append("fast")
    return tuple(dict.fromkeys(names))


def compare_table(models: list[Any], result: Any) -> Table:
    rows = {m.full.name: r for m, r in result.rows} if result is not None else {}
    target = next((m.target_ratio for m in models), 0.0)
    cost = next((m.full.cost for m in models if m.full.cost != "flops"), None)
    what = cost or "FLOPs"
    table = render.data_table(
        f"equal-{what} comparison at {target:.2f}× the base's {what} (measured at full size; "
        "validation accuracy on the held-out split)",
        ("model", "s", "depth ×", "width ×", "full px", "proxy px", "blocks", "params",
         "GFLOPs full", "FLOPs × full", *([f"{cost} × full"] if cost else []), "vs target",
         "FLOPs × proxy", "val acc", "± std", "seeds"), text={"model"})
    for m in models:
        row = rows.get(m.full.name)
        done = row is not None and row.completed
        table.add_row(
            m.full.name, f"{m.s:.3f}" if m.s is not None else "", f"{m.full.depth:.3f}",
            f"{m.full.width:.3f}", str(m.full.config.resolution), str(m.px),
            str(sum(s.repeats for s in m.full.config.stages)), f"{m.full.complexity.params:,}",
            f"{m.full.complexity.flops / 1e9:.3f}", f"{m.full.flops_ratio:.3f}",
            *([f"{m.full.cost_ratio:.3f}"] if cost else []),
            "" if m.kind == "base" else f"{m.full.target_error:+.1%}", f"{m.proxy_ratio:.2f}",
            f"{row.mean:.2%}" if done else "",
            f"{row.std:.2%}" if done and len(row.accuracies) > 1 else "",
            str(len(row.accuracies)) if row is not None else "0")
    return table


def print_result(outcome: Any) -> None:
    result = outcome.result
    render.out.print(compare_table(outcome.prepared.models, result))
    for comparison in result.comparisons:
        render.out.print("  " + comparison.describe(), markup=False, highlight=False)
    if result.seed_std == 0:
        render.err.print("note: seed noise not measured (one seed per model): use --repeats 2 "
                         "or more", markup=False, highlight=False)
    render.out.print(f"outputs in {outcome.run_dir}/: settings.yaml compare.csv compare.yaml "
                     "compare.png report.html weights/", markup=False, highlight=False)


# --------------------------------------------------------------------------- a scaling curve


def curve_table(models: list[Any], doc: dict[str, Any] | None) -> Table:
    """Direction, φ, full-size cost ratio, proxy px, accuracy with its 95 % interval, seeds."""
    points = {p["model"]: p for p in (doc or {}).get("points", [])}
    cost = next((m.full.cost for m in models if m.full.cost != "flops"), "FLOPs")
    table = render.data_table(
        f"scaling curve: every direction solved to 2^φ × the base's {cost} (measured at full "
        "size), trained as a proxy; validation accuracy, 95 % interval on the pooled seed noise",
        ("direction", "φ", f"{cost} × full", "vs target", "full px", "proxy px", "val acc",
         "95 % interval", "seeds"), text={"direction"})
    for m in models:
        point = points.get("base" if m.kind == "base" else m.full.name, {})
        acc, low, high = (point.get(k) for k in ("val_accuracy", "ci_low", "ci_high"))
        table.add_row(
            m.label, phi_label(m.phi or 0.0), f"{m.full.cost_ratio:.3f}",
            "" if m.kind == "base" else f"{m.full.target_error:+.1%}",
            str(m.full.config.resolution), str(m.px), f"{acc:.2%}" if acc is not None else "",
            f"{low:.2%} to {high:.2%}" if low is not None else "",
            str(point.get("seeds", 0)))
    return table


def print_curve(outcome: Any) -> None:
    doc = outcome.result
    render.out.print(curve_table(outcome.prepared.models, doc))
    say = lambda text: render.out.print(text, markup=False, highlight=False)  # noqa: E731
    for note in doc.get("left_out", []):
        say(f"  left out: {note}")
    for family in doc.get("families", []):
        for line in family["lines"]:
            say("  " + line)
    checked = ", ".join(phi_label(p) for p in doc.get("checked_phi", []))
    say(f"{doc['tested']} checked at φ = {checked or 'none yet'}")
    say(f"outputs in {outcome.run_dir}/: settings.yaml curve.csv curve.yaml curve.png "
        "report.html weights/")


def record_reach(outcome: Any, compounds: tuple[CompoundSet, ...]) -> None:
    """A finished curve over a coefficients file records where its direction was checked in
    that file's ``checked_phi`` (the paper's coefficients have no file to record in)."""
    doc, first = outcome.result, compounds[0]
    path = Path(first.source)
    if not doc or not doc.get("checked_phi") or not path.is_file():
        return
    try:
        merged = record_checked_phi(path, doc["checked_phi"])
    except (OSError, EffscaleError) as exc:
        render.err.print(f"warning: {path}: checked_phi not recorded ({exc})", markup=False,
                         highlight=False)
        return
    render.err.print(f"recorded in {path}: checked at φ = "
                     f"{', '.join(phi_label(p) for p in merged)}", markup=False, highlight=False)
