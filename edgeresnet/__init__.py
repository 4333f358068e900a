"""edgeresnet: take a ResNet classifier from PyTorch to a checked, fast artifact on the target.

Importing the package is cheap: torch, onnx, openvino and tensorrt are imported where they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeresnet.errors import EdgeResNetError

if TYPE_CHECKING:
    from edgeresnet.models.registry import ModelInfo

__version__ = "0.1.0"
__all__ = ["EdgeResNetError", "__version__", "create_model", "list_models"]


def list_models() -> list[ModelInfo]:
    """Every registered architecture with its family, parameters, MACs and default input size."""
    from edgeresnet.models import list_models as _list_models

    return _list_models()


def create_model(
    name: str, *, num_classes: int = 1000, in_chans: int = 3, weights: str | None = None, **overrides: Any
) -> Any:
    """Build a registered ResNet; ``weights`` is a .safetensors or PyTorch state-dict file."""
    from edgeresnet.models import create_model as _create_model

    return _create_model(name, num_classes=num_classes, in_chans=in_chans, weights=weights, **overrides)
