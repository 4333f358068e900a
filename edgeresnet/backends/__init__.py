"""Backends: one home per backend (``onnxruntime``, ``openvino``, ``tensorrt``, ``pytorch``), each a
:class:`Backend` record plus its runner, export build and compile step; :mod:`.registry` lists them.

Cheap to import: nothing here loads numpy, onnx or a runtime until a backend's code is used.
"""

from __future__ import annotations

from edgeresnet.backends.record import Backend
from edgeresnet.backends.registry import (
    all_backends,
    backend_names,
    bundle_targets,
    compile_targets,
    export_targets,
    get_backend,
    model_file_backends,
    register_backend,
    unregister_backend,
)

__all__ = ["Backend", "all_backends", "backend_names", "bundle_targets", "compile_targets", "export_targets",
           "get_backend", "model_file_backends", "register_backend", "unregister_backend"]
