"""The direction solver: B_phi along the paper's coefficients solved to 2^phi x B0's measured
full-size FLOPs (torch's conv+linear counter: the fvcore run is timed in the report, not here)."""

from __future__ import annotations

import pytest

from effscale.errors import EffscaleError
from effscale.model.bases import get_base
from effscale.model.config import ScalingRules
from effscale.scaling.derive import (
    PAPER_COEFFICIENTS,
    Coefficients,
    load_config_matched_s,
    match_flops,
    matched_config,
)
from effscale.scaling.equal_flops import FlopsMeter, direction_config, solve_direction

PAPER = Coefficients(*PAPER_COEFFICIENTS)
# Measured (torch counter, conv+linear, 1000 classes): the solved s and the achieved ratio.
EXPECTED = {1: (0.6119, 2.058), 2: (1.7239, 4.040), 3: (2.9693, 8.040), 4: (3.9307, 16.287),
            5: (5.2001, 32.121), 6: (6.2679, 63.701), 7: (7.4582, 127.127)}


@pytest.fixture(scope="module")
def measure() -> FlopsMeter:
    return FlopsMeter("torch", conv_linear=True)


@pytest.mark.slow  # 20 s or more on 2 shared cores
@pytest.mark.parametrize("phi", range(1, 8))
def test_direction_solver_hits_2_to_the_phi_within_3_percent(phi: int,
                                                             measure: FlopsMeter) -> None:
    base = get_base("b0")
    target = 2 ** phi * measure(base).flops
    model = solve_direction(base, PAPER_COEFFICIENTS, target, ScalingRules(), measure)
    assert abs(model.target_error) <= 0.03, (model.multiplier, model.flops_ratio)
    s, ratio = EXPECTED[phi]
    assert model.multiplier == pytest.approx(s, abs=1e-3)
    assert model.flops_ratio == pytest.approx(ratio, abs=1e-3)
    assert model.config == direction_config(base, PAPER_COEFFICIENTS, model.multiplier,
                                             ScalingRules(), "compound")
    # the plain B_phi (s = phi) is further from 2^phi than the matched one
    plain = measure(direction_config(base, PAPER_COEFFICIENTS, phi, ScalingRules()))
    assert abs(plain.flops / target - 1) > abs(model.target_error)


def test_matched_config_is_importable_without_the_cli_and_records_s(measure: FlopsMeter,
                                                                     tmp_path) -> None:
    from effscale.model.config import load_config, save_config

    config, s, ratio = matched_config(PAPER, 1, counter="torch")
    assert config.name == "b1" and config.resolution == 248
    assert s == pytest.approx(0.6119, abs=1e-3) and ratio == pytest.approx(2.058, abs=1e-3)
    assert config.provenance.source == f"derive-matched s={s:.6f}"
    assert config.provenance.depth_multiplier == pytest.approx(1.2 ** s, abs=1e-6)
    save_config(config, tmp_path / "b1.yaml")
    loaded = load_config(tmp_path / "b1.yaml")
    assert loaded == config and load_config_matched_s(loaded) == pytest.approx(s, abs=1e-6)
    matched = match_flops(PAPER, 0, counter="torch", measure=measure)
    assert (matched.s, matched.cost_ratio, matched.error) == (0.0, 1.0, 0.0)


def test_coefficients_that_do_not_grow_flops_are_refused(measure: FlopsMeter) -> None:
    with pytest.raises(EffscaleError, match="do not grow FLOPs"):
        solve_direction(get_base("b0"), (1.0, 1.0, 1.0), 1e9, ScalingRules(), measure)
