"""The toy's export step: the FP32 ONNX model under the toy's file name, measured by the toy's own runner."""

from __future__ import annotations

import shutil
from typing import Any

from edgeresnet.export.targets import BuiltArtifact
from tests.toy_backend import MODEL_FILE
from tests.toy_backend.runner import ToyRunner


def build(context: Any, precision: str) -> BuiltArtifact:
    path = context.work / "toy" / MODEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(context.fp32_onnx, path)
    with ToyRunner(path, threads=context.options.threads) as runner:
        golden = runner.infer(context.golden_inputs)
    return BuiltArtifact(MODEL_FILE, {MODEL_FILE: path}, context.fp32_accuracy, golden)
