"""Residual blocks, shortcuts and squeeze-excitation.

Attribute names follow torchvision (``conv1``, ``bn1``, ``downsample``) and timm (``se.fc1``,
``downsample.0`` pool / ``.1`` conv / ``.2`` bn for avg_down) so their state dicts load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeresnet.models.config import ShortcutType


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``), as timm's SE sizing does."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def conv3x3(in_chans: int, out_chans: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_chans: int, out_chans: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=False)


class SqueezeExcite(nn.Module):
    """Channel gating from globally pooled features (timm ``SEModule`` layout: biased 1×1 convs)."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        reduced = make_divisible(channels * ratio)
        self.fc1 = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(scale))))


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: subsample spatially, append zero channels; no parameters to learn or store."""

    def __init__(self, in_chans: int, out_chans: int, stride: int) -> None:
        super().__init__()
        self.extra_chans = out_chans - in_chans
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            # Same output size as a 3×3/s conv with padding 1, also for odd inputs.
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_chans:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_chans))
        return x

    def extra_repr(self) -> str:
        return f"extra_chans={self.extra_chans}, stride={self.stride}"


def make_shortcut(
    kind: ShortcutType,
    in_chans: int,
    out_chans: int,
    stride: int,
    *,
    avg_down: bool,
    with_bn: bool,
) -> nn.Module:
    """The block's skip path; ``with_bn`` is False for pre-activation blocks (their input is normalised)."""
    changes_shape = stride != 1 or in_chans != out_chans
    if kind == "A":
        return ZeroPadShortcut(in_chans, out_chans, stride) if changes_shape else nn.Identity()
    if kind == "B" and not changes_shape:
        return nn.Identity()
    layers: list[nn.Module] = []
    if avg_down:
        # ceil_mode keeps the size equal to the strided 3×3 branch for odd inputs; Identity keeps timm's
        # index layout (pool at 0, conv at 1) for stride-1 projections.
        layers.append(
            nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
        )
        layers.append(conv1x1(in_chans, out_chans))
    else:
        layers.append(conv1x1(in_chans, out_chans, stride))
    if with_bn:
        layers.append(nn.BatchNorm2d(out_chans))
    return nn.Sequential(*layers)


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


class BasicBlock(nn.Module):
    """Two 3×3 convs (post-activation)."""

    def __init__(
        self, in_chans: int, planes: int, *, stride: int, shortcut: nn.Module, se_ratio: float
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_chans, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcite(planes, se_ratio) if se_ratio else nn.Identity()
        self.downsample = shortcut
        self.act2 = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        out += self.downsample(x)  # in place, as torchvision: saves a tensor per block
        return self.act2(out)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (grouped, strided: ResNet v1.5), 1×1 expand ×4 (post-activation)."""

    expansion = 4

    def __init__(
        self,
        in_chans: int,
        planes: int,
        *,
        stride: int,
        shortcut: nn.Module,
        se_ratio: float,
        groups: int = 1,
        width_per_group: int = 64,
    ) -> None:
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        out_chans = planes * self.expansion
        self.conv1 = conv1x1(in_chans, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(width, out_chans)
        self.bn3 = nn.BatchNorm2d(out_chans)
        self.se = SqueezeExcite(out_chans, se_ratio) if se_ratio else nn.Identity()
        self.downsample = shortcut
        self.act3 = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        out += self.downsample(x)
        return self.act3(out)


class PreActBasicBlock(nn.Module):
    """BN-ReLU before each conv and no activation after the sum (He et al. 2016, identity mappings)."""

    def __init__(
        self, in_chans: int, planes: int, *, stride: int, shortcut: nn.Module, se_ratio: float
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chans)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_chans, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.se = SqueezeExcite(planes, se_ratio) if se_ratio else nn.Identity()
        self.downsample = shortcut
        # A projection sees the normalised input, as in the paper; an identity keeps the raw signal.
        self.project_preactivated = _has_params(shortcut)

    def zero_init_last(self) -> None:
        # No BN closes the branch, so the last conv is what starts at zero.
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        skip = self.downsample(pre if self.project_preactivated else x)
        out = self.conv1(pre)
        out = self.se(self.conv2(self.act2(self.bn2(out))))
        out += skip
        return out


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-conv three times, ×4 expansion, no activation after the sum."""

    expansion = 4

    def __init__(
        self,
        in_chans: int,
        planes: int,
        *,
        stride: int,
        shortcut: nn.Module,
        se_ratio: float,
        groups: int = 1,
        width_per_group: int = 64,
    ) -> None:
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        out_chans = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_chans)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(in_chans, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.act3 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(width, out_chans)
        self.se = SqueezeExcite(out_chans, se_ratio) if se_ratio else nn.Identity()
        self.downsample = shortcut
        self.project_preactivated = _has_params(shortcut)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        skip = self.downsample(pre if self.project_preactivated else x)
        out = self.conv1(pre)
        out = self.conv2(self.act2(self.bn2(out)))
        out = self.se(self.conv3(self.act3(self.bn3(out))))
        out += skip
        return out
