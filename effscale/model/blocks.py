"""Building blocks as plain ``nn.Module``s; they know nothing about configs or scaling."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from effscale.model.rounding import round_width

ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6,
}


class ConvBNAct(nn.Sequential):
    """Convolution without bias, batch norm, then an optional activation."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
        act: type[nn.Module] | None = nn.SiLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow's SAME padding: the output is ``ceil(input / stride)``
    and the padding, worked out from each input's size, puts an odd pixel at the bottom and
    right (as timm's ``Conv2dSame``, for weights trained in TensorFlow)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride, dilation in zip(x.shape[-2:], self.kernel_size, self.stride,
                                                  self.dilation):
            total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1
                        - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def apply_layer_options(model: nn.Module, bn_eps: float = 1e-5, bn_momentum: float = 0.1,
                        padding: str = "symmetric") -> nn.Module:
    """Set every batch norm's ``eps`` and ``momentum``, and with ``padding="same"`` turn every
    strided convolution into a :class:`Conv2dSame` holding the same parameters (a stride-1
    convolution with an odd kernel pads the same either way). The modules keep their names
    and order; returns ``model``. At the defaults nothing changes."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eps, module.momentum = bn_eps, bn_momentum
    if padding == "same":
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.Conv2d and max(child.stride) > 1:
                    setattr(parent, name, _same(child))
    return model


def _same(conv: nn.Conv2d) -> Conv2dSame:
    with torch.device("meta"):
        same = Conv2dSame(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          0, conv.dilation, conv.groups, conv.bias is not None)
    same.weight = conv.weight
    if conv.bias is not None:
        same.bias = conv.bias
    return same


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample with probability ``rate`` in training."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate:.4f}"


class SqueezeExcite(nn.Module):
    """Channel attention: global pool, reduce to ``squeeze`` channels, expand, sigmoid gate."""

    def __init__(self, channels: int, squeeze: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = act(inplace=True)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.expand(self.act(self.reduce(scale)))
        return x * scale.sigmoid()


class MBConv(nn.Module):
    """Inverted residual (MobileNetV2) with optional squeeze-excite (EfficientNet's MBConv).

    The SE squeeze width is ``int(cin * se_ratio)`` of the *block input* channels, as in the
    official EfficientNet code; the residual applies when stride is 1 and widths match.
    """

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expand: float, se_ratio: float,
        act: type[nn.Module], drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = round_width(cin * expand) if expand != 1 else cin
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(ConvBNAct(cin, hidden, 1, act=act))
        layers.append(ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if se_ratio > 0:
            layers.append(SqueezeExcite(hidden, max(1, int(cin * se_ratio)), act))
        layers.append(ConvBNAct(hidden, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.drop_path = DropPath(drop_path) if self.residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + self.drop_path(out) if self.residual else out


class Bottleneck(nn.Module):
    """ResNet bottleneck (v1.5: the stride sits on the 3x3 conv); ``hidden = cout / expand``."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expand: float, se_ratio: float,
        act: type[nn.Module], drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = max(1, round(cout / expand))
        layers: list[nn.Module] = [
            ConvBNAct(cin, hidden, 1, act=act),
            ConvBNAct(hidden, hidden, kernel, stride, act=act),
        ]
        if se_ratio > 0:
            layers.append(SqueezeExcite(hidden, max(1, int(cin * se_ratio)), act))
        layers.append(ConvBNAct(hidden, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        needs_projection = stride != 1 or cin != cout
        self.shortcut = ConvBNAct(cin, cout, 1, stride, act=None) if needs_projection \
            else nn.Identity()
        self.drop_path = DropPath(drop_path)
        self.act = act(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.drop_path(self.body(x)))


def zero_init_residual_branches(model: nn.Module) -> int:
    """Zero the last batch-norm scale of every residual branch, so each block starts as the
    identity (Goyal et al. 2017) and a deep candidate trains like a shallow one at first.
    Returns how many branches were zeroed."""
    zeroed = 0
    for module in model.modules():
        if isinstance(module, (MBConv, Bottleneck)) and getattr(module, "residual", True):
            last_bn = module.body[-1][1]
            nn.init.zeros_(last_bn.weight)
            zeroed += 1
    return zeroed


BLOCK_LAYERS: dict[str, type[nn.Module]] = {"mbconv": MBConv, "bottleneck": Bottleneck}
