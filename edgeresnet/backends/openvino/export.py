"""OpenVINO's export step: the FP32 IR, or the INT8 IR that passes the accuracy gate (NNCF's, or the one
converted from the calibration table's QDQ model: the most accurate wins)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeresnet.accuracy import Accuracy, AccuracyCounter, PairedComparison, compare_paired
from edgeresnet.bundle.layout import MODEL_BIN, MODEL_XML
from edgeresnet.bundle.records import QuantizationRecord
from edgeresnet.calibration.gate import GateRefused, gate_verdict, resolution_warning
from edgeresnet.export.gated import choose_candidate, gated_qdq
from edgeresnet.export.targets import BuiltArtifact

if TYPE_CHECKING:
    from edgeresnet.export.prepare import ExportContext


def build(context: ExportContext, precision: str) -> BuiltArtifact:
    from edgeresnet.backends.openvino.convert import convert_qdq_to_ir, convert_to_ir, quantize_with_nncf

    directory = context.work / f"openvino-{precision}-build"
    if precision == "fp32":
        xml = convert_to_ir(context.fp32_onnx, directory / MODEL_XML, batch=context.options.batch)
        accuracy, golden, _ = _measure_openvino(context, xml, "fp32")
        return _ir_artifact(xml, accuracy, golden)


    budget = context.options.max_accuracy_drop
    candidates: dict[str, tuple[Path, Accuracy, np.ndarray, PairedComparison]] = {}
    context.progress("OpenVINO INT8 via NNCF")
    nncf_xml = quantize_with_nncf(context.fp32_onnx, directory / "nncf" / MODEL_XML, context.calib_batches,
                                  subset_size=sum(len(b) for b in context.calib_batches))
    candidates["nncf"] = (nncf_xml, *_measure_openvino(context, nncf_xml, "int8"))
    context.progress("OpenVINO INT8 from the calibration table's QDQ model")
    qdq_float_nodes: tuple[str, ...] = ()
    qdq_failure = None
    qdq_layers = None
    try:
        qdq_path, gate = gated_qdq(context, "onnxruntime")
        qdq_float_nodes, qdq_layers = tuple(gate.float_nodes), gate.layer_report
        qdq_xml = convert_qdq_to_ir(qdq_path, directory / "qdq" / MODEL_XML)
        candidates["calibration-table-qdq"] = (qdq_xml, *_measure_openvino(context, qdq_xml, "int8"))
    except GateRefused as refused:
        # The QDQ path refused does not sink OpenVINO: NNCF may still pass.
        qdq_failure = refused.refusal.figures

    comparisons = {name: candidate[3] for name, candidate in candidates.items()}
    # Most accurate wins; on a tie, the calibration-table path, which any device can rebuild.
    chosen = choose_candidate("OpenVINO INT8", comparisons, {name: c[1].top1 for name, c in candidates.items()},
                              budget=budget, strict=context.options.strict_gate, preferred="calibration-table-qdq",
                              refused={"calibration-table-qdq": qdq_failure} if qdq_failure else {})
    xml, accuracy, golden, comparison = candidates[chosen]
    warning = resolution_warning(comparison, budget)
    details = {
        "candidates": {name: {"accuracy": candidates[name][1].to_dict(),
                              "drop_points": comparisons[name].to_dict()["drop_points"],
                              "comparison": comparisons[name].to_dict()} for name in candidates},
        "calibration_table_qdq_failure": qdq_failure,
        "warning": warning,
        "layer_report": "calibration-table QDQ quantizers (onnxruntime flavour)" if chosen != "nncf"
        else "not covered: NNCF's own quantizers (the report covers table-built QDQ models)",
    }
    quantization = QuantizationRecord(
        float_nodes=qdq_float_nodes if chosen == "calibration-table-qdq" else (), chosen=chosen, details=details,
        gate_verdict=gate_verdict(comparison, budget))
    artifact = _ir_artifact(xml, accuracy, golden, quantization=quantization)
    artifact.comparison = comparison
    artifact.layer_report = qdq_layers if chosen == "calibration-table-qdq" else None
    return artifact


def _ir_artifact(xml: Path, accuracy: Accuracy, golden: np.ndarray, *,
                 quantization: QuantizationRecord | None = None) -> BuiltArtifact:
    files = {MODEL_XML: xml, MODEL_BIN: xml.with_suffix(".bin")}
    return BuiltArtifact(MODEL_XML, files, accuracy, golden, quantization=quantization)


def _measure_openvino(context: ExportContext, xml: Path,
                      precision: str) -> tuple[Accuracy, np.ndarray, PairedComparison]:
    """Accuracy, golden outputs and the paired comparison with the FP32 ONNX model's logits."""
    from edgeresnet.backends.openvino.runner import OpenVinoRunner

    with OpenVinoRunner(xml, threads=context.options.threads, precision=precision) as runner:
        logits = np.concatenate([runner.infer(images) for images, _ in context.eval_batches])
        golden = runner.infer(context.golden_inputs)
    counter = AccuracyCounter()
    counter.update(logits, context.eval_labels)
    return counter.result(), golden, compare_paired(context.eval_labels, context.fp32_logits, logits)
