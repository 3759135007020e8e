"""A found coefficient is an interval: the values that build the same proxy model."""

from __future__ import annotations

import pytest

from effscale.model.bases import get_base
from effscale.model.config import ScalingRules
from effscale.search.aliases import coefficient_aliases, depth_signature, phi_range
from effscale.search.grid import GridSpec

RULES = ScalingRules()


def test_alpha_1_8_to_2_0_build_the_same_b0() -> None:
    base = get_base("b0")
    assert depth_signature(base, 1.8, RULES) == depth_signature(base, 2.0, RULES) \
        == (2, 4, 4, 6, 6, 8, 2)
    spec = GridSpec(step=0.05, alpha_max=2.0, beta="grid", base_resolution=20,
                    resolution_step=None, gamma_step=0.1, gamma_max=1.4)
    aliases = coefficient_aliases(base, 1.9, 1.0, 1.0, spec, RULES)
    # ceil(4 alpha) = 8 needs alpha > 1.75: every alpha in (1.75, 2] builds these blocks
    assert aliases["alpha"]["same_model"] == pytest.approx([1.7505, 2.0], abs=1e-3)
    assert aliases["alpha"]["grid"] == [1.8, 1.85, 1.9, 1.95, 2.0]
    assert phi_range(aliases["alpha"]["same_model"], 7) == pytest.approx([50.3, 128.0], abs=0.5)


def test_gamma_interval_is_the_proxy_pixel() -> None:
    spec = GridSpec(base_resolution=20, resolution_step=None, gamma_step=0.15, gamma_max=1.3)
    aliases = coefficient_aliases(get_base("b0"), 1.0, 1.23, 1.15, spec, RULES)
    assert aliases["gamma"]["proxy_px"] == 23
    assert aliases["gamma"]["same_model"] == pytest.approx([1.125, 1.1745], abs=1e-3)
    assert aliases["gamma"]["grid"] == [1.15]
    low, high = aliases["beta"]["same_model"]
    assert low <= 1.23 <= high and high - low < 0.05
