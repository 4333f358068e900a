"""A toy backend, to show that adding one is a folder plus one registry line: ONNX Runtime under another
name, reading its model from ``model.toy``. Nothing outside this folder knows it exists."""

from __future__ import annotations

from edgeresnet.backends import Backend

MODEL_FILE = "model.toy"  # the toy's own file name: its home is where its names live

BACKEND = Backend(
    name="toyort", title="Toy ONNX Runtime", home=__name__, runner="runner:ToyRunner", suffixes=(".toy",),
    model_files=(MODEL_FILE,), packages=("onnxruntime",), runtime_module="onnxruntime",
    export_precisions=("fp32",), export_requires=("onnxruntime",), build="export:build",
)
