"""Eff-UNet: shapes for every base, skip taps, gradients, decoder FLOPs, derive --head unet."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import CONFIGS

from effscale import build_model, count_flops, load_config
from effscale.errors import ConfigError
from effscale.model.bases import get_base
from effscale.model.config import Head, ModelConfig
from effscale.model.unet import UNet, encoder_steps, encoder_taps, output_stride
from effscale.scaling.derive import PAPER_COEFFICIENTS, Coefficients, derive_config, with_head

UNET = Head(type="unet")
NUM_CLASSES = 5  # not the default, so a wrong class count shows


def unet(config: ModelConfig, head: Head = UNET) -> ModelConfig:
    return config.replace(head=head, num_classes=NUM_CLASSES)


def configs() -> list[tuple[str, ModelConfig]]:
    bases = [(name, get_base(name)) for name in ("b0", "mobilenetv2", "resnet50")]
    derived = [(f"{name}.yaml", load_config(CONFIGS / "paper-rule" / f"{name}.yaml"))
               for name in ("b0", "b1", "b2", "b3")]
    return [(label, unet(config)) for label, config in bases + derived]


@pytest.mark.parametrize(("label", "config"), configs(), ids=[c[0] for c in configs()])
@pytest.mark.parametrize("size", [(64, 64), (50, 70)], ids=["64x64", "50x70-padded"])
def test_output_is_input_size_with_class_count(label: str, config: ModelConfig,
                                               size: tuple[int, int]) -> None:
    model = build_model(config).eval()
    assert isinstance(model, UNet)
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, NUM_CLASSES, *size)
    assert torch.isfinite(out).all()


def test_gradient_reaches_every_parameter() -> None:
    # Without stochastic depth: at batch 2 it can drop a whole branch and its gradient.
    config = unet(get_base("b0"), Head(type="unet", upsampling="bilinear"))
    model = build_model(config.replace(drop_path_rate=0.0)).train()
    images = torch.randn(2, 3, 64, 64)
    target = torch.randint(0, NUM_CLASSES, (2, 64, 64))
    torch.nn.functional.cross_entropy(model(images), target).backward()
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.any()]
    assert missing == []


def _tapped_features(model: UNet, image: torch.Tensor) -> list[tuple[int, int]]:
    """(channels, stride) of the real tensors each tap hands to the decoder, deepest first."""
    outputs, x = [], image
    with torch.no_grad():
        for module in model.encoder_modules():
            x = module(x)
            outputs.append(x)
    size = image.shape[-1]
    return [(outputs[t.step].shape[1], size // outputs[t.step].shape[-1])
            for t in model.taps if t.step is not None]


def test_b0_taps_are_stem_and_stride_4_8_16_stage_ends() -> None:
    config = unet(get_base("b0"))
    model = build_model(config).eval()
    assert [(t.stride, t.channels) for t in encoder_taps(config)] == [
        (16, 112), (8, 40), (4, 24), (2, 32), (1, 0)]
    assert _tapped_features(model, torch.randn(1, 3, 64, 64)) == [
        (112, 16), (40, 8), (24, 4), (32, 2)]
    deepest = encoder_steps(config)[-1]
    assert (deepest.label, deepest.channels, deepest.stride) == ("stage7", 320, 32)
    assert model.decoder[0].conv1[0].in_channels == 320 + 112
    assert [b.conv2[0].out_channels for b in model.decoder] == [256, 128, 64, 32, 16]


def test_taps_follow_width_scaling() -> None:
    b0 = [t.channels for t in encoder_taps(unet(get_base("b0")))]
    b3 = load_config(CONFIGS / "paper-rule" / "b3.yaml")
    expected = [b3.stages[4].channels, b3.stages[2].channels, b3.stages[1].channels,
                b3.stem_channels, 0]
    assert [t.channels for t in encoder_taps(unet(b3))] == expected == [152, 56, 32, 40, 0]
    assert all(wide >= narrow for wide, narrow in zip(expected, b0))
    model = build_model(unet(b3)).eval()
    assert _tapped_features(model, torch.randn(1, 3, 64, 64)) == [
        (152, 16), (56, 8), (32, 4), (40, 2)]


def test_resnet50_taps_the_stem_conv_before_its_pool() -> None:
    config = unet(get_base("resnet50"))
    steps = encoder_steps(config)
    assert [(s.label, s.stride) for s in steps[:3]] == [
        ("stem", 2), ("stem_pool", 4), ("stage1", 4)]
    assert [(t.stride, t.channels) for t in encoder_taps(config)] == [
        (16, 1024), (8, 512), (4, 256), (2, 64), (1, 0)]
    model = build_model(config).eval()
    assert _tapped_features(model, torch.randn(1, 3, 64, 64)) == [
        (1024, 16), (512, 8), (256, 4), (64, 2)]


def test_stride_one_stem_taps_full_resolution() -> None:
    config = unet(get_base("b0").replace(stem_stride=1), Head(type="unet",
                                                              decoder_channels=(64, 32, 16, 8)))
    assert output_stride(config) == 16
    assert [(t.stride, t.channels) for t in encoder_taps(config)] == [
        (8, 112), (4, 40), (2, 24), (1, 32)]
    out = build_model(config).eval()(torch.randn(1, 3, 40, 40))
    assert out.shape == (1, NUM_CLASSES, 40, 40)


def test_decoder_width_count_must_match_the_strides() -> None:
    config = unet(get_base("b0"), Head(type="unet", decoder_channels=(128, 64, 32, 16)))
    with pytest.raises(ConfigError, match=r"decoder_channels has 4 entries .* halves the "
                                          r"resolution 5 times .*give 5"):
        build_model(config)


def test_parts_split_encoder_and_decoder() -> None:
    model = build_model(unet(get_base("resnet50")))
    labels = [label for label, _ in model.parts()]
    assert labels == ["encoder.stem", "encoder.stem_pool", "encoder.stage1", "encoder.stage2",
                      "encoder.stage3", "encoder.stage4", "decoder.block1", "decoder.block2",
                      "decoder.block3", "decoder.block4", "decoder.block5", "decoder.final"]
    assert sum(sum(p.numel() for p in m.parameters()) for _, m in model.parts()) == \
        sum(p.numel() for p in model.parameters())


def _decoder_macs(config: ModelConfig, size: int) -> int:
    """Conv multiply-adds of the decoder, by hand."""
    taps, cin, total = encoder_taps(config), encoder_steps(config)[-1].channels, 0
    for tap, cout in zip(taps, config.head.decoder_channels):
        pixels = (size // tap.stride) ** 2
        total += pixels * 9 * cout * (cin + tap.channels + cout)
        cin = cout
    return total + size * size * cin * config.num_classes


def test_decoder_flops_are_counted_and_split() -> None:
    config = unet(get_base("b0"))
    report = count_flops(config, counter="torch")
    encoder, decoder = report.groups()
    assert (encoder.name, decoder.name) == ("encoder", "decoder")
    assert decoder.flops == decoder.flops_conv_linear == _decoder_macs(config, 224) == 1_897_054_208
    assert encoder.flops + decoder.flops == report.flops
    assert encoder.params + decoder.params == report.params
    # The encoder is exactly the classifier's stem and stages.
    classifier = count_flops(get_base("b0"), counter="torch")
    backbone = [p for p in classifier.parts if p.name.startswith(("stem", "stage"))]
    assert encoder.flops == sum(p.flops for p in backbone)
    assert encoder.params == sum(p.params for p in backbone)
    assert report.to_dict()["groups"][1]["flops"] == decoder.flops
    assert "groups" not in classifier.to_dict()


def test_fvcore_counts_upsampling_in_the_decoder() -> None:
    config = unet(get_base("b0"))
    report = count_flops(config, resolution=64, counter="fvcore")
    assert report.note == ""
    _, decoder = report.groups()
    assert decoder.flops_conv_linear == _decoder_macs(config, 64)
    assert decoder.flops > decoder.flops_conv_linear  # batch norm and upsampling
    assert not any("upsample" in op for op in report.uncounted_ops)


def test_padded_input_counts_padded_flops() -> None:
    config = unet(get_base("b0"))
    assert count_flops(config, resolution=200, counter="torch").flops == \
        count_flops(config, resolution=224, counter="torch").flops


def test_derive_with_unet_head() -> None:
    coeffs = Coefficients(*PAPER_COEFFICIENTS)
    plain = derive_config(coeffs, 4.0)
    seg = derive_config(coeffs, 4.0, num_classes=21, head=UNET)
    assert seg.name == "b4-unet" and seg.head == UNET and seg.num_classes == 21
    assert seg.stages == plain.stages and seg.resolution == plain.resolution
    assert with_head(seg, Head()) == plain.replace(num_classes=21)
    assert derive_config(coeffs, 4.0, head=None) == plain


def test_cli_derive_head_unet_then_flops(cli, tmp_path: Path) -> None:
    code, _, err = cli("derive", "--phi", "0,1", "--head", "unet", "--num-classes", "21",
                       "--decoder-channels", "128,64,32,16,16", "--counter", "torch",
                       "--out", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b0-unet.yaml",
                                                                     "b1-unet.yaml"]
    config = load_config(tmp_path / "out" / "b1-unet.yaml")
    assert config.head == Head(type="unet", decoder_channels=(128, 64, 32, 16, 16))
    code, out, err = cli("flops", tmp_path / "out" / "b1-unet.yaml", "--counter", "torch")
    assert code == 0, err
    assert "decoder.block5" in out and "decoder.final" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["encoder"].startswith("encoder       params ")
    assert "FLOPs" in lines["decoder"]


def test_cli_decoder_options_need_unet(cli, tmp_path: Path) -> None:
    code, _, err = cli("derive", "--phi", "0", "--decoder-channels", "64,32", "--out", tmp_path)
    assert code == 2
    assert "need --head unet" in err
    code, _, err = cli("derive", "--phi", "0", "--head", "unet", "--decoder-channels", "64,x",
                       "--out", tmp_path)
    assert code == 2
    assert "comma list of positive ints" in err
