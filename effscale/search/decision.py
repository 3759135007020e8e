"""The decision: the screening's winner against the base and its rivals, on confirmation
trainings alone (fresh seeds, a longer schedule), with the power of every comparison.

Selection and test never share a training: the screening chose the winner and the models
that go on (:mod:`effscale.search.confirm`); here they are compared on seeds the selection
never saw, so the verdict carries no selection bias (nor does the pick's accuracy; a
winner named by the confirmation instead is said to be chosen among the confirmed models).

Method (:mod:`effscale.experiment.stats`): every comparison carries each model's own seed
noise (Welch-Satterthwaite over the example part and the two seed parts, each seed part on
its model's seeds minus one), so a base whose seeds spread 3x a candidate's neither lends
the candidate its noise nor borrows the candidate's calm; every confirmed candidate against
the base, and every pair of confirmed candidates, are one Holm family over the testable ones.
The answer is the first candidate in the screening's order separated above the base that no
confirmed candidate is separated above: the screening's pick when it qualifies, so a pick
that fails its confirmation does not leave the run undecided when another confirmed
candidate beats the base.

Shrinking (a target below the base's cost, ``search --phi -1``) asks another question: every
candidate costs a fraction of the base, so none is expected to beat it; what matters is which
direction loses least. There the answer is the first candidate in the screening's order
separated above every other confirmed candidate (the same Holm family), and the base is
reported as the costlier reference, with the points each shrinking direction gives up. Because the
confirmation adds seeds until it decides, each adjusted p-value is multiplied by the
number of looks the plan allows (Bonferroni over looks). The smallest difference each
comparison could detect with 80 % power is computed at the strictest level it faces (the
first Holm step over the looks), for this look, for the plan's looks together, and for
more seeds, whose extra looks shrink the level again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from effscale.experiment import stats
from effscale.experiment.rows import Row
from effscale.search.candidates import BASE_KEY

METHOD = ("Selection and test are apart: the screening (every candidate once, short) picks "
          "the winner and the models that go on; the base and those models are retrained on "
          "fresh seeds with a longer schedule (confirmation), and only those trainings are "
          "compared, so the verdict carries no selection bias. Every confirmed candidate "
          "against the base, and every pair of confirmed candidates, form one Holm family; "
          "the answer is the first candidate in the screening's order that is separated "
          "above the base with no confirmed candidate separated above it (the screening's "
          "pick when it qualifies). The confirmation adds a seed to each model per round "
          "until a candidate is separated above the base, so the adjusted p-values are "
          "also multiplied by the number of looks its plan allows. When shrinking (a target "
          "below the base's cost) no candidate is expected to beat the costlier base: the "
          "answer is then the first candidate separated above every other confirmed "
          "candidate, and the confirmation runs until one is. " + stats.METHOD)
CHANCE_MARGIN = 0.05  # a base this close to chance accuracy learned nothing useful
MORE_SEEDS = (1, 2, 4)  # what the power line prices


@dataclass
class Power:
    """The smallest true difference a comparison detects with 80 % power, now and with more
    seeds on each side (``more``: extra seeds -> points, each at the level of the looks those
    seeds imply, ``more_alpha``), and over the plan's looks together (``procedure``, with the
    seeds at each look in ``plan``)."""

    versus: str
    detectable: float
    margin: float
    alpha: float
    more: dict[int, float] = field(default_factory=dict)
    procedure: float = float("nan")
    plan: list[int] = field(default_factory=list)
    more_alpha: dict[int, float] = field(default_factory=dict)

    def describe(self) -> str:
        more = ", ".join(f"+{k} seed{'s' if k > 1 else ''}: {v * 100:.2f}"
                         for k, v in self.more.items() if not math.isnan(v))
        plan = ("" if math.isnan(self.procedure) or len(self.plan) < 2 else
                f"; the plan's looks at {', '.join(map(str, self.plan))} seeds together: "
                f"{self.procedure * 100:.2f}")
        return (f"vs {self.versus}: detects {self.detectable * 100:.2f} points with 80 % power "
                f"at this look, level {self.alpha:.4f} (observed {self.margin * 100:+.2f})"
                + plan + (f"; with {more} (each at the level its extra looks leave)"
                          if more else ""))


@dataclass
class Decision:
    """What the confirmation says. ``decided``: the winner is separated from the base (in
    either direction); ``signal``: separated *above* it."""

    winner: Row | None
    base: Row | None
    rivals: list[Row]
    comparisons: list[stats.Comparison]
    seed_std: float
    seed_dof: int
    seeds: int
    looks: int
    decided: bool
    signal: bool
    verdict: str
    power: list[Power] = field(default_factory=list)
    # the confirmation named another model than the screening's pick (the winner when
    # decided), or a rival separated above the pick that is not above the base (undecided)
    overturned_by: str = ""
    pick: str = ""  # the screening's pick
    tied: list[str] = field(default_factory=list)
    target: float = 2.0  # the candidates' cost over the base's (below 1: shrinking)

    @property
    def shrinking(self) -> bool:
        """The candidates cost less than the base: the question is which loses least."""
        return self.target < 1

    def tied_with(self, name: str) -> list[str]:
        """The confirmed candidates within the noise of ``name`` (testable, not separated)."""
        return [c.b if c.a == name else c.a for c in self.comparisons
                if name in (c.a, c.b) and BASE_KEY not in (c.a, c.b)
                and c.testable and not c.separated]

    @property
    def vs_base(self) -> stats.Comparison | None:
        """The winner against the base."""
        name = self.winner.candidate if self.winner is not None else None
        return next((c for c in self.comparisons if c.a == name and c.b == BASE_KEY), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            # the question settled, either way (the answer's own ``decided`` is ``signal``)
            "separated_from_base": (self.decided if not self.shrinking else
                                    self.vs_base is not None and self.vs_base.separated),
            "signal": self.signal, "target": self.target,
            # shrinking: the answer is the candidate separated above the other candidates
            "question": "loses least to the base" if self.shrinking else "beats the base",
            "winner": self.winner.candidate if self.winner else None,
            "seeds": self.seeds, "looks": self.looks,
            "seed_std_pooled": round(self.seed_std, 5), "seed_dof": self.seed_dof,
            "accuracy": {r.candidate: round(r.mean, 5)
                         for r in [self.base, self.winner, *self.rivals] if r is not None},
            "seeds_per_model": {r.candidate: len(r.accuracies)
                                for r in [self.base, self.winner, *self.rivals] if r is not None},
            "comparisons": [c.describe() for c in self.comparisons],
            "power": [{"versus": p.versus, "detectable": round(p.detectable, 5),
                       "margin": round(p.margin, 5), "alpha": round(p.alpha, 5),
                       "more_seeds": {k: round(v, 5) for k, v in p.more.items()}}
                      for p in self.power],
            "overturned_by": self.overturned_by or None, "tied": self.tied,
        }


def decide(rows: dict[str, Row], order: list[str], looks: int, num_classes: int,
           target: float = 2.0, min_seeds: int = 2, power: bool = True) -> Decision:
    """The verdict from confirmation rows (keyed by candidate, the ``confirm/`` prefix
    removed). ``order``: the confirmed models, the base first, then the candidates in the
    screening's order (its pick first). ``looks``: the plan's number of looks; ``min_seeds``:
    the seeds of its first look (for the power lines only); ``power=False`` leaves the power
    lines out (they never change the verdict; the confirmation's stopping rule skips them).
    ``target``: the candidates' cost
    over the base's; below 1 (shrinking) the answer is the candidate separated above every
    other confirmed one instead (see the module's docstring).

    One Holm family holds every confirmed candidate against the base and every pair of
    confirmed candidates, each comparison with its two models' own seed noise. The winner is
    the first candidate, in the screening's order, that is separated above the base and
    that no other confirmed candidate is separated above; the screening's pick when it
    qualifies. Each "separated from the base" claim is controlled over the whole family,
    whichever candidate it ends up naming."""
    done = {k: rows[k] for k in order if k in rows and rows[k].completed}
    base = done.get(BASE_KEY)
    candidates = [done[k] for k in order if k != BASE_KEY and k in done]
    pick = candidates[0] if candidates else None
    # reported only: each comparison uses its own two models' seed noise
    noise, dof = stats.pooled_seed_noise([r.accuracies for r in done.values()])
    seeds = min((len(r.accuracies) for r in done.values()), default=0)
    decision = Decision(pick, base, candidates[1:], [], noise, dof, seeds, looks, False,
                        False, "", pick=order[1] if len(order) > 1 else "", target=target)
    if pick is None or base is None:
        missing = "the base" if base is None else "the screening's winner"
        decision.verdict = (f"UNDECIDED: {missing} has no finished confirmation training yet, "
                            "so nothing is confirmed")
        return decision
    chance = 1.0 / num_classes
    if base.mean < chance + CHANCE_MARGIN:
        decision.verdict = (
            f"NO SIGNAL: on confirmation the base reached {base.mean:.1%}, within "
            f"{CHANCE_MARGIN:.0%} of chance ({chance:.1%}): the proxy did not learn, so "
            "no ranking means anything. Use a larger budget.")
        return decision
    compare = _Comparer()
    if decision.shrinking:
        winner = _winner_among(candidates, looks, base, compare)
    else:
        winner = _winner(candidates, base, looks, compare)
    decision.winner = winner or pick
    decision.rivals = [c for c in candidates if c is not decision.winner]
    decision.comparisons = _family(decision.winner, decision.rivals, base, looks, compare)
    testable = sum(c.testable for c in decision.comparisons)
    mine = [c for c in decision.comparisons if c.a == decision.winner.candidate]
    decision.power = [power_of_models(c, testable, looks, min_seeds)
                      for c in mine if c.testable] if power else []
    if winner is not None and winner.candidate != decision.pick:
        decision.overturned_by = winner.candidate  # the confirmation names another model
    if decision.shrinking:
        decision.decided = decision.signal = winner is not None
        decision.tied = [c.b for c in mine
                         if c.b != BASE_KEY and c.testable and not c.separated]
        decision.verdict = _verdict_shrinking(decision)
        return decision
    vs_base = decision.vs_base
    decision.decided = vs_base is not None and vs_base.separated
    decision.signal = decision.decided and vs_base is not None and vs_base.margin > 0
    against = [c for c in mine if c.b != BASE_KEY]
    decision.tied = [c.b for c in against if c.testable and not c.separated]
    if winner is None:
        above = [c for c in against if c.separated and c.margin < 0]
        decision.overturned_by = above[0].b if above else ""
        if decision.overturned_by:  # above the pick, yet not above the base: no answer
            decision.decided = decision.signal = False
    decision.verdict = _verdict(decision)
    return decision


def _winner_among(candidates: list[Row], looks: int, base: Row,
                  compare: _Comparer | None = None) -> Row | None:
    """The first candidate in the screening's order separated above every other confirmed
    candidate (``None``: fewer than two, or none is)."""
    if len(candidates) < 2:
        return None
    above = _above(_family(candidates[0], candidates[1:], base, looks, compare))
    for c in candidates:
        if all((c.candidate, o.candidate) in above for o in candidates if o is not c):
            return c
    return None


def _above(family: list[stats.Comparison]) -> set[tuple[str, str]]:
    """``(x, y)`` for every separated comparison in which ``x`` is above ``y``."""
    return {(c.a, c.b) for c in family if c.separated and c.margin > 0} | \
        {(c.b, c.a) for c in family if c.separated and c.margin < 0}


def _family(winner: Row, rivals: list[Row], base: Row, looks: int,
            compare: _Comparer | None = None) -> list[stats.Comparison]:
    """The confirmation's family, the winner's comparisons first (vs the base, vs each
    rival), then each rival vs the base and the rivals' pairs; Holm over the testable ones."""
    pairs = [(winner, base), *((winner, r) for r in rivals), *((r, base) for r in rivals),
             *((a, b) for i, a in enumerate(rivals) for b in rivals[i + 1:])]
    compare = compare or _Comparer()
    family = [compare(a, b) for a, b in pairs]
    return stats.holm_family([c for c in family if c is not None], looks=looks)


def _winner(candidates: list[Row], base: Row, looks: int, compare: _Comparer | None = None
            ) -> Row | None:
    """The first candidate in the screening's order separated above the base that no other
    confirmed candidate is separated above (``None``: no candidate qualifies). Holm's
    result does not depend on which model a comparison names first (the example SE is
    symmetric too), so the family built around the screening's pick decides the same as
    the one built around any candidate."""
    above = _above(_family(candidates[0], candidates[1:], base, looks, compare))
    for c in candidates:
        beaten = any((other.candidate, c.candidate) in above for other in candidates)
        if (c.candidate, BASE_KEY) in above and not beaten:
            return c
    return None


class _Comparer:
    """Each pair compared once per decision (the family is built twice: to find the winner,
    then around it), each model's seed-averaged correctness computed once."""

    def __init__(self) -> None:
        self._means: dict[int, np.ndarray | None] = {}
        self._done: dict[tuple[int, int], stats.Comparison | None] = {}

    def _mean(self, row: Row) -> np.ndarray | None:
        if id(row) not in self._means:
            self._means[id(row)] = row.mean_correct
        return self._means[id(row)]

    def __call__(self, a: Row, b: Row) -> stats.Comparison | None:
        key = (id(a), id(b))
        if key not in self._done:
            ma, mb = self._mean(a), self._mean(b)
            self._done[key] = None if ma is None or mb is None else stats.compare_models(
                a.candidate, ma, a.accuracies, b.candidate, mb, b.accuracies)
        return self._done[key]


def power_of_models(c: stats.Comparison, family: int, looks: int, min_seeds: int = 2
                    ) -> Power:
    """The power lines of a comparison with per-model seed noise, at the level of the first
    Holm step over ``family`` testable comparisons and ``looks`` looks.

    - now: this look alone, at this look's seeds;
    - the plan: every look from ``min_seeds`` to ``min_seeds + looks - 1`` seeds together
      (the probability that one of them separates);
    - ``+k`` seeds: the look at ``k`` more seeds per model, at the level of the looks those
      seeds imply (a plan extended to reach them looks ``k`` more times, unless it had
      room already).

    Each follows the Welch test itself through simulated confirmations at the observed seed
    stds and example SE (:func:`effscale.experiment.stats.procedure_detectable`): with one
    or two seeds a side its degrees of freedom are themselves random, which a noncentral t
    at their expected value misses (benchmarks/decision_null.py measures both)."""
    sa, sb = c.seed_std, c.seed_std_b if c.seed_std_b is not None else c.seed_std
    alpha = stats.ALPHA / max(1, family) / looks
    now = stats.procedure_detectable(c.example_se, sa, sb, [(c.seeds_a, c.seeds_b)], alpha)
    plan = list(range(min_seeds, min_seeds + looks))
    procedure = stats.procedure_detectable(c.example_se, sa, sb, plan, alpha)
    more, more_alpha = {}, {}
    seeds = min(c.seeds_a, c.seeds_b)
    for k in MORE_SEEDS:
        looks_k = max(looks, seeds + k - min_seeds + 1)
        more_alpha[k] = stats.ALPHA / max(1, family) / looks_k
        more[k] = stats.procedure_detectable(
            c.example_se, sa, sb, [(c.seeds_a + k, c.seeds_b + k)], more_alpha[k])
    return Power(c.b, now, c.margin, alpha, more, procedure, plan, more_alpha)


def power_of(c: stats.Comparison, noise: float, dof: int, models: int, alpha: float) -> Power:
    """Power of a comparison with one *pooled* seed noise (``compare``'s curves): detectable
    difference now, and with ``k`` more seeds on every model (the example part of the SE is
    kept; the seed part shrinks and its degrees of freedom grow by ``models`` per seed
    round), by the noncentral t (:func:`effscale.experiment.stats.detectable`)."""
    now = stats.detectable(c.se, c.df, alpha)
    more = {}
    for k in MORE_SEEDS:
        na, nb = c.seeds_a + k, c.seeds_b + k
        seed_se = noise * math.sqrt(1 / na + 1 / nb)
        se = math.sqrt(c.example_se ** 2 + seed_se ** 2)
        df = stats.welch_df(c.example_se, 1_000_000, seed_se, dof + models * k)
        more[k] = stats.detectable(se, df, alpha)
    return Power(c.b, now, c.margin, alpha, more)


def _seed_line(d: Decision) -> str:
    """Each confirmed model's own seed std (what its comparisons used)."""
    models = [r for r in [d.base, d.winner, *d.rivals] if r is not None]
    stds = ", ".join(f"{r.candidate} {r.std:.2%} over {len(r.accuracies)}" for r in models)
    return f"confirmation seed std per model (each comparison uses its two models'): {stds}"


def _reach(power: Power | None) -> str:
    """``D points with 80 % power (...)`` for an undecided verdict."""
    if power is None:
        return ""
    more = ", ".join(f"+{k} seeds: {v * 100:.2f}" for k, v in power.more.items())
    plan = ("" if math.isnan(power.procedure) or len(power.plan) < 2 else
            f"the plan's looks at {', '.join(map(str, power.plan))} seeds together: "
            f"{power.procedure * 100:.2f}; ")
    return (f"{power.detectable * 100:.2f} points with 80 % power at this look ({plan}{more}, "
            "each at the level its extra looks leave)")


def _verdict_shrinking(d: Decision) -> str:
    assert d.winner is not None and d.base is not None
    where = (f"on {d.seeds} fresh confirmation seed{'s' if d.seeds != 1 else ''} per model, "
             "unseen by the selection")
    at = f"at {d.target:.2g}× the base's cost"
    mine = {c.b: c for c in d.comparisons if c.a == d.winner.candidate}
    rivals = [mine[r.candidate] for r in d.rivals if r.candidate in mine]
    if not d.rivals:
        head = (f"UNDECIDED: shrinking asks which direction loses least {at}, and only "
                f"{d.winner.candidate} was confirmed (confirm at least two: --confirm-top 2)")
    elif d.signal:
        beats = "; ".join(f"{c.b} by {c.margin * 100:.2f} points (95 % interval "
                          f"{c.low * 100:+.2f} to {c.high * 100:+.2f}; "
                          f"{stats.format_p(c.p_adjusted, 'adjusted p')})" for c in rivals)
        head = (f"DECIDED: {d.winner.candidate} keeps the most accuracy {at}: it beats {beats} "
                f"{where}, over {rivals[0].family if rivals else 0} comparison(s) x {d.looks} "
                "look(s)")
    else:
        parts = []
        for c in rivals:
            if not c.testable:
                parts.append(f"vs {c.b}: not testable ({c.untestable})")
                continue
            power = next((p for p in d.power if p.versus == c.b), None)
            state = ("separated ABOVE it" if c.separated and c.margin < 0 else
                     "within the noise" if not c.separated else "separated")
            parts.append(f"{c.margin * 100:+.2f} points over {c.b} "
                         f"({stats.format_p(c.p_adjusted, 'adjusted p')}; {state}"
                         + (f"; detectable: {_reach(power)}" if power else "") + ")")
        head = (f"UNDECIDED: no shrinking direction is separated above every other {at} "
                f"{where}: {d.winner.candidate} is " + "; ".join(parts)
                + ": the data do not choose between these directions")
    parts = [head]
    vs = d.vs_base
    if vs is not None and vs.testable:
        parts.append(f"against the base, which costs {1 / d.target:.2g}× as much: "
                     f"{vs.margin * 100:+.2f} points (95 % interval {vs.low * 100:+.2f} to "
                     f"{vs.high * 100:+.2f}), the accuracy this shrinking gives up")
    parts.append(_seed_line(d))
    return "; ".join(parts)


def _verdict(d: Decision) -> str:
    assert d.winner is not None and d.base is not None
    vs = d.vs_base
    where = (f"on {d.seeds} fresh confirmation seed{'s' if d.seeds != 1 else ''} per model, "
             "unseen by the selection")
    if vs is None:
        return "UNDECIDED: the winner and the base have no per-example results to compare"
    p_text = (f"{stats.format_p(vs.p_adjusted, 'adjusted p')} over {vs.family} "
              f"comparison(s) x {d.looks} look(s)")
    if not vs.testable:
        head = f"UNDECIDED: winner vs base is not testable ({vs.untestable})"
    elif d.signal:
        head = (f"DECIDED: {d.winner.candidate} beats the base by {vs.margin * 100:.2f} points "
                f"{where} (95 % interval {vs.low * 100:+.2f} to {vs.high * 100:+.2f}; {p_text})")
    elif d.decided:
        others = [c for c in d.comparisons if c.b == BASE_KEY and c.a != d.winner.candidate]
        rest = "".join(f"; {c.a} is {c.margin * 100:+.2f} points from it ("
                       + ("separated below" if c.separated else "within the noise") + ")"
                       for c in others)
        head = (f"DECIDED AGAINST: {d.winner.candidate} is {abs(vs.margin) * 100:.2f} points "
                f"BELOW the base {where} ({p_text}){rest}: none of the {1 + len(others)} "
                "confirmed direction(s) is separated above the base at equal cost (the "
                "screened directions that were not confirmed were not tested)")
    else:
        base_power = next((p for p in d.power if p.versus == BASE_KEY), None)
        reach = f"; this run could detect {_reach(base_power)}" if base_power else ""
        head = (f"UNDECIDED: {d.winner.candidate}'s {vs.margin * 100:+.2f} points over the base "
                f"{where} are within the noise ({p_text}){reach}")
    parts = [head]
    if d.overturned_by and d.signal:
        pick_vs = next((c for c in d.comparisons
                        if c.a == d.pick and c.b == BASE_KEY), None)
        how = ("" if pick_vs is None else
               f" ({pick_vs.margin * 100:+.2f} points over the base, "
               + ("separated" if pick_vs.separated else "within the noise") + ")")
        parts.append(f"the screening's pick {d.pick} was NOT confirmed{how}; "
                     f"{d.winner.candidate}, later in the screening's order, is the first "
                     "confirmed model separated above the base, so it is the answer (chosen "
                     "among the confirmed models by these tests, its accuracy may read a "
                     "little high; the claim itself is controlled over the whole family)")
    elif d.overturned_by:
        parts.append(f"the screening's pick was OVERTURNED: {d.overturned_by} is separated "
                     f"above {d.winner.candidate} on confirmation, so the screening's choice "
                     "does not stand (decided: false)")
    if d.rivals and not (d.overturned_by and not d.signal):
        runner = next((c for c in d.comparisons if c.a == d.winner.candidate
                       and c.b == d.rivals[0].candidate), None)
        if runner is None or not runner.testable:
            parts.append(f"vs the runner-up {d.rivals[0].candidate}: not testable")
        elif runner.separated:
            parts.append(f"it is separated from the runner-up {runner.b} "
                         f"({runner.margin * 100:+.2f} points, "
                         f"{stats.format_p(runner.p_adjusted, 'adjusted p')})")
        else:
            power = next((p for p in d.power if p.versus == runner.b), None)
            parts.append(f"it is TIED with the runner-up {runner.b} ({runner.margin * 100:+.2f} "
                         "points, within the noise"
                         + (f"; detectable: {power.detectable * 100:.2f} points at this look"
                            if power else "")
                         + "): the data do not choose between these two directions")
    parts.append(_seed_line(d))
    return "; ".join(parts)
