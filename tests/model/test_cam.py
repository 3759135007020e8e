"""Class activation maps: the exact CAM of a global-pool + linear head, by hand and on b0."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effscale.errors import EffscaleError
from effscale.model.bases import get_base
from effscale.model.builder import build_model
from effscale.model.cam import class_activation_maps, has_cam, predicted_masks, upsample
from effscale.model.classifier import ClassifierNet
from effscale.model.config import Head


def hand_built() -> ClassifierNet:
    """A ClassifierNet whose features are its input (3 channels) and whose classifier is
    W = [[1, 0, -1], [0, 2, 1]], b = [0.5, -1]."""
    net = ClassifierNet(get_base("b0", num_classes=2))
    net.backbone, net.head = nn.Identity(), nn.Identity()
    net.classifier = nn.Linear(3, 2)
    with torch.no_grad():
        net.classifier.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 1.0]]))
        net.classifier.bias.copy_(torch.tensor([0.5, -1.0]))
    return net


def test_cam_of_a_hand_built_net_is_the_formula() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]],
                       [[0.0, 1.0], [0.0, 1.0]],
                       [[2.0, 0.0], [1.0, 1.0]]]])
    result = class_activation_maps(hand_built(), x)
    # CAM_k(x, y) = sum_c W[k, c] F[c, x, y]
    assert result.maps[0, 0].tolist() == [[-1.0, 2.0], [2.0, 3.0]]  # F0 - F2
    assert result.maps[0, 1].tolist() == [[2.0, 2.0], [1.0, 3.0]]  # 2 F1 + F2
    # logit_k = mean CAM_k + b_k: 6/4 + 0.5 and 8/4 - 1
    assert result.logits[0].tolist() == [2.0, 1.0]
    assert result.predicted.tolist() == [0]
    assert result.of_predicted()[0].tolist() == [[-1.0, 2.0], [2.0, 3.0]]


def test_cam_mean_plus_bias_is_the_logit_of_every_class_on_b0() -> None:
    torch.manual_seed(0)
    config = get_base("b0", num_classes=5).replace(resolution=64, dropout=0.3)
    model = build_model(config)
    for module in model.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.randn(3, 3, 64, 64)
    result = class_activation_maps(model, x)
    assert result.maps.shape == (3, 5, 2, 2)  # stride 32: 64 px -> 2 x 2 maps
    rebuilt = result.maps.mean(dim=(2, 3)) + model.classifier.bias
    torch.testing.assert_close(rebuilt, result.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(result.logits, model.eval()(x))
    features = model.head(model.backbone(x))
    expected = torch.einsum("kc,nchw->nkhw", model.classifier.weight, features)
    torch.testing.assert_close(result.maps, expected)


def test_upsampled_maps_span_zero_to_one() -> None:
    maps = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[5.0, 5.0], [5.0, 5.0]]])
    up = upsample(maps, 8)
    assert up.shape == (2, 8, 8)
    assert up[0].min().item() == 0.0 and up[0].max().item() == pytest.approx(1.0)
    assert up[1].abs().max().item() == 0.0  # a constant map shows nothing


def test_a_unet_has_no_cam_but_a_predicted_mask() -> None:
    config = get_base("b0", num_classes=3).replace(resolution=32, head=Head(type="unet"))
    model = build_model(config)
    assert not has_cam(model)
    with pytest.raises(EffscaleError, match="global average pooling"):
        class_activation_maps(model, torch.randn(1, 3, 32, 32))
    masks = predicted_masks(model, torch.randn(2, 3, 32, 32))
    assert masks.shape == (2, 32, 32) and masks.dtype == torch.int64
    assert 0 <= int(masks.min()) and int(masks.max()) < 3
