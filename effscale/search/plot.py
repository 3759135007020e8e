"""The search picture: accuracy vs measured FLOPs, and accuracy over the alpha-beta plane."""

from __future__ import annotations

import io
from typing import Any

from effscale.experiment.rows import Row
from effscale.search.design import design
from effscale.search.recorded import RecordedSearch
from effscale.search.selection import Selection


def plot_search(rows: dict[str, Row], selection: Selection, settings: RecordedSearch) -> bytes:
    """PNG bytes with three panels; the base and the winner are marked.

    Left: accuracy against the FLOPs ratio measured at full size (the cost the coefficients
    carry, with the equal-cost window shaded), each candidate's ratio at its proxy shown as a
    hollow marker joined to it (the proxy's distortion). Right: accuracy over the alpha-gamma
    plane (beta is solved or read off the label). Third: the confirmation, the trainings the
    verdict comes from: each fresh seed's accuracy and each model's mean.
    """
    from matplotlib.figure import Figure  # no pyplot: no backend or figure left behind

    done = [r for r in rows.values() if r.completed and r.candidate != "base"]
    fig = Figure(figsize=(17, 5), dpi=110)
    left, right, third = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.1, 0.8]})
    designs = {r.candidate: design(r) for r in done}
    ratios = [designs[r.candidate].flops_ratio or 0.0 for r in done]
    accs = [r.mean * 100 for r in done]
    errs = [r.std * 100 for r in done]
    window = settings.flops_window
    if window:
        left.axvspan(window[0], window[1], color="tab:green", alpha=0.1,
                     label="equal-cost window (full size)")
    for r, acc in zip(done, accs):
        proxy = designs[r.candidate].proxy_flops_ratio or 0.0
        if proxy:
            left.plot([proxy, designs[r.candidate].flops_ratio or 0.0], [acc, acc], color="grey",
                      linewidth=0.8, alpha=0.6)
            left.plot([proxy], [acc], "o", markerfacecolor="none", color="grey", alpha=0.8)
    left.errorbar(ratios, accs, yerr=errs if any(errs) else None, fmt="o", color="tab:blue",
                  alpha=0.8, label="φ=1 candidates (hollow: ratio at the proxy)")
    base, winner = selection.base, selection.winner
    if base is not None and base.completed:
        left.errorbar([1.0], [base.mean * 100], yerr=[base.std * 100] if base.std else None,
                      fmt="s", color="black", markersize=9, label="base (φ=0)")
    if winner is not None:
        won = design(winner)
        left.plot([won.flops_ratio or 0.0], [winner.mean * 100], marker="*",
                  color="tab:red", markersize=18, linestyle="none",
                  label=f"winner {won.label()}")
    chance = 100.0 * settings.chance
    left.axhline(chance, color="tab:orange", linestyle=":", linewidth=1, label="chance")
    left.set_xlabel("FLOPs ÷ base FLOPs (measured; filled: full size, hollow: proxy)")
    left.set_ylabel("validation accuracy (%)")
    left.set_title(f"screening: {settings.base} on {settings.dataset} "
                   f"({settings.budget} budget)")
    left.legend(fontsize=8, loc="best")
    left.grid(alpha=0.3)
    if done:
        points = right.scatter([designs[r.candidate].alpha for r in done],
                               [designs[r.candidate].gamma for r in done], c=accs,
                               cmap="viridis",
                               s=160, edgecolors="black")
        for r in done:
            alpha, beta, gamma = designs[r.candidate].coefficients
            right.annotate(f"β={beta:.2f}\n{r.mean:.1%}", (alpha, gamma),
                           textcoords="offset points", xytext=(8, 4), fontsize=7)
        fig.colorbar(points, ax=right, label="validation accuracy (%)")
        if winner is not None:
            right.scatter([design(winner).alpha], [design(winner).gamma],
                          marker="*", s=400, color="tab:red", edgecolors="white")
    right.margins(x=0.2, y=0.15)
    right.set_xlabel("α (depth)")
    right.set_ylabel("γ (resolution)")
    right.set_title("accuracy over the α-γ plane, all at equal full-size FLOPs")
    right.grid(alpha=0.3)
    _confirmation_panel(third, selection)
    fig.suptitle(selection.verdict[:190], fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _confirmation_panel(axis: Any, selection: Selection) -> None:
    """Each confirmed model's fresh-seed accuracies (dots) and mean (bar)."""
    decision = selection.decision
    models = [] if decision is None else \
        [r for r in [decision.base, decision.winner, *decision.rivals] if r is not None]
    if not models:
        axis.text(0.5, 0.5, "no confirmation: nothing decided", ha="center", va="center",
                  transform=axis.transAxes)
        axis.set_axis_off()
        return
    for i, row in enumerate(models):
        colour = "black" if row.candidate == "base" else \
            "tab:red" if decision is not None and row is decision.winner else "tab:blue"
        axis.bar([i], [row.mean * 100], color=colour, alpha=0.25, width=0.6)
        axis.plot([i] * len(row.accuracies), [a * 100 for a in row.accuracies], "o",
                  color=colour)
    accuracies = [a * 100 for r in models for a in r.accuracies]
    low, high = min(accuracies), max(accuracies)
    axis.set_ylim(low - max(1.0, 0.5 * (high - low)), high + max(1.0, 0.5 * (high - low)))
    axis.set_xticks(range(len(models)))
    axis.set_xticklabels([r.candidate for r in models], rotation=15, fontsize=7)
    axis.set_ylabel("validation accuracy (%), fresh seeds")
    verdict = "decided" if selection.decided else "UNDECIDED"
    axis.set_title(f"confirmation ({verdict}): the verdict's trainings")
    axis.grid(alpha=0.3, axis="y")
