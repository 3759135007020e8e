"""build_model: shapes with a non-default num_classes, gradients everywhere, and the block
wiring (stride placement, stochastic depth, squeeze-excite widths) checked on real modules."""

from __future__ import annotations

import pytest
import torch
from helpers import CONFIGS
from torch import nn

from effscale.model.bases import get_base
from effscale.model.blocks import DropPath, MBConv, SqueezeExcite
from effscale.model.builder import build_model
from effscale.model.config import ModelConfig, load_config
from effscale.model.flops import count_params

NUM_CLASSES = 7
PAPER_RULE = CONFIGS / "paper-rule"  # B1-B7 derived with the paper's coefficients


def _config(name: str) -> ModelConfig:
    """A base by name, or a shipped paper-rule config by file stem."""
    if (PAPER_RULE / f"{name}.yaml").is_file() and name != "b0":
        return load_config(PAPER_RULE / f"{name}.yaml")
    return get_base(name)


# name -> (parameters with 1000 classes, width feeding the classifier)
MODELS = {
    "b0": (5_288_548, 1280),
    "mobilenetv2": (3_504_872, 1280),
    "resnet50": (25_557_032, 2048),
    "b1": (9_109_994, 1408),  # configs/paper-rule/b1.yaml, derived with the paper's coefficients
}


def _blocks(model: nn.Module) -> list[list[nn.Module]]:
    return [list(stage) for stage in model.backbone.stages]


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(_config(name).replace(num_classes=NUM_CLASSES)).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad
    stem = model.backbone.stem[0][0].weight.grad
    assert stem.abs().sum() > 0  # the gradient reaches the first layer


@pytest.mark.parametrize("name", MODELS)
def test_num_classes_changes_only_the_classifier(name: str) -> None:
    params_1000, width = MODELS[name]
    model = build_model(_config(name).replace(num_classes=NUM_CLASSES))
    assert model.classifier.in_features == width
    assert count_params(model) == params_1000 - (1000 - NUM_CLASSES) * (width + 1)


@pytest.mark.parametrize("name", MODELS)
def test_only_first_block_of_a_stage_strides(name: str) -> None:
    config = _config(name)
    model = build_model(config)
    for stage, blocks in zip(config.stages, _blocks(model), strict=True):
        assert len(blocks) == stage.repeats
        for index, block in enumerate(blocks):
            strides = {conv.stride for conv in block.modules() if isinstance(conv, nn.Conv2d)}
            expected = stage.stride if index == 0 else 1
            assert max(strides) == (expected, expected), (stage, index)
    with torch.no_grad():
        features = model.eval().backbone.forward_features(torch.zeros(1, 3, 64, 64))
    assert features[-1].shape[-2:] == (2, 2)  # overall stride 32


def _rates(model: nn.Module) -> list[float | None]:
    """The stochastic-depth rate of each block in network order; None where there is none."""
    rates: list[float | None] = []
    for blocks in _blocks(model):
        for block in blocks:
            rates.append(block.drop_path.rate if isinstance(block.drop_path, DropPath) else None)
    return rates


def test_drop_path_rate_rises_linearly_b0() -> None:
    rates = _rates(build_model(get_base("b0")))
    assert len(rates) == 16
    # Only blocks with a residual (stride 1, same width) have a branch to drop.
    residual = [i for i, rate in enumerate(rates) if rate is not None]
    assert residual == [2, 4, 6, 7, 9, 10, 12, 13, 14]
    for i in residual:
        assert rates[i] == pytest.approx(0.2 * i / 16)


def test_drop_path_rate_first_zero_last_below_max() -> None:
    # ResNet-50 has 16 blocks, every one with a residual branch.
    rates = _rates(build_model(get_base("resnet50").replace(drop_path_rate=0.2)))
    assert rates == pytest.approx([0.2 * i / 16 for i in range(16)])
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2 * 15 / 16)


def test_drop_path_rate_derived_b1() -> None:
    config = load_config(PAPER_RULE / "b1.yaml")
    rates = _rates(build_model(config))
    total = sum(stage.repeats for stage in config.stages)
    assert len(rates) == total == 23
    assert rates[-1] == pytest.approx(0.2 * 22 / 23)  # b1's last stage has two blocks


def test_drop_path_active_only_in_training() -> None:
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(1000, 3)
    assert torch.equal(drop.eval()(x), x)
    y = drop.train()(x)
    kept = (y[:, 0] != 0).float().mean().item()
    assert 0.4 < kept < 0.6
    assert set(y.unique().tolist()) == {0.0, 2.0}  # survivors are scaled by 1 / keep


def _se(block: MBConv) -> SqueezeExcite:
    (se,) = [m for m in block.modules() if isinstance(m, SqueezeExcite)]
    return se


def test_se_squeeze_width_from_block_input_b0() -> None:
    stages = _blocks(build_model(get_base("b0")))
    # (stage, block) -> (block input channels, hidden channels, squeeze channels)
    expected = {
        (0, 0): (32, 32, 8),
        (1, 0): (16, 96, 4),
        (1, 1): (24, 144, 6),
        (2, 0): (24, 144, 6),
        (5, 0): (112, 672, 28),
        (6, 0): (192, 1152, 48),
    }
    for (s, b), (cin, hidden, squeeze) in expected.items():
        se = _se(stages[s][b])
        assert se.reduce.weight.shape == (squeeze, hidden, 1, 1)
        assert se.expand.weight.shape == (hidden, squeeze, 1, 1)
        first_conv = next(m for m in stages[s][b].modules() if isinstance(m, nn.Conv2d))
        assert first_conv.in_channels == cin


def test_se_squeeze_is_quarter_of_input_everywhere() -> None:
    for blocks in _blocks(build_model(load_config(PAPER_RULE / "b4.yaml"))):
        for block in blocks:
            cin = next(m for m in block.modules() if isinstance(m, nn.Conv2d)).in_channels
            assert _se(block).reduce.out_channels == int(cin * 0.25)


def test_mobilenetv2_and_resnet50_have_no_se() -> None:
    for name in ("mobilenetv2", "resnet50"):
        model = build_model(get_base(name))
        assert not [m for m in model.modules() if isinstance(m, SqueezeExcite)]
