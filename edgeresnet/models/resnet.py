"""The one ``ResNet`` class; every registered architecture is a ``ResNetConfig`` of it."""

from __future__ import annotations

import torch
from torch import nn

from edgeresnet.models.blocks import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    conv3x3,
    make_shortcut,
)
from edgeresnet.models.config import ResNetConfig


class ResNet(nn.Module):
    """ResNet / ResNeXt / Wide / SE / ResNet-D / pre-activation classifier described by ``config``.

    Stem modules are ``conv1`` (a Sequential for the deep stem), ``bn1`` and ``maxpool``; stages are
    ``layer1``…``layerN``; the head is ``fc``. Pre-activation nets have no stem BN (the first block
    normalises) and close with ``bn_final`` + ReLU because their blocks leave the sum un-normalised.
    Global average pooling makes any input size work down to the point where every stage keeps ≥1 pixel.
    """

    def __init__(self, config: ResNetConfig, *, name: str = "resnet") -> None:
        super().__init__()
        self.config = config
        self.name = name
        self.num_classes = config.num_classes
        self.num_features = config.num_features
        self._build_stem(config)
        in_chans = config.stem_width
        for index, (depth, planes) in enumerate(zip(config.depths, config.widths, strict=True)):
            stage = self._build_stage(config, in_chans, planes, depth, stride=1 if index == 0 else 2)
            self.add_module(f"layer{index + 1}", stage)
            in_chans = planes * config.expansion
        self.stage_names = tuple(f"layer{index + 1}" for index in range(len(config.depths)))
        if config.is_preact:
            self.bn_final: nn.Module = nn.BatchNorm2d(in_chans)
            self.act_final: nn.Module = nn.ReLU(inplace=True)
        else:
            self.bn_final = nn.Identity()
            self.act_final = nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_chans, config.num_classes)
        self._init_weights(config.zero_init_last_bn)

    def _build_stem(self, config: ResNetConfig) -> None:
        width = config.stem_width
        if config.stem == "deep":
            half = width // 2
            self.conv1: nn.Module = nn.Sequential(
                conv3x3(config.in_chans, half, stride=2),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
                conv3x3(half, half),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
                conv3x3(half, width),
            )
        elif config.stem == "imagenet":
            self.conv1 = nn.Conv2d(config.in_chans, width, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(config.in_chans, width)
        # Pre-activation: the first block's bn1 already normalises the stem output.
        self.bn1: nn.Module = nn.Identity() if config.is_preact else nn.BatchNorm2d(width)
        self.act1: nn.Module = nn.Identity() if config.is_preact else nn.ReLU(inplace=True)
        self.maxpool: nn.Module = (
            nn.Identity() if config.stem == "cifar" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        )

    @staticmethod
    def _build_stage(
        config: ResNetConfig, in_chans: int, planes: int, depth: int, *, stride: int
    ) -> nn.Sequential:
        out_chans = planes * config.expansion
        blocks: list[nn.Module] = []
        for index in range(depth):
            block_stride = stride if index == 0 else 1
            shortcut = make_shortcut(
                config.shortcut,
                in_chans,
                out_chans,
                block_stride,
                avg_down=config.avg_down,
                with_bn=not config.is_preact,
            )
            blocks.append(_make_block(config, in_chans, planes, block_stride, shortcut))
            in_chans = out_chans
        return nn.Sequential(*blocks)

    def _init_weights(self, zero_init_last: bool) -> None:
        if self.fc.weight.is_meta:
            # Meta tensors hold no values; normal_ on them would also import torch._dynamo (seconds).
            return
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_last:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck)):
                    module.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages: the last feature map, before pooling."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.act_final(self.bn_final(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh ``fc`` for ``num_classes`` outputs (fine-tuning); ``config`` follows the change."""
        config = self.config.replace(num_classes=num_classes)  # validates num_classes first
        self.fc = nn.Linear(self.num_features, num_classes, device=self.fc.weight.device)
        self.num_classes = num_classes
        self.config = config

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def _make_block(
    config: ResNetConfig, in_chans: int, planes: int, stride: int, shortcut: nn.Module
) -> nn.Module:
    if config.block == "basic":
        return BasicBlock(in_chans, planes, stride=stride, shortcut=shortcut, se_ratio=config.se_ratio)
    if config.block == "preact_basic":
        return PreActBasicBlock(in_chans, planes, stride=stride, shortcut=shortcut, se_ratio=config.se_ratio)
    bottleneck = Bottleneck if config.block == "bottleneck" else PreActBottleneck
    return bottleneck(
        in_chans,
        planes,
        stride=stride,
        shortcut=shortcut,
        se_ratio=config.se_ratio,
        groups=config.groups,
        width_per_group=config.width_per_group,
    )
