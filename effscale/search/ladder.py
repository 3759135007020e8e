"""The proxy ladder: how far the search's answer reaches in pixels.

The search decides at one proxy size (the base at ``B`` px, a candidate at ``B x gamma``).
Once the confirmation has decided, the ladder re-decides the top directions (the base, the
confirmed winner and the runner-up) with the base's proxy at other sizes, "rungs", trained
as the confirmation is (its epochs factor, its fresh seeds, at least two seeds each), every
candidate keeping its own gamma relative to the rung's base size. At each rung the models
are compared by :func:`effscale.search.decision.decide` (one Holm family per rung); the
confirmation's own rung is re-read with the same three models and the confirmation's looks.
The winner's lead over the base and over the runner-up is then read from the smallest rung
to the largest: it **grows**, **holds**, **shrinks** or **flips** as the base's proxy grows,
and a sentence says what that trend suggests at full size.

The rungs (:func:`choose_rungs`) come from the size the data have: every candidate's input
must stay at or below it on every rung. When the data leave room for a step of at least
sqrt(2) above the confirmation's size (twice the pixels), the rungs go up, the highest being
the largest base size at which the widest-gamma candidate still sees real pixels (on 224 px
data and a 20 px base with gamma up to 1.3: 172 px). Otherwise (CIFAR-10's 32 px: 20 x 1.3
= 26 px, and 25 x 1.3 = 32 px is only x1.25 up) they go down by a factor sqrt(2) each (half
the pixels): 14 px, then 10 px. A rung below the confirmation's is cheaper to train, and it
still shows the trend, only from below.

Note:
    The rungs' models are fixed when the run is prepared (every kept candidate at every rung),
    so every worker and a resume agree on the study's items; which three go on the ladder is
    chosen once, when the confirmation stops, and stored in the study (``ladder``). The ladder
    runs only after a decided verdict ("DECIDED": the winner separated above the base), and
    only when its estimated training time fits the budget's ``ladder_time``; otherwise the
    outputs say that it was not run and why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import optuna

from effscale.experiment import stats
from effscale.experiment.events import RunEvents
from effscale.experiment.queue import ITEM_PARAM, item_key, item_states
from effscale.experiment.rows import Row, collect_rows
from effscale.experiment.rundir import run_settings
from effscale.experiment.settings import ladder_seed_offset
from effscale.search.candidates import BASE_KEY, LADDER_PREFIX, Candidate, confirm_key
from effscale.search.confirm import ConfirmPlan, current_decision, trial_seconds
from effscale.search.decision import Decision, decide
from effscale.search.recorded import RecordedSearch
from effscale.search.selection import confirmation_rows
from effscale.train.proxy import MIN_FINAL_MAP, final_map_size

ATTR = "ladder"  # the study's record of the ladder: its models, or why it did not run
SETTINGS_KEY = "ladder"  # the plan, in the settings document
DOWN = math.sqrt(2)  # a rung below the confirmation's has half the pixels of the one above
MIN_UP = math.sqrt(2)  # a rung above the confirmation's has at least twice its pixels
SMALLEST_PX = 8  # no input below this, on any rung
TRENDS = ("grows", "holds", "shrinks", "flips")


def choose_rungs(largest: int, base_px: int, gamma_low: float, gamma_top: float, count: int
                 ) -> tuple[list[int], str]:
    """The ``count`` base sizes the ladder trains besides ``base_px`` (ascending), and why
    there are none when there are none.

    ``largest``: the size the data are loaded at (their native size; for data without one,
    the largest proxy size); every candidate, ``round(rung x gamma)`` px for gammas in
    ``[gamma_low, gamma_top]``, must stay at or below it and at or above
    :data:`SMALLEST_PX`. Upward when there is room for a step of at least :data:`MIN_UP`:
    the top rung is the largest admissible base size and the others divide the way up
    evenly in log scale; else downward by :data:`DOWN` per rung."""
    if count < 1:
        return [], "this budget has no ladder (ladder_rungs 0; --ladder-rungs N runs one)"
    ceiling = base_px
    while round((ceiling + 1) * gamma_top) <= largest:
        ceiling += 1
    if ceiling >= base_px * MIN_UP:
        rungs = sorted({round(base_px * (ceiling / base_px) ** (k / count))
                        for k in range(1, count + 1)})
        return [r for r in rungs if r != base_px], ""
    rungs = []
    for k in range(1, count + 1):
        px = round(base_px / DOWN ** k)
        if round(px * gamma_low) < SMALLEST_PX or px in rungs:
            break
        rungs.append(px)
    if not rungs:
        return [], (f"no rung fits: above {base_px} px a candidate with γ {gamma_top:.3g} "
                    f"would pass the data's {largest} px, and below it the inputs fall "
                    f"under {SMALLEST_PX} px")
    return sorted(rungs), ""


@dataclass(frozen=True)
class LadderPlan:
    """What the ladder of a run trains: the confirmation's base size (``main``), the other
    rungs, seeds per model, the epochs factor, the time it may take (``time_limit``, seconds
    of training; ``None``: any), the data's size (``largest``), the base's full size, and
    the base's final feature-map side at every rung."""

    main: int
    rungs: tuple[int, ...]
    seeds: int = 2
    factor: int = 1
    time_limit: float | None = None
    largest: int = 0
    full: int = 0
    why: str = ""  # no rung: why
    final_maps: dict[int, int] = field(default_factory=dict)

    @property
    def every_rung(self) -> list[int]:
        return sorted({self.main, *self.rungs})

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["rungs"] = list(self.rungs)
        doc["final_maps"] = {str(k): v for k, v in self.final_maps.items()}
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LadderPlan:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["rungs"] = tuple(int(r) for r in values.get("rungs", ()))
        values["final_maps"] = {int(k): int(v) for k, v in values.get("final_maps", {}).items()}
        return cls(**values)


