"""The rounding rules and scale_config: worked examples first, then properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from effscale.errors import EffscaleError
from effscale.model.bases import efficientnet_b0, resnet50
from effscale.model.config import Provenance, ScalingRules
from effscale.model.rounding import round_depth, round_resolution, round_width
from effscale.scaling.compound import scale_config

# (channels, divisor, expected). Rule: max(d, int(c + d/2) // d * d), plus d if below 0.9 c.
ROUND_WIDTH_CASES = [
    (32 * 1.0, 8, 32),
    (32 * 1.1, 8, 32),  # 35.2: int(39.2)=39 -> 32; 32 >= 31.68, kept
    (32 * 1.2, 8, 40),  # 38.4: int(42.4)=42 -> 40
    (32 * 1.4, 8, 48),  # 44.8: int(48.8)=48 -> 48 (official B4 stem)
    (32 * 1.6, 8, 48),  # 51.2: int(55.2)=55 -> 48; 48 >= 46.08, kept (official B5 stem)
    (32 * 1.8, 8, 56),  # 57.6: int(61.6)=61 -> 56 (official B6 stem)
    (32 * 2.0, 8, 64),
    (16 * 1.1, 8, 16),  # 17.6: int(21.6)=21 -> 16; 16 >= 15.84, kept
    (24 * 1.4, 8, 32),  # 33.6: int(37.6)=37 -> 32
    (112 * 1.4, 8, 160),  # 156.8: int(160.8)=160
    (192 * 1.4, 8, 272),  # 268.8: int(272.8)=272
    (1280 * 1.1, 8, 1408),
    (1280 * 1.4, 8, 1792),
    (1280 * 1.8, 8, 2304),
    (99, 8, 96),  # int(103)=103 -> 96; 96 >= 89.1, kept
    (100, 8, 104),  # int(104)=104 -> 104
    (27, 8, 32),  # int(31)=31 -> 24; 24 < 24.3 -> +8
    (10, 8, 16),  # int(14)=14 -> 8; 8 < 9 -> +8
    (11, 8, 16),
    (12, 8, 16),  # int(16)=16 -> 16
    (3, 8, 8),  # int(7)=7 -> 0 -> max(8, 0)
    (0, 8, 8),
    (5, 4, 8),  # int(7)=7 -> 4; 4 < 4.5 -> +4
    (6, 4, 8),  # int(8)=8 -> 8
    (20, 16, 32),  # int(28)=28 -> 16; 16 < 18 -> +16
    (7, 1, 7),
]


@pytest.mark.parametrize(("channels", "divisor", "expected"), ROUND_WIDTH_CASES)
def test_round_width(channels: float, divisor: int, expected: int) -> None:
    assert round_width(channels, divisor) == expected


ROUND_DEPTH_CASES = [
    (1.0, "ceil", 1),
    (1 * 1.1, "ceil", 2),
    (3 * 1.1, "ceil", 4),  # 3.3000000000000003
    (5 * 1.2, "ceil", 6),  # exactly 6.0 in binary floating point
    (6.000000000000001, "ceil", 6),  # float noise must not add a block
    (10 * (0.1 * 3), "ceil", 3),  # 3.0000000000000004
    (3 * 1.4, "ceil", 5),  # 4.199999999999999
    (4 * 1.8, "ceil", 8),
    (1 * 3.1, "ceil", 4),
    (0.1, "ceil", 1),
    (0.0, "ceil", 1),
    (2.5, "round", 3),  # half rounds up, not to even
    (1.5, "round", 2),
    (4.5, "round", 5),
    (3.49, "round", 3),
    (5 * 1.2, "round", 6),
    (3 * 1.5, "round", 5),  # 4.5
    (0.4, "round", 1),  # never below 1
    (1.44, "round", 1),
]


@pytest.mark.parametrize(("repeats", "rule", "expected"), ROUND_DEPTH_CASES)
def test_round_depth(repeats: float, rule: str, expected: int) -> None:
    assert round_depth(repeats, rule) == expected


def test_round_depth_unknown_rule() -> None:
    with pytest.raises(ValueError, match="'floor'"):
        round_depth(2.0, "floor")


ROUND_RESOLUTION_CASES = [
    (224 * 1.15, 8, 256),  # 257.6 / 8 = 32.2
    (224 * 1.15**2, 8, 296),  # 296.24
    (224 * 1.15**3, 8, 344),  # 340.68 / 8 = 42.6
    (228, 8, 232),  # 28.5: half up
    (227.9, 8, 224),
    (3, 8, 8),  # never below the multiple
    (224 * 1.15, 4, 256),  # 64.4
    (258, 4, 260),  # 64.5: half up
    (299, 4, 300),
    (240, 32, 256),  # 7.5: half up
    (257.6, 1, 258),
]


@pytest.mark.parametrize(("resolution", "multiple", "expected"), ROUND_RESOLUTION_CASES)
def test_round_resolution(resolution: float, multiple: int, expected: int) -> None:
    assert round_resolution(resolution, multiple) == expected


# --------------------------------------------------------------------------- properties

channels_st = st.floats(min_value=0, max_value=1e5, allow_nan=False)
divisor_st = st.integers(min_value=1, max_value=64)
multiplier_st = st.floats(min_value=0.05, max_value=10, allow_nan=False)


@given(channels_st, divisor_st)
def test_round_width_properties(channels: float, divisor: int) -> None:
    rounded = round_width(channels, divisor)
    assert rounded % divisor == 0
    assert rounded >= divisor
    assert rounded >= 0.9 * channels
    assert rounded <= max(divisor, channels + divisor)


@given(st.integers(1, 2048), multiplier_st, multiplier_st, divisor_st)
def test_round_width_monotone(channels: int, m1: float, m2: float, divisor: int) -> None:
    low, high = sorted((m1, m2))
    assert round_width(channels * low, divisor) <= round_width(channels * high, divisor)


@given(st.floats(min_value=0, max_value=1e4, allow_nan=False))
def test_round_depth_properties(repeats: float) -> None:
    ceil, nearest = round_depth(repeats, "ceil"), round_depth(repeats, "round")
    assert ceil >= 1 and nearest >= 1
    assert ceil >= repeats - 1e-9  # the epsilon absorbs float noise only
    assert ceil < repeats + 1 or ceil == 1
    assert abs(nearest - repeats) <= 0.5 or (nearest == 1 and repeats < 0.5)


@given(st.integers(1, 16), multiplier_st, multiplier_st, st.sampled_from(["ceil", "round"]))
def test_round_depth_monotone(repeats: int, m1: float, m2: float, rule: str) -> None:
    low, high = sorted((m1, m2))
    assert round_depth(repeats * low, rule) <= round_depth(repeats * high, rule)


@given(st.floats(min_value=1, max_value=8192, allow_nan=False), st.sampled_from([1, 4, 8, 32]))
def test_round_resolution_properties(resolution: float, multiple: int) -> None:
    rounded = round_resolution(resolution, multiple)
    assert rounded % multiple == 0
    assert rounded >= multiple
    assert abs(rounded - resolution) <= multiple / 2 or rounded == multiple


# --------------------------------------------------------------------------- scale_config


def test_scale_config_leaves_base_unchanged() -> None:
    base = efficientnet_b0()
    scaled = scale_config(base, depth=1.8, width=1.4, resolution=380 / 224)
    assert base == efficientnet_b0()
    assert scaled != base


def test_scale_config_matches_official_b4() -> None:
    scaled = scale_config(efficientnet_b0(), depth=1.8, width=1.4, resolution_px=380)
    assert scaled.resolution == 380
    assert (scaled.stem_channels, scaled.head_channels) == (48, 1792)
    assert [s.channels for s in scaled.stages] == [24, 32, 56, 112, 160, 272, 448]
    assert [s.repeats for s in scaled.stages] == [2, 4, 4, 6, 6, 8, 2]
    # Everything that is not a width, a depth or the resolution is carried over.
    base = efficientnet_b0()
    for old, new in zip(base.stages, scaled.stages, strict=True):
        assert (new.kernel, new.stride, new.expand, new.se_ratio, new.block) == (
            old.kernel, old.stride, old.expand, old.se_ratio, old.block)
    assert (scaled.dropout, scaled.drop_path_rate, scaled.activation) == (0.2, 0.2, "silu")


def test_scale_config_fixed_stem_head() -> None:
    rules = ScalingRules(scale_stem_head=False)
    scaled = scale_config(efficientnet_b0(), depth=1.0, width=1.4, rules=rules)
    assert (scaled.stem_channels, scaled.head_channels) == (32, 1280)
    assert scaled.stages[-1].channels == 448  # the stages still scale


def test_scale_config_keeps_missing_head_missing() -> None:
    scaled = scale_config(resnet50(), depth=1.0, width=1.5)
    assert scaled.head_channels == 0
    assert scaled.stem_channels == 96
    assert [s.channels for s in scaled.stages] == [384, 768, 1536, 3072]


def test_scale_config_rules_and_resolution() -> None:
    rules = ScalingRules(width_divisor=16, depth_rounding="round", resolution_multiple=32)
    scaled = scale_config(efficientnet_b0(), depth=1.5, width=1.1, resolution=1.15, rules=rules)
    assert scaled.resolution == 256  # 257.6 -> nearest multiple of 32
    assert [s.repeats for s in scaled.stages] == [2, 3, 3, 5, 5, 6, 2]
    assert [s.channels for s in scaled.stages] == [16, 32, 48, 96, 128, 208, 352]
    assert scaled.stem_channels == 32 and scaled.head_channels == 1408


def test_scale_config_identity_and_provenance() -> None:
    base = efficientnet_b0()
    provenance = Provenance(base="b0", depth_multiplier=1, width_multiplier=1,
                            resolution_multiplier=1, rules=ScalingRules(), tool_version="x")
    same = scale_config(base, depth=1.0, width=1.0, name="copy", provenance=provenance)
    assert same == base.replace(name="copy", provenance=provenance)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
@pytest.mark.parametrize("which", ["depth", "width", "resolution"])
def test_scale_config_rejects_bad_multipliers(which: str, bad: float) -> None:
    kwargs = {"depth": 1.0, "width": 1.0, "resolution": 1.0, which: bad}
    with pytest.raises(EffscaleError, match=f"{which} multiplier must be a positive number"):
        scale_config(efficientnet_b0(), **kwargs)
