"""A search's recorded settings read into a typed object (:mod:`effscale.search.recorded`)."""

from __future__ import annotations

import pytest
import yaml
from helpers import REPO

from effscale.errors import EffscaleError
from effscale.model.config import ScalingRules
from effscale.search.recorded import RecordedSearch

DEMO = REPO / "tests" / "data" / "runs" / "demo-synthetic" / "settings.yaml"


def test_the_recorded_demo_reads_into_fields() -> None:
    doc = yaml.safe_load(DEMO.read_text())
    recorded = RecordedSearch.from_document(doc)
    assert (recorded.base, recorded.dataset, recorded.num_classes) == ("b0", "synthetic", 6)
    assert recorded.budget == "demo" and recorded.confirm_top == 1
    assert recorded.grid is not None and recorded.grid.target == doc["grid"]["target"] == 2.0
    assert recorded.phi == 1.0 and recorded.family_phis == tuple(range(8))
    assert recorded.chance == pytest.approx(1 / 6)
    assert recorded.cost_name == "flops" and recorded.runtime == "torch"
    assert isinstance(recorded.rules, ScalingRules)
    assert recorded.document is doc  # the whole document, for what has no field


def test_a_shrinking_search_has_a_negative_phi_and_a_family_below_the_base() -> None:
    recorded = RecordedSearch.from_document(
        {"base": "b0", "dataset": "synthetic", "num_classes": 10,
         "grid": {"target": 0.5, "alpha_max": 1.4, "a_key_from_a_later_version": 1},
         "flops_window": [0.45, 0.55]})
    assert recorded.phi == -1.0 and recorded.family_phis == (0, -1, -2, -3)
    assert recorded.grid is not None and recorded.grid.alpha_max == 1.4
    assert recorded.flops_window == (0.45, 0.55)


def test_a_document_that_is_not_a_searchs_is_one_clear_error() -> None:
    with pytest.raises(EffscaleError, match="no num_classes: not a search's settings"):
        RecordedSearch.from_document({"base": "b0"})
