"""Building blocks as plain ``nn.Module``s; they know nothing about configs or scaling."""

from __future__ import annotations

import torch
from torch import nn

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
