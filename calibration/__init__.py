"""Calibration and INT8 quantization: the calibration table, QDQ writers and the accuracy gate.

    table = calibrate(fp32_onnx, batches, method="entropy", data_hash=digest)   # one pass over real images
    table.save("calibration.json")
    quantize_qdq(fp32_onnx, table, "model.int8.onnx", flavour="onnxruntime")   # or flavour="tensorrt"
    result = apply_accuracy_gate(fp32_onnx, table, "model.int8.onnx", flavour="onnxruntime",
                                 eval_batches=labelled, max_drop_points=1.0, sensitivity_batches=held_out)

``evaluate_onnx`` and the gate report :class:`edgeresnet.evaluation.Accuracy`, in percent.

Importing this package is cheap: onnx and onnxruntime are imported inside the functions that use them,
and torch never.
"""

from __future__ import annotations

# Re-exported so callers that imported them from here keep working; each is defined in one place.
from edgeresnet.bundle import sha256_file
from edgeresnet.calibration.collect import calibrate, calibrate_all, collect_ranges
from edgeresnet.calibration.data_check import check_calibration_data
from edgeresnet.calibration.gate import GateResult, GateStep, apply_accuracy_gate, evaluate_onnx
from edgeresnet.calibration.peer import peer_quantize_static_default
from edgeresnet.calibration.qdq import FLAVOURS, Flavour, QdqQuantizer, QdqReport, quantize_qdq
from edgeresnet.calibration.qdq_rules import check_tensorrt_rules, inspect_qdq
from edgeresnet.calibration.table import METHODS, CalibrationTable, Method
from edgeresnet.evaluation import Accuracy

__all__ = [
    "FLAVOURS",
    "METHODS",
    "Accuracy",
    "CalibrationTable",
    "Flavour",
    "GateResult",
    "GateStep",
    "Method",
    "QdqQuantizer",
    "QdqReport",
    "apply_accuracy_gate",
    "calibrate",
    "calibrate_all",
    "check_calibration_data",
    "check_tensorrt_rules",
    "collect_ranges",
    "evaluate_onnx",
    "inspect_qdq",
    "peer_quantize_static_default",
    "quantize_qdq",
    "sha256_file",
]
