"""A comparison's outputs: its table (compare.csv, compare.yaml), the compound models against
every other model (Holm-corrected), and its picture."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from effscale import __version__, atomic
from effscale.compare.models import CompareModel
from effscale.compare.plot import plot_compare
from effscale.compare.recorded import RecordedCompare
from effscale.experiment import stats
from effscale.experiment.rows import Row, collect_rows
from effscale.search.candidates import BASE_KEY

CSV_FIELDS = ["model", "kind", "s", "depth", "width", "resolution_multiplier",
              "full_resolution", "resolution", "blocks", "params", "flops", "flops_ratio",
              "target_ratio", "target_error", "proxy_flops", "proxy_flops_ratio",
              "activations", "seeds", "val_accuracy", "val_accuracy_std", "val_accuracies"]


@dataclass
class CompareResult:
    """The table's rows (model, its training results) and each compound model against every
    other model."""

    rows: list[tuple[CompareModel, Row | None]]
    comparisons: list[stats.Comparison]
    seed_std: float
    settings: RecordedCompare
    seed_dof: int = 0


def compound_comparisons(done: dict[str, Row], compounds: set[str]
                         ) -> tuple[list[stats.Comparison], float, int]:
    """Each compound model against every other model with a result (``done``: name -> row),
    Holm-adjusted together like a search's; and the pooled seed noise with its degrees of
    freedom."""
    noise, dof = stats.pooled_seed_noise([r.accuracies for r in done.values()])
    comparisons = []
    seen: set[frozenset[str]] = set()
    for name, row in done.items():
        if name not in compounds:
            continue
        for other, other_row in done.items():
            pair = frozenset((name, other))
            if other == name or pair in seen:
                continue
            seen.add(pair)
            comparisons.append(stats.compare(
                name, row.mean_correct, other, other_row.mean_correct, noise,
                seeds_a=len(row.accuracies), seeds_b=len(other_row.accuracies),
                noise_dof=dof))
    return (stats.holm_family(comparisons) if comparisons else []), noise, dof


def summarize(study: optuna.Study, models: list[CompareModel], settings: RecordedCompare
              ) -> CompareResult:
    collected = collect_rows(study)
    rows = [(m, collected.get(BASE_KEY if m.kind == "base" else m.full.name)) for m in models]
    done = {m.full.name: r for m, r in rows
            if r is not None and r.completed and r.mean_correct is not None}
    compounds = {m.full.name for m in models if m.kind == "compound"}
    comparisons, noise, dof = compound_comparisons(done, compounds)
    return CompareResult(rows, comparisons, noise, settings, dof)


def write_outputs(study: optuna.Study, models: list[CompareModel], settings: RecordedCompare,
                  run_dir: Path) -> CompareResult:
    """compare.csv, compare.yaml and compare.png, atomically, for the study's current state."""
    result = summarize(study, models, settings)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for record in table_records(result):
        writer.writerow(record)
    atomic.write_text(run_dir / "compare.csv", buffer.getvalue())
    doc = {
        "base": settings.base, "dataset": settings.dataset, "budget": settings.budget,
        "phi": settings.phi, "target": settings.target,
        "compounds": [c.to_dict() for c in settings.compounds], "single": list(settings.single),
        "proxy_resolution": settings.proxy_resolution,
        "proxy_stem_stride": settings.proxy_stem_stride,
        "method": stats.METHOD, "seed_std_pooled": round(result.seed_std, 5),
        "seed_std_dof": result.seed_dof,
        "models": table_records(result),
        "comparisons": [c.describe() for c in result.comparisons],
        "tool_version": __version__,
    }
    atomic.write_text(run_dir / "compare.yaml", yaml.safe_dump(json.loads(json.dumps(doc)),
                                                                 sort_keys=False))

    atomic.write_bytes(run_dir / "compare.png", plot_compare(result))
    return result


def model_record(model: CompareModel) -> dict[str, Any]:
    """A model's numbers: FLOPs and ratio at full size, proxy FLOPs and ratio beside them."""
    c = model.full.complexity
    return {
        "model": model.full.name, "kind": model.kind,
        "s": round(model.s, 4) if model.s is not None else None,
        "depth": round(model.full.depth, 4), "width": round(model.full.width, 4),
        "resolution_multiplier": round(model.full.resolution, 4),
        "full_resolution": model.full.config.resolution, "resolution": model.px,
        "blocks": sum(s.repeats for s in model.full.config.stages), "params": c.params,
        "flops": c.flops, "flops_ratio": round(model.full.flops_ratio, 4),
        "target_ratio": round(model.target_ratio, 4),
        "target_error": round(model.full.target_error, 4), "proxy_flops": model.proxy.flops,
        "proxy_flops_ratio": round(model.proxy_ratio, 4),
        "activations": model.proxy.activations,
    }


def table_records(result: CompareResult) -> list[dict[str, Any]]:
    records = []
    for model, row in result.rows:
        accs = row.accuracies if row is not None else []
        records.append({
            **model_record(model), "seeds": len(accs),
            "val_accuracy": round(sum(accs) / len(accs), 5) if accs else None,
            "val_accuracy_std": round(stats.seed_std(accs), 5) if len(accs) > 1 else None,
            "val_accuracies": " ".join(f"{a:.4f}" for a in accs),
        })
    return records
