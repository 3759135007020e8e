"""The phi=1 grid: counts for known tolerances, the resolution axis, the empty-grid error."""

from __future__ import annotations

import pytest

from effscale.errors import EffscaleError
from effscale.search.grid import GridSpec, axis, feasible_grid, gamma_axis, single_axis

# NNI's efficientnet example: alpha in [1, 2], beta and gamma in [1, 1.5], step 0.05,
# |alpha*beta^2*gamma^2 - 2| < 0.1.
NNI = GridSpec(alpha_max=2.0, beta_max=1.5, gamma_max=1.5, step=0.05, tolerance=0.1,
               base_resolution=224, resolution_step=None)


def test_axis_has_no_float_drift() -> None:
    assert axis(1.5, 0.05) == [1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5]
    assert axis(2.0, 0.25) == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert axis(1.0, 0.1) == [1.0]


def _brute_force(tolerance: float) -> int:
    """An independent count in integer hundredths: alpha, beta, gamma = 100..max by 5."""
    count = 0
    for a in range(100, 201, 5):
        for b in range(100, 151, 5):
            for g in range(100, 151, 5):
                if abs(a * b * b * g * g - 2 * 100**5) < tolerance * 100**5:
                    count += 1
    return count


@pytest.mark.parametrize(("tolerance", "count"), [(0.1, 108), (0.05, 53), (0.2, 214)])
def test_nni_grid_counts(tolerance: float, count: int) -> None:
    triples = feasible_grid(GridSpec(**{**NNI.to_dict(), "tolerance": tolerance}))
    assert len(triples) == count == _brute_force(tolerance)
    for t in triples:
        assert abs(t.alpha * t.beta**2 * t.gamma**2 - 2) < tolerance
        assert min(t.alpha, t.beta, t.gamma) >= 1


def test_paper_coefficients_need_tolerance_above_0_08() -> None:
    paper = (1.2, 1.1, 1.15)

    def has_paper(tolerance: float) -> bool:
        spec = GridSpec(**{**NNI.to_dict(), "tolerance": tolerance})
        return any((t.alpha, t.beta, t.gamma) == paper for t in feasible_grid(spec))

    assert has_paper(0.1)
    assert not has_paper(0.07)


def test_resolution_axis_is_the_sizes_the_proxy_can_take() -> None:
    spec = GridSpec(gamma_max=1.5, base_resolution=32, resolution_step=8)
    assert gamma_axis(spec) == [(1.0, 32), (1.25, 40), (1.5, 48)]
    spec = GridSpec(gamma_max=1.25, base_resolution=64, resolution_step=16)
    assert gamma_axis(spec) == [(1.0, 64), (1.25, 80)]


def test_quick_grid() -> None:
    triples = feasible_grid(GridSpec(step=0.1, gamma_max=1.25, base_resolution=32,
                                     resolution_step=8))
    assert [t.key for t in triples] == [
        "a2.00_b1.00_g1.000", "a1.60_b1.10_g1.000", "a1.70_b1.10_g1.000",
        "a1.40_b1.20_g1.000", "a1.20_b1.30_g1.000", "a1.00_b1.40_g1.000",
        "a1.30_b1.00_g1.250", "a1.10_b1.10_g1.250",
    ]
    assert {t.resolution for t in triples} == {32, 40}


def test_empty_grid_is_refused_with_a_hint() -> None:
    with pytest.raises(EffscaleError, match="widen --tolerance"):
        feasible_grid(GridSpec(alpha_max=1.0, beta_max=1.0, gamma_max=1.0))
    with pytest.raises(EffscaleError, match="widen --tolerance"):
        feasible_grid(GridSpec(step=0.5, gamma_max=1.0, tolerance=0.01, alpha_max=1.5))


@pytest.mark.parametrize("bad", [{"alpha_max": 0.5}, {"step": 0.0}, {"step": float("nan")},
                                 {"tolerance": -1.0}])
def test_bad_grid_settings(bad: dict) -> None:
    with pytest.raises(EffscaleError):
        feasible_grid(GridSpec(**bad))


def test_single_axis_names_the_curves_ends() -> None:
    assert single_axis(1.8, 1.0, 1.0) == "depth-only"
    assert single_axis(1.0, 1.45, 1.0) == "width-only"
    assert single_axis(1.0, 1.0, 1.4) == "resolution-only"
    assert single_axis(1.0, 1.11, 1.3) is None
    assert single_axis(1.0, 1.0, 1.0) is None  # the base is no end
