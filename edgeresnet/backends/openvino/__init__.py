"""OpenVINO (CPU; Intel GPU/NPU where present): IR in FP32, FP16 and INT8 (NNCF or the calibration table's
QDQ model). Home of its runner (``runner.py``), IR conversion (``convert.py``), export and compile steps."""

from __future__ import annotations

from edgeresnet.backends.record import Backend
from edgeresnet.bundle.layout import MODEL_BIN, MODEL_XML

BACKEND = Backend(
    name="openvino", title="OpenVINO", home=__name__, runner="runner:OpenVinoRunner",
    suffixes=(".xml", ".onnx"), model_files=(MODEL_XML, MODEL_BIN), devices=("cpu", "gpu", "npu", "auto"),
    default_device="CPU", packages=("openvino",), runtime_module="openvino", extra="openvino",
    export_precisions=("fp32", "int8"), export_requires=("openvino", "nncf"), build="export:build",
    compile_precisions=("fp32", "fp16", "int8"), compile="compile:compile_openvino",
)