LADDER_FIELDS = ("ladder_rungs", "ladder_seeds", "ladder_time")


def ladder_identity(budget: dict[str, Any]) -> dict[str, Any]:
    """The ladder's part of a search's identity, taken out of the budget's (``budget``, a
    dict, loses the ladder fields). The rungs and seeds decide the study's items, so a
    ladder is part of what a run is; none (no rung, or no confirmation) adds nothing, so a
    run without a ladder keeps the identity it had before effscale had ladders. Its time
    (``ladder_time``), like ``time_limit``, is not: a resume may give more."""
    rungs, seeds = (budget.pop(name, None) for name in LADDER_FIELDS[:2])
    budget.pop("ladder_time", None)
    if not rungs or not budget.get("confirm_top"):
        return {}
    return {"ladder": {"rungs": int(rungs), "seeds": max(2, int(seeds or 3))}}


def plan_ladder(budget: Any, candidates: list[Candidate], largest: int) -> LadderPlan:
    """The run's ladder from its budget (``ladder_rungs``, ``ladder_seeds``,
    ``confirm_factor``, ``ladder_time``), its base and candidates as the confirmation trains
    them, and the size its data are loaded at."""
    base = next(c for c in candidates if c.is_base)
    gammas = [c.gamma for c in candidates]
    wanted = int(getattr(budget, "ladder_rungs", 0))
    rungs, why = choose_rungs(largest, base.resolution, min(min(gammas), 1.0),
                              max(max(gammas), 1.0), wanted if budget.confirm_top else 0)
    if not budget.confirm_top and wanted:
        why = "no confirmation in this budget, so no decided answer to put on a ladder"
    maps = {px: final_map_size(base.config, px) for px in sorted({base.resolution, *rungs})}
    return LadderPlan(base.resolution, tuple(rungs),
                      max(2, int(getattr(budget, "ladder_seeds", 3))), budget.confirm_factor,
                      getattr(budget, "ladder_time", None), largest, base.full_resolution,
                      why, maps)


