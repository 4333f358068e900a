"""edgeresnet: take a ResNet classifier from PyTorch to a checked, fast artifact on the target.

The public API is here: :func:`train`, :func:`export_model`, :func:`compile_bundle`, :func:`benchmark`
(from :mod:`edgeresnet.api`), plus :func:`list_models` and :func:`create_model`. Importing the package
is cheap: torch, onnx, openvino and tensorrt are imported where they are used.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from edgeresnet.api import (
    BenchmarkJob,
    CompiledBundle,
    ExportJob,
    benchmark,
    compile_bundle,
    export_model,
    train,
)
from edgeresnet.errors import EdgeResNetError
from edgeresnet.version import __version__

if TYPE_CHECKING:
    from edgeresnet.models.registry import ModelInfo

# Public functions named like a submodule (``edgeresnet.train`` the function, ``edgeresnet/train.py``
# the module): importing the submodule must not replace the function on the package. The module is
# still ``sys.modules["edgeresnet.train"]``, which ``from edgeresnet.training import ...`` uses.
_FUNCTIONS_OVER_SUBMODULES = frozenset({"train"})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS_OVER_SUBMODULES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
__all__ = ["BenchmarkJob", "CompileJob", "CompiledBundle", "EdgeResNetError", "ExportJob", "TrainJob", "__version__",
           "benchmark", "compile_bundle", "create_model", "export_model", "list_models", "train"]

# The two jobs whose modules import numpy are reached on first use, so `import edgeresnet` stays cheap.
_LAZY = {"TrainJob": "edgeresnet.training.config", "CompileJob": "edgeresnet.compile"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeresnet' has no attribute {name!r}")


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
