"""``--repeat-top N``: after the grid, train the N best candidates under more seeds.

Note:
    The N are chosen once, from the seed-0 results of a finished grid, and stored in the
    study (user attribute ``repeat_top``), so a resumed or second worker enqueues the same
    items instead of re-choosing from a ranking that the extra seeds have already moved.
    Items are enqueued through :func:`effscale.experiment.queue.open_study`'s machinery; an item
    enqueued twice by two machines at once is run once (``claim_next`` fails the duplicate).
"""

from __future__ import annotations

import optuna

from effscale.experiment.queue import ITEM_PARAM, item_key, item_states
from effscale.search.selection import remembered_top

ATTR = "repeat_top"


def repeat_choices(keys: list[str], repeats: int) -> list[str]:
    """Every item a repeat could add: seeds 1..repeats-1 of each candidate key."""
    return [item_key(key, s) for key in keys for s in range(1, repeats)]


def chosen_top(study: optuna.Study, top: int) -> list[str]:
    """The ``top`` best candidates by mean validation accuracy (the report's ranking), chosen
    once and remembered in the study."""
    return remembered_top(study, ATTR, top)


def enqueue_top(study: optuna.Study, top: int, repeats: int) -> list[str]:
    """Enqueue seeds 1..repeats-1 of the ``top`` best candidates; returns the items added
    (none when they are already in the study)."""
    if top < 1 or repeats < 2:
        return []
    existing = item_states(study)
    added = []
    for item in repeat_choices(chosen_top(study, top), repeats):
        if item not in existing:
            study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
            added.append(item)
    return added