@dataclass(frozen=True)
class RungCandidate(Candidate):
    """A model of the ladder: a candidate with its base's proxy at another size. It trains
    as a confirmation item does: fresh seeds, never pruned."""

    rung: int = 0

    @property
    def is_confirmation(self) -> bool:
        return True

    @property
    def seed_offset(self) -> int:
        """Its rung's own seeds, shared with no confirmation run and no other rung."""
        return ladder_seed_offset(self.rung)

    def summary(self) -> dict:
        return {**super().summary(), "ladder_rung": self.rung}


def rung_key(rung: int, key: str) -> str:
    return f"{LADDER_PREFIX}{rung}/{key}"


def split_rung_key(key: str) -> tuple[int, str]:
    """``ladder/14/base`` -> ``(14, "base")``."""
    rung, _, model = key[len(LADDER_PREFIX):].partition("/")
    return int(rung), model


def rung_models(plan: LadderPlan, candidates: list[Candidate]) -> dict[str, RungCandidate]:
    """Every model the ladder may train: each candidate (and the base) at each new rung,
    ``round(rung x gamma)`` px, trained ``plan.factor`` times as long as the screening."""
    models = {}
    for rung in plan.rungs:
        for c in candidates:
            px = rung if c.is_base else round(rung * c.gamma)
            values = {f.name: getattr(c, f.name) for f in fields(Candidate)}
            values.update(key=rung_key(rung, c.key), resolution=px,
                          config=c.config.replace(resolution=px), epochs_factor=plan.factor,
                          proxy_flops=0, proxy_flops_ratio=0.0)
            models[values["key"]] = RungCandidate(**values, rung=rung)
    return models


def ladder_choices(models: dict[str, RungCandidate], seeds: int) -> list[str]:
    return [item_key(key, s) for key in models for s in range(seeds)]


# ------------------------------------------------------------------ the follow-up


def _plan_of(study: optuna.Study) -> LadderPlan | None:
    doc = study.user_attrs.get("settings", {}).get(SETTINGS_KEY)
    return LadderPlan.from_dict(doc) if doc else None


def ladder_models(decision: Decision) -> list[str]:
    """The base, the confirmed winner and the runner-up (the next confirmed candidate in the
    screening's order), as far as they were confirmed."""
    keys = [BASE_KEY]
    if decision.winner is not None:
        keys.append(decision.winner.candidate)
    if decision.rivals:
        keys.append(decision.rivals[0].candidate)
    return keys


def estimate_seconds(study: optuna.Study, plan: LadderPlan, keys: list[str],
                     gammas: dict[str, float], workers: int = 1) -> float:
    """The ladder's training time: each model's mean confirmation training, scaled by its
    input's pixel count at each rung, times the seeds."""
    seconds = trial_seconds(study)
    total = 0.0
    for key in keys:
        confirmed = seconds.get(confirm_key(key))
        if not confirmed:
            continue
        mean = sum(confirmed) / len(confirmed)
        gamma = gammas.get(key, 1.0)
        main_px = round(plan.main * gamma) if key != BASE_KEY else plan.main
        for rung in plan.rungs:
            px = round(rung * gamma) if key != BASE_KEY else rung
            total += mean * (px / main_px) ** 2 * plan.seeds
    return total / max(1, workers)


