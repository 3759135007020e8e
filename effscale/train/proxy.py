"""The proxy convention: how a full-size model is shrunk to be trained briefly, and why.

Coefficients are applied at full size (``effscale derive`` builds b0 at 224 px), so the cost of
a candidate is measured there. The proxy is only a stand-in for *accuracy*: the same depth and
width, trained at a small input size on the proxy dataset. Two rules keep it honest:

1. **Real pixels.** A proxy input never exceeds the dataset's native size unless the user asks
   (``--allow-upsampling``): on CIFAR-10 (32 px) every size above 32 adds no information, only
   upsampled pixels. The resolution axis therefore lives *below* the native size: a 20 px base
   and gamma up to 1.4 (28 px) on CIFAR-10.
2. **No degenerate final maps.** B0 divides its input by 32; at 32 px its last stages see 1x1
   maps, and any larger input turns them into 2x2 (measured: 40 px costs 2.49x the FLOPs of 32
   px), so "resolution" would mean "un-collapse the last maps". The proxy's stem stride is
   lowered (2 -> 1) until the base's final map is at least ``MIN_FINAL_MAP`` pixels wide, for
   the base and every candidate alike (measured on 2 CPU cores: b0 with stem stride 1 at 20 px
   trains at 341 img/s against 494 img/s for stem stride 2 at 32 px, and its final maps are
   2x2 for every gamma in 1..1.4).

The base's proxy size follows the data (:func:`proxy_base_size`): a budget names a rule,
``cpu`` or ``gpu``, and the size is 5/8 of the native size (20 px for 32 px data), at least
the rule's floor and at most its ceiling (``cpu``: 20..32 px, where each pixel costs minutes;
``gpu``: 64..160 px, where 20 px leaves the device idle), and never so large that the
resolution-only end (gamma ~1.41) would pass the native size. A dataset without a known
native size (an image folder) gets the rule's floor. ``--resolution`` overrides it.
"""

from __future__ import annotations

import math

from effscale.datasets.registry import native_size
from effscale.model.config import ModelConfig

MIN_FINAL_MAP = 2


def final_map_size(config: ModelConfig, resolution: int, stem_stride: int | None = None) -> int:
    """Side of the last stage's feature map for a ``resolution`` px input (every conv pads
    ``kernel // 2``, so each stride ``s`` maps ``n`` to ``ceil(n / s)``)."""
    size = math.ceil(resolution / (config.stem_stride if stem_stride is None else stem_stride))
    if config.stem_pool:
        size = math.ceil(size / 2)
    for stage in config.stages:
        size = math.ceil(size / stage.stride)
    return size


def proxy_stem_stride(config: ModelConfig, resolution: int) -> int:
    """The largest stem stride, up to the config's own, whose final map at ``resolution`` is
    at least ``MIN_FINAL_MAP`` wide (1 when even stride 1 cannot reach it)."""
    for stride in range(config.stem_stride, 0, -1):
        if final_map_size(config, resolution, stride) >= MIN_FINAL_MAP:
            return stride
    return 1


def upsampling_note(dataset: str, largest_px: int) -> str | None:
    """A warning when the largest proxy input is above the dataset's native size."""
    native = native_size(dataset)
    if native is not None and largest_px > native:
        return (f"proxy inputs up to {largest_px} px exceed {dataset}'s native {native} px: "
                "those candidates see upsampled pixels, so their resolution adds no "
                "information (--allow-upsampling was given)")
    return None


PROXY_RULES = ("cpu", "gpu")
NATIVE_SHARE = 5 / 8  # the share of the native size a proxy base takes: 20 of 32 px
GAMMA_HEADROOM = 1.45  # room under the native size for the resolution-only end (gamma ~1.41)
RULE_RANGE = {"cpu": (20, 32), "gpu": (64, 160)}  # (floor, ceiling) of the base in px


def proxy_base_size(native: int | None, rule: str) -> int:
    """The proxy base input size in px for data of ``native`` px (``None``: unknown) under
    the ``cpu`` or ``gpu`` rule: ``NATIVE_SHARE`` of the native size within the rule's range,
    then lowered until ``GAMMA_HEADROOM`` times it stays within the native size (the data,
    not the rule, caps it: 32 px CIFAR-10 gets 20 px on a CPU and 22 px under ``gpu``)."""
    if rule not in RULE_RANGE:
        raise ValueError(f"proxy rule must be one of {', '.join(PROXY_RULES)}, got {rule!r}")
    floor, ceiling = RULE_RANGE[rule]
    if native is None:
        return floor
    wanted = min(ceiling, max(floor, round(native * NATIVE_SHARE)))
    room = math.floor(native / GAMMA_HEADROOM + 1e-9)
    return max(8, min(wanted, room))
