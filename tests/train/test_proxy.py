"""The proxy convention: real pixels, no degenerate final maps."""

from __future__ import annotations

import pytest

from effscale.datasets.registry import native_size
from effscale.errors import EffscaleError
from effscale.experiment.budgets import BUDGETS
from effscale.experiment.events import RunEvents
from effscale.model.bases import get_base
from effscale.search.grid import GridSpec, budget_grid, gamma_axis
from effscale.search.run import SearchSettings, resolve_proxy
from effscale.train.proxy import final_map_size, proxy_stem_stride
from effscale.train.trainer import Recipe


@pytest.mark.parametrize(("base", "px", "stride", "final"), [
    ("b0", 32, 2, 1), ("b0", 40, 2, 2), ("b0", 20, 1, 2), ("b0", 28, 1, 2), ("b0", 224, 2, 7),
    ("resnet50", 32, 2, 1), ("resnet50", 20, 1, 2), ("mobilenetv2", 20, 1, 2),
])
def test_final_map_size(base: str, px: int, stride: int, final: int) -> None:
    assert final_map_size(get_base(base), px, stride) == final


@pytest.mark.parametrize(("px", "stride"), [(20, 1), (32, 1), (33, 2), (64, 2), (224, 2)])
def test_stem_stride_keeps_final_maps_at_least_2x2(px: int, stride: int) -> None:
    assert proxy_stem_stride(get_base("b0"), px) == stride


@pytest.mark.parametrize("name", ["smoke", "demo", "quick", "standard", "full"])
def test_every_budget_trains_on_real_pixels_of_cifar10(name: str) -> None:
    budget = BUDGETS[name]
    spec = budget_grid(budget)
    assert max(px for _, px in gamma_axis(spec)) <= native_size("cifar10")
    assert final_map_size(get_base("b0"), budget.resolution,
                          proxy_stem_stride(get_base("b0"), budget.resolution)) >= 2


def _settings(resolution: int, gamma_max: float, upsampling: bool = False) -> SearchSettings:
    budget = BUDGETS["quick"].override(resolution=resolution)
    return SearchSettings(base="b0", dataset="cifar10", budget=budget,
                          grid=GridSpec(base_resolution=resolution, gamma_max=gamma_max,
                                        resolution_step=None, gamma_step=0.1),
                          recipe=Recipe(), allow_upsampling=upsampling)


def test_gamma_axis_is_capped_at_the_native_size() -> None:
    messages: list[str] = []
    events = RunEvents()
    events.message = messages.append  # type: ignore[method-assign]
    resolved = resolve_proxy(_settings(24, 1.5), events)
    assert max(px for _, px in gamma_axis(resolved.grid)) <= 32
    assert resolved.recipe.stem_stride == 1
    assert "native size" in messages[0]


def test_a_base_above_the_native_size_is_refused_unless_asked() -> None:
    with pytest.raises(EffscaleError, match="native 32 px"):
        resolve_proxy(_settings(40, 1.2), RunEvents())
    resolved = resolve_proxy(_settings(40, 1.2, upsampling=True), RunEvents())
    assert resolved.recipe.stem_stride == 2
