"""One table of export targets: how each builds its FP32 and INT8 artifact from the shared context.

Every INT8 artifact comes from the one calibration table. Accuracy is measured on the shared
evaluation batches with the runtime that will run the artifact (TensorRT's QDQ model through ONNX
Runtime on CPU, since TensorRT itself only exists on the device).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.bundle.records import QuantizationRecord
from edgeresnet.errors import BackendUnavailableError, ExportError
from edgeresnet.evaluation import Accuracy, AccuracyCounter, PairedComparison, compare_paired, evaluate_logits
from edgeresnet.export.gated import choose_candidate, gate_record, gated_qdq  # the gate's side of INT8 builds

if TYPE_CHECKING:
    from edgeresnet.export.prepare import ExportContext as _Context
    from edgeresnet.runtime.base import Runner


@dataclass
class BuiltArtifact:
    """One target's model files and what was measured on them."""

    model_file: str
    files: dict[str, Path]
    accuracy: Accuracy
    golden_outputs: np.ndarray
    quantization: QuantizationRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    comparison: PairedComparison | None = None  # INT8 against FP32 on the evaluation images
    layer_report: Any = None  # calibration.layer_report.LayerReport of the quantizers this artifact holds
    pixel_model: str | None = None  # the file among ``files`` that takes uint8 NHWC pixels (ONNX Runtime)


@dataclass(frozen=True)
class Target:
    name: str
    build: Callable[[_Context, str], BuiltArtifact]
    requires: tuple[str, ...] = ()
    install_hint: str = ""

    def missing(self) -> list[str]:
        return [module for module in self.requires if importlib.util.find_spec(module) is None]


def resolve_targets(requested: Iterable[str] | None) -> list[str]:
    """``None`` → every target whose export step can run here; ``all`` → every target, checked."""
    if requested is None:
        return [name for name, target in TARGETS.items() if not target.missing()]
    names = list(requested)
    if "all" in names:
        names = list(TARGETS)
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        raise ExportError(f"unknown target {unknown[0]!r}; choose from {', '.join(TARGETS)} or all")
    for name in names:
        missing = TARGETS[name].missing()
        if missing:
            raise BackendUnavailableError(
                f"target {name} needs {', '.join(missing)}, which is not installed: {TARGETS[name].install_hint}"
            )
    return list(dict.fromkeys(names))


# --- ONNX Runtime ------------------------------------------------------------------------------


def _onnxruntime_build(context: _Context, precision: str) -> BuiltArtifact:
    if precision == "fp32":
        return _with_pixel_model(context, _onnx_artifact(context, context.fp32_onnx, context.fp32_accuracy), precision)
    path, gate = gated_qdq(context, "onnxruntime")
    artifact = _onnx_artifact(context, path, gate.int8, quantization=gate_record(gate, "onnxruntime"))
    artifact.comparison, artifact.layer_report = gate.comparison, gate.layer_report
    return _with_pixel_model(context, artifact, precision)


def _with_pixel_model(context: _Context, artifact: BuiltArtifact, precision: str) -> BuiltArtifact:
    """Add the copy of the model that normalises uint8 pixels itself, so apps skip numpy per image."""
    from edgeresnet.bundle.layout import PIXEL_MODEL_FILE
    from edgeresnet.export.onnx import add_pixel_input

    path = add_pixel_input(artifact.files["model.onnx"], context.work / f"pixels-{precision}" / PIXEL_MODEL_FILE,
                           context.source.preprocessing)
    artifact.files[PIXEL_MODEL_FILE] = path
    artifact.pixel_model = PIXEL_MODEL_FILE
    return artifact


# --- TensorRT (the QDQ ONNX the engine builder consumes; the engine is built by `compile`) -------


def _tensorrt_build(context: _Context, precision: str) -> BuiltArtifact:
    note = {"tensorrt": {"engine": "not built: run `edgeresnet compile BUNDLE --target tensorrt` on the device",
                         "accuracy_measured_with": "onnxruntime (CPU)"}}
    if precision == "fp32":
        artifact = _onnx_artifact(context, context.fp32_onnx, context.fp32_accuracy)
        artifact.extra.update(note)
        return artifact
    from edgeresnet.calibration import check_tensorrt_rules

    path, gate = gated_qdq(context, "tensorrt")
    violations = check_tensorrt_rules(path, float_nodes=gate.float_nodes)
    if violations:
        raise ExportError(f"TensorRT QDQ model breaks TensorRT's explicit-quantization rules: {violations[0]}")
    artifact = _onnx_artifact(context, path, gate.int8, quantization=gate_record(gate, "tensorrt"))
    artifact.comparison, artifact.layer_report = gate.comparison, gate.layer_report
    artifact.extra.update(note)
    artifact.extra["tensorrt"]["qdq_rules"] = "passed"
    return artifact