def follow_ladder(study: optuna.Study, events: RunEvents, stopped: str, workers: int = 1
                  ) -> bool:
    """After the confirmation stopped (``stopped``: why): enqueue the ladder once when the
    verdict is decided and it fits its time; record why not otherwise. ``True`` when items
    were added. Called again after the ladder's trainings, it adds nothing."""
    state = study.user_attrs.get(ATTR) or {}
    if state.get("models"):
        return False
    events.message(f"confirmation stopped: {stopped}")
    plan = _plan_of(study)
    settings = run_settings(study)
    record: dict[str, Any] = {"run": False}
    decision = current_decision(study, ConfirmPlan.from_settings(settings),
                                RecordedSearch.from_document(settings).num_classes)
    if plan is None or not plan.rungs:
        record["why"] = plan.why if plan is not None else "this run has no ladder plan"
    elif decision is None or not decision.signal:
        record["why"] = ("the confirmation did not decide (no winner separated above the "
                         "base), so there is no answer whose reach in pixels to measure")
    else:
        keys = ladder_models(decision)
        rows = collect_rows(study)
        gammas = {k: float(rows[k].attrs.get("gamma", 1.0)) for k in keys if k in rows}
        estimate = estimate_seconds(study, plan, keys, gammas, workers)
        if plan.time_limit is not None and estimate > plan.time_limit:
            record["why"] = (f"its estimated {estimate / 60:.1f} min of training would pass "
                             f"the budget's ladder time of {plan.time_limit / 60:.3g} min "
                             "(--ladder-time)")
        else:
            record = {"run": True, "models": keys, "estimated_s": round(estimate, 1)}
    study.set_user_attr(ATTR, record)
    if not record["run"]:
        events.message(f"proxy ladder not run: {record['why']}")
        return False
    existing = item_states(study)
    added = []
    for rung in plan.rungs:  # type: ignore[union-attr]
        for key in record["models"]:
            for seed in range(plan.seeds):  # type: ignore[union-attr]
                item = item_key(rung_key(rung, key), seed)
                if item not in existing:
                    study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
                    added.append(item)
    assert plan is not None
    events.message(
        f"proxy ladder: {', '.join(record['models'])} retrained with the base's proxy at "
        f"{', '.join(f'{r} px' for r in plan.rungs)} (the confirmation's is {plan.main} px), "
        f"{plan.seeds} fresh seeds each, {len(added)} trainings; estimated "
        f"{record['estimated_s'] / 60:.1f} min")
    return bool(added)


# ------------------------------------------------------------------ the result


@dataclass
class Lead:
    """The winner's lead over another model at one rung, from that rung's comparisons."""

    versus: str
    margin: float
    low: float
    high: float
    se: float
    df: float
    separated: bool
    p_adjusted: float

    @property
    def state(self) -> int:
        """+1 separated ahead, -1 separated behind, 0 within the noise."""
        return 0 if not self.separated else (1 if self.margin > 0 else -1)

    def to_dict(self) -> dict[str, Any]:
        return {"versus": self.versus, "lead_points": round(self.margin * 100, 3),
                "interval_points": [round(self.low * 100, 3), round(self.high * 100, 3)],
                "separated": self.separated, "adjusted_p": round(self.p_adjusted, 5)}

    def text(self) -> str:
        state = ("separated" if self.separated else "within the noise")
        return (f"{self.margin * 100:+.2f} ({self.low * 100:+.2f} to {self.high * 100:+.2f}, "
                f"{state})")


def lead_of(decision: Decision, winner: str, other: str) -> Lead | None:
    """``winner`` minus ``other`` in the decision's comparisons, whichever way it was made."""
    for c in decision.comparisons:
        if not c.testable:
            continue
        if (c.a, c.b) == (winner, other):
            return Lead(other, c.margin, c.low, c.high, c.se, c.df, c.separated, c.p_adjusted)
        if (c.a, c.b) == (other, winner):
            return Lead(other, -c.margin, -c.high, -c.low, c.se, c.df, c.separated,
                        c.p_adjusted)
    return None


@dataclass
class Trend:
    """How one lead moves from the smallest rung to the largest."""

    versus: str
    word: str  # grows, holds, shrinks, flips, or "unknown"
    change: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_adjusted: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        known = not math.isnan(self.change)
        return {"versus": self.versus, "trend": self.word,
                "change_points": round(self.change * 100, 3) if known else None,
                "interval_points": [round(self.low * 100, 3), round(self.high * 100, 3)]
                if known else None,
                "adjusted_p": round(self.p_adjusted, 5) if known else None}


