"""The search's answer: the screening's ranking, its winner, and the verdict.

The winner is the best mean validation accuracy among completed screening candidates in the
cost window. The screening's own margins are shown (t intervals on the pooled seed noise,
Holm-corrected over the testable ones) but decide nothing: the winner was picked as the
maximum of those same trainings. The verdict, ``signal`` and ``decided`` come from the
confirmation stage alone (:mod:`effscale.search.decision`), applied by :func:`with_decision`.
The top-N choices the follow-ups make (repeat seeds, confirmation) are made once and
remembered in the study.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import optuna

from effscale.experiment import stats
from effscale.experiment.rows import Row, collect_rows
from effscale.search.candidates import BASE_KEY, CONFIRM_PREFIX, LADDER_PREFIX
from effscale.search.decision import CHANCE_MARGIN, Decision
from effscale.search.recorded import recorded_search


@dataclass
class Selection:
    """The winner and what can honestly be said about it."""

    winner: Row | None
    runner_up: Row | None
    base: Row | None
    ranked: list[Row]
    signal: bool
    verdict: str
    comparisons: list[stats.Comparison] = field(default_factory=list)
    tied: list[str] = field(default_factory=list)
    stability: dict[str, Any] = field(default_factory=dict)
    seed_std: float = 0.0  # pooled over every model with two or more seeds
    failed: list[Row] = field(default_factory=list)  # no result: diverged, errors, OOM
    noise_from_base_only: bool = False  # only the base ran under several seeds
    seed_dof: int = 0  # degrees of freedom of seed_std: sum(n_i - 1)
    untested: list[str] = field(default_factory=list)  # one seed on a side: no test possible
    decision: Decision | None = None  # the confirmation's verdict (None: no confirmation)
    screening_verdict: str = ""  # what the screening alone says (never the decision)
    pick: Row | None = None  # the screening's choice; ``winner`` once a confirmation decides

    @property
    def named_by(self) -> str:
        """Who named the winner: the screening, or the confirmation in the pick's place."""
        pick = self.screening_pick
        if pick is not None and self.winner is not None and pick is not self.winner:
            return f"confirmed in place of the screening's pick {pick.candidate}"
        return "the screening's pick"

    @property
    def screening_pick(self) -> Row | None:
        """The screening's own winner (the best of its trainings), whatever was decided."""
        return self.pick if self.pick is not None else self.winner

    @property
    def decided(self) -> bool:
        """The winner is separated above the base on confirmation seeds."""
        return self.decision is not None and self.decision.signal

def with_decision(selection: Selection, decision: Decision | None,
                  confirmation_planned: bool = True) -> Selection:
    """The selection with its verdict and ``signal`` from the confirmation; without one,
    a screening-only verdict that says it decides nothing. When the confirmation decides
    for another candidate than the screening's pick (the pick was not confirmed), that
    candidate becomes the winner and the pick the runner-up."""
    selection.screening_verdict = selection.verdict
    selection.decision = decision
    selection.pick = selection.winner
    if decision is not None:
        selection.signal = decision.signal
        selection.verdict = decision.verdict
        named = decision.winner.candidate if decision.winner is not None else None
        if decision.signal and selection.winner is not None \
                and named != selection.winner.candidate:
            row = next((r for r in selection.ranked if r.candidate == named), None)
            if row is not None:
                selection.runner_up, selection.winner = selection.winner, row
        return selection
    selection.signal = False
    if selection.winner is None or selection.verdict.startswith("NO SIGNAL"):
        return selection
    why = ("the confirmation has not run yet" if confirmation_planned else
           "this budget has no confirmation stage (--confirm-top 0)")
    selection.verdict = (f"UNDECIDED (screening only: {why}, and a winner picked as the best "
                         "of these same trainings is biased upward, so they decide nothing); "
                         f"screening: {selection.verdict}")
    return selection


