"""One table of export targets: how each builds its FP32 and INT8 artifact from the shared context.

Every INT8 artifact comes from the one calibration table. Accuracy is measured on the shared
evaluation batches with the runtime that will run the artifact (TensorRT's QDQ model through ONNX
Runtime on CPU, since TensorRT itself only exists on the device).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.accuracy import Accuracy, AccuracyCounter, PairedComparison, compare_paired, evaluate_logits
from edgeresnet.backends import all_backends, export_targets, get_backend
from edgeresnet.bundle.layout import PIXEL_MODEL_FILE
from edgeresnet.errors import AccuracyGateError, BackendUnavailableError, ExportError

if TYPE_CHECKING:
    from edgeresnet.export.workflow import _Context
    from edgeresnet.runtime.base import Runner

SENSITIVITY_KEPT = 10


@dataclass
class BuiltArtifact:
    """One target's model files and what was measured on them."""

    model_file: str
    files: dict[str, Path]
    accuracy: dict[str, Any]
    golden_outputs: np.ndarray
    quantization: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    comparison: PairedComparison | None = None  # INT8 against FP32 on the evaluation images
    layer_report: Any = None  # calibration.layer_report.LayerReport of the quantizers this artifact holds
    pixel_model: str | None = None  # the file among ``files`` that takes uint8 NHWC pixels (ONNX Runtime)


