"""What a search writes, all from its :class:`~effscale.search.answer.SearchAnswer` (so
``effscale report`` writes the same mid-run and from another machine): trials.csv,
coefficients.yaml, answer.json, configs/b0..b7.yaml, a plot, and accuracy against every
measured cost (pareto.csv, pareto.png). Every file is replaced atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from effscale import atomic
from effscale.experiment.rows import Row
from effscale.scaling.derive import match_flops, write_family
from effscale.search.answer import SearchAnswer, answer_of
from effscale.search.candidates import BASE_KEY
from effscale.search.pareto import pareto_csv, pareto_tables, plot_pareto
from effscale.search.plot import plot_search
from effscale.search.selection import grid_rows

SKIP_MATCHED = ("smoke", "demo")  # budgets whose runs do not write configs/matched/
ANSWER_FILE = "answer.json"
SEARCH_PLOT = "search.png"  # accuracy against measured FLOPs, and over the α-γ plane
PARETO_PLOT = "pareto.png"  # accuracy against every cost, when the run has more than one point
CSV_FIELDS = [
    "candidate", "state", "alpha", "beta", "gamma", "resolution", "params", "flops",
    "flops_ratio", "full_resolution", "proxy_flops_ratio", "nominal_ratio", "blocks", "seeds",
    "val_accuracy", "val_accuracy_std",
    "val_accuracy_per_epoch", "epochs_run", "train_seconds", "images_per_second", "failure",
    "aliases", "activations", "cost", "cost_value", "cost_ratio", "cost_note",
]


def write_outputs(study: optuna.Study, run_dir: Path) -> SearchAnswer:
    """Write trials.csv, coefficients.yaml, answer.json, configs/ and the plots for the
    study's current state, and return the answer they were written from. An undecided
    answer is marked in coefficients.yaml (``decided: false``, ``caveat``) and in a header
    line of every config it writes."""
    answer = answer_of(study)
    rows = dict(answer.rows)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(run_dir / "trials.csv", rows)
    if tables := pareto_tables(grid_rows(rows)):
        atomic.write_text(run_dir / "pareto.csv", pareto_csv(tables))
        atomic.write_bytes(run_dir / PARETO_PLOT, plot_pareto(tables, answer.settings))
    atomic.write_text(run_dir / ANSWER_FILE,
                      json.dumps(answer.to_json(), indent=1, allow_nan=False) + "\n")
    if answer.winner is not None:
        atomic.write_text(run_dir / "coefficients.yaml",
                          yaml.safe_dump(dict(answer.document), sort_keys=False))
        _write_families(answer, run_dir)
        atomic.write_bytes(run_dir / SEARCH_PLOT,
                           plot_search(grid_rows(rows), answer.selection, answer.settings))
    return answer


def _write_families(answer: SearchAnswer, run_dir: Path) -> None:
    """configs/b0..b7.yaml (alpha**phi, beta**phi, gamma**phi; b0 to b-3 for a shrinking
    search) and, unless the run skips it, configs/matched/ (the same phis, each B_phi solved
    to 2**phi x B0's full-size FLOPs, whatever the search's cost: ``effscale derive
    --coefficients RUN/coefficients.yaml --match latency`` matches a family on a timed
    cost)."""
    settings, matched = answer.settings, []
    # Solving B7 along a depth-heavy direction (alpha = 1.8: 61x the blocks) took minutes on
    # 2 cores, more than the demo itself: the skipped budgets leave configs/matched/ to
    # `effscale derive --coefficients RUN/coefficients.yaml --match-flops`.
    if settings.budget not in SKIP_MATCHED and answer.coefficients is not None:
        matched = [match_flops(answer.coefficients, float(phi), settings.base,
                               settings.num_classes, settings.rules, counter="torch").config
                   for phi in settings.family_phis]
    write_family(run_dir / "configs", [member.config for member in answer.family], matched,
                 answer.config_header("../"), answer.config_header("../../"))


def csv_record(row: Row) -> dict[str, Any]:
    """A row of trials.csv."""
    keep = {k: row.attrs.get(k, "") for k in CSV_FIELDS if k in row.attrs}
    state = "complete" if row.completed else (row.states[-1].lower() if row.states else "")
    return {
        **keep, "candidate": row.candidate, "state": state, "seeds": len(row.accuracies),
        "val_accuracy": round(row.mean, 5) if row.completed else "",
        "val_accuracy_std": round(row.std, 5) if len(row.accuracies) > 1 else "",
        "val_accuracy_per_epoch": " ".join(
            f"{a:.4f}" for a in (row.per_epoch[0] if row.per_epoch else [])),
        "epochs_run": len(row.per_epoch[0]) if row.per_epoch else 0,
        "train_seconds": round(row.seconds, 1),
        "images_per_second": round(float(np.mean(row.images_per_second)), 1)
        if row.images_per_second else "",
        "failure": "; ".join(row.failures),
    }


def _write_csv(path: Path, rows: dict[str, Row]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in sorted(rows.values(), key=lambda r: (r.candidate != BASE_KEY, r.candidate)):
        writer.writerow(csv_record(row))
    atomic.write_text(path, buffer.getvalue())
