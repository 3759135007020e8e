"""The feasible grid's properties, for any axis bounds, step and tolerance (hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from effscale.errors import EffscaleError
from effscale.search.grid import GridSpec, axis, feasible_grid, gamma_axis

steps = st.sampled_from([0.05, 0.1, 0.125, 0.2, 0.25])
maxima = st.floats(1.0, 2.5)
tolerances = st.floats(0.005, 1.0)


@settings(max_examples=40, deadline=None)
@given(alpha_max=maxima, beta_max=maxima, gamma_max=st.floats(1.0, 1.6), step=steps,
       tolerance=tolerances, resolution_step=st.sampled_from([None, 4, 8, 16]))
def test_every_feasible_triple_satisfies_the_constraint(
        alpha_max: float, beta_max: float, gamma_max: float, step: float, tolerance: float,
        resolution_step: int | None) -> None:
    spec = GridSpec(alpha_max, beta_max, gamma_max, step, tolerance, base_resolution=32,
                    resolution_step=resolution_step)
    try:
        triples = feasible_grid(spec)
    except EffscaleError:
        return
    assert len({(t.alpha, t.beta, t.resolution) for t in triples}) == len(triples)
    for t in triples:
        assert abs(t.alpha * t.beta**2 * t.gamma**2 - 2.0) < tolerance + 1e-9
        assert 1 <= t.alpha <= alpha_max + 1e-9 and 1 <= t.beta <= beta_max + 1e-9
        assert 1 <= t.gamma <= gamma_max + 1e-9
        assert t.resolution == round(32 * t.gamma)


@settings(max_examples=40, deadline=None)
@given(step=steps, low=tolerances, high=tolerances)
def test_feasible_set_grows_with_the_tolerance(step: float, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)

    def keys(tolerance: float) -> set[str]:
        try:
            return {t.key for t in feasible_grid(GridSpec(step=step, tolerance=tolerance))}
        except EffscaleError:
            return set()

    assert keys(low) <= keys(high)


@settings(max_examples=60, deadline=None)
@given(maximum=st.floats(1.0, 3.0), step=st.floats(0.01, 1.0))
def test_axis_starts_at_one_steps_evenly_and_stays_in_range(maximum: float, step: float
                                                            ) -> None:
    values = axis(maximum, step)
    assert values[0] == 1.0 and values[-1] <= maximum + 1e-9
    assert all(abs((b - a) - step) < 1e-5 for a, b in itertools.pairwise(values))
    assert maximum - values[-1] < step + 1e-9  # nothing left out at the top


@settings(max_examples=40, deadline=None)
@given(base=st.integers(8, 256), gamma_max=st.floats(1.0, 2.0), size_step=st.integers(1, 32))
def test_gamma_axis_sizes_are_distinct_multiples_of_the_step(base: int, gamma_max: float,
                                                             size_step: int) -> None:
    spec = GridSpec(gamma_max=gamma_max, base_resolution=base, resolution_step=size_step)
    pairs = gamma_axis(spec)
    sizes = [size for _, size in pairs]
    assert sizes[0] == base and len(set(sizes)) == len(sizes)
    assert all((size - base) % size_step == 0 and size <= base * gamma_max + 1e-6
               for size in sizes)
    assert all(abs(gamma * base - size) < 1e-3 for gamma, size in pairs)
