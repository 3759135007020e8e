"""effscale.experiment.settings: the seed streams of a run's items."""

from __future__ import annotations

from effscale.experiment.budgets import get_budget
from effscale.experiment.settings import (
    FRESH_SEED_OFFSET,
    RunSettings,
    ladder_seed_offset,
    seed_for,
)
from effscale.train.trainer import Recipe


def settings(seed: int = 0) -> RunSettings:
    return RunSettings(base="b0", dataset="synthetic", budget=get_budget("smoke"),
                       recipe=Recipe(), seed=seed)


def test_screening_confirmation_and_each_ladder_rung_draw_disjoint_seeds() -> None:
    """Seed i of each stream, for every seed a budget can ask for: no seed is shared between
    the screening, the confirmation and any rung of the ladder (a rung that reused the
    confirmation's seeds retrained the very same base runs when a candidate's rung size was
    the base's own)."""
    run = settings()
    streams = {"screening": 0, "confirmation": FRESH_SEED_OFFSET,
               **{f"rung {r}": ladder_seed_offset(r) for r in (8, 14, 16, 20, 64, 160)}}
    drawn = {name: {seed_for(run, i, offset) for i in range(50)}
             for name, offset in streams.items()}
    names = list(drawn)
    for i, a in enumerate(names):
        assert len(drawn[a]) == 50
        for b in names[i + 1:]:
            assert not drawn[a] & drawn[b], (a, b)


def test_the_run_seed_moves_every_stream_and_old_streams_keep_their_seeds() -> None:
    assert seed_for(settings(), 2) == 2000
    assert seed_for(settings(), 1, FRESH_SEED_OFFSET) == 101_000  # runs recorded before
    assert seed_for(settings(7), 0, ladder_seed_offset(14)) == 11_400_007
