"""RecordedCompare: a comparison's settings document, as Compare writes it, read back into
typed fields (the outputs, the plots and the page read these, not string keys)."""

from __future__ import annotations

from pathlib import Path

import pytest

from effscale.compare.recorded import RecordedCompare, RecordedCompound
from effscale.compare.run import Compare, run_compare
from effscale.compare.settings import CompareSettings, CompoundSet
from effscale.errors import EffscaleError
from effscale.experiment.budgets import get_budget
from effscale.experiment.events import RunEvents
from effscale.model.config import ScalingRules
from effscale.train.trainer import Recipe


def _document(tmp_path: Path, **changes: object) -> tuple[CompareSettings, dict]:
    fields: dict = dict(base="tiny", dataset="synthetic", budget=get_budget("smoke"),
                        recipe=Recipe(epochs=1, batch_size=32), counter="torch",
                        out=str(tmp_path / "run"), threads=1,
                        compounds=(CompoundSet("found", (1.4, 1.05, 1.1), "found.yaml"),),
                        single=("depth", "width"))
    fields.update(changes)
    settings = CompareSettings(**fields)
    outcome = run_compare(settings, RunEvents(), dry_run=True)
    return settings, Compare(settings).settings_document(outcome.prepared)


def test_a_comparisons_document_reads_back_into_its_fields(tmp_path: Path) -> None:
    settings, doc = _document(tmp_path)
    recorded = RecordedCompare.from_document(doc)
    assert (recorded.base, recorded.dataset, recorded.budget) == ("tiny", "synthetic", "smoke")
    assert recorded.num_classes == 6 and recorded.phi == 1.0 and not recorded.is_curve
    assert recorded.compounds == (RecordedCompound("found", 1.4, 1.05, 1.1, "found.yaml"),)
    assert recorded.model_names == ["base", "found", "depth", "width"]
    assert recorded.proxy_resolution == settings.budget.resolution
    assert recorded.proxy_stem_stride == settings.recipe.stem_stride
    assert recorded.rules == ScalingRules() and recorded.cost_name == "flops"
    assert recorded.document is doc


def test_a_curves_document_carries_its_phis_and_directions(tmp_path: Path) -> None:
    _, doc = _document(tmp_path, phis=(-1.0, 1.0), single=("width",))
    recorded = RecordedCompare.from_document(doc)
    assert recorded.is_curve and recorded.phis == (-1.0, 1.0)
    assert recorded.directions == tuple(doc["directions"]) and recorded.directions[-1] == "width"
    assert recorded.left_out == tuple(doc["left_out"]) and recorded.window == doc["window"]


@pytest.mark.parametrize("doc", [{"command": "search", "num_classes": 10}, {"command": "compare"}])
def test_a_document_that_is_not_a_comparisons_is_one_clear_error(doc: dict) -> None:
    with pytest.raises(EffscaleError, match="not a comparison's settings document"):
        RecordedCompare.from_document(doc)
