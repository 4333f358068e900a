"""The toy's runner: ONNX Runtime's, reporting itself as the toy backend."""

from __future__ import annotations

from edgeresnet.backends.onnxruntime.runner import OnnxRuntimeRunner


class ToyRunner(OnnxRuntimeRunner):
    backend = "toyort"
