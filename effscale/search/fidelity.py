"""The proxy-fidelity check: does the proxy's ranking survive a larger proxy?

After the grid (and ``--repeat-top``), the base and the top ``k`` candidates are trained once
more, seed 0, with ``factor`` times the epochs (same data, same sizes; the one-cycle schedule
spans the longer run). The check reports Kendall's tau between the proxy ranking (mean over
seeds) and the longer one over those ``k + 1`` models, and whether the proxy's winner is
still first among the candidates.

Note:
    With ``k = 3`` tau is over 4 models (6 pairs): one swapped pair moves it by 1/3. It is a
    check that the ranking is not an artefact of a short schedule, not a measurement of
    proxy fidelity in general. The models are chosen once, from the finished grid, and stored
    in the study (user attribute ``transfer_top``) so a resume or a second worker agrees.
"""

from __future__ import annotations

from typing import Any

import optuna

from effscale.experiment.queue import ITEM_PARAM, item_key, item_states
from effscale.experiment.stats import kendall_tau
from effscale.search.candidates import BASE_KEY, TRANSFER_PREFIX, transfer_key
from effscale.search.results import remembered_top

ATTR = "transfer_top"


def chosen(study: optuna.Study, top: int) -> list[str]:
    """The base and the ``top`` best grid candidates, chosen once and remembered."""
    return [BASE_KEY] + [k for k in remembered_top(study, ATTR, top) if k != BASE_KEY]


def enqueue_check(study: optuna.Study, top: int, factor: int) -> tuple[list[str], float]:
    """Enqueue the check's items; returns the items added and the estimated seconds (each
    model's first training time, train and validation, times ``factor``)."""
    if top < 1:
        return [], 0.0
    keys = chosen(study, top)
    existing = item_states(study)
    added, seconds = [], 0.0
    for key in keys:
        item = item_key(transfer_key(key), 0)
        if item in existing:
            continue
        study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
        added.append(item)
        first = existing.get(item_key(key, 0), [])
        done = [t for t in first if t.state == optuna.trial.TrialState.COMPLETE]
        if done:
            attrs = done[0].user_attrs
            seconds += factor * (float(attrs.get("train_seconds", 0))
                                 + float(attrs.get("val_seconds", 0)))
    return added, seconds


def summarize(rows: dict[str, Any], winner: str | None, factor: int) -> dict[str, Any]:
    """Kendall's tau between the proxy ranking and the check's, and whether the winner held,
    from report rows (``Row`` objects keyed by candidate). Empty before the check has run."""
    checked = {key[len(TRANSFER_PREFIX):]: row for key, row in rows.items()
               if key.startswith(TRANSFER_PREFIX) and row.completed}
    common = [key for key in checked if key in rows and rows[key].completed]
    if len(common) < 2:
        return {}
    proxy = [rows[key].mean for key in common]
    longer = [checked[key].mean for key in common]
    candidates = [key for key in common if key != BASE_KEY]
    best_longer = max(candidates, key=lambda k: checked[k].mean) if candidates else None
    seconds = sum(checked[key].seconds for key in common)
    return {
        "schedule": f"{factor}x the epochs, seed 0, same data and input sizes",
        "models": common,
        "proxy_accuracy": {k: round(rows[k].mean, 5) for k in common},
        "check_accuracy": {k: round(checked[k].mean, 5) for k in common},
        "kendall_tau": round(kendall_tau(proxy, longer), 3),
        "pairs": len(common) * (len(common) - 1) // 2,
        "winner": winner,
        "winner_after_check": best_longer,
        "winner_held": winner is not None and best_longer == winner,
        "cost_seconds": round(seconds, 1),
    }


def describe(summary: dict[str, Any]) -> str:
    """One line for the verdict."""
    if not summary:
        return ""
    held = ("the winner held" if summary["winner_held"] else
            f"the winner did NOT hold ({summary['winner_after_check']} ranked first)")
    return (f"fidelity check ({summary['schedule']}; {len(summary['models'])} models, "
            f"{summary['cost_seconds'] / 60:.0f} min): Kendall's τ {summary['kendall_tau']:+.2f} "
            f"over {summary['pairs']} pairs, {held}")
