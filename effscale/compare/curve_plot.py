"""The scaling curve's figure: accuracy against measured full-size cost, one line per
direction through the base (the paper's Fig. 8 on your data)."""

from __future__ import annotations

import io
from typing import Any

from effscale.compare.recorded import RecordedCompare

COLORS = {"depth": "tab:blue", "width": "tab:green", "resolution": "tab:purple",
          "fast": "tab:orange", "tinynet": "tab:brown"}
COMPOUND_COLORS = ("tab:red", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def plot_curve(points: list[dict[str, Any]], settings: RecordedCompare) -> bytes:
    """PNG bytes: for each direction, accuracy (95 % interval bars) against its measured
    full-size cost ratio (log scale), the base as every line's phi 0 point."""
    from matplotlib.figure import Figure  # no pyplot: no backend or figure left behind

    fig = Figure(figsize=(7.5, 5), dpi=110)
    ax = fig.subplots()
    base = next((p for p in points if p["direction"] == "base"), None)
    compounds = iter(COMPOUND_COLORS)
    cost = settings.cost_name
    for name in settings.directions:
        color = COLORS.get(name) or next(compounds, "black")
        line = sorted((p for p in points if p["direction"] == name), key=lambda p: p["phi"])
        if base is not None:
            line = sorted([base, *line], key=lambda p: p["phi"])
        done = [p for p in line if p["val_accuracy"] is not None]
        if not done:
            continue
        xs = [p["cost_ratio"] for p in done]
        ys = [p["val_accuracy"] * 100 for p in done]
        low = [(p["val_accuracy"] - p["ci_low"]) * 100 if p["ci_low"] is not None else 0.0
               for p in done]
        high = [(p["ci_high"] - p["val_accuracy"]) * 100 if p["ci_high"] is not None else 0.0
                for p in done]
        first = name == settings.directions[0]
        ax.errorbar(xs, ys, yerr=[low, high], fmt="-o", capsize=3, color=color,
                    linewidth=2.2 if first else 1.2, markersize=6 if first else 4, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"measured {cost} at full size, × the base's (log scale)")
    ax.set_ylabel("validation accuracy (%), 95 % interval")
    phis = ", ".join(f"{p:g}" for p in settings.phis)
    ax.set_title(f"{settings.base} on {settings.dataset} ({settings.budget} budget): "
                 f"scaling curves at φ = {phis}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
