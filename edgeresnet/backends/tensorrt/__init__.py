"""TensorRT (NVIDIA GPUs, Jetson): strongly typed engines from the bundle's ONNX (INT8 from the explicit QDQ
model). Home of its runner (``runner.py``), engine build (``engine.py``), export, compile and verify steps.

``export`` writes the QDQ ONNX and its calibration table (checked on the CPU with ONNX Runtime);
``compile --target tensorrt`` builds the engine on the device.
"""

from __future__ import annotations

from edgeresnet.backends.record import Backend
from edgeresnet.bundle.layout import MODEL_ENGINE, MODEL_ONNX

BACKEND = Backend(
    name="tensorrt", title="TensorRT", home=__name__, runner="runner:TensorRTRunner",
    suffixes=(".engine", ".plan"), model_files=(MODEL_ENGINE, MODEL_ONNX), devices=("cuda",),
    default_device="cuda", packages=("tensorrt",), runtime_module="tensorrt", extra="tensorrt",
    install_note="(TensorRT 11, CUDA 13) or 'edgeresnet[tensorrt10]' (TensorRT 10, CUDA 12: older drivers, "
                 "Jetson) on the machine with the GPU",
    export_precisions=("fp32", "int8"), export_requires=("onnxruntime",), build="export:build",
    compile_precisions=("fp32", "fp16", "int8"), compile="compile:compile_tensorrt", verify="verify:check_engine",
)
