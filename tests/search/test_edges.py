"""Where a point sits on the equal-cost curve, and the line-search points past an edge
(:mod:`effscale.search.edges`), on quick's CIFAR-10 feasible set as measured."""

from __future__ import annotations

import pytest

from effscale.search.edges import (
    Bounds,
    Point,
    lattice,
    parse_key,
    position,
    refine_key,
    refinement,
    sides,
)

# quick on CIFAR-10 (`effscale search --base b0 --dataset cifar10 --dry-run --json`):
# alpha 1/1.4/1.8, gamma 1/1.15/1.3 and the three ends, beta solved; 20 px base, 32 px native
QUICK = [
    Point("a1.00_b1.45_g1.000", 1.0, 1.45, 1.0, 20),
    Point("a1.40_b1.11_g1.000", 1.4, 1.107, 1.0, 20),
    Point("a1.80_b1.00_g1.000", 1.8, 1.0, 1.0, 20),
    Point("a1.00_b1.23_g1.150", 1.0, 1.229, 1.15, 23),
    Point("a1.00_b1.11_g1.300", 1.0, 1.111, 1.3, 26),
    Point("a1.00_b1.00_g1.400", 1.0, 1.0, 1.4, 28),
]
BOUNDS = Bounds(alpha_step=0.4, gamma_step=0.15, base_resolution=20, cap_px=32)
BY_KEY = {p.key: p for p in QUICK}


def test_the_curves_ends_sit_at_feasible_bounds() -> None:
    assert position(BY_KEY["a1.00_b1.00_g1.400"], QUICK, BOUNDS).text == \
        "at the feasible bound α = 1, β = 1"
    assert position(BY_KEY["a1.00_b1.45_g1.000"], QUICK, BOUNDS).text == \
        "at the feasible bound α = 1, γ = 1"
    depth = position(BY_KEY["a1.80_b1.00_g1.000"], QUICK, BOUNDS)
    assert depth.kind == "bound" and depth.bounds == ("β = 1", "γ = 1")


def test_a_winner_on_a_grid_edge_is_said_to_be_there() -> None:
    """Issue 28: quick's answer (alpha 1, beta 1.11, gamma 1.3) has no grid point past it
    along alpha (a1.40_g1.300 measures x2.75 with beta = 1), though beta 1.11 leaves room:
    an edge of the grid, not of the feasible set."""
    found = position(BY_KEY["a1.00_b1.11_g1.300"], QUICK, BOUNDS, "the budget (refine_rounds 0)")
    assert found.kind == "edge" and found.edges == ("+α",)
    assert found.text == ("at the edge of the searched grid (+α), refinement stopped by the "
                          "budget (refine_rounds 0)")
    assert [s.status for s in sides(BY_KEY["a1.00_b1.11_g1.300"], QUICK, BOUNDS)] == [
        "edge", "bound", "neighbour", "neighbour"]  # +α, −α, +γ, −γ


def test_an_interior_point_has_neighbours_on_both_sides_of_each_line() -> None:
    grid = [Point(f"a{a}_g{g}", a, 1.2, g, round(20 * g)) for a in (1.0, 1.2, 1.4)
            for g in (1.0, 1.1, 1.2)]
    middle = next(p for p in grid if p.alpha == 1.2 and p.gamma == 1.1)
    assert position(middle, grid, BOUNDS).text.startswith("interior optimum")
    corner = next(p for p in grid if p.alpha == 1.4 and p.gamma == 1.2)
    assert position(corner, grid, BOUNDS).edges == ("+α", "+γ")


def test_the_native_size_is_a_bound_and_a_lower_gamma_max_an_edge() -> None:
    at_cap = Point("a1.00_b1.10_g1.600", 1.0, 1.1, 1.6, 32)
    grid = [at_cap, Point("a1.00_b1.30_g1.300", 1.0, 1.3, 1.3, 26)]
    assert position(at_cap, grid, BOUNDS).text == (
        "at the edge of the searched grid (+α), refinement stopped by the budget")
    assert "the native-size cap (32 px)" in position(at_cap, grid, BOUNDS).bounds
    below = Point("a1.00_b1.30_g1.300", 1.0, 1.3, 1.3, 26)  # --gamma-max 1.3: 26 of 32 px
    grid = [below, Point("a1.00_b1.45_g1.000", 1.0, 1.45, 1.0, 20)]
    assert [s.name for s in sides(below, grid, BOUNDS) if s.status == "edge"] == ["+α", "+γ"]