# --- OpenVINO ------------------------------------------------------------------------------------


def _openvino_build(context: _Context, precision: str) -> BuiltArtifact:
    from edgeresnet.export.openvino import convert_qdq_to_ir, convert_to_ir, quantize_with_nncf

    directory = context.work / f"openvino-{precision}-build"
    if precision == "fp32":
        xml = convert_to_ir(context.fp32_onnx, directory / "model.xml", batch=context.options.batch)
        accuracy, golden, _ = _measure_openvino(context, xml, "fp32")
        return _ir_artifact(xml, accuracy, golden)

    from edgeresnet.calibration.gate import GateRefused, gate_verdict, resolution_warning

    budget = context.options.max_accuracy_drop
    candidates: dict[str, tuple[Path, Accuracy, np.ndarray, PairedComparison]] = {}
    context.progress("OpenVINO INT8 via NNCF")
    nncf_xml = quantize_with_nncf(context.fp32_onnx, directory / "nncf" / "model.xml", context.calib_batches,
                                  subset_size=sum(len(b) for b in context.calib_batches))
    candidates["nncf"] = (nncf_xml, *_measure_openvino(context, nncf_xml, "int8"))
    context.progress("OpenVINO INT8 from the calibration table's QDQ model")
    qdq_float_nodes: tuple[str, ...] = ()
    qdq_failure = None
    qdq_layers = None
    try:
        qdq_path, gate = gated_qdq(context, "onnxruntime")
        qdq_float_nodes, qdq_layers = tuple(gate.float_nodes), gate.layer_report
        qdq_xml = convert_qdq_to_ir(qdq_path, directory / "qdq" / "model.xml")
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


TARGETS: dict[str, Target] = {
    "onnxruntime": Target("onnxruntime", _onnxruntime_build, ("onnxruntime",), "pip install onnxruntime"),
    "openvino": Target("openvino", _openvino_build, ("openvino", "nncf"), "pip install 'edgeresnet[openvino]'"),
    "tensorrt": Target("tensorrt", _tensorrt_build, ("onnxruntime",), "pip install onnxruntime"),
}


# --- shared steps --------------------------------------------------------------------------------


def _onnx_artifact(context: _Context, path: Path, accuracy: Accuracy, *,
                   quantization: QuantizationRecord | None = None) -> BuiltArtifact:
    from edgeresnet.runtime.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path, threads=context.options.threads) as runner:
        golden = runner.infer(context.golden_inputs)
    return BuiltArtifact("model.onnx", {"model.onnx": path}, accuracy, golden, quantization=quantization)


def _ir_artifact(xml: Path, accuracy: Accuracy, golden: np.ndarray, *,
                 quantization: QuantizationRecord | None = None) -> BuiltArtifact:
    files = {"model.xml": xml, "model.bin": xml.with_suffix(".bin")}
    return BuiltArtifact("model.xml", files, accuracy, golden, quantization=quantization)


def _measure_openvino(context: _Context, xml: Path,
                      precision: str) -> tuple[Accuracy, np.ndarray, PairedComparison]:
    """Accuracy, golden outputs and the paired comparison with the FP32 ONNX model's logits."""
    from edgeresnet.runtime.openvino import OpenVinoRunner

    with OpenVinoRunner(xml, threads=context.options.threads, precision=precision) as runner:
        logits = np.concatenate([runner.infer(images) for images, _ in context.eval_batches])
        golden = runner.infer(context.golden_inputs)
    counter = AccuracyCounter()
    counter.update(logits, context.eval_labels)
    return counter.result(), golden, compare_paired(context.eval_labels, context.fp32_logits, logits)


def evaluate_runner(runner: Runner, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Top-1/top-5 in percent of any runner over labelled batches."""
    return evaluate_logits(runner.infer, batches).to_dict()
