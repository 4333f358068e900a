"""Calibration and INT8 quantization: the calibration table, QDQ writers and the accuracy gate.

    plan = plan_data(len(calibration_split), len(evaluation_split))    # counts from what the data holds
    tables = calibrate_all(fp32_onnx, batches, data_hash=digest)       # minmax, entropy, percentile
    choice = choose_method(fp32_onnx, tables, selection_batches)       # agreement with FP32 decides
    tables[choice.method].save("calibration.json")
    quantize_qdq(fp32_onnx, tables[choice.method], "model.int8.onnx", flavour="onnxruntime")  # or "tensorrt"
    result = apply_accuracy_gate(fp32_onnx, table, "model.int8.onnx", flavour="onnxruntime",
                                 eval_batches=labelled, max_drop_points=1.0)  # strict=True: the interval
    result.comparison.summary(); result.layer_report.tensors                  # paired drop; SQNR per tensor

``evaluate_onnx`` and the gate report :class:`edgeresnet.accuracy.Accuracy`, in percent; the gate's
``comparison`` is a :class:`edgeresnet.accuracy.PairedComparison` against FP32 on the same images.

Importing this package is cheap: onnx and onnxruntime are imported inside the functions that use them,
and torch never.
"""

from __future__ import annotations

from edgeresnet.accuracy import Accuracy

# Re-exported so callers that imported them from here keep working; each is defined in one place.
from edgeresnet.bundle import sha256_file
from edgeresnet.calibration.choice import MethodChoice, choose_method
from edgeresnet.calibration.collect import calibrate, calibrate_all, collect_ranges
from edgeresnet.calibration.data_check import check_calibration_data
from edgeresnet.calibration.gate import GateResult, GateStep, apply_accuracy_gate, evaluate_onnx
from edgeresnet.calibration.layer_report import LayerReport, build_layer_report
from edgeresnet.calibration.peer import peer_quantize_static_default
from edgeresnet.calibration.plan import DataPlan, plan_data
from edgeresnet.calibration.qdq import FLAVOURS, Flavour, QdqQuantizer, QdqReport, quantize_qdq
from edgeresnet.calibration.qdq_rules import check_tensorrt_rules, inspect_qdq
from edgeresnet.calibration.table import METHODS, CalibrationTable, Method

__all__ = [
    "FLAVOURS",
    "METHODS",
    "Accuracy",
    "CalibrationTable",
    "DataPlan",
    "Flavour",
    "GateResult",
    "GateStep",
    "LayerReport",
    "Method",
    "MethodChoice",
    "QdqQuantizer",
    "QdqReport",
    "apply_accuracy_gate",
    "build_layer_report",
    "calibrate",
    "calibrate_all",
    "check_calibration_data",
    "check_tensorrt_rules",
    "choose_method",
    "collect_ranges",
    "evaluate_onnx",
    "inspect_qdq",
    "peer_quantize_static_default",
    "plan_data",
    "quantize_qdq",
    "sha256_file",
]
