"""Weight initialisation: done on real tensors, skipped on the meta device (FLOPs counting)."""

from __future__ import annotations

import torch
from torch import nn

from effscale.model.bases import get_base
from effscale.model.builder import build_model


def test_a_real_model_is_initialised_and_a_meta_model_is_built_without_values() -> None:
    torch.manual_seed(0)
    model = build_model(get_base("b0"))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    first = convs[0].weight  # He init, fan-out: std sqrt(2 / (out x k x k))
    expected = (2.0 / (first.shape[0] * first.shape[2] * first.shape[3])) ** 0.5
    assert abs(first.std().item() / expected - 1) < 0.2
    linear = model.classifier if isinstance(model.classifier, nn.Linear) else next(
        m for m in model.modules() if isinstance(m, nn.Linear))
    assert linear.weight.abs().max().item() <= 1.0 / linear.in_features**0.5
    with torch.device("meta"):
        meta = build_model(get_base("b0"))
    assert all(p.is_meta for p in meta.parameters())
    assert sum(p.numel() for p in meta.parameters()) == sum(
        p.numel() for p in model.parameters())
