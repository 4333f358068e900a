"""Models: one ``ResNet`` class, a registry of named configurations, safe weights I/O.

from edgeresnet.models import create_model, list_models
model = create_model("resnet50", num_classes=10, weights="resnet50.pth")
"""

from __future__ import annotations

from edgeresnet.models import variants as _variants  # noqa: F401 (registers the built-in architectures)
from edgeresnet.models.complexity import count_macs, count_params
from edgeresnet.models.config import BLOCK_TYPES, SHORTCUT_TYPES, STEM_TYPES, ResNetConfig
from edgeresnet.models.registry import (
    FAMILIES,
    ModelInfo,
    create_model,
    get_model_config,
    get_model_info,
    list_models,
    model_names,
    register_model,
)
from edgeresnet.models.resnet import ResNet
from edgeresnet.models.weights import (
    WeightsReport,
    load_weights,
    read_state_dict,
    save_weights,
    weights_shape,
)

__all__ = [
    "BLOCK_TYPES",
    "FAMILIES",
    "SHORTCUT_TYPES",
    "STEM_TYPES",
    "ModelInfo",
    "ResNet",
    "ResNetConfig",
    "WeightsReport",
    "count_macs",
    "count_params",
    "create_model",
    "get_model_config",
    "get_model_info",
    "list_models",
    "load_weights",
    "model_names",
    "read_state_dict",
    "register_model",
    "save_weights",
    "weights_shape",
]
