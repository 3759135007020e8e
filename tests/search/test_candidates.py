"""Candidates at equal full-size FLOPs: beta solved on measured FLOPs, the window, the proxy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from effscale.experiment.budgets import get_budget
from effscale.model.bases import get_base
from effscale.model.config import ScalingRules
from effscale.model.cost import CostMeter
from effscale.scaling.equal_flops import FlopsMeter
from effscale.search.candidates import (
    build_candidates,
    extremes_found,
    solve_beta,
    solve_extremes,
)
from effscale.search.grid import GridSpec, budget_grid, single_axis
from effscale.train.proxy import proxy_stem_stride
from effscale.train.trainer import Recipe, proxy_config

RULES = ScalingRules()


def spec_of(budget_name: str, **changes: object) -> GridSpec:
    return budget_grid(get_budget(budget_name), **changes)


def candidates_of(spec: GridSpec, rtol: float | None = 0.05):
    full = get_base("b0", 10)
    recipe = Recipe(stem_stride=proxy_stem_stride(full, spec.base_resolution))

    def to_proxy(config, size):
        return proxy_config(config.replace(resolution=size), recipe, 10)

    return build_candidates(full, to_proxy, spec.base_resolution, spec, RULES, "torch", rtol)


def test_solved_beta_lands_on_the_target_at_full_size() -> None:
    measure = FlopsMeter("torch", conv_linear=True)
    full = get_base("b0", 10)
    beta, why = solve_beta(full, 1.0, 1.0, 2.0, 1.5, RULES, measure)
    assert why == "" and beta == pytest.approx(1.45, abs=0.01)
    # alpha = 1.2 alone costs more than nominal (ceil turns every one-block stage into two),
    # so at gamma = 1.2 no beta >= 1 is left.
    beta, why = solve_beta(full, 1.2, 1.2, 2.0, 1.5, RULES, measure)
    assert beta is None and "×2.28" in why


def test_solve_beta_uses_the_runs_cost_window_not_a_fixed_5_percent() -> None:
    """Defect 4: alpha 1.4 at gamma 1.1 costs x2.14 with beta = 1 (7 % over x2). A +-10 %
    window keeps it, +-5 % does not, and no window at all keeps it too; a beta_max model 3 %
    under the target is kept within +-5 % instead of refused."""
    measure = FlopsMeter("torch", conv_linear=True)
    full = get_base("b0", 10)
    assert solve_beta(full, 1.4, 1.1, 2.0, 1.5, RULES, measure, rtol=0.10) == (1.0, "")
    assert solve_beta(full, 1.4, 1.1, 2.0, 1.5, RULES, measure, rtol=None) == (1.0, "")
    beta, why = solve_beta(full, 1.4, 1.1, 2.0, 1.5, RULES, measure, rtol=0.05)
    assert beta is None and "×2.14" in why
    # width alone at beta_max 1.43 measures x1.936 (3.2 % under x2)
    assert solve_beta(full, 1.0, 1.0, 2.0, 1.43, RULES, measure, rtol=0.05) == (1.43, "")
    beta, why = solve_beta(full, 1.0, 1.0, 2.0, 1.43, RULES, measure, rtol=0.02)
    assert beta is None and "needs β > --beta-max 1.43" in why


@pytest.mark.slow  # 20 s or more on 2 shared cores
def test_a_wider_window_reaches_the_candidates_through_the_grid() -> None:
    """build_candidates passes its window to the solver: alpha 1.4 with beta = 1 at gamma
    1.1 is a candidate under +-10 %."""
    spec = replace(spec_of("smoke"), alpha_max=1.4, step=0.4, gamma_max=1.1,
                   gamma_step=0.1)
    kept, skipped = candidates_of(spec, rtol=0.10)
    assert any(c.alpha == 1.4 and c.beta == 1.0 for c in kept), (kept, skipped)
    kept5, _ = candidates_of(spec, rtol=0.05)
    assert not any(c.alpha == 1.4 and c.beta == 1.0 for c in kept5)


@pytest.mark.slow  # 20 s or more on 2 shared cores
def test_demo_trains_one_candidate_per_direction_at_2x() -> None:
    kept, _ = candidates_of(spec_of("demo"))
    assert [(c.alpha, c.gamma) for c in kept if not c.is_base] == [
        (1.0, 1.0), (1.8, 1.0), (1.0, 1.3), (1.0, 1.4)]
    assert all(abs(c.flops_ratio / 2 - 1) <= 0.05 for c in kept if not c.is_base)


@pytest.mark.slow  # 20 s or more on 2 shared cores
def test_quick_candidates_cost_2x_within_5_percent_at_full_size_with_four_gammas() -> None:
    kept, skipped = candidates_of(spec_of("quick"))
    grid = [c for c in kept if not c.is_base]
    assert len(grid) == 6
    for c in grid:
        assert abs(c.flops_ratio / 2 - 1) <= 0.05, c.key
        assert c.full_resolution >= 224 and c.resolution <= 32  # real pixels on CIFAR-10
    assert sorted({c.gamma for c in grid}) == [1.0, 1.15, 1.3, 1.4]
    # the proxy's own ratio is shown, not used: resolution-scaled proxies cost less there
    by_key = {c.key: c for c in grid}
    assert by_key["a1.00_b1.11_g1.300"].proxy_flops_ratio < 1.8
    assert all(s.reason for s in skipped)


@pytest.mark.slow  # 20 s or more on 2 shared cores
@pytest.mark.parametrize("budget", ["smoke", "demo", "quick"])
def test_every_budget_holds_the_three_ends_of_the_equal_cost_curve(budget: str) -> None:
    """Issue 28: quick's grid stopped at gamma 1.3, so the resolution-only end (alpha = beta
    = 1, gamma ~ 1.4 = 28 px from 20) was never searched. Every budget's feasible set on
    CIFAR-10's native size (32 px) now holds depth-only, width-only and resolution-only,
    each at 2x full-size FLOPs."""
    spec = spec_of(budget)
    spec = replace(spec, gamma_max=min(spec.gamma_max, 32 / spec.base_resolution))
    kept, skipped = candidates_of(spec)
    found = extremes_found(kept, skipped)
    by_key = {c.key: c for c in kept}
    assert set(found) == {"depth-only", "width-only", "resolution-only"}
    for name, key in found.items():
        c = by_key[key]
        assert single_axis(c.alpha, c.beta, c.gamma) == name
        assert abs(c.flops_ratio / 2 - 1) <= 0.05
    resolution_only = by_key[found["resolution-only"]]
    assert resolution_only.gamma >= 1.35 and resolution_only.resolution <= 32
    assert by_key[found["width-only"]].beta == pytest.approx(1.45, abs=0.01)


@pytest.mark.slow  # the quick grid measured at full size: 18 s on 2 shared cores
def test_an_end_the_gamma_cap_cuts_off_is_named_with_the_reason() -> None:
    spec = spec_of("quick", gamma_max=1.3)
    kept, skipped = candidates_of(spec)
    found = extremes_found(kept, skipped)
    assert found["resolution-only"].startswith("not reached: needs γ 1.4 (28 px proxy")
    assert "--gamma-max 1.3" in found["resolution-only"]
    assert not found["depth-only"].startswith("not")
    measure = FlopsMeter("torch", conv_linear=True)
    _, why = solve_extremes(get_base("b0", 10), spec, RULES, measure,
                            gamma_cap="cifar10's native 32 px caps γ at 1.3")
    assert "cifar10's native 32 px" in why[0].reason and why[0].key == "resolution-only"


def test_unequal_cost_candidates_are_not_kept() -> None:
    # NNI's grid point (1.2, 1.3, 1.0) is nominally 2.03 but measures 2.5x at full size:
    # the old search ranked it first against a 1.92x runner-up. It is left out now.
    spec = spec_of("quick", beta="grid", step=0.1, gamma_max=1.0, alpha_max=1.2, beta_max=1.4)
    kept, skipped = candidates_of(spec)
    assert all(abs(c.flops_ratio / 2 - 1) <= 0.05 for c in kept if not c.is_base)
    left_out = {s.key: s for s in skipped}
    assert "a1.20_b1.30_g1.000" in left_out
    assert left_out["a1.20_b1.30_g1.000"].flops_ratio == pytest.approx(2.52, abs=0.05)


@pytest.mark.slow  # 20 s or more on 2 shared cores
def test_standard_grid_keeps_gamma_above_one() -> None:
    # the gamma axis of the standard grid (alpha 1 alone: every gamma is solved there too)
    kept, _ = candidates_of(spec_of("standard", alpha_max=1.0, gamma_max=1.3))
    gammas = {c.gamma for c in kept if not c.is_base}
    assert len(gammas) >= 3 and max(gammas) > 1.2
    assert all(c.resolution <= 32 for c in kept)


def test_a_cost_the_resolution_does_not_move_names_the_end_it_cannot_reach() -> None:
    """`search --cost params` stopped with "no multiplier up to 64 reaches ... (params)":
    parameters do not grow with resolution, so the solver for the resolution-only end never
    got there. That end is reported as not reached, with the reason; the others are solved
    on parameters."""
    spec = spec_of("smoke")
    meter = CostMeter("params")
    ends, missed = solve_extremes(get_base("b0", 10), spec, RULES, meter)
    assert [s.key for s in missed] == ["resolution-only"]
    assert "params cost does not grow with resolution" in missed[0].reason
    assert {single_axis(t.alpha, t.beta, t.gamma) for t in ends} <= {"depth-only", "width-only"}
    for t in ends:
        assert t.gamma == 1.0 and (t.alpha > 1 or t.beta > 1)
