"""The confirmation stage: the search's decision is made on trainings the selection never saw.

After the screening (every candidate once, short), the base and the screening's top ``k``
are retrained with ``factor`` times the epochs on *fresh* seeds (seed indices from
:data:`effscale.experiment.settings.FRESH_SEED_OFFSET` on, never used by the screening), one
round at a time: a round gives each of them one more seed. From ``min_seeds`` seeds on, the
verdict (:func:`effscale.search.decision.decide`) is computed after every round, and the
stage stops as soon as it decides (the winner separated from the base; when shrinking,
separated above every other confirmed candidate), when ``max_seeds`` is reached,
or when the next round's estimated time would pass the search's time budget. Each look
counts: the verdict's p-values are multiplied by the number of looks the plan allows, so
stopping early does not inflate the false-claim rate.

Note:
    The models are chosen once, from the finished screening, and stored in the study (user
    attribute ``confirm_top``); each round's estimate and the reason the stage stopped are
    stored too (``confirm_rounds``, ``confirm_stopped``), so a resume, another worker and the
    report agree. A resumed run with a larger ``--time`` continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from effscale.experiment.budgets import Budget
from effscale.experiment.queue import ITEM_PARAM, item_key, item_of, item_states, split_item
from effscale.experiment.rows import Row, collect_rows
from effscale.search.candidates import BASE_KEY, CONFIRM_PREFIX, confirm_key
from effscale.search.decision import Decision, decide
from effscale.search.selection import confirmation_rows, is_screening, remembered_top

ATTR = "confirm_top"
ROUNDS_ATTR = "confirm_rounds"
STOP_ATTR = "confirm_stopped"


@dataclass(frozen=True)
class ConfirmPlan:
    """How much confirmation a budget buys (see :class:`~effscale.experiment.budgets.Budget`)."""

    top: int
    factor: int
    min_seeds: int
    max_seeds: int
    time_limit: float | None = None  # seconds of training for the whole search
    workers: int = 1
    target: float = 2.0  # the candidates' cost over the base's (below 1: shrinking)
    race: bool = True  # after the minimum, train only the models that can change the verdict

    @classmethod
    def of(cls, budget: Budget, workers: int = 1, target: float = 2.0) -> ConfirmPlan:
        return cls(budget.confirm_top, budget.confirm_factor, budget.confirm_seeds,
                   max(budget.confirm_seeds, budget.confirm_max_seeds), budget.time_limit,
                   workers, target)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ConfirmPlan:
        """The plan of a run, from its settings document (settings.yaml)."""
        budget = settings.get("identity", {}).get("budget", {})
        low = int(budget.get("confirm_seeds", 2))
        target = float((settings.get("grid") or {}).get("target", 2.0))
        return cls(int(budget.get("confirm_top", 0)), int(budget.get("confirm_factor", 2)),
                   low, max(low, int(budget.get("confirm_max_seeds", low))), target=target)

    @property
    def looks(self) -> int:
        return self.max_seeds - self.min_seeds + 1

    def describe(self, epochs: int) -> str:
        limit = (f", or until the search has trained for {self.time_limit / 60:.3g} min"
                 if self.time_limit else "")
        return (f"confirmation: the base and the screening's top {self.top} retrained for "
                f"{epochs * self.factor} epochs on fresh seeds, {self.min_seeds} to "
                f"{self.max_seeds} each, one round at a time until decided{limit}"
                + ("; shrinking, so the answer is the candidate separated above the other "
                   "confirmed ones (the base, which costs more, is the reference)"
                   if self.target < 1 else ""))


def chosen(study: optuna.Study, top: int) -> list[str]:
    """The base and the screening's ``top`` best candidates, chosen once and remembered; the
    screening's winner comes right after the base."""
    return [BASE_KEY] + [k for k in remembered_top(study, ATTR, top) if k != BASE_KEY]


def confirm_choices(keys: list[str], max_seeds: int) -> list[str]:
    """Every confirmation item a run could enqueue."""
    return [item_key(confirm_key(key), s) for key in keys for s in range(max_seeds)]


def seeds_enqueued(study: optuna.Study, keys: list[str]) -> int:
    """Rounds enqueued so far: the fewest confirmation seeds any chosen model has."""
    existing = item_states(study)
    counts = [sum(1 for item in existing if item.startswith(confirm_key(key) + "@"))
              for key in keys]
    return min(counts, default=0)