def select(rows: dict[str, Row], num_classes: int, flops_window: tuple[float, float] | None
           = None, target: float = 2.0) -> Selection:
    """Best mean validation accuracy among completed candidates in the FLOPs window; ties go
    to fewer measured FLOPs. Then the signal checks described in
    :mod:`effscale.experiment.stats`."""
    base = rows.get(BASE_KEY)
    ranked = [r for r in rows.values() if r.candidate != BASE_KEY and r.completed]
    if flops_window is not None:
        low, high = flops_window
        ranked = [r for r in ranked if low <= float(r.attrs.get("flops_ratio", 0)) <= high]
    ranked.sort(key=lambda r: (-round(r.mean, 6), float(r.attrs.get("flops", 0))))
    winner = ranked[0] if ranked else None
    runner = ranked[1] if len(ranked) > 1 else None
    selection = Selection(winner, runner, base, ranked, False, "")
    selection.failed = [r for r in rows.values() if not r.completed and r.failures
                        and r.states and r.states[-1] == "FAIL"]
    if winner is None:
        selection.verdict = "no candidate has completed yet"
        return selection
    chance = 1.0 / num_classes
    noise, dof = stats.pooled_seed_noise([r.accuracies for r in rows.values() if r.completed])
    selection.seed_std, selection.seed_dof = noise, dof
    selection.noise_from_base_only = dof > 0 and all(
        r.candidate == BASE_KEY for r in rows.values() if len(r.accuracies) >= 2)
    if base is not None and base.completed and base.mean < chance + CHANCE_MARGIN:
        selection.verdict = (
            f"NO SIGNAL: the base reached {base.mean:.1%} validation accuracy, within "
            f"{CHANCE_MARGIN:.0%} of chance ({chance:.1%}); the proxy did not learn, so the "
            "ranking of candidates is noise. Use a larger budget.")
        return selection
    _compare_all(selection, noise, dof, target)
    return selection


