"""ONNX Runtime's export step: the FP32 ONNX model, or the accuracy-gated QDQ INT8 model, each with a copy
that takes uint8 pixels (normalisation in the graph, so apps skip numpy per image)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeresnet.bundle.layout import MODEL_ONNX, PIXEL_MODEL_FILE
from edgeresnet.export.gated import gate_record, gated_qdq
from edgeresnet.export.targets import BuiltArtifact, onnx_artifact

if TYPE_CHECKING:
    from edgeresnet.export.prepare import ExportContext


def build(context: ExportContext, precision: str) -> BuiltArtifact:
    if precision == "fp32":
        return _with_pixel_model(context, onnx_artifact(context, context.fp32_onnx, context.fp32_accuracy), precision)
    path, gate = gated_qdq(context, "onnxruntime")
    artifact = onnx_artifact(context, path, gate.int8, quantization=gate_record(gate, "onnxruntime"))
    artifact.comparison, artifact.layer_report = gate.comparison, gate.layer_report
    return _with_pixel_model(context, artifact, precision)


def _with_pixel_model(context: ExportContext, artifact: BuiltArtifact, precision: str) -> BuiltArtifact:
    """Add the copy of the model that normalises uint8 pixels itself, so apps skip numpy per image."""
    from edgeresnet.export.onnx import add_pixel_input

    path = add_pixel_input(artifact.files[MODEL_ONNX], context.work / f"pixels-{precision}" / PIXEL_MODEL_FILE,
                           context.source.preprocessing)
    artifact.files[PIXEL_MODEL_FILE] = path
    artifact.pixel_model = PIXEL_MODEL_FILE
    return artifact