def spent_seconds(study: optuna.Study, workers: int = 1) -> float:
    """Training time the search has spent: every finished trial's start-to-end wall time,
    over the workers that share it (what ``--time`` counts; a resume continues it)."""
    total = 0.0
    for trial in study.get_trials(deepcopy=False):
        if trial.datetime_start and trial.datetime_complete:
            total += (trial.datetime_complete - trial.datetime_start).total_seconds()
    return total / max(1, workers)


def trial_seconds(study: optuna.Study) -> dict[str, list[float]]:
    """Finished trials' wall times per model key (screening and confirmation apart)."""
    out: dict[str, list[float]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        item = item_of(trial)
        if item and trial.datetime_start and trial.datetime_complete:
            key, _ = split_item(item)
            out.setdefault(key, []).append(
                (trial.datetime_complete - trial.datetime_start).total_seconds())
    return out


def round_estimate(study: optuna.Study, keys: list[str], factor: int, workers: int = 1
                   ) -> float:
    """Seconds one round will take: each model's mean confirmation training so far, or its
    screening training times ``factor`` before the first round."""
    seconds = trial_seconds(study)
    total = 0.0
    for key in keys:
        confirmed = seconds.get(confirm_key(key))
        if confirmed:
            total += sum(confirmed) / len(confirmed)
        elif screened := seconds.get(key):
            total += factor * sum(screened) / len(screened)
    return total / max(1, workers)


def current_decision(study: optuna.Study, plan: ConfirmPlan, num_classes: int,
                     rows: dict[str, Row] | None = None, power: bool = True
                     ) -> Decision | None:
    """The verdict on the confirmation trainings so far (``None`` before the stage);
    ``power=False`` skips the power lines (they do not change the verdict)."""
    if study.user_attrs.get(ATTR) is None:
        return None
    rows = collect_rows(study) if rows is None else rows
    return decide(confirmation_rows(rows), chosen(study, plan.top), plan.looks, num_classes,
                  plan.target, min_seeds=plan.min_seeds, power=power)


@dataclass
class Step:
    """What :func:`next_round` did: the items it added, or why it stopped; ``skipped``: the
    models a racing round left out, each with its reason."""

    added: list[str] = field(default_factory=list)
    round: int = 0
    estimated_s: float = 0.0
    stopped: str = ""
    over_time: bool = False  # a minimum round that runs although it passes the time budget
    skipped: dict[str, str] = field(default_factory=dict)

    def describe_skipped(self) -> str:
        """``"skips a (why); b (why)"``, or "" when every model trains."""
        return "; ".join(f"skips {k} ({why})" for k, why in self.skipped.items())


def rounds_enqueued(study: optuna.Study, keys: list[str]) -> int:
    """Rounds enqueued so far: the most confirmation seeds any chosen model has (a racing
    round trains only the models whose comparisons are still open)."""
    existing = item_states(study)
    counts = [sum(1 for item in existing if item.startswith(confirm_key(key) + "@"))
              for key in keys]
    return max(counts, default=0)


def racing(decision: Decision) -> dict[str, str]:
    """The confirmed models the next round can leave out, each with its reason.

    After a look that did not decide, a model trains on only while a comparison it takes
    part in can still change the verdict:

    - growing: the winner and the base always train (their comparison is the one that
      decides). A rival trains while it is not separated below the winner: only then can it
      still overturn the winner or become the answer itself; once it is separated below, no
      seed of it can change what is decided (its comparisons keep the seeds they have).
    - shrinking: the base decides nothing (the answer is the candidate separated above the
      other candidates), so it stops after the plan's minimum; a rival stops once it is
      separated below the winner.

    Leaving a model out changes no test: each comparison uses its two models' own seeds
    (Hsu's degrees of freedom follow the fewer), and each round is one look whichever
    models it trains, so the plan's Bonferroni over looks still covers the procedure."""
    if decision.winner is None or decision.base is None:
        return {}
    name = decision.winner.candidate
    skipped = {}
    for c in decision.comparisons:
        if c.b == BASE_KEY or name not in (c.a, c.b) or not c.separated:
            continue
        rival, below = (c.b, c.margin > 0) if c.a == name else (c.a, c.margin < 0)
        if below:
            skipped[rival] = (f"separated below {name} ({abs(c.margin) * 100:.2f} points, "
                              f"adjusted p {c.p_adjusted:.3g}): no more seeds of it can "
                              "change the verdict")
    if decision.shrinking:
        skipped[BASE_KEY] = ("the costlier reference decides nothing when shrinking; its "
                             f"{len(decision.base.accuracies)} seeds give the points given up")
    return skipped


def next_round(study: optuna.Study, plan: ConfirmPlan, num_classes: int) -> Step:
    """Enqueue the next round of confirmation seeds, or say why the stage is over. From the
    plan's minimum on, a round trains only the models :func:`racing` keeps (``race=False``
    in the plan: every model, every round)."""
    if plan.top < 1:
        return Step(stopped="no confirmation in this budget")
    keys = chosen(study, plan.top)
    done = rounds_enqueued(study, keys)
    skipped: dict[str, str] = {}
    decision = None
    if done >= plan.min_seeds:
        decision = current_decision(study, plan, num_classes, power=False)
        if plan.race and decision is not None and not decision.decided:
            skipped = racing(decision)
    training = [k for k in keys if k not in skipped]
    estimate = round_estimate(study, training, plan.factor, plan.workers)
    over = plan.time_limit is not None and \
        spent_seconds(study, plan.workers) + estimate > plan.time_limit
    if done >= plan.min_seeds:
        stop = ""
        if decision is not None and decision.decided:
            stop = f"decided after {done} confirmation seeds"
        elif done >= plan.max_seeds:
            stop = f"undecided after the plan's {plan.max_seeds} confirmation seeds"
        elif over:
            stop = (f"undecided after {done} confirmation seeds: the next round "
                    f"(~{estimate / 60:.1f} min) would pass the time budget of "
                    f"{(plan.time_limit or 0) / 60:.3g} min")
        if stop:
            study.set_user_attr(STOP_ATTR, stop)
            return Step(round=done, stopped=stop)
    existing = item_states(study)
    added = []
    for key in training:
        item = item_key(confirm_key(key), done)
        if item not in existing:
            study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
            added.append(item)
    rounds = list(study.user_attrs.get(ROUNDS_ATTR, []))
    # The estimate is the round's training time over the workers that share it (what the
    # time budget counts); its actual is divided the same way (stage_costs).
    entry: dict[str, Any] = {"round": done + 1, "models": len(training),
                             "estimated_s": round(estimate, 1), "workers": plan.workers}
    if skipped:
        entry["skipped"] = dict(skipped)
    rounds.append(entry)
    study.set_user_attr(ROUNDS_ATTR, rounds)
    if STOP_ATTR in study.user_attrs:  # resumed with more time or seeds: not stopped now
        study.set_user_attr(STOP_ATTR, "")
    return Step(added, done + 1, estimate, over_time=over, skipped=skipped)


def stage_costs(study: optuna.Study) -> dict[str, Any]:
    """Each stage's trainings and seconds of training (summed over the workers), and each
    confirmation round's estimate against what it took, both over the workers that shared
    it: on two workers a round of 26 min of training takes about 13 (the rounds' trials
    are those with that seed index; a round recorded without its workers counts one)."""
    seconds = trial_seconds(study)
    screening = {k: v for k, v in seconds.items() if is_screening(k)}
    by_round: dict[int, float] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        item = item_of(trial)
        if item and item.startswith(CONFIRM_PREFIX) and trial.datetime_complete \
                and trial.datetime_start:
            _, seed = split_item(item)
            by_round[seed + 1] = by_round.get(seed + 1, 0.0) + (
                trial.datetime_complete - trial.datetime_start).total_seconds()
    rounds = [{**r, "actual_s": round(by_round.get(int(r["round"]), 0.0)
                                      / max(1, int(r.get("workers", 1))), 1)}
              for r in study.user_attrs.get(ROUNDS_ATTR, [])]
    return {
        "screening": {"trainings": sum(len(v) for v in screening.values()),
                      "seconds": round(sum(sum(v) for v in screening.values()), 1)},
        "confirmation": {"rounds": rounds,
                         "seconds": round(sum(by_round.values()), 1),
                         "stopped": study.user_attrs.get(STOP_ATTR, "")},
    }