def trend_of(leads: list[Lead | None], versus: str) -> Trend:
    """The change of a lead from the first rung to the last (ascending sizes): a t test on
    the difference of two independent leads (SE sqrt(se1^2 + se2^2), the smaller of their
    degrees of freedom). ``flips``: separated ahead at a smaller rung and separated behind at
    the largest; else ``grows``/``shrinks`` when the change is separated from 0, ``holds``
    when it is not. ``p_adjusted`` is filled in by :func:`trends` (Holm over the leads)."""
    if len(leads) < 2 or leads[0] is None or leads[-1] is None:
        return Trend(versus, "unknown")
    first, last = leads[0], leads[-1]
    change = last.margin - first.margin
    se = math.sqrt(first.se ** 2 + last.se ** 2)
    df = min(first.df, last.df)
    half = stats.t_quantile(0.975, df) * se
    p = stats.t_pvalue(change / se, df) if se > 0 else (0.0 if change else 1.0)
    return Trend(versus, "", change, change - half, change + half, p)


def trends(leads: dict[str, list[Lead | None]]) -> list[Trend]:
    """Each lead's trend, Holm-adjusted over the leads (vs the base, vs the runner-up)."""
    found = [trend_of(values, versus) for versus, values in leads.items()]
    testable = [t for t in found if t.word == ""]
    for t, p in zip(testable, stats.holm([t.p_adjusted for t in testable]), strict=True):
        t.p_adjusted = p
        values = [v for v in leads[t.versus] if v is not None]
        if values[-1].state == -1 and any(v.state == 1 for v in values[:-1]):
            t.word = "flips"
        elif p < stats.ALPHA:
            t.word = "grows" if t.change > 0 else "shrinks"
        else:
            t.word = "holds"
    return found


def reading(trend: Trend, first: int, last: int, full: int, winner: str, versus: str) -> str:
    """What a lead's trend says about full size, in one sentence."""
    span = f"from {first} to {last} px"
    change = (f"{trend.change * 100:+.2f} points, 95 % interval {trend.low * 100:+.2f} to "
              f"{trend.high * 100:+.2f}")
    whom = "the base" if versus == BASE_KEY else f"the runner-up {versus}"
    if trend.word == "grows":
        return (f"{winner}'s lead over {whom} grows as the base's proxy grows {span} "
                f"({change}): nothing here suggests it fades toward full size ({full} px), "
                f"though beyond {last} px that is an extrapolation")
    if trend.word == "holds":
        return (f"{winner}'s lead over {whom} holds {span} (change {change}, within the "
                f"noise): over this range the answer does not depend on the proxy's size; at "
                f"full size ({full} px) it is an extrapolation from {last} px")
    if trend.word == "shrinks":
        return (f"{winner}'s lead over {whom} shrinks as the base's proxy grows {span} "
                f"({change}): if the trend goes on it is smaller still at full size ({full} "
                "px), and may be gone; treat it as the proxy's answer until a larger proxy "
                "confirms it")
    if trend.word == "flips":
        return (f"{winner}'s lead over {whom} flips {span} (ahead at a smaller rung, behind "
                f"at {last} px): the answer belongs to the proxy's size, not to the data; do "
                "not expect it at full size")
    return f"{winner}'s lead over {whom}: not measured at every rung, so no trend"


def _rung_rows(rows: dict[str, Row], rung: int) -> dict[str, Row]:
    prefix = f"{LADDER_PREFIX}{rung}/"
    return {k[len(prefix):]: _renamed(v, k[len(prefix):]) for k, v in rows.items()
            if k.startswith(prefix)}


def _renamed(row: Row, name: str) -> Row:
    return replace(row, candidate=name)


def not_run(why: str) -> dict[str, Any]:
    return {"run": False, "why": why, "line": f"PROXY LADDER NOT RUN: {why}"}


