"""A run's expected wall time before it starts, stage by stage, and how it compared at the end.

Every training's time is predicted from its model's measured throughput on this machine
(:mod:`effscale.train.throughput`):

    setup + (train + val) / resize_ips + compile
          + epochs x (trained images / train_ips + (val + precise_bn) / eval_ips)

with trained images = the whole batches of the training set (the trainer drops a ragged
last batch). A stage is a list of possible trainings: those that always run, and those that
run only if the stage goes on (a confirmation's later rounds); the stage's estimate is the
range from the first to all. The wall time divides the trainings' sum by the workers
sharing the device, as the confirmation's own round estimates do.

This module owns only the arithmetic and the words; which trainings a run plans is its
experiment's business (:mod:`effscale.search.estimate_stages` for a search).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class Speed(Protocol):
    """What the arithmetic needs of a measured throughput."""

    train_ips: float
    eval_ips: float
    resize_ips: float
    setup_s: float
    compile_s: float


@dataclass(frozen=True)
class Training:
    """One planned training: its model's speed and how much it trains and validates."""

    model: str
    train_images: int
    val_images: int
    epochs: int
    batch_size: int
    precise_bn: int = 0


def training_seconds(training: Training, speed: Speed) -> float:
    """Predicted seconds of one training (see the module's formula)."""
    trained = (training.train_images // training.batch_size) * training.batch_size
    once = (speed.setup_s + speed.compile_s
            + (training.train_images + training.val_images) / speed.resize_ips)
    per_epoch = (trained / speed.train_ips
                 + (training.val_images + training.precise_bn) / speed.eval_ips)
    return once + training.epochs * per_epoch


@dataclass(frozen=True)
class Step:
    """A group of trainings that run together (a screening, one confirmation round)."""

    seconds: float
    trainings: int


@dataclass
class StageEstimate:
    """One stage: the steps that always run, then those that may (in order), and a time
    limit that stops the optional ones (``None``: none); ``note`` says what decides."""

    name: str
    always: list[Step] = field(default_factory=list)
    optional: list[Step] = field(default_factory=list)
    note: str = ""

    @property
    def trainings(self) -> tuple[int, int]:
        low = sum(s.trainings for s in self.always)
        return low, low + sum(s.trainings for s in self.optional)

    @property
    def seconds(self) -> tuple[float, float]:
        """Training seconds (summed over trainings), first to all."""
        low = sum(s.seconds for s in self.always)
        return low, low + sum(s.seconds for s in self.optional)

    def to_dict(self, workers: int = 1) -> dict[str, Any]:
        low, high = self.seconds
        return {"stage": self.name, "trainings": list(self.trainings),
                "seconds": [round(low, 1), round(high, 1)],
                "wall_s": [round(low / workers, 1), round(high / workers, 1)],
                "note": self.note}


def cap_optional(stages: list[StageEstimate], time_limit: float | None) -> list[StageEstimate]:
    """Drop each optional step that would start past ``time_limit`` seconds of training
    (counted from the run's start, every earlier stage at its fullest, as a run that goes
    on checks before each optional step). The stages that always run are kept whatever
    they cost."""
    if time_limit is None:
        return stages
    spent = 0.0
    for stage in stages:
        spent += sum(s.seconds for s in stage.always)
        kept = []
        for step in stage.optional:
            if spent + step.seconds > time_limit:
                break
            spent += step.seconds
            kept.append(step)
        stage.optional = kept
    return stages


@dataclass(frozen=True)
class RunEstimate:
    """The stages of a run, its workers, and where the speeds came from."""

    stages: list[StageEstimate]
    workers: int = 1
    source: str = ""
    timed: bool = True  # False: trainings counted, no speeds measured (no times)

    @property
    def trainings(self) -> tuple[int, int]:
        pairs = [s.trainings for s in self.stages]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)

    @property
    def wall_seconds(self) -> tuple[float, float]:
        pairs = [s.seconds for s in self.stages]
        return (sum(p[0] for p in pairs) / self.workers,
                sum(p[1] for p in pairs) / self.workers)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.wall_seconds
        return {"stages": [s.to_dict(self.workers) for s in self.stages],
                "trainings": list(self.trainings), "wall_s": [round(low, 1), round(high, 1)],
                "workers": self.workers, "source": self.source, "timed": self.timed}


def span(low: float, high: float, unit: str = "min", scale: float = 60.0) -> str:
    """``3.1 min`` or ``3.1-4.5 min`` (rounded to the tenth)."""
    a, b = f"{low / scale:.1f}", f"{high / scale:.1f}"
    return f"{a} {unit}" if a == b else f"{a}-{b} {unit}"


def count_span(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def describe(estimate: RunEstimate | dict[str, Any]) -> str:
    """The estimate in one line (from the object or its :meth:`RunEstimate.to_dict`)."""
    doc = estimate.to_dict() if isinstance(estimate, RunEstimate) else estimate
    timed = doc.get("timed", True)
    parts = []
    for stage in doc["stages"]:
        trainings, wall = stage["trainings"], stage["wall_s"]
        parts.append(f"{stage['stage']} {count_span(*trainings)} trainings"
                     + (f" ~{span(*wall)}" if timed else "")
                     + (f" ({stage['note']})" if stage.get("note") else ""))
    workers = doc.get("workers", 1)
    total = (f"total {count_span(*doc['trainings'])} trainings"
             + (f", ~{span(*doc['wall_s'])} of wall time" if timed else "")
             + (f" on {workers} workers" if workers > 1 else ""))
    source = f" [{doc['source']}]" if doc.get("source") else ""
    return "estimate: " + "; ".join(parts) + f"; {total}{source}"


def compare(estimate: dict[str, Any], actual: dict[str, dict[str, Any]]
            ) -> list[dict[str, Any]] | None:
    """Each estimated stage beside what it took: ``actual`` maps a stage's name to its
    ``trainings`` and ``seconds`` (summed training seconds, as the estimate's
    ``seconds``); a stage that did not run has 0 of each. ``ratio`` is actual over the
    estimate's range, clipped to it (1.0 inside the range). None for an untimed estimate."""
    if not estimate.get("timed", True):
        return None
    rows = []
    for stage in estimate.get("stages", []):
        got = actual.get(stage["stage"], {})
        low, high = stage["seconds"]
        seconds = float(got.get("seconds", 0.0))
        inside = min(max(seconds, low), high)
        rows.append({"stage": stage["stage"], "estimated_s": [low, high],
                     "estimated_trainings": stage["trainings"],
                     "actual_s": round(seconds, 1),
                     "actual_trainings": int(got.get("trainings", 0)),
                     "ratio": round(seconds / inside, 2) if inside > 0 else None})
    return rows


def compare_line(rows: list[dict[str, Any]]) -> str:
    """The comparison in one line: each stage's estimated range against what it took."""
    parts = []
    for row in rows:
        ratio = row["ratio"]
        off = "" if ratio is None or ratio == 1.0 else f", ×{ratio:.2f} the estimate"
        parts.append(f"{row['stage']} est. {span(*row['estimated_s'])} / actual "
                     f"{span(row['actual_s'], row['actual_s'])} "
                     f"({row['actual_trainings']} of "
                     f"{count_span(*row['estimated_trainings'])} trainings{off})")
    return "estimate vs actual (training time): " + "; ".join(parts)
