"""TensorRT's export step: the ONNX the engine builder consumes (FP32, or the accuracy-gated QDQ model written
to TensorRT's explicit-quantization rules), measured with ONNX Runtime on the CPU; ``compile`` builds the
engine on the device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeresnet.calibration import check_tensorrt_rules
from edgeresnet.errors import ExportError
from edgeresnet.export.gated import gate_record, gated_qdq
from edgeresnet.export.targets import BuiltArtifact, onnx_artifact

if TYPE_CHECKING:
    from edgeresnet.export.prepare import ExportContext


def build(context: ExportContext, precision: str) -> BuiltArtifact:
    note = {"tensorrt": {"engine": "not built: run `edgeresnet compile BUNDLE --target tensorrt` on the device",
                         "accuracy_measured_with": "onnxruntime (CPU)"}}
    if precision == "fp32":
        artifact = onnx_artifact(context, context.fp32_onnx, context.fp32_accuracy)
        artifact.extra.update(note)
        return artifact

    path, gate = gated_qdq(context, "tensorrt")
    violations = check_tensorrt_rules(path, float_nodes=gate.float_nodes)
    if violations:
        raise ExportError(f"TensorRT QDQ model breaks TensorRT's explicit-quantization rules: {violations[0]}")
    artifact = onnx_artifact(context, path, gate.int8, quantization=gate_record(gate, "tensorrt"))
    artifact.comparison, artifact.layer_report = gate.comparison, gate.layer_report
    artifact.extra.update(note)
    artifact.extra["tensorrt"]["qdq_rules"] = "passed"
    return artifact
