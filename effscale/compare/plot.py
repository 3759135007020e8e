"""The comparison picture: each model's accuracy at equal full-size FLOPs."""

from __future__ import annotations

import io
from typing import Any


def plot_compare(result: Any) -> bytes:
    """PNG bytes for ``effscale compare``: accuracy ± seed std per model (bars, measured FLOPs
    ratio on each) and accuracy against measured FLOPs."""
    from matplotlib.figure import Figure  # no pyplot: no backend or figure left behind

    settings = result.settings
    colors = {"base": "black", "compound": "tab:red", "depth": "tab:blue", "width": "tab:green",
              "resolution": "tab:purple", "fast": "tab:orange"}
    fig = Figure(figsize=(12, 5), dpi=110)
    left, right = fig.subplots(1, 2)
    names, means, stds = [], [], []
    for model, row in result.rows:
        done = row is not None and row.completed
        names.append(f"{model.full.name}\n×{model.full.flops_ratio:.2f} FLOPs")
        means.append(row.mean * 100 if done else 0.0)
        stds.append(row.std * 100 if done else 0.0)
        if done:
            right.errorbar([model.full.complexity.flops / 1e6], [row.mean * 100],
                           yerr=[row.std * 100] if row.std else None, fmt="o", markersize=8,
                           color=colors.get(getattr(model, "kind", model.full.name), "grey"),
                           label=model.full.name)
    left.bar(range(len(names)), means, yerr=stds, capsize=4,
             color=[colors.get(getattr(m, "kind", m.full.name), "grey") for m, _ in result.rows])
    left.set_xticks(range(len(names)), names, fontsize=8)
    if any(means):
        low = min(m for m in means if m) - 3 * max([*stds, 1.0])
        left.set_ylim(max(0.0, low), max(means) + 3 * max([*stds, 1.0]))
    left.set_ylabel("validation accuracy (%), mean ± seed std")
    left.set_title(f"{settings.base} at φ={settings.phi:g} on {settings.dataset} "
                   f"({settings.budget} budget)")
    left.grid(axis="y", alpha=0.3)
    right.set_xlabel("measured MFLOPs (full size)")
    right.set_ylabel("validation accuracy (%)")
    right.set_title("accuracy against measured FLOPs")
    right.grid(alpha=0.3)
    if result.rows and any(r is not None and r.completed for _, r in result.rows):
        right.legend(fontsize=8, loc="best")
    fig.suptitle("equal-FLOPs comparison: compound vs single-dimension scaling", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
