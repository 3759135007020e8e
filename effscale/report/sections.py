"""The sections of a run's page, built from its study (so a run in progress shows what it has
so far) and the files in its directory.

A search: verdict, results, feasible set, accuracy against measured cost and the α-γ map,
seed noise, the fidelity check, the derived B0-B7 family, class activation maps, settings.
A comparison: verdict, the models, accuracy against measured cost, seed noise, the B0-B7
family of each coefficient set, class activation maps, settings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from effscale.compare import curve_results
from effscale.compare.recorded import RecordedCompare
from effscale.compare.results import compound_comparisons
from effscale.experiment import stats
from effscale.experiment.queue import item_states, split_item
from effscale.experiment.rows import Row, collect_rows
from effscale.report.load import RunData
from effscale.report.markup import (
    Section,
    bullets,
    definitions,
    details,
    esc,
    image,
    number,
    para,
    percent,
    pre,
    table,
)
from effscale.scaling.derive import Coefficients
from effscale.search import fidelity
from effscale.search.answer import FamilyMember, SearchAnswer, answer_of, family_of
from effscale.search.candidates import BASE_KEY
from effscale.search.design import Design, design, design_of
from effscale.search.outputs import PARETO_PLOT, SEARCH_PLOT
from effscale.search.plot import plot_search
from effscale.search.selection import (
    confirmation_rows,
    grid_rows,
    is_screening,
)

CAM_FILE = "cam.png"


@dataclass
class Verdict:
    """What the page says first: the answer, and whether it is a signal (None: neither)."""

    text: str
    signal: bool | None = None
    lines: list[str] = field(default_factory=list)
    pick: str | None = None  # a search's answer (decided or not)
    shrinking: bool = False  # a search below the base's cost: which direction loses least


# --------------------------------------------------------------------------- shared pieces


def states_by_model(run: RunData) -> dict[str, str]:
    """``model -> "2 complete, 1 waiting"``: the latest state of each of its work items."""
    counts: dict[str, Counter[str]] = {}
    for item, trials in item_states(run.study).items():
        key, _ = split_item(item)
        latest = max(trials, key=lambda t: t.number)
        counts.setdefault(key, Counter())[latest.state.name.lower()] += 1
    return {key: ", ".join(f"{n} {state}" for state, n in sorted(c.items()))
            for key, c in counts.items()}


def comparison_rows(comparisons: list[stats.Comparison]) -> list[list[Any]]:
    rows = []
    for c in comparisons:
        result = (f"not testable ({c.untestable})" if c.untestable else
                  "separated" if c.separated else "within the noise")
        rows.append([c.a, c.b, (f"{c.margin * 100:+.2f}", f"{c.margin:.6f}"),
                     f"{c.low * 100:+.2f} to {c.high * 100:+.2f}", number(c.p_value),
                     number(c.p_adjusted), str(c.family), result])
    return rows


def _per_model(comparisons: list[stats.Comparison]) -> bool:
    """Whether the comparisons carry each model's own seed noise (the confirmation's
    verdict, :func:`effscale.experiment.stats.compare_models`), not one pooled std."""
    return any(c.seed_std_b is not None for c in comparisons)


def comparisons_table(comparisons: list[stats.Comparison]) -> str:
    if not comparisons:
        return para("No comparison yet: it needs two models with results.", "note")
    noise = ("its two models' own seed noise (each model's std, on the fewer seeds less one "
             "degree of freedom)" if _per_model(comparisons) else "pooled seed noise")
    return table(["a", "b", "margin (points)", "95 % interval", "p", "adjusted p", "family",
                  "result"], comparison_rows(comparisons),
                 caption=f"each comparison: paired bootstrap over validation examples plus "
                         f"{noise}; Holm-adjusted over its family")


def seed_noise_body(rows: dict[str, Row], comparisons: list[stats.Comparison]) -> str:
    noise, dof = stats.pooled_seed_noise([r.accuracies for r in rows.values() if r.completed])
    if _per_model(comparisons):
        head = ("Seed noise per model: each comparison below uses its two models' own "
                "seed-to-seed std (the std column), not one std pooled over the models.")
    elif dof:
        head = (f"Pooled seed-to-seed std {noise:.2%} on {dof} degree(s) of freedom "
                f"(t_0.975 = {stats.t_quantile(0.975, dof):.2f}).")
    else:
        head = ("Seed noise not measured: no model has two seeds yet (--repeats 2 or more), so "
                "only example noise is counted and no margin is testable.")
    repeated = [[r.candidate, str(len(r.accuracies)),
                 " ".join(f"{a:.2%}" for a in r.accuracies), percent(r.mean),
                 percent(r.std)] for r in rows.values() if len(r.accuracies) >= 2]
    seeds = table(["model", "seeds", "accuracy per seed", "mean", "std"], repeated,
                  caption="models trained under several seeds") if repeated else ""
    return para(head) + seeds + comparisons_table(comparisons)


def family_table(members: tuple[FamilyMember, ...], caption: str) -> str:
    """B0-B7 (or any family): multipliers ``alpha**phi`` ..., the rounded config (input size,
    blocks, last stage's channels) and its parameters."""
    rows = []
    for member in members:
        d = member.to_dict()
        rows.append([d["name"], str(member.phi), number(d["depth_multiplier"]),
                     number(d["width_multiplier"]), number(d["resolution_multiplier"]),
                     str(d["resolution"]), str(d["blocks"]), str(d["last_stage_channels"]),
                     (f"{member.params:,}", str(member.params))])
    return table(["config", "φ", "depth ×", "width ×", "resolution ×", "input px", "blocks",
                  "last stage channels", "params"], rows, caption=caption)


def cam_section(run: RunData) -> Section | None:
    path = run.file(CAM_FILE)
    if path is None:
        if run.kind != "compare" and not (run.run_dir / "weights").is_dir():
            return None
        body = para(f"No class activation maps yet: `effscale cam {run.run_dir}` draws them from "
                    "the trained weights the run keeps (RUN/weights/).", "note")
    else:
        body = image(path.read_bytes(), "class activation maps",
                     "Class activation maps of the same validation images under each model "
                     "(columns); the caption under each map is the model's prediction. The maps "
                     "are the models' final feature maps (a few pixels at proxy sizes), "
                     "upsampled.")
    return Section("cam", "Class activation maps", body)


def settings_section(run: RunData) -> Section:
    s = run.settings
    keys = ("command", "base", "dataset", "budget", "num_classes", "train_images",
            "val_images", "phi", "target", "cost", "runtime", "proxy_resolution",
            "proxy_stem_stride", "pruner", "flops_window", "feasible_grid_points", "candidates",
            "items", "fingerprint")
    pairs = [(k, s[k]) for k in keys if k in s and s[k] is not None]
    pairs.append(("run directory", str(run.run_dir)))
    pairs.append(("study", run.study.study_name))
    versions = s.get("versions") or {}
    body = definitions(pairs)
    if versions:
        body += table(["package", "version"], sorted(versions.items()), sortable=False,
                      caption="versions")
    body += details("every setting (settings.yaml)",
                    pre(yaml.safe_dump(s, sort_keys=False, allow_unicode=True)))
    return Section("settings", "Settings and versions", body)


def plot_section(pictures: list[str], missing: str) -> str:
    return "".join(pictures) if pictures else para(missing, "note")


# --------------------------------------------------------------------------- a search


def search_answer(run: RunData) -> SearchAnswer:
    """The answer the run's own outputs were written from (:func:`effscale.search.outputs.
    write_outputs`), or the study's as it is now when the page is drawn on its own."""
    if run.answer is not None:
        return run.answer
    return answer_of(run.study, document=run.settings)


def _candidate_cells(d: Design, costed: bool = False) -> list[Any]:
    """α, β, γ, full px, [the search's own cost ratio,] FLOPs ratios and proxy px; a cost
    ratio whose timing missed its spread bound is marked "!"."""
    ratio = number(d.cost_ratio)
    cost = [(ratio + " !", ratio) if ratio and d.cost_note else ratio] if costed else []
    blank = lambda value: "" if value is None else str(value)  # noqa: E731
    return [number(d.alpha, 2), number(d.beta, 3), number(d.gamma, 3),
            blank(d.full_resolution), *cost, number(d.flops_ratio),
            blank(d.resolution), number(d.proxy_flops_ratio, 2)]


def search_sections(run: RunData) -> tuple[Verdict, list[Section]]:
    answer = search_answer(run)
    settings = answer.settings
    selection, rows, check = answer.selection, dict(answer.rows), dict(answer.fidelity)
    cost = settings.cost_name
    costed = cost != "flops"
    lines = []
    w, base = selection.winner, selection.base
    decision = selection.decision
    if answer.caveat:
        lines.append("CAVEAT: " + answer.caveat
                     + " Its configs/ carry the same warning in their first line.")
    shown = decision.winner if decision is not None and decision.winner is not None else w
    shown_base = decision.base if decision is not None and decision.base is not None else base
    where = "confirmation" if shown is not w else "screening"
    # Under an undecided verdict the answer is no winner: the screening's pick, not decided.
    label = "winner" if selection.decided else "screening's pick (best so far, not decided)"
    if w is not None and shown is not None:
        won = design(w)
        lines.append(f"{label} {w.candidate} ({selection.named_by}): {won.label()}, "
                     f"{where} accuracy {shown.mean:.2%} over {len(shown.accuracies)} "
                     "seed(s), "
                     + (f"measured {cost} ×{won.cost_ratio or 0:.3f} and " if costed else "")
                     + f"measured FLOPs ×{won.flops_ratio or 0:.3f} at full size")
    if shown_base is not None and shown_base.completed:
        lines.append(f"base: {where} accuracy {shown_base.mean:.2%} over "
                     f"{len(shown_base.accuracies)} seed(s); chance is "
                     f"{settings.chance:.1%}")
    if decision is not None:
        lines += [f"power {p.describe()}" for p in decision.power]
    ladder = dict(answer.ladder)
    lines.append(ladder["line"])
    if answer.position is not None:
        lines.append(f"position on the equal-cost curve: {answer.position.text}")
    if w is not None:
        lines.append(f"reach: checked at φ = {answer.phi:g} only (a search); derive beyond it "
                     "is an extrapolation until a scaling curve (effscale compare --coefficients "
                     "coefficients.yaml --phi 1,2,3) checks it")
    verdict = Verdict(selection.verdict, selection.decided if w is not None else None, lines,
                      pick=w.candidate if w is not None else None,
                      shrinking=decision is not None and decision.shrinking)

    states = states_by_model(run)
    grid = grid_rows(rows)
    ranked = [("base", base)] if base is not None and base.completed else []
    ranked += [(str(i), r) for i, r in enumerate(selection.ranked, 1)]
    shown = {r.candidate for _, r in ranked}
    ranked += [("outside window", r) for r in grid.values()
               if r.completed and r.candidate not in shown]
    result_rows = [[(label, str(i)), r.candidate, *_candidate_cells(design(r), costed),
                    percent(r.mean), percent(r.std) if len(r.accuracies) > 1 else "",
                    str(len(r.accuracies)), number(r.seconds, 1)]
                   for i, (label, r) in enumerate(ranked)]
    cost_heads = ["α", "β", "γ", "full px", *([f"{cost} × (full)"] if costed else []),
                  "FLOPs × (full)", "proxy px", "FLOPs × (proxy)"]
    runtime = settings.runtime
    what = (f"{cost} (measured on this device" + ("" if runtime == "torch" else f", in {runtime}")
            + ")") if costed else "conv+linear FLOPs"
    results = table(["rank", "candidate", *cost_heads, "val acc", "± std", "seeds",
                     "train s"], result_rows,
                    caption=f"validation accuracy on the held-out split; cost = {what} of the "
                            "full-size model over the base's")
    if not result_rows:
        results = para("No training has finished yet.", "note")

    keys = sorted({split_item(item)[0] for item in item_states(run.study)},
                  key=lambda k: (k != BASE_KEY, k))
    designs = {key: design_of(key, rows.get(key)) for key in keys}
    feasible_rows = [[key, *_candidate_cells(designs[key], costed),
                      (f"{d.params:,}", str(d.params)) if (d := designs[key]).params else "",
                      d.aliases, states.get(key, "")]
                     for key in keys if is_screening(key)]
    points = settings.feasible_grid_points
    feasible = table(["candidate", *cost_heads, "params (full)", "same model as", "state"],
                     feasible_rows,
                     caption=f"{len(feasible_rows) - 1} distinct candidate models at equal "
                             f"full-size {cost if costed else 'FLOPs'} (+ the base)"
                             + (f", from {points} grid points" if points else "")
                             + "; a model not started yet shows the α, β, γ of its name")
    timing = settings.cost_timing  # how far a timed cost holds on this machine
    if timing.get("spread"):
        feasible += para(f"{cost}: {timing['spread']}", "note")
    if timing.get("drift_line"):
        feasible += para(timing["drift_line"], "note")

    pictures = []
    if any(r.completed for r in grid.values()):
        # the outputs' search.png when they were just written from this answer, else drawn
        drawn = run.output(SEARCH_PLOT) if run.answer is not None else None
        pictures.append(image(drawn.read_bytes() if drawn else
                              plot_search(grid, selection, settings),
                              "accuracy against measured FLOPs, and over the α-γ plane",
                              "Left: accuracy against the FLOPs ratio measured at full size "
                              "(hollow: at the proxy). Right: accuracy over the α-γ plane "
                              "(β solved, in the labels)."))
    if (pareto := run.output(PARETO_PLOT)) is not None:
        pictures.append(image(pareto.read_bytes(), "accuracy against cost", PARETO_PLOT))

    if check:
        fid = para(fidelity.describe(check)) + table(
            ["model", "screening accuracy", "confirmation accuracy"],
            [[k, percent(check["screening_accuracy"][k]),
              percent(check["confirmation_accuracy"][k])]
             for k in check["models"]], caption=check["schedule"])
    elif settings.confirm_top:
        fid = para("Not run yet: the base and the top candidates are retrained on fresh seeds "
                   "with a longer schedule after the screening.", "note")
    else:
        fid = para("No confirmation at this budget (its confirm_top is 0), so no decision.",
                   "note")

    if w is not None:
        whose = "the winner's" if selection.decided else "the screening's pick's (not decided)"
        caption = (f"{settings.base} scaled by {whose} α^φ, β^φ, γ^φ (as configs/b*.yaml)"
                   + ("" if run.finished else "; from the CURRENT leader, the run is not done"))
        family = family_table(answer.family, caption)
        if answer.caveat:  # the caveat configs/ carry in their first line
            family = para("Caveat: " + answer.caveat, "caveat") + family
        if (run.run_dir / "configs" / "matched").is_dir():
            family += para("configs/matched/ holds the same family solved to 2^φ × B0's "
                           "measured FLOPs.", "note")
    else:
        family = para("No pick yet.", "note")

    sections = [
        Section("results", "Results", results),
        Section("feasible", "Feasible set", feasible),
        Section("cost", "Accuracy against measured cost; the α-β-γ map",
                plot_section(pictures, "No finished training to plot yet.")),
        Section("confirmation", "Confirmation: the decision",
                seed_noise_body(confirmation_rows(rows), decision.comparisons)
                if decision is not None else
                para("No confirmation trainings yet: nothing is decided.", "note")),
        Section("ladder", "Proxy ladder: the answer's reach in pixels", ladder_body(ladder)),
        Section("noise", "Screening: seed noise and the comparisons (decide nothing)",
                seed_noise_body(grid, selection.comparisons)),
        Section("fidelity", "Screening vs confirmation ranking", fid),
        Section("family", "Derived B0-B7", family),
    ]
    if (cam := cam_section(run)) is not None:
        sections.append(cam)
    sections.append(settings_section(run))
    return verdict, sections


def ladder_body(ladder: dict[str, Any]) -> str:
    """The proxy ladder: its line, one row per rung (every model's input size and accuracy,
    the winner's leads with their 95 % intervals), the trends and what they say, the notes."""
    if not ladder.get("run"):
        return para(ladder["line"], "note")
    keys = ladder["models"]
    versus = [k for k in keys if k != ladder["winner"]]
    rows = []
    for rung in ladder["at"]:
        leads = [("" if lead is None else
                  f"{lead['lead_points']:+.2f} ({lead['interval_points'][0]:+.2f} to "
                  f"{lead['interval_points'][1]:+.2f})" + (" separated" if lead["separated"]
                                                          else ""))
                 for lead in rung["leads"]]
        rows.append([str(rung["base_px"]) + (" (confirmation)" if rung["confirmation"] else ""),
                     *(f"{rung['px'].get(k) or ''}" for k in keys),
                     *(percent(rung["accuracy"][k]) if k in rung["accuracy"] else ""
                       for k in keys),
                     " / ".join(str(rung["seeds"].get(k, 0)) for k in keys), *leads,
                     str(rung.get("final_map") or "")])
    heads = ["base px", *(f"{k} px" for k in keys), *(f"{k} acc" for k in keys), "seeds",
             *(f"lead over {k} (points, 95 % interval)" for k in versus), "base final map"]
    body = para(ladder["line"]) + table(
        heads, rows, sortable=False,
        caption="each rung: the base's proxy at that size, every model at its own γ times "
                "it, trained as the confirmation is, on fresh seeds; the leads are the "
                "winner's, from that rung's comparisons (one Holm family per rung)")
    body += bullets(ladder.get("readings", []) + [f"note: {n}" for n in ladder.get("notes", [])])
    return body


# --------------------------------------------------------------------------- a comparison


def compare_comparisons(rows: dict[str, Row], settings: RecordedCompare
                        ) -> tuple[list[stats.Comparison], float, int]:
    """The comparisons of :func:`effscale.compare.results.summarize`, for the study as it is
    (from its rows and the recorded settings; no model objects needed)."""
    done = {name: rows[name] for name in settings.model_names
            if name in rows and rows[name].completed and rows[name].mean_correct is not None}
    return compound_comparisons(done, set(settings.compound_names))


def compare_verdict(rows: dict[str, Row], settings: RecordedCompare,
                    comparisons: list[stats.Comparison], dof: int) -> Verdict:
    lines, all_above = [], []
    for spec in settings.compounds:
        name = spec.name
        row = rows.get(name)
        if row is None or not row.completed:
            lines.append(f"{name}: no result yet")
            continue
        mine = [c for c in comparisons if c.a == name]
        above = [c.b for c in mine if c.separated and c.margin > 0]
        below = [c.b for c in mine if c.separated and c.margin < 0]
        within = [c.b for c in mine if c.testable and not c.separated]
        untested = [c.b for c in mine if not c.testable]
        parts = [f"{name} ({spec.alpha:g}/{spec.beta:g}/{spec.gamma:g}): "
                 f"{row.mean:.2%} over {len(row.accuracies)} seed(s)"]
        for label, names in (("separated ABOVE", above), ("separated BELOW", below),
                             ("within the noise of", within), ("untested against", untested)):
            if names:
                parts.append(f"{label} {', '.join(names)}")
        lines.append("; ".join(parts))
        all_above.append(bool(mine) and len(above) == len(mine))
    if dof == 0:
        lines.append("seed noise not measured (one seed per model): use --repeats 2 or more")
    best = max((r for n, r in rows.items() if n in settings.model_names and r.completed),
               key=lambda r: r.mean, default=None)
    if best is None:
        text = "no model has finished yet"
    else:
        text = (f"best at equal FLOPs: {best.candidate} ({best.mean:.2%}); "
                + ("compound scaling is separated above every other model"
                   if all_above and all(all_above) else
                   "compound scaling is not separated above every other model"))
    return Verdict(text, (all(all_above) if all_above else None), lines)


def compare_records(run: RunData) -> dict[str, dict[str, Any]]:
    """compare.yaml's model records by name (written when the run last stopped)."""
    path = run.file("compare.yaml")
    if path is None:
        return {}
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return {}
    return {r["model"]: r for r in doc.get("models", []) if isinstance(r, dict) and "model" in r}


def run_picture(run: RunData, name: str, alt: str) -> list[str]:
    """The run's own picture ``name`` (written by the run when it stops), as a one-item list,
    marked as possibly behind while the run goes on; empty when there is none yet."""
    if (plot := run.file(name)) is None:
        return []
    note = "" if run.finished else " (written when the run last stopped: may be behind)"
    return [image(plot.read_bytes(), alt, name + note)]


def curve_sections(run: RunData, settings: RecordedCompare) -> tuple[Verdict, list[Section]]:
    """A scaling curve: the per-phi tests first, then the figure and the table (curve.yaml,
    written at every stop), seed noise, settings."""
    rows = collect_rows(run.study)
    names, phis = list(settings.directions), list(settings.phis)
    per_phi = curve_results.families(rows, names, phis)
    lines = [line for family in per_phi for line in family.lines()]
    lines += [f"left out: {note}" for note in settings.left_out]
    checked = curve_results.checked_phis(rows, names[0], phis) if names else []
    lines.append(f"reach: {names[0] if names else '?'} checked at φ = "
                 + (", ".join(f"{p:g}" for p in checked) or "none yet"))
    held = [f for f in per_phi if f.comparisons]
    separated = bool(held) and all(all(c.separated and c.margin > 0 for c in f.comparisons)
                                   for f in held) and len(held) == len(per_phi)
    text = (f"{names[0] if names else '?'} is separated above every other direction at every "
            f"φ ({', '.join(f'{p:g}' for p in phis)})" if separated else
            f"{names[0] if names else '?'} is not separated above every other direction at "
            "every φ")
    verdict = Verdict(text, separated if held else None, lines)
    doc: dict[str, Any] = {}
    if (path := run.file("curve.yaml")) is not None:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            doc = {}
    states = states_by_model(run)
    table_rows = []
    for point in doc.get("points", []):
        row = rows.get(point["model"])
        done = row is not None and row.completed
        ci = (f"{percent(point['ci_low'])} to {percent(point['ci_high'])}"
              if point.get("ci_low") is not None else "")
        table_rows.append([point["direction"], number(point["phi"]),
                           number(point["cost_ratio"]), str(point["full_resolution"]),
                           str(point["proxy_px"]), percent(row.mean) if done else "", ci,
                           str(len(row.accuracies)) if row is not None else "0",
                           states.get(point["model"], "")])
    cost_name = settings.cost_name
    points = table(["direction", "φ", f"{cost_name} × (full)", "full px",
                    "proxy px", "val acc", "95 % interval", "seeds", "state"], table_rows,
                   caption="every direction solved to 2^φ × the base's cost measured at full "
                           "size, trained as a proxy; the base is every direction's φ = 0")
    pictures = run_picture(run, "curve.png", "accuracy against measured cost per direction")
    sections = [
        Section("curve", "Scaling curves", plot_section(
            pictures, "curve.png is written when the run stops.") + points),
        Section("noise", "Seed noise and the comparisons", seed_noise_body(
            rows, [c for f in per_phi for c in f.comparisons])),
    ]
    if (cam := cam_section(run)) is not None:
        sections.append(cam)
    sections.append(settings_section(run))
    return verdict, sections


def compare_sections(run: RunData) -> tuple[Verdict, list[Section]]:
    settings = RecordedCompare.from_document(run.settings)
    if settings.is_curve:
        return curve_sections(run, settings)
    rows = collect_rows(run.study)
    comparisons, _, dof = compare_comparisons(rows, settings)
    verdict = compare_verdict(rows, settings, comparisons, dof)
    records = compare_records(run)
    states = states_by_model(run)
    compounds = set(settings.compound_names)
    table_rows = []
    for name in settings.model_names:
        row, record = rows.get(name), records.get(name, {})
        d = design(row)
        blank = lambda value: "" if value is None else str(value)  # noqa: E731
        done = row is not None and row.completed
        kind = "base" if name == "base" else "compound" if name in compounds else name
        table_rows.append([
            name, kind, number(record.get("s")), number(d.alpha), number(d.beta),
            number(d.gamma), blank(d.full_resolution), blank(d.resolution), blank(d.blocks),
            (f"{d.params:,}", str(d.params)) if d.params is not None else "",
            number(d.flops_ratio),
            percent(record.get("target_error"), 1) if record.get("target_error") is not None
            and kind != "base" else "",
            number(d.proxy_flops_ratio, 2), percent(row.mean) if done else "",
            percent(row.std) if done and len(row.accuracies) > 1 else "",
            str(len(row.accuracies)) if row is not None else "0", states.get(name, "")])
    target = settings.phi
    models = table(["model", "kind", "s", "depth ×", "width ×", "resolution ×", "full px",
                    "proxy px", "blocks", "params (proxy)", "FLOPs × (full)", "vs target",
                    "FLOPs × (proxy)", "val acc", "± std", "seeds", "state"], table_rows,
                   caption=f"every model solved to 2^{target:g} × the base's FLOPs measured at "
                           "full size (conv+linear), trained as a proxy; validation accuracy "
                           "on the held-out split")
    pictures = run_picture(run, "compare.png", "accuracy per model and against measured FLOPs")
    families = "".join(
        family_table(family_of(Coefficients(c.alpha, c.beta, c.gamma, base=settings.base),
                               settings.base, settings.num_classes, settings.rules),
                     f"{c.name}: {settings.base} scaled by α={c.alpha:g}^φ, "
                     f"β={c.beta:g}^φ, γ={c.gamma:g}^φ ({c.source})")
        for c in settings.compounds)
    sections = [
        Section("results", "Models at equal FLOPs", models),
        Section("cost", "Accuracy against measured cost",
                plot_section(pictures, "compare.png is written when the run stops.")),
        Section("noise", "Seed noise and the comparisons", seed_noise_body(
            {n: rows[n] for n in settings.model_names if n in rows}, comparisons)),
        Section("family", "Derived B0-B7", families),
    ]
    if (cam := cam_section(run)) is not None:
        sections.append(cam)
    sections.append(settings_section(run))
    return verdict, sections


def decision_text(verdict: Verdict, finished: bool, kind: str) -> tuple[str, str]:
    """The page's first words, in plain language: ``Decided: ...`` or ``Not decided: ...``,
    and one sentence on what that means for the reader."""
    if verdict.signal is True:
        if kind == "compare":
            return ("Decided: compound scaling is separated above every other model at equal "
                    "cost.", "On this data and budget, scaling depth, width and resolution "
                    "together beat scaling any one of them.")
        if verdict.shrinking:
            return (f"Decided: {verdict.pick} is separated above every other confirmed "
                    "shrinking direction at equal cost.", "To shrink your network, scale it "
                    "with its coefficients (coefficients.yaml, configs/); the verdict says "
                    "how much accuracy that gives up against the base.")
        return (f"Decided: {verdict.pick} is separated above the base at equal cost.",
                "You can scale your network with its coefficients (coefficients.yaml, "
                "configs/).")
    if not finished:
        return ("Not decided yet: the run is still going.",
                "Every number below may change; nothing here is an answer until it finishes.")
    if kind == "compare":
        return ("Not decided: compound scaling is not separated above every other model.",
                "On this data and budget the comparison cannot say compound scaling is "
                "better; more seeds (--repeats) or a larger budget may.")
    if verdict.pick is None:
        return ("Not decided: no candidate finished.", "There is no answer to use yet.")
    if verdict.shrinking:
        return (f"Not decided: the confirmation did not separate {verdict.pick} (the "
                "screening's pick) from the other shrinking directions.", "The data do not "
                "choose how to shrink: any of the tied directions is as good here; rerun "
                "with a larger --budget or more --confirm-max-seeds to choose.")
    return (f"Not decided: the confirmation did not separate {verdict.pick} (the screening's "
            "pick) from the base.", "Its coefficients are a guess the data did not support: "
            "do not scale a network with them; rerun with a larger --budget or more "
            "--confirm-max-seeds, or keep the paper's 1.2/1.1/1.15.")


def decision_html(verdict: Verdict, finished: bool, kind: str) -> str:
    head, meaning = decision_text(verdict, finished, kind)
    cls = "decided" if verdict.signal is True else "undecided"
    return f'<p class="decision {cls}" id="decision">{esc(head)} {esc(meaning)}</p>'


def verdict_html(verdict: Verdict) -> str:
    cls = {True: " signal", False: " nosignal", None: ""}[verdict.signal]
    return (f'<div class="verdict{cls}" id="verdict"><strong>verdict:</strong> '
            f"{esc(verdict.text)}{bullets(verdict.lines)}</div>")