def test_refinement_past_an_edge_is_a_line_search_on_the_curve() -> None:
    # alpha 1.2 at gamma 1.3 is nominally x2.03: no room for beta >= 1, so the line's
    # beta = 1 end (alpha solved) is the next point
    assert [t.key for t in refinement(BY_KEY["a1.00_b1.11_g1.300"], QUICK, BOUNDS, 3)] == [
        "refine/alpha:g1.300_b1"]
    # gamma past 1.0 at alpha 1.4: half-steps 1.075 and 1.15, then the line's end
    assert [t.key for t in refinement(BY_KEY["a1.40_b1.11_g1.000"], QUICK, BOUNDS, 3)] == [
        "refine/gamma:a1.400_g1.075", "refine/gamma:a1.400_g1.150", "refine/gamma:a1.400_b1"]
    # points at bounds only are not refined
    assert refinement(BY_KEY["a1.00_b1.00_g1.400"], QUICK, BOUNDS, 3) == []


def test_refinement_at_alpha_max_goes_past_it_and_between_it_and_its_neighbour() -> None:
    grid = [Point("a1.00_b1.45_g1.000", 1.0, 1.45, 1.0, 20),
            Point("a1.40_b1.11_g1.000", 1.4, 1.107, 1.0, 20)]  # --alpha-max 1.4 --gamma-max 1
    targets = refinement(grid[1], grid, BOUNDS, 10)
    assert [(t.key, t.kind) for t in targets] == [
        ("refine/alpha:a1.600_g1.000", "beyond"), ("refine/gamma:a1.400_g1.075", "beyond"),
        ("refine/alpha:a1.800_g1.000", "beyond"), ("refine/gamma:a1.400_g1.150", "beyond"),
        ("refine/alpha:g1.000_b1", "beyond"), ("refine/gamma:a1.400_b1", "beyond"),
        ("refine/alpha:a1.200_g1.000", "between")]
    # a small limit still looks past each edge
    assert [t.key for t in refinement(grid[1], grid, BOUNDS, 2)] == [
        "refine/alpha:a1.600_g1.000", "refine/gamma:a1.400_g1.075"]
    # two rounds list the half-steps out to 4; a refined point searches its own line only
    assert "refine/alpha:a2.200_g1.000" not in lattice(grid[1], grid, BOUNDS, 2)
    assert "refine/alpha:a2.000_g1.000" in lattice(grid[1], grid, BOUNDS, 2)
    refined = Point("refine/alpha:a1.800_g1.000", 1.8, 1.02, 1.0, 20, line="alpha")
    assert [s.name for s in sides(refined, [*grid, refined], BOUNDS)] == ["+α", "−α"]
    assert lattice(grid[1], grid, BOUNDS, 0) == []


@pytest.mark.parametrize(("key", "solve", "alpha", "gamma"), [
    ("refine/alpha:a1.200_g1.300", "beta", 1.2, 1.3),
    ("refine/alpha:g1.300_b1", "alpha", 1.0, 1.3),
    ("refine/gamma:a1.400_b1", "gamma", 1.4, 1.0),
])
def test_refinement_keys_say_how_the_point_is_solved(key: str, solve: str, alpha: float,
                                                     gamma: float) -> None:
    target = parse_key(key)
    assert (target.solve, target.alpha, target.gamma) == (solve, alpha, gamma)
    assert target.line == key.split("/")[1].split(":")[0]
    with pytest.raises(ValueError):
        parse_key("a1.00_b1.11_g1.300")
    assert refine_key("alpha", 1.2, 1.3) == "refine/alpha:a1.200_g1.300"
