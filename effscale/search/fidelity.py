"""Proxy fidelity: does the screening's ranking survive the confirmation's longer training?

The confirmation (:mod:`effscale.search.confirm`) retrains the base and the screening's top
candidates with more epochs on fresh seeds. This module compares the two rankings of those
models: Kendall's tau-b between the screening means and the confirmation means, and whether
the screening's winner is still first among them *with the base counted*: a winner that
falls below the base on confirmation did not hold, whatever the other candidates did.

Note:
    With the base and two candidates, tau is over 3 pairs: one swapped pair moves it by 2/3.
    It says whether the short schedule ranked these models as the longer one does, not how
    faithful the proxy is in general.
"""

from __future__ import annotations

from typing import Any

from effscale.experiment.stats import kendall_tau
from effscale.search.candidates import BASE_KEY, CONFIRM_PREFIX


def summarize(rows: dict[str, Any], winner: str | None, factor: int,
              tied: list[str] | None = None, shrinking: bool = False) -> dict[str, Any]:
    """Kendall's tau-b between the screening's and the confirmation's rankings, and whether
    the screening's pick (``winner``) held, from report rows (``Row`` objects keyed by
    candidate). ``tied``: the models the decision found within the noise of the pick (a
    tied model ranked first on confirmation is said to be tied, not to have beaten it).
    Empty before two models have both. ``shrinking``: the candidates cost less than the base,
    which is expected to rank first, so "held" is judged among the candidates alone (tau
    still covers every model)."""
    confirmed = {key[len(CONFIRM_PREFIX):]: row for key, row in rows.items()
                 if key.startswith(CONFIRM_PREFIX) and row.completed}
    common = [key for key in confirmed if key in rows and rows[key].completed]
    if len(common) < 2:
        return {}
    screening = [rows[key].mean for key in common]
    longer = [confirmed[key].mean for key in common]
    contenders = [k for k in common if not (shrinking and k == BASE_KEY)] or common
    first = max(contenders, key=lambda k: confirmed[k].mean)
    checked = winner is not None and winner in common
    if checked and confirmed[winner].mean >= confirmed[first].mean:
        first = winner  # a tie for first is held
    seconds = sum(confirmed[key].seconds for key in common)
    tau = kendall_tau(screening, longer)
    return {
        "schedule": f"{factor}x the epochs, fresh seeds, same data and input sizes",
        "models": common,
        "screening_accuracy": {k: round(rows[k].mean, 5) for k in common},
        "confirmation_accuracy": {k: round(confirmed[k].mean, 5) for k in common},
        "kendall_tau_b": None if tau != tau else round(tau, 3),
        "pairs": len(common) * (len(common) - 1) // 2,
        "winner": winner,
        "first_on_confirmation": first,
        "winner_checked": checked,
        "winner_held": checked and first == winner,
        "held_among": "candidates" if shrinking else "the base included",
        "first_tied_with_winner": checked and first != winner and first in (tied or []),
        "cost_seconds": round(seconds, 1),
    }


def describe(summary: dict[str, Any]) -> str:
    """One line for the report."""
    if not summary:
        return ""
    if not summary["winner_checked"]:
        held = ("the screening's pick was NOT checked (its confirmation trainings did not "
                "finish)")
    elif summary["winner_held"]:
        held = ("the screening's pick held (first on confirmation, "
                f"{summary.get('held_among', 'the base included')})")
    elif summary.get("first_tied_with_winner"):
        held = (f"{summary['first_on_confirmation']} ranked first on confirmation, within the "
                "noise of the screening's pick (tied)")
    else:
        first = summary["first_on_confirmation"]
        held = (f"the screening's pick did NOT hold ({'the base' if first == BASE_KEY else first}"
                " ranked first on confirmation)")
    tau = summary["kendall_tau_b"]
    tau_text = "undefined (tied accuracies)" if tau is None else f"{tau:+.2f}"
    return (f"screening vs confirmation ({len(summary['models'])} models, "
            f"{summary['cost_seconds'] / 60:.0f} min of confirmation): Kendall's τ-b "
            f"{tau_text} over {summary['pairs']} pairs, {held}")
