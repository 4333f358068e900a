"""The named architectures. Each is a few-line factory; tests and the CLI pick them up from the registry.

ImageNet-style names match torchvision (resnet*, resnext*, wide_resnet*) or timm (resnet*d, seresnet50)
in state-dict keys and parameter counts, so their published weights load unchanged.
"""

from __future__ import annotations

from typing import Any

from edgeresnet.models.config import BlockType, ResNetConfig
from edgeresnet.models.registry import register_model

_IMAGENET_WIDTHS = (64, 128, 256, 512)
_CIFAR_WIDTHS = (16, 32, 64)


def _imagenet(block: BlockType, depths: tuple[int, ...], **fields: Any) -> ResNetConfig:
    return ResNetConfig(block=block, depths=depths, widths=_IMAGENET_WIDTHS, **fields)


def _cifar_paper(depth: int) -> ResNetConfig:
    # He et al. 2015, section 4.2: 6n+2 layers, 16/32/64 filters, parameter-free option A shortcuts.
    blocks_per_stage = (depth - 2) // 6
    return ResNetConfig(
        block="basic",
        depths=(blocks_per_stage,) * 3,
        widths=_CIFAR_WIDTHS,
        stem="cifar",
        stem_width=16,
        shortcut="A",
        num_classes=10,
    )


# --- torchvision ResNet ------------------------------------------------------------------------------


@register_model("resnet18", family="resnet", input_size=224, description="ResNet-18 (torchvision layout)")
def resnet18() -> ResNetConfig:
    return _imagenet("basic", (2, 2, 2, 2))


@register_model("resnet34", family="resnet", input_size=224, description="ResNet-34 (torchvision layout)")
def resnet34() -> ResNetConfig:
    return _imagenet("basic", (3, 4, 6, 3))


@register_model(
    "resnet50", family="resnet", input_size=224, description="ResNet-50 v1.5 (torchvision layout)"
)
def resnet50() -> ResNetConfig:
    return _imagenet("bottleneck", (3, 4, 6, 3))


@register_model(
    "resnet101", family="resnet", input_size=224, description="ResNet-101 v1.5 (torchvision layout)"
)
def resnet101() -> ResNetConfig:
    return _imagenet("bottleneck", (3, 4, 23, 3))


@register_model(
    "resnet152", family="resnet", input_size=224, description="ResNet-152 v1.5 (torchvision layout)"
)
def resnet152() -> ResNetConfig:
    return _imagenet("bottleneck", (3, 8, 36, 3))


# --- CIFAR ResNets of the original paper -------------------------------------------------------------


@register_model("resnet20", family="resnet-cifar", input_size=32, description="CIFAR ResNet-20, option A")
def resnet20() -> ResNetConfig:
    return _cifar_paper(20)


@register_model("resnet32", family="resnet-cifar", input_size=32, description="CIFAR ResNet-32, option A")
def resnet32() -> ResNetConfig:
    return _cifar_paper(32)


@register_model("resnet44", family="resnet-cifar", input_size=32, description="CIFAR ResNet-44, option A")
def resnet44() -> ResNetConfig:
    return _cifar_paper(44)


@register_model("resnet56", family="resnet-cifar", input_size=32, description="CIFAR ResNet-56, option A")
def resnet56() -> ResNetConfig:
    return _cifar_paper(56)


@register_model("resnet110", family="resnet-cifar", input_size=32, description="CIFAR ResNet-110, option A")
def resnet110() -> ResNetConfig:
    return _cifar_paper(110)


@register_model("resnet1202", family="resnet-cifar", input_size=32, description="CIFAR ResNet-1202, option A")
def resnet1202() -> ResNetConfig:
    return _cifar_paper(1202)


# --- pre-activation (He et al. 2016, identity mappings), CIFAR-sized ---------------------------------


@register_model(
    "preact_resnet18", family="preact", input_size=224, description="Pre-activation ResNet-18 (ResNet v2)"
)
def preact_resnet18() -> ResNetConfig:
    return _imagenet("preact_basic", (2, 2, 2, 2))


@register_model(
    "preact_resnet50", family="preact", input_size=224, description="Pre-activation ResNet-50 (ResNet v2)"
)
def preact_resnet50() -> ResNetConfig:
    return _imagenet("preact_bottleneck", (3, 4, 6, 3))


@register_model(
    "preact_resnet110", family="preact", input_size=32, description="Pre-activation CIFAR ResNet-110"
)
def preact_resnet110() -> ResNetConfig:
    return ResNetConfig(
        block="preact_basic",
        depths=(18, 18, 18),
        widths=_CIFAR_WIDTHS,
        stem="cifar",
        stem_width=16,
        num_classes=10,
    )


# --- ResNeXt and Wide ResNet (torchvision layout) ----------------------------------------------------


@register_model("resnext50_32x4d", family="resnext", input_size=224, description="ResNeXt-50 32×4d")
def resnext50_32x4d() -> ResNetConfig:
    return _imagenet("bottleneck", (3, 4, 6, 3), groups=32, width_per_group=4)


@register_model("resnext101_32x8d", family="resnext", input_size=224, description="ResNeXt-101 32×8d")
def resnext101_32x8d() -> ResNetConfig:
    return _imagenet("bottleneck", (3, 4, 23, 3), groups=32, width_per_group=8)


@register_model("wide_resnet50_2", family="wide_resnet", input_size=224, description="Wide ResNet-50-2")
def wide_resnet50_2() -> ResNetConfig:
    return _imagenet("bottleneck", (3, 4, 6, 3), width_per_group=128)


@register_model("wide_resnet101_2", family="wide_resnet", input_size=224, description="Wide ResNet-101-2")
def wide_resnet101_2() -> ResNetConfig:
    return _imagenet("bottleneck", (3, 4, 23, 3), width_per_group=128)


# --- timm variants -----------------------------------------------------------------------------------


@register_model(
    "resnet18d",
    family="resnet-d",
    input_size=224,
    description="ResNet-18-D: deep stem, avg-pool shortcut (timm)",
)
def resnet18d() -> ResNetConfig:
    return _imagenet("basic", (2, 2, 2, 2), stem="deep", avg_down=True)


@register_model(
    "resnet50d",
    family="resnet-d",
    input_size=224,
    description="ResNet-50-D: deep stem, avg-pool shortcut (timm)",
)
def resnet50d() -> ResNetConfig:
    return _imagenet("bottleneck", (3, 4, 6, 3), stem="deep", avg_down=True)


@register_model(
    "seresnet50",
    family="se-resnet",
    input_size=224,
    description="SE-ResNet-50, squeeze-excitation 1/16 (timm)",
)
def seresnet50() -> ResNetConfig:
    return _imagenet("bottleneck", (3, 4, 6, 3), se_ratio=1 / 16)