def _names(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (" ..." if len(names) > most else "")


def _compare_all(selection: Selection, noise: float, dof: int, target: float = 2.0) -> None:
    """The winner against the base and against every other ranked candidate, Holm-corrected
    as one family; ``signal`` only when the winner is separated above the base."""
    winner, base = selection.winner, selection.base
    assert winner is not None
    wc = winner.mean_correct
    if wc is None:
        selection.verdict = ("winner chosen by accuracy alone (no per-example results stored), "
                             "so whether it beats the base is untested")
        return
    seeds = len(winner.accuracies)
    family: list[stats.Comparison] = []
    has_base = base is not None and base.mean_correct is not None
    if has_base:
        family.append(stats.compare(winner.candidate, wc, BASE_KEY, base.mean_correct, noise,
                                    seeds_a=seeds, seeds_b=len(base.accuracies),
                                    noise_dof=dof))
    for row in selection.ranked[1:]:
        if row.mean_correct is not None:
            family.append(stats.compare(winner.candidate, wc, row.candidate, row.mean_correct,
                                        noise, seeds_a=seeds, seeds_b=len(row.accuracies),
                                        noise_dof=dof))
    selection.comparisons = stats.holm_family(family)
    vs_base = selection.comparisons[0] if has_base else None
    others = selection.comparisons[1:] if has_base else selection.comparisons
    selection.tied = [c.b for c in others if c.testable and not c.separated]
    selection.untested = [c.b for c in others if not c.testable]
    selection.signal = vs_base is not None and vs_base.separated and vs_base.margin > 0

    holm = (f"{stats.format_p(vs_base.p_adjusted, 'Holm p')} over {vs_base.family} comparisons"
            if vs_base is not None else "")
    if vs_base is not None and target < 1 and vs_base.testable:
        base_part = (f"the winner is {vs_base.margin * 100:+.2f} points against the base, which "
                     f"costs {1 / target:.2g}× as much ({holm}); shrinking asks which candidate "
                     "loses least, so its comparisons with the other candidates matter")
    elif vs_base is None:
        base_part = "there is no base result, so whether the winner beats the base is untested"
    elif not vs_base.testable:
        base_part = (f"whether the winner beats the base is untested ({vs_base.margin * 100:+.2f}"
                     f" points; {stats.NOT_TESTABLE}: the winner has {seeds}, the base "
                     f"{vs_base.seeds_b})" if vs_base.untestable == stats.NOT_TESTABLE else
                     f"whether the winner beats the base is untested ({vs_base.untestable})")
    elif selection.signal:
        base_part = f"the winner beats the base by {vs_base.margin * 100:.2f} points ({holm})"
    elif vs_base.separated:
        base_part = (
            f"the winner does NOT beat the base: it is {abs(vs_base.margin) * 100:.2f} points "
            f"BELOW it ({holm}); at this budget the ~2x-FLOPs candidates are under-trained, "
            "so their ranking compares short-training speed as much as capacity")
    else:
        base_part = (f"NOT SEPARATED FROM THE BASE: the winner's {vs_base.margin * 100:+.2f} "
                     f"points ({holm}) are within the noise, so at this budget the search "
                     "cannot tell the candidates from the base")

    runner = selection.runner_up
    runner_cmp = next((c for c in others if runner is not None and c.b == runner.candidate),
                      None)
    if runner is None:
        runner_part = "there is no runner-up"
    elif runner_cmp is None:
        runner_part = "the runner-up has no per-example results, so it was not compared"
    elif runner_cmp.separated:
        runner_part = (f"it is separated from the runner-up {runner.candidate} "
                       f"({stats.format_p(runner_cmp.p_adjusted, 'Holm p')})")
    elif runner_cmp.testable:
        runner_part = (f"it is NOT separated from the runner-up: statistically tied with "
                       f"{len(selection.tied)} candidate(s): {_names(selection.tied)}")
    else:
        runner_part = f"whether it beats the runner-up {runner.candidate} is untested"
    if selection.untested:
        runner_part += (
            f"; its ranking against {len(selection.untested)} candidate(s) with a single seed "
            f"on a side ({_names(selection.untested)}) is untested: --repeat-top N (N >= 2) "
            "trains the best candidates under more seeds")
        if runner_cmp is not None and not runner_cmp.testable and selection.tied:
            runner_part += (f"; statistically tied with {len(selection.tied)} candidate(s): "
                            f"{_names(selection.tied)}")

    if dof == 0:
        noise_part = ("seed noise not measured (no model has two seeds: use --repeats 2 or "
                      "more), so only example noise is counted and nothing is testable")
    else:
        noise_part = (f"pooled seed std {noise:.2%} on {dof} degree(s) of freedom "
                      f"(t_0.975 = {stats.t_quantile(0.975, dof):.2f})")
        if selection.noise_from_base_only:
            # Measured on CIFAR-10 at the quick budget: the base's two seeds differed by 0.06
            # points, the compound phi=1 model's by 1.24 (effscale compare, README).
            noise_part += ("; seed noise measured on the base only, and larger models can "
                           "vary more between seeds: --repeat-top 2 measures it on the best "
                           "candidates")
    selection.verdict = f"{base_part}; {runner_part}; {noise_part}"



def remembered_top(study: optuna.Study, attr: str, top: int) -> list[str]:
    """The ``top`` best grid candidates by the report's ranking, chosen once and stored in the
    study's user attribute ``attr``, so a resume or another worker gets the same ones even
    after later trainings have moved the ranking."""
    stored = study.user_attrs.get(attr)
    if stored is not None:
        return list(stored)
    settings = recorded_search(study)
    selection = select(grid_rows(collect_rows(study)), settings.num_classes,
                       settings.flops_window)
    keys = [row.candidate for row in selection.ranked[:top]]
    study.set_user_attr(attr, keys)
    return keys


def is_screening(key: str) -> bool:
    """A screening model's key: not a confirmation's nor the proxy ladder's."""
    return not key.startswith((CONFIRM_PREFIX, LADDER_PREFIX))


def grid_rows(rows: dict[str, Row]) -> dict[str, Row]:
    """The rows that take part in the ranking: the screening's, not the confirmation's nor
    the proxy ladder's."""
    return {k: v for k, v in rows.items() if is_screening(k)}


def confirmation_rows(rows: dict[str, Row]) -> dict[str, Row]:
    """The confirmation's rows, keyed by the model they confirm (``confirm/`` removed)."""
    return {k[len(CONFIRM_PREFIX):]: replace(v, candidate=k[len(CONFIRM_PREFIX):])
            for k, v in rows.items() if k.startswith(CONFIRM_PREFIX)}

