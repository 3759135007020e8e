"""Eff-UNet: any effscale backbone as the encoder of a U-Net decoder, for segmentation.

The encoder is the config's :class:`~effscale.model.backbone.Backbone` (stem and stages, no
classifier head). Its outputs are read as a ladder of output strides; the deepest feature feeds the
decoder and one shallower feature per stride is a skip connection (see :func:`encoder_taps`).
Each decoder block upsamples by two, concatenates its skip and applies two 3x3 conv-BN-ReLU;
a final 1x1 conv gives ``num_classes`` logits at the input resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from effscale.errors import ConfigError
from effscale.model.backbone import Backbone, init_weights
from effscale.model.blocks import ConvBNAct
from effscale.model.config import ModelConfig


@dataclass(frozen=True)
class EncoderStep:
    """One module the encoder runs in order: its label, output channels and output stride."""

    label: str
    channels: int
    stride: int


@dataclass(frozen=True)
class Tap:
    """The encoder output a decoder block concatenates (``step`` indexes the encoder steps;
    ``None`` when no feature exists at that stride)."""

    stride: int
    step: int | None
    channels: int


def encoder_steps(config: ModelConfig) -> list[EncoderStep]:
    """The stem conv, the stem's max-pool if it has one, then each stage, with cumulative
    output strides. The pool is its own step so that the conv output before it can be tapped.
    """
    stride = config.stem_stride
    steps = [EncoderStep("stem", config.stem_channels, stride)]
    if config.stem_pool:
        stride *= 2
        steps.append(EncoderStep("stem_pool", config.stem_channels, stride))
    for i, stage in enumerate(config.stages):
        stride *= stage.stride
        steps.append(EncoderStep(f"stage{i + 1}", stage.channels, stride))
    return steps


def output_stride(config: ModelConfig) -> int:
    """How much the encoder shrinks the input (32 for every shipped base); inputs are padded
    to a multiple of it."""
    return encoder_steps(config)[-1].stride


def encoder_taps(config: ModelConfig) -> list[Tap]:
    """One skip per decoder block, deepest first, for strides ``output_stride/2`` down to 1.

    At the stem's own stride the skip is the stem conv output (before any max-pool), as in
    segmentation_models_pytorch's EfficientNet encoders (b0: 32, 24, 40, 112 channels); at
    every deeper stride it is the *last* output at that stride, so a stride-1 stage (b0's
    112-channel stage5, resnet50's stage1) replaces the feature before it. Strides with no
    feature (the input resolution, for a stem of stride 2) get no skip.
    """
    steps = encoder_steps(config)
    taps = []
    stride = steps[-1].stride // 2
    while stride >= 1:
        index = None
        for i, step in enumerate(steps[:-1]):
            if step.stride == stride and (i == 0 or stride != steps[0].stride):
                index = i
        taps.append(Tap(stride, index, 0 if index is None else steps[index].channels))
        stride //= 2
    return taps


class DecoderBlock(nn.Module):
    """Upsample by two, concatenate the skip (if any), two 3x3 conv-BN-ReLU."""

    def __init__(self, cin: int, skip: int, cout: int, upsampling: str = "nearest") -> None:
        super().__init__()
        corners = {"align_corners": False} if upsampling == "bilinear" else {}
        self.upsample = nn.Upsample(scale_factor=2, mode=upsampling, **corners)
        self.conv1 = ConvBNAct(cin + skip, cout, 3, act=nn.ReLU)
        self.conv2 = ConvBNAct(cout, cout, 3, act=nn.ReLU)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.upsample(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNet(nn.Module):
    """Encoder (the scaled backbone), decoder blocks and a 1x1 classifier conv.

    ``forward`` maps ``(N, 3, H, W)`` to ``(N, num_classes, H, W)`` logits.

    Note:
        ``H`` and ``W`` need not be multiples of :func:`output_stride`: the input is
        zero-padded at the bottom and right to the next multiple and the logits are cropped
        back, so FLOPs are those of the padded size (a 380 px B4 runs at 384 px).
        Decoder widths come from ``config.head.decoder_channels`` and are not scaled with phi.
        fvcore counts the decoder's upsampling and batch norm in its total; the torch counter
        counts convolutions only. The 1x1 classifier conv runs at full resolution, so with
        many classes (1000 by default in derived configs) it is a large share of the FLOPs.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.steps = encoder_steps(config)
        self.taps = encoder_taps(config)
        widths = config.head.decoder_channels
        if len(widths) != len(self.taps):
            raise ConfigError(
                f"{config.name}: head.decoder_channels has {len(widths)} entries but the encoder "
                f"halves the resolution {len(self.taps)} times (output stride "
                f"{self.steps[-1].stride}); give {len(self.taps)} decoder widths"
            )
        self.stride = self.steps[-1].stride
        self.encoder = Backbone(config)
        blocks, cin = [], self.steps[-1].channels
        for tap, cout in zip(self.taps, widths):
            blocks.append(DecoderBlock(cin, tap.channels, cout, config.head.upsampling))
            cin = cout
        self.decoder = nn.ModuleList(blocks)
        self.final = nn.Conv2d(cin, config.num_classes, 1)
        self._keep = {tap.step for tap in self.taps if tap.step is not None}
        init_weights(self)

    def encoder_modules(self) -> list[nn.Module]:
        """The encoder's modules in the order of :func:`encoder_steps`."""
        stem = list(self.encoder.stem)  # [conv] or [conv, max-pool]
        return [*stem, *self.encoder.stages]

    def parts(self) -> list[tuple[str, nn.Module]]:
        """Encoder steps then decoder blocks, labelled ``encoder.*`` and ``decoder.*`` so that
        complexity reports can subtotal each side."""
        encoder = [(f"encoder.{step.label}", module)
                   for step, module in zip(self.steps, self.encoder_modules())]
        decoder = [(f"decoder.block{i + 1}", block) for i, block in enumerate(self.decoder)]
        return [*encoder, *decoder, ("decoder.final", self.final)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.stride, -width % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        kept: dict[int, torch.Tensor] = {}
        for i, module in enumerate(self.encoder_modules()):
            x = module(x)
            if i in self._keep:
                kept[i] = x
        for tap, block in zip(self.taps, self.decoder):
            x = block(x, None if tap.step is None else kept[tap.step])
        x = self.final(x)
        if pad_h or pad_w:
            x = x[..., :height, :width]
        return x
