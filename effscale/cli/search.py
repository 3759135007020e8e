"""``effscale search`` and ``effscale report``: flags -> SearchSettings, events -> rich."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from effscale import atomic
from effscale.cli import options as opt
from effscale.cli import render
from effscale.cli.panels import panelled
from effscale.cli.running import RichEvents, dry_run_line, report_end, run_with_progress
from effscale.errors import EffscaleError
from effscale.experiment.estimate import compare_line, count_span, span
from effscale.experiment.queue import progress_counts
from effscale.experiment.rundir import run_settings
from effscale.experiment.storage import JOURNAL_NAME
from effscale.model.bases import get_base
from effscale.report.html import write_report, write_run_report
from effscale.report.load import open_run_study
from effscale.scaling.derive import check_phi
from effscale.search.aliases import coefficient_aliases
from effscale.search.answer import SearchAnswer
from effscale.search.candidates import Candidate, Skipped, extremes_found
from effscale.search.confirm import ConfirmPlan
from effscale.search.design import design
from effscale.search.grid import budget_grid, single_axis
from effscale.search.outputs import PARETO_PLOT, SEARCH_PLOT, write_outputs
from effscale.search.pareto import Entry, pareto_tables
from effscale.search.run import SearchSettings, run_search
from effscale.search.selection import Selection


def parse_duration(text: str, option: str) -> float | None:
    """``40m``, ``1.5h``, ``900s`` or ``900`` (seconds) -> seconds; ``none`` -> no limit."""
    if text.strip().lower() in ("none", "inf"):
        return None
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text.lower())
    if not found:
        raise typer.BadParameter(f"{text!r} is not a duration (like 40m, 1.5h, 900s, or none)",
                                 param_hint=option)
    value = float(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]
    if value <= 0:
        raise typer.BadParameter(f"{text!r}: must be positive ('none': no limit)",
                                 param_hint=option)
    return value


class SearchEvents(RichEvents):
    """The live view, plus the feasible set as a table once the candidates are measured (on
    stderr as progress; a dry run's feasible set is its result, printed on stdout after)."""

    def __init__(self, quiet: bool, dry_run: bool = False) -> None:
        super().__init__(quiet)
        self.dry_run = dry_run

    def feasible(self, candidates: list[Any], dropped: list[Any], grid_points: int) -> None:
        if not self.quiet and not self.dry_run:
            render.err.print(feasible_table(candidates, dropped, grid_points))


def marked(ratio: float, note: str | None) -> str:
    """A cost ratio, with "!" when its timing did not get its spread under the bound."""
    return f"{ratio:.3f}" + (" !" if note else "")


def feasible_table(candidates: list[Candidate], dropped: list[Skipped], grid_points: int
                   ) -> Table:
    cost = next((c.cost for c in candidates if c.cost != "flops"), None)
    table = render.data_table(
        f"feasible set: {len(candidates) - 1} distinct candidate models at equal full-size "
        f"{cost or 'FLOPs'} "
        f"from {grid_points} grid points (+ the base)"
        + (f"; {len(dropped)} left out (below)" if dropped else ""),
        ("candidate", "α", "β", "γ", "full px", *([f"{cost} × (full)"] if cost else []),
         "FLOPs × (full)", "proxy px", "FLOPs × (proxy)", "params", "same model as"),
        text={"candidate", "same model as"})
    for c in candidates:
        end = single_axis(c.alpha, c.beta, c.gamma) if not c.is_base else None
        table.add_row(c.key + (f" ({end})" if end else ""), f"{c.alpha:.2f}",
                      f"{c.beta:.3f}", f"{c.gamma:.3f}",
                      str(c.full_resolution),
                      *([marked(c.cost_ratio, c.cost_note)] if cost else []),
                      f"{c.flops_ratio:.3f}", str(c.resolution),
                      f"{c.proxy_flops_ratio:.2f}", f"{c.params:,}",
                      ", ".join(c.aliases[:3]) + (" …" if len(c.aliases) > 3 else ""))
    for d in dropped:
        cost_cell = "" if d.cost_ratio is None else marked(d.cost_ratio, d.cost_note)
        table.add_row(f"[dim]{d.key}[/dim]", "", "", "", "", *([cost_cell] if cost else []),
                      f"{d.flops_ratio:.3f}" if d.flops_ratio else "", "",
                      f"{d.proxy_flops_ratio:.2f}" if d.proxy_flops_ratio else "", "",
                      f"[dim]left out: {d.reason}[/dim]")
    return table


def feasible_document(candidates: list[Candidate], dropped: list[Skipped], settings: Any
                      ) -> dict[str, Any]:
    """``--dry-run --json``: the feasible set as one JSON-able object."""
    from dataclasses import asdict


    base = get_base(settings.base)
    rows = []
    for c in candidates:
        if c.is_confirmation:
            continue
        rows.append({
            "key": c.key, "alpha": c.alpha, "beta": c.beta, "gamma": c.gamma,
            "extreme": None if c.is_base else single_axis(c.alpha, c.beta, c.gamma),
            "kept": True, "reason": "base" if c.is_base else "within the FLOPs window",
            "full_resolution": c.full_resolution, "proxy_resolution": c.resolution,
            "params": c.params, "flops_full": c.flops,
            "flops_ratio_full": round(c.flops_ratio, 4), "proxy_flops": c.proxy_flops,
            "flops_ratio_proxy": round(c.proxy_flops_ratio, 4),
            "nominal_ratio": round(c.nominal_ratio, 4), "same_model_grid_points": list(c.aliases),
            **({"cost": c.cost, "cost_full": c.cost_value,
                "cost_ratio_full": round(c.cost_ratio, 4), "cost_note": c.cost_note}
               if c.cost != "flops" else {}),
            "aliases": None if c.is_base or settings.grid.shrinks else coefficient_aliases(
                base, c.alpha, c.beta, c.gamma, settings.grid, settings.rules),
        })
    for d in dropped:
        rows.append({"key": d.key, "kept": False, "reason": d.reason,
                     "flops_ratio_full": d.flops_ratio, "flops_ratio_proxy": d.proxy_flops_ratio,
                     **({"cost_ratio_full": d.cost_ratio, "cost_note": d.cost_note}
                        if d.cost_ratio is not None else {})})
    return {
        "base": settings.base, "dataset": settings.dataset, "budget": settings.budget.name,
        "target": settings.grid.target, "flops_tolerance": settings.flops_tolerance,
        "counter": settings.counter, "grid": asdict(settings.grid), "cost": settings.cost,
        "proxy_stem_stride": settings.recipe.stem_stride,
        "extremes": extremes_found(candidates, dropped),
        "candidates": rows,
    }


def _or(value: Any, default: Any) -> Any:
    """``value``, or ``default`` where the run recorded none."""
    return default if value is None else value


def summary_table(selection: Selection, top: int = 8) -> Table:
    rows = ([("base", selection.base)] if selection.base and selection.base.completed else [])
    # "winner" only for a decided answer: an undecided or no-signal run has a pick, not a winner
    picked = selection.winner is selection.screening_pick
    first = "winner" if picked and selection.decided else "pick"
    rows += [(first if i == 0 else str(i + 1), r)
             for i, r in enumerate(selection.ranked[:top])]
    cost = next((d.cost for _, r in rows if (d := design(r)).cost), None)
    table = render.data_table(
        "search result (validation accuracy on the held-out split; cost = "
        f"{cost or 'FLOPs'} at full size)",
        ("", "candidate", "α", "β", "γ", "full px", *([f"{cost} × (full)"] if cost else []),
         "FLOPs × (full)", "proxy px", "FLOPs × (proxy)", "val acc", "± std", "seeds"),
        text={"", "candidate"})
    for label, row in rows:
        d = design(row)
        table.add_row(label, row.candidate, f"{_or(d.alpha, 1):.2f}", f"{_or(d.beta, 1):.3f}",
                      f"{_or(d.gamma, 1):.3f}", str(_or(d.full_resolution, "")),
                      *([marked(_or(d.cost_ratio, 1), d.cost_note or None)] if cost else []),
                      f"{_or(d.flops_ratio, 1):.3f}", str(_or(d.resolution, "")),
                      f"{_or(d.proxy_flops_ratio, 0):.2f}", f"{row.mean:.2%}",
                      f"{row.std:.2%}" if len(row.accuracies) > 1 else "",
                      str(len(row.accuracies)))
    return table


def confirmation_table(selection: Selection) -> Table | None:
    """The confirmed models: screening accuracy (1 short run) beside the confirmation's."""
    decision = selection.decision
    if decision is None:
        return None
    table = render.data_table(
        f"confirmation ({decision.seeds} fresh seed(s) per model; the verdict's trainings)",
        ("model", "screening acc", "confirmation acc", "± std", "seeds", "per seed"),
        text={"model", "per seed"})
    screened = {r.candidate: r for r in [selection.base, *selection.ranked] if r is not None}
    for row in [decision.base, decision.winner, *decision.rivals]:
        if row is None:
            continue
        first = screened.get(row.candidate)
        table.add_row(row.candidate, f"{first.mean:.2%}" if first else "", f"{row.mean:.2%}",
                      f"{row.std:.2%}" if len(row.accuracies) > 1 else "",
                      str(len(row.accuracies)), " ".join(f"{a:.1%}" for a in row.accuracies))
    return table


def print_answer(answer: SearchAnswer, run_dir: Path) -> None:
    """The answer at the end of a run (and of ``effscale report``): tables, the winner, the
    confirmation, the stages, the verdict, the ladder; all from ``answer``."""
    selection = answer.selection
    render.out.print(summary_table(selection))
    if (confirmed := confirmation_table(selection)) is not None:
        render.out.print(confirmed)
    w, base, runner = selection.winner, selection.base, selection.runner_up
    decision = selection.decision
    doc = answer.document
    say = lambda text: render.out.print(text, markup=False, highlight=False)  # noqa: E731
    if w is not None:
        shown = decision.winner if decision is not None and decision.winner is not None else w
        where = "confirmation" if shown is not w else "screening"
        label = ("best (no signal: the base stayed near chance, so nothing is chosen)"
                 if selection.verdict.startswith("NO SIGNAL") else
                 f"winner ({selection.named_by})" if decision is not None and decision.signal
                 else f"best so far, not decided ({selection.named_by})")
        d = design(w)
        say(f"{label}: {d.label()}  {where} val acc "
            f"{shown.mean:.2%} over {len(shown.accuracies)} seed(s)  measured FLOPs "
            f"×{_or(d.flops_ratio, 0):.3f} at full size "
            f"(×{_or(d.proxy_flops_ratio, 0):.2f} at its {d.resolution} "
            f"px proxy; nominal α·β²·γ² = {_or(d.nominal_ratio, 0):.2f})")
        if d.cost:
            say(f"  measured {d.cost} ×{_or(d.cost_ratio, 0):.3f} the base's at "
                "full size (the cost the candidates are equal in)")
        if aliases := doc.get("aliases"):
            parts = [f"{sym} ∈ [{aliases[k]['same_model'][0]:g}, {aliases[k]['same_model'][1]:g}]"
                     for sym, k in (("α", "alpha"), ("β", "beta"), ("γ", "gamma"))]
            say("  the same proxy model for " + ", ".join(parts) + f" (α^7 from "
                f"{aliases['alpha']['at_phi_7'][0]:g} to {aliases['alpha']['at_phi_7'][1]:g})")
        if decision is None and base is not None and base.completed:
            margin = (w.mean - base.mean) * 100
            say(f"  screening: {'above' if margin >= 0 else 'below'} the base ({base.mean:.2%}) "
                f"by {abs(margin):.2f} points"
                + (f"; ahead of the runner-up {runner.candidate} ({runner.mean:.2%}) by "
                   f"{(w.mean - runner.mean) * 100:+.2f} points" if runner is not None else ""))
    comparisons = decision.comparisons if decision is not None else selection.comparisons[:3]
    for comparison in comparisons:
        say("  " + comparison.describe())
    if decision is not None:
        for power in decision.power:
            say(f"  power {power.describe()}")
    if stages := doc.get("stages"):
        say("  " + stages_line(stages))
    if estimated := doc.get("estimate_vs_actual"):
        say("  " + compare_line(estimated))
    if fidelity_line := doc.get("fidelity_line"):
        say("  " + fidelity_line)
    for row in selection.failed:
        say(f"  failed: {row.candidate}: {'; '.join(row.failures)}")
    if caveat := doc.get("caveat"):
        render.err.print(f"caveat: {caveat}", markup=False, highlight=False)
    rows = [r for r in [selection.base, *selection.ranked] if r is not None]
    if tables := pareto_tables({r.candidate: r for r in rows}):
        render.out.print(pareto_table(tables))
    matched = " configs/matched/" if (run_dir / "configs" / "matched").is_dir() else ""
    pareto = f" pareto.csv {PARETO_PLOT}" if (run_dir / PARETO_PLOT).is_file() else ""
    page = " report.html" if (run_dir / "report.html").is_file() else ""
    family = sorted((p.stem for p in (run_dir / "configs").glob("*.yaml")),
                    key=lambda name: (len(name), name))
    say(f"outputs in {run_dir}/: settings.yaml trials.csv coefficients.yaml answer.json "
        "configs/ "
        f"({' '.join(family)}){matched} {SEARCH_PLOT}{pareto}{page}")
    for line in verdict_lines(selection.verdict, decision):
        say(line)
    if position := doc.get("position_line"):
        say(f"  position on the equal-cost curve: {position}")
    if ladder := doc.get("ladder"):
        say(ladder_text(ladder))


def verdict_lines(verdict: str, decision: Any = None) -> list[str]:
    """The verdict as people read it: one line with the answer, the gain and its interval,
    then each clause of the full verdict on a line of its own below it."""
    clauses, depth, start = [], 0, 0
    for i, char in enumerate(verdict):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and verdict.startswith("; ", i):
            clauses.append(verdict[start:i])
            start = i + 2
    clauses.append(verdict[start:])
    head = clauses[0]
    vs = getattr(decision, "vs_base", None)
    if (vs is not None and decision.winner is not None and vs.testable
            and not getattr(decision, "shrinking", False) and head.startswith(
                ("DECIDED", "UNDECIDED"))):
        gain = (f"{vs.margin * 100:+.2f} points over the base (95 % interval "
                f"{vs.low * 100:+.2f} to {vs.high * 100:+.2f})")
        answer = ("DECIDED" if decision.signal else "DECIDED AGAINST" if decision.decided
                  else "UNDECIDED")
        tail = "" if decision.decided else ", within the noise"
        head = f"{answer}: {decision.winner.candidate}, {gain}{tail}"
        return [f"verdict: {head}", *(f"  {clause}" for clause in clauses)]
    return [f"verdict: {head}", *(f"  {clause}" for clause in clauses[1:])]


def ladder_text(ladder: dict[str, Any]) -> str:
    """The proxy ladder under the verdict: its line, then each reading and note."""
    lines = [f"ladder: {ladder['line']}"]
    lines += [f"  {text}" for text in ladder.get("readings", [])[1:]]
    lines += [f"  note: {text}" for text in ladder.get("notes", [])]
    return "\n".join(lines)


def stages_line(stages: dict[str, Any]) -> str:
    """What each stage cost: screening, and each confirmation round estimated vs actual."""
    screening = stages.get("screening", {})
    confirmation = stages.get("confirmation", {})
    rounds = ", ".join(f"round {r['round']} est. {r['estimated_s'] / 60:.1f} / actual "
                       f"{r.get('actual_s', 0) / 60:.1f} min"
                       + (f" on {r['workers']} workers" if r.get("workers", 1) > 1 else "")
                       for r in confirmation.get("rounds", []))
    stopped = confirmation.get("stopped") or ""
    return (f"stages: screening {screening.get('trainings', 0)} trainings, "
            f"{screening.get('seconds', 0) / 60:.1f} min of training; confirmation "
            f"{confirmation.get('seconds', 0) / 60:.1f} min of training "
            f"({rounds or 'no round yet'})"
            + (f"; stopped: {stopped}" if stopped else ""))


def pareto_table(tables: dict[str, list[Entry]]) -> Table:
    """The models on the Pareto front of accuracy against each measured cost."""
    table = Table(title="Pareto front: the models nothing beats on both accuracy and cost "
                        "(cost ÷ the base's, full size)", title_justify="left")
    for name in ("cost", "front, cheapest first (× cost: val acc)", "off the front"):
        table.add_column(name)
    for cost, entries in tables.items():
        front = ", ".join(f"{e.candidate} ×{e.ratio:.2f}: {e.accuracy:.1%}"
                          for e in entries if e.on_front)
        table.add_row(cost, front, str(sum(not e.on_front for e in entries)))
    return table


def stability_line(stability: dict[str, Any]) -> str:
    """One line on how the top-k ranking holds up over seeds."""
    wins = ", ".join(f"{k} {v}" for k, v in stability["wins"].items())
    seeds = len(stability["kendall_tau"])
    return (f"rank stability of the top {len(stability['candidates'])} over seeds: Kendall's τ "
            f"{stability['mean_kendall_tau']:+.2f} (mean of {seeds} seed pair(s)); "
            f"wins per seed: {wins}")


def stage_plan(budget: Any, target: float = 2.0) -> str:
    """The run's two stages in one line, before it starts."""
    screening = (f"screening: every candidate once ({budget.epochs} epochs"
                 + (f", the base under {budget.repeats} seeds" if budget.repeats > 1 else "")
                 + (f", the best {budget.repeat_top} under {budget.repeats}"
                    if budget.repeat_top and budget.repeats > 1 else "")
                 + ") chooses the winner")
    if not budget.confirm_top:
        return screening + "; no confirmation stage, so the run cannot decide"
    plan = ConfirmPlan.of(budget, target=target)
    ladder = (f"; once decided, the proxy ladder: the base, the winner and (when confirmed) "
              f"the runner-up at {budget.ladder_rungs} other base proxy size(s), "
              f"{max(2, budget.ladder_seeds)} fresh seeds each" if budget.ladder_rungs else "")
    return (f"{screening}; then {plan.describe(budget.epochs)} (the verdict comes from "
            f"these){ladder}")


def register(app: typer.Typer) -> None:
    app.command(help=search.__doc__, cls=panelled(opt.SEARCH_PANELS))(opt.grouped(search))
    app.command(help=report.__doc__)(report)


def search(
    *,
    phi: opt.PhiSearch = 1.0,
    alpha_max: Annotated[float | None, typer.Option(help="Largest α on the grid.")] = None,
    beta_max: Annotated[float, typer.Option(help="Largest β on the grid / solved β.")] = 1.5,
    gamma_max: Annotated[float | None, typer.Option(help="Largest γ on the grid.")] = None,
    step: Annotated[float | None, typer.Option(help="Grid step for α (and β with --beta "
                                               "grid).")] = None,
    gamma_step: Annotated[float | None, typer.Option(
        help="γ axis step (NNI-style: the proxy size is rounded to a pixel).")] = None,
    beta_mode: opt.BetaModeOpt = opt.BetaMode.solve,
    tolerance: Annotated[float, typer.Option(
        help="--beta grid: keep triples with |α·β²·γ² − 2| < this.")] = 0.1,
    resolution_step: Annotated[int | None, typer.Option(
        min=1, help="γ axis in px steps instead of --gamma-step.")] = None,
    flops_tolerance: Annotated[float | None, typer.Option(
        help="Keep candidates whose full-size FLOPs ratio is within 2 × (1 ± this) "
             "(budget's default 0.05; a negative value keeps all).")] = None,
    repeats: opt.BaseRepeats = None,
    repeat_top: Annotated[int | None, typer.Option(
        min=0, help="Screening: train the N best candidates under the other --repeats seeds "
                    "too (a steadier choice; the verdict comes from the confirmation).")
    ] = None,
    confirm_top: Annotated[int | None, typer.Option(
        min=0, help="Confirmation: retrain the base and the screening's top K on fresh seeds "
                    "with --confirm-factor x the epochs; the verdict comes from these "
                    "trainings alone (budget's default; 0: no confirmation, no decision).")
    ] = None,
    confirm_factor: Annotated[int | None, typer.Option(
        min=1, help="Confirmation epochs = this x the screening's (budget's default).")] = None,
    confirm_seeds: Annotated[int | None, typer.Option(
        min=2, help="Confirmation seeds each model gets before the first verdict "
                    "(budget's default).")] = None,
    confirm_max_seeds: Annotated[int | None, typer.Option(
        min=2, help="Most confirmation seeds per model: rounds of one more seed each stop "
                    "when decided, here, or at --time (budget's default).")] = None,
    ladder_rungs: Annotated[int | None, typer.Option(
        min=0, help="Proxy ladder: after a decided confirmation, retrain the base, the winner "
                    "and the runner-up with the base's proxy at this many other sizes "
                    "(chosen from the data's native size), to see whether the lead holds, "
                    "shrinks or flips as the proxy grows (budget's default; 0: none).")
    ] = None,
    ladder_time: Annotated[str | None, typer.Option(
        "--ladder-time", help="Most training time the proxy ladder may take (its estimate, "
                              "before it starts), e.g. 30m; 'none': no limit. Budget's "
                              "default.")] = None,
    time_budget: Annotated[str | None, typer.Option(
        "--time", help="Training time for the whole search, e.g. 40m, 1.5h, 900s: no "
                       "confirmation round starts that it would not finish within it (the "
                       "minimum seeds always run). 'none': no limit. Budget's default.")
    ] = None,
    pruner: Annotated[opt.Pruner | None, typer.Option(
        help="none, median, or halving: every candidate trains 1 epoch, the best third go on "
             "to 3, and so on (the budget's default).")] = None,
    study: opt.StudyName = "effscale",
    as_json: opt.AsJson = False,
    cost: opt.CostOpt = opt.Cost.flops,
    cost_batch: opt.CostBatch = None,
    runtime: opt.RuntimeOpt = opt.Runtime.torch,
    keep_weights: opt.KeepWeights = False,
    run: opt.RunOptions,
) -> None:
    """The φ=1 grid search over α (depth), β (width), γ (resolution) at 2× the base's FLOPs.

    Candidates are compared at equal cost where the coefficients are used: each is the base
    at full size (b0: 224 px) scaled by α, β, γ, β solved (by default) so that its measured
    FLOPs are 2× the base's, kept within ±5 %. Each is trained briefly as a proxy (same depth
    and width, input = the proxy base size × γ, never above the dataset's native size, stem
    stride lowered so the final maps stay ≥ 2×2) on a held-out split. Rerunning the same
    command resumes an unfinished run.

    Select, then confirm: the screening trains every candidate and the base once and only
    chooses; the base and the top --confirm-top candidates are then retrained with
    --confirm-factor × the epochs on fresh seeds, one round (one more seed each) at a time,
    until a candidate is separated above the base, --confirm-max-seeds is reached or the
    next round would pass --time. The verdict comes from those trainings alone: SE =
    sqrt(SE_examples² + SE_seeds²) (paired bootstrap over validation examples; pooled seed
    std of the confirmation), a t test on Welch–Satterthwaite degrees of freedom, Holm over
    every confirmed candidate vs the base and every confirmed pair, times the number of
    looks, and for each comparison the smallest difference it could detect with 80 % power.
    The answer is the first candidate in the screening's order separated above the base
    with none separated above it: the screening's pick when it qualifies. Shrinking (--phi
    below 0) asks which direction loses least: no candidate is expected to beat the costlier
    base, so the answer is the first candidate separated above every other confirmed one,
    and the base is reported as the reference. An undecided answer is written but marked
    (decided: false, a first line in every config).

    --cost latency (or params, activations, train-step) makes the candidates equal in that
    cost instead of FLOPs: β solved on it, the ±5 % window on it, measured on the full-size
    models on this device. Every run also reports accuracy against each measured cost: the
    Pareto front (table, pareto.csv, pareto.png).
    """
    if repeat_top and (repeats or run.preset().repeats) < 2:
        raise typer.BadParameter("needs --repeats 2 or more", param_hint="--repeat-top")
    chosen = run.chosen_budget(
        step=step, gamma_max=gamma_max, repeats=repeats,
        pruner=pruner.value if pruner else None, resolution_step=resolution_step,
        flops_tolerance=flops_tolerance, gamma_step=gamma_step, alpha_max=alpha_max,
        repeat_top=repeat_top, confirm_top=confirm_top, confirm_factor=confirm_factor,
        confirm_seeds=confirm_seeds, confirm_max_seeds=confirm_max_seeds,
        ladder_rungs=ladder_rungs)
    if time_budget is not None:
        chosen = replace(chosen, time_limit=parse_duration(time_budget, "--time"))
    if ladder_time is not None:
        chosen = replace(chosen, ladder_time=parse_duration(ladder_time, "--ladder-time"))
    if chosen.confirm_max_seeds < chosen.confirm_seeds:
        raise typer.BadParameter(f"is below --confirm-seeds {chosen.confirm_seeds}",
                                 param_hint="--confirm-max-seeds")
    if resolution_step is not None and gamma_step is None:
        chosen = chosen.override(gamma_step=None)
    window = None if chosen.flops_tolerance is None or chosen.flops_tolerance < 0 \
        else chosen.flops_tolerance
    check_phi(phi)
    if phi == 0:
        raise EffscaleError("--phi 0 asks for the base's own cost: nothing to search")
    grid = budget_grid(chosen, beta_max=beta_max, tolerance=tolerance, beta=beta_mode.value,
                       target=2.0 ** phi)
    repeat_top = chosen.repeat_top if chosen.repeats >= 2 else 0
    settings = SearchSettings(**opt.settings_fields(run, chosen), grid=grid,
                              flops_tolerance=window, study=study, repeat_top=repeat_top,
                              cost=cost.value, cost_batch=cost_batch,
                              runtime=opt.runtime_for(cost.value, runtime),
                              keep_weights=keep_weights)
    events = SearchEvents(run.quiet, dry_run=run.dry_run)
    if not run.dry_run and not run.quiet:
        render.err.print(f"budget {chosen.name}: {chosen.train_size or 'all'} training images, "
                         f"{chosen.epochs} epochs, proxy base {chosen.resolution} px; expected "
                         f"wall time {chosen.expected or 'not measured'}", markup=False,
                         highlight=False)
        render.err.print(stage_plan(chosen, grid.target), markup=False, highlight=False)
    started = time.monotonic()
    outcome = run_with_progress(
        lambda: run_search(settings, events, run.resume_text(), run.dry_run), events)
    if run.dry_run:
        prepared = outcome.prepared
        kept = [c for c in prepared.candidates.values() if not c.is_confirmation]
        if as_json:
            render.print_json({**feasible_document(kept, prepared.dropped, prepared.settings),
                               "estimate": prepared.estimate or None})
        else:
            render.out.print(feasible_table(kept, prepared.dropped, prepared.grid_points))
        search_dry_run_line(outcome)
        return
    answer = outcome.result
    html_report(outcome.run_dir, settings.storage, settings.study, answer)
    report_end(outcome, "search", started)
    if answer is None:  # trainings still open (another worker's): nothing is answered yet
        if as_json:
            render.print_json({})
        return
    if as_json:
        render.print_json(dict(answer.document))
    else:
        print_answer(answer, outcome.run_dir)


def search_dry_run_line(outcome: Any) -> None:
    """What a dry run would train: every stage's trainings from the estimate (the work items
    alone are only the screening's)."""
    estimate = getattr(outcome.prepared, "estimate", None)
    if not estimate:
        dry_run_line(outcome)
        return
    stages = ", ".join(f"{s['stage']} {count_span(*s['trainings'])}"
                       for s in estimate["stages"])
    wall = f", ~{span(*estimate['wall_s'])}" if estimate.get("timed", True) else ""
    render.err.print(f"dry run: {count_span(*estimate['trainings'])} trainings would run "
                     f"({stages}) in {outcome.run_dir}{wall}", markup=False)


def html_report(run_dir: Path, storage: str | None, study: str,
                answer: SearchAnswer | None = None) -> None:
    """``report.html`` at the end of a run, from the answer its outputs were written from;
    a failure is a warning, never the run's (``effscale report RUN --html --debug`` shows it
    again with its traceback)."""
    try:
        write_run_report(run_dir, storage, study, answer)
    except Exception as exc:
        render.err.print(f"warning: report.html not written: {exc.__class__.__name__}: {exc}",
                         markup=False, highlight=False)


def report(
    run: opt.RunDirectory = None,
    storage: opt.Storage = None,
    study: opt.StudyName = "effscale",
    out: opt.ReportOut = None,
    html: opt.HtmlReport = False,
    as_json: opt.AsJson = False,
) -> None:
    """Write a search's outputs (coefficients, trials.csv, configs, plot) from its study, at any
    time, also while it runs; with --html also report.html (of a search or a compare run).
    --json prints coefficients.yaml (for a compare run: the files written) as JSON."""
    if run is None and storage is None:
        raise EffscaleError("give a run directory or --storage URL --study NAME")
    if run is not None and not (run / "settings.yaml").is_file():
        raise EffscaleError(f"{run}: not an effscale run directory (no settings.yaml)")
    if run is not None and storage is None and not (run / JOURNAL_NAME).is_file():
        raise EffscaleError(f"{run}: its study is not in the run directory (no {JOURNAL_NAME}); "
                            "give the search's --storage URL and --study NAME")
    target = out or run or Path(f"report-{study}")
    loaded = open_run_study(run or target, storage, study, render.err.print)
    if "settings" not in loaded.user_attrs:
        raise EffscaleError(f"study {study!r} was not written by effscale search")
    if run_settings(loaded).get("command") == "compare":
        if not html:
            raise EffscaleError(f"study {loaded.study_name!r} is a compare run: compare writes "
                                "its outputs; --html writes its report.html")
        page = write_report(run or target, loaded, target)
        if as_json:
            render.print_json({"written": [str(page)]})
        else:
            render.out.print(f"wrote {page}", markup=False, highlight=False)
        return
    atomic.remove_stray_temps(target)
    atomic.remove_stray_temps(target / "configs")
    counts = progress_counts(loaded)
    answer = write_outputs(loaded, target)
    if html:
        write_report(run or target, loaded, target, answer)
    render.err.print(f"{counts['settled']} of {counts['items']} trainings settled "
                     f"({counts['running']} running)", markup=False)
    if as_json:
        render.print_json(dict(answer.document))
    else:
        print_answer(answer, target)