def resolve_targets(requested: Iterable[str] | None) -> list[str]:
    """``None`` → every export target whose export step can run here; ``all`` → every one, checked."""
    available = export_targets()
    if requested is None:
        return [name for name in available if not get_backend(name).missing()]
    names = list(requested)
    if "all" in names:
        names = list(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ExportError(f"unknown target {unknown[0]!r}; choose from {', '.join(available)} or all")
    for name in names:
        missing = get_backend(name).missing()
        if missing:
            raise BackendUnavailableError(
                f"target {name} needs {', '.join(missing)}, which is not installed: {_install_hint(name, missing[0])}"
            )
    return list(dict.fromkeys(names))


def _install_hint(target: str, module: str) -> str:
    """How to install ``module``: the hint of the backend whose runtime it is, else the target's own."""
    owner = next((b for b in all_backends() if b.runtime_module == module), get_backend(target))
    return owner.install_hint


# --- ONNX Runtime ------------------------------------------------------------------------------


def _onnxruntime_build(context: _Context, precision: str) -> BuiltArtifact:
    if precision == "fp32":
        return _with_pixel_model(context, _onnx_artifact(context, context.fp32_onnx, context.fp32_accuracy), precision)
    path, gate = _gated_qdq(context, "onnxruntime")
    artifact = _onnx_artifact(context, path, accuracy_record(gate.int8), quantization=_gate_record(gate, "onnxruntime"))
    artifact.comparison, artifact.layer_report = gate.comparison, gate.layer_report
    return _with_pixel_model(context, artifact, precision)


def _with_pixel_model(context: _Context, artifact: BuiltArtifact, precision: str) -> BuiltArtifact:
    """Add the copy of the model that normalises uint8 pixels itself, so apps skip numpy per image."""
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

    path, gate = _gated_qdq(context, "tensorrt")
    violations = check_tensorrt_rules(path, float_nodes=gate.float_nodes)
    if violations:
        raise ExportError(f"TensorRT QDQ model breaks TensorRT's explicit-quantization rules: {violations[0]}")
    artifact = _onnx_artifact(context, path, accuracy_record(gate.int8), quantization=_gate_record(gate, "tensorrt"))
    artifact.comparison, artifact.layer_report = gate.comparison, gate.layer_report
    artifact.extra.update(note)
    artifact.extra["tensorrt"]["qdq_rules"] = "passed"
    return artifact


# --- OpenVINO ------------------------------------------------------------------------------------


def _openvino_build(context: _Context, precision: str) -> BuiltArtifact:
    from edgeresnet.backends.openvino.convert import convert_qdq_to_ir, convert_to_ir, quantize_with_nncf

    directory = context.work / f"openvino-{precision}-build"
    if precision == "fp32":
        xml = convert_to_ir(context.fp32_onnx, directory / "model.xml", batch=context.options.batch)
        accuracy, golden, _ = _measure_openvino(context, xml, "fp32")
        return _ir_artifact(xml, accuracy, golden)

    from edgeresnet.calibration.gate import resolution_warning, within_budget

    budget, strict = context.options.max_accuracy_drop, context.options.strict_gate
    candidates: dict[str, tuple[Path, dict[str, Any], np.ndarray, PairedComparison]] = {}
    context.progress("OpenVINO INT8 via NNCF")
    nncf_xml = quantize_with_nncf(context.fp32_onnx, directory / "nncf" / "model.xml", context.calib_batches,
                                  subset_size=sum(len(b) for b in context.calib_batches))
    candidates["nncf"] = (nncf_xml, *_measure_openvino(context, nncf_xml, "int8"))
    context.progress("OpenVINO INT8 from the calibration table's QDQ model")
    qdq_float_nodes: tuple[str, ...] = ()
    qdq_failure = None
    qdq_layers = None
    try:
        qdq_path, gate = _gated_qdq(context, "onnxruntime")
        qdq_float_nodes, qdq_layers = tuple(gate.float_nodes), gate.layer_report
        qdq_xml = convert_qdq_to_ir(qdq_path, directory / "qdq" / "model.xml")
        candidates["calibration-table-qdq"] = (qdq_xml, *_measure_openvino(context, qdq_xml, "int8"))
    except AccuracyGateError as error:
        # The QDQ path missing the budget does not sink OpenVINO: NNCF may still meet it.
        qdq_failure = str(error)

    comparisons = {name: candidate[3] for name, candidate in candidates.items()}
    passing = [name for name, comparison in comparisons.items() if within_budget(comparison, budget, strict=strict)]
    if not passing:
        details = ", ".join(f"{name} {comparison.summary()}" for name, comparison in comparisons.items())
        raise AccuracyGateError(
            f"OpenVINO INT8 misses the {'strict ' if strict else ''}accuracy budget of {budget:g} points ({details}"
            + (f"; calibration-table QDQ: {qdq_failure}" if qdq_failure else "") + ")"
        )
    # Most accurate wins; on a tie, the calibration-table path, which any device can rebuild.
    chosen = max(passing, key=lambda name: (candidates[name][1]["top1"], name == "calibration-table-qdq"))
    xml, accuracy, golden, comparison = candidates[chosen]
    warning = resolution_warning(comparison, budget)
    quantization = {
        "chosen": chosen,
        "float_nodes": list(qdq_float_nodes) if chosen == "calibration-table-qdq" else [],
        "candidates": {name: {"accuracy": candidates[name][1], "drop_points": comparisons[name].to_dict()["drop_points"],
                              "comparison": comparisons[name].to_dict()} for name in candidates},
        "calibration_table_qdq_failure": qdq_failure,
        "warning": warning,
        "layer_report": "calibration-table QDQ quantizers (onnxruntime flavour)" if chosen != "nncf"
        else "not covered: NNCF's own quantizers (the report covers table-built QDQ models)",
    }
    artifact = _ir_artifact(xml, accuracy, golden, quantization=quantization)
    artifact.comparison = comparison
    artifact.layer_report = qdq_layers if chosen == "calibration-table-qdq" else None
    return artifact




# --- shared steps --------------------------------------------------------------------------------


def _gated_qdq(context: _Context, flavour: str) -> tuple[Path, Any]:
    """The INT8 QDQ model of ``flavour`` after the accuracy gate, built once per export."""
    from edgeresnet.calibration import apply_accuracy_gate

    cache = context.gated
    if flavour not in cache:
        context.progress(f"quantizing ({flavour} QDQ) and checking the accuracy gate")
        path = context.work / f"{flavour}_int8.onnx"
        gate = apply_accuracy_gate(
            context.fp32_onnx, context.table, path, flavour=flavour, eval_batches=context.eval_batches,
            max_drop_points=context.options.max_accuracy_drop, strict=context.options.strict_gate,
        )
        context.progress(f"{flavour} INT8 against FP32: {gate.comparison.summary()}")
        if gate.resolution_warning:
            context.progress(f"warning: {gate.resolution_warning}")
        if gate.float_nodes:
            context.progress(f"{flavour}: kept {len(gate.float_nodes)} sensitive layers in float "
                             f"({', '.join(gate.float_nodes)}) to meet the budget")
        cache[flavour] = (path, gate)
    return cache[flavour]


def _gate_record(gate: Any, flavour: str) -> dict[str, Any]:
    record = gate.to_dict()
    # The QDQ file's build path is a staging location that no longer exists once the bundle is written.
    if isinstance(record.get("report"), dict):
        record["report"].pop("path", None)
    record["sensitivity"] = [list(item) for item in gate.sensitivity[:SENSITIVITY_KEPT]]
    record["flavour"] = flavour
    return record


def accuracy_record(accuracy: Accuracy) -> dict[str, Any]:
    return accuracy.to_dict()


def _onnx_artifact(context: _Context, path: Path, accuracy: dict[str, Any], *,
                   quantization: dict[str, Any] | None = None) -> BuiltArtifact:
    from edgeresnet.backends.onnxruntime.runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path, threads=context.options.threads) as runner:
        golden = runner.infer(context.golden_inputs)
    return BuiltArtifact("model.onnx", {"model.onnx": path}, accuracy, golden, quantization=quantization)


def _ir_artifact(xml: Path, accuracy: dict[str, Any], golden: np.ndarray, *,
                 quantization: dict[str, Any] | None = None) -> BuiltArtifact:
    files = {"model.xml": xml, "model.bin": xml.with_suffix(".bin")}
    return BuiltArtifact("model.xml", files, accuracy, golden, quantization=quantization)


def _measure_openvino(context: _Context, xml: Path,
                      precision: str) -> tuple[dict[str, Any], np.ndarray, PairedComparison]:
    """Accuracy, golden outputs and the paired comparison with the FP32 ONNX model's logits."""
    from edgeresnet.backends.openvino.runner import OpenVinoRunner

    with OpenVinoRunner(xml, threads=context.options.threads, precision=precision) as runner:
        logits = np.concatenate([runner.infer(images) for images, _ in context.eval_batches])
        golden = runner.infer(context.golden_inputs)
    counter = AccuracyCounter()
    counter.update(logits, context.eval_labels)
    return counter.result().to_dict(), golden, compare_paired(context.eval_labels, context.fp32_logits, logits)


def evaluate_runner(runner: Runner, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Top-1/top-5 in percent of any runner over labelled batches."""
    return evaluate_logits(runner.infer, batches).to_dict()