def ladder_summary(study: optuna.Study, rows: dict[str, Row] | None = None) -> dict[str, Any]:
    """The ladder as coefficients.yaml, the CLI and report.html give it: whether it ran (and
    why not), each rung's sizes, accuracies and leads with their intervals, the trends and
    the sentence on full size (``line``)."""
    settings = study.user_attrs.get("settings", {})
    plan = _plan_of(study)
    state = study.user_attrs.get(ATTR)
    confirm = ConfirmPlan.from_settings(settings)
    if plan is None:
        return not_run("this run has no ladder plan (made before effscale had the ladder)")
    if not plan.rungs:
        return not_run(plan.why)
    if state is None:
        return not_run("not yet: the ladder follows the confirmation's verdict")
    if not state.get("run"):
        return not_run(str(state.get("why", "")))
    rows = collect_rows(study) if rows is None else rows
    keys = list(state["models"])
    num_classes = RecordedSearch.from_document(settings).num_classes
    by_rung: dict[int, tuple[dict[str, Row], int]] = {
        plan.main: (confirmation_rows(rows), confirm.looks)}
    by_rung.update({r: (_rung_rows(rows, r), 1) for r in plan.rungs})
    winner = keys[1]
    versus = [k for k in keys if k != winner]
    records: list[dict[str, Any]] = []
    leads: dict[str, list[Lead | None]] = {k: [] for k in versus}
    waiting = 0
    for rung in plan.every_rung:
        rung_rows, looks = by_rung[rung]
        decision = decide(rung_rows, keys, looks, num_classes, confirm.target)
        done = {k: rung_rows[k] for k in keys if k in rung_rows and rung_rows[k].completed}
        seeds = {k: len(r.accuracies) for k, r in done.items()}
        complete = len(done) == len(keys) and min(seeds.values()) >= (
            plan.seeds if rung != plan.main else confirm.min_seeds)
        if not complete:
            waiting += 1
        for k in versus:
            leads[k].append(lead_of(decision, winner, k) if complete else None)
        records.append({
            "base_px": rung, "confirmation": rung == plan.main,
            "px": {k: int(done[k].attrs.get("resolution", 0)) if k in done else None
                   for k in keys},
            "final_map": plan.final_maps.get(rung),
            "accuracy": {k: round(r.mean, 5) for k, r in done.items()},
            "seeds": seeds, "complete": complete,
            "leads": [lead.to_dict() if lead is not None else None
                      for lead in (leads[k][-1] for k in versus)],
            "verdict": decision.verdict.split(";")[0],
            "seed_std_pooled": round(decision.seed_std, 5), "seed_dof": decision.seed_dof,
        })
    rungs = plan.every_rung
    doc: dict[str, Any] = {"run": True, "models": keys, "winner": winner,
                           "rungs": rungs, "main": plan.main,
                           "full_size": plan.full, "data_size": plan.largest,
                           "at": records}
    notes = [f"at {r} px the base's final feature maps are {m}×{m}, below the {MIN_FINAL_MAP}"
             f"×{MIN_FINAL_MAP} the proxy keeps at its own size: a candidate with a larger "
             "input un-collapses them there, so part of its lead at that rung is that"
             for r, m in sorted(plan.final_maps.items()) if m < MIN_FINAL_MAP]
    if waiting:
        doc["trend"] = []
        doc["line"] = (f"PROXY LADDER running: {waiting} of {len(rungs)} rungs not finished "
                       "yet")
        doc["notes"] = notes
        return doc
    found = trends(leads)
    doc["trend"] = [t.to_dict() for t in found]
    sentences = [reading(t, rungs[0], rungs[-1], plan.full, winner, t.versus) for t in found]
    doc["readings"] = sentences
    doc["notes"] = notes
    parts = []
    for k in versus:
        name = "the base" if k == BASE_KEY else f"the runner-up {k}"
        at = "; ".join(f"{lead.text() if lead is not None else 'n/a'} at {r} px"
                       for lead, r in zip(leads[k], rungs, strict=True))
        word = next(t.word for t in found if t.versus == k)
        parts.append(f"lead over {name} (points, 95 % interval): {at} -> {word.upper()}")
    doc["line"] = (f"PROXY LADDER ({winner}; base proxy at {', '.join(f'{r}' for r in rungs)} "
                   f"px): " + "; ".join(parts) + ". " + sentences[0] + ".")
    return doc
