"""ONNX Runtime (CPU; CUDA where onnxruntime-gpu is installed): QDQ INT8 with u8 activations and per-channel
s8 weights. Home of its session wrapper and runner (``runner.py``) and its export step (``export.py``)."""

from __future__ import annotations

from edgeresnet.backends.record import Backend
from edgeresnet.bundle.layout import MODEL_ONNX, PIXEL_MODEL_FILE

BACKEND = Backend(
    name="onnxruntime", title="ONNX Runtime", home=__name__, runner="runner:OnnxRuntimeRunner",
    suffixes=(".onnx",), model_files=(MODEL_ONNX, PIXEL_MODEL_FILE), devices=("cpu", "cuda"),
    default_device="cpu", packages=("onnxruntime", "onnxruntime-gpu"), runtime_module="onnxruntime",
    export_precisions=("fp32", "int8"), export_requires=("onnxruntime",), build="export:build",
)
