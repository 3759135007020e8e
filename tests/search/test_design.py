"""A candidate's recorded numbers read once into a typed Design (effscale.search.design)."""

from __future__ import annotations

import pytest

from effscale.experiment.rows import Row
from effscale.search.candidates import BASE_KEY
from effscale.search.design import Design, design, design_of
from effscale.search.grid import Triple, key_coefficients

SUMMARY = {"alpha": 1.0, "beta": 1.1105, "gamma": 1.3, "depth_multiplier": 1.0,
           "width_multiplier": 1.1105, "resolution": 26, "full_resolution": 288,
           "params": 5036100, "flops": 780_000_000, "flops_ratio": 1.9921,
           "proxy_flops": 10, "proxy_flops_ratio": 1.6812, "nominal_ratio": 2.0842,
           "blocks": 16, "aliases": "a1.00_b1.12_g1.300", "epochs_factor": 1}


def test_a_recorded_summary_reads_into_typed_fields() -> None:
    d = design(Row("a1.00_b1.11_g1.300", dict(SUMMARY)))
    assert d.coefficients == (1.0, 1.1105, 1.3)
    assert (d.resolution, d.full_resolution, d.params, d.blocks) == (26, 288, 5036100, 16)
    assert (d.flops_ratio, d.proxy_flops_ratio, d.nominal_ratio) == (1.9921, 1.6812, 2.0842)
    assert d.aliases == "a1.00_b1.12_g1.300"
    assert (d.cost, d.cost_value, d.cost_ratio, d.cost_note) == (None, None, None, "")
    assert d.label() == "α=1.00 β=1.111 γ=1.300"


def test_another_cost_and_its_note_come_through() -> None:
    attrs = {**SUMMARY, "cost": "latency", "cost_value": 0.0123, "cost_ratio": 2.01,
             "cost_note": "timing spread 12 %"}
    d = Design.from_attrs(attrs)
    assert (d.cost, d.cost_value, d.cost_ratio, d.cost_note) == (
        "latency", 0.0123, 2.01, "timing spread 12 %")


def test_what_a_run_did_not_record_is_none_and_has_no_coefficients() -> None:
    d = design(Row("resolution", {"resolution": 28, "params": ""}))  # a compare row
    assert d.alpha is None and d.params is None and d.resolution == 28
    with pytest.raises(ValueError, match="no coefficients"):
        d.coefficients  # noqa: B018
    assert design(None) == Design()


def test_a_model_not_trained_yet_shows_what_its_key_spells() -> None:
    triple = Triple(1.4, 1.1068, 1.0, 20)
    assert key_coefficients(triple.key) == (1.4, 1.11, 1.0)
    assert key_coefficients("confirm:a1.00_b1.45_g1.000") is None
    assert key_coefficients("width") is None
    assert design_of(triple.key, None).coefficients == (1.4, 1.11, 1.0)
    assert design_of(BASE_KEY, None).coefficients == (1.0, 1.0, 1.0)
    assert design_of("fast", None) == Design()
    recorded = Row(triple.key, {**SUMMARY, "alpha": 1.4, "beta": 1.1068, "gamma": 1.0})
    assert design_of(triple.key, recorded).beta == 1.1068  # the record, not the key's rounding
