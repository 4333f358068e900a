"""The accuracy gate: an INT8 artifact ships only if its top-1 stays within budget of FP32.

When the fully quantized model misses the budget, a per-layer sensitivity analysis ranks the
quantized nodes: each is quantized *alone* (everything else float) and scored by how far its logits
move from FP32's on a small held-out set. Quantizing one node alone charges it for the quantization
of its own inputs and weights, so a badly ranged tensor read by several nodes marks each of them,
which leave-one-out cannot see. The most sensitive nodes are then kept in float one at a time,
re-measuring top-1 after each, until the budget holds or the float share passes its limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.calibration.data_check import validate_batch
from edgeresnet.calibration.qdq import Flavour, QdqQuantizer, QdqReport
from edgeresnet.calibration.session import BatchSession
from edgeresnet.calibration.table import CalibrationTable
from edgeresnet.errors import AccuracyGateError, CalibrationError, ExportError
from edgeresnet.evaluation import Accuracy, evaluate_logits

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class GateStep:
    """One fallback step: ``node`` kept in float, and the top-1 (percent) and drop measured after it."""

    node: str
    top1: float
    drop_points: float


@dataclass(frozen=True)
class GateResult:
    """What the gate measured and decided; the written model is ``report.path``.

    Accuracies are :class:`edgeresnet.evaluation.Accuracy` in percent; drops are percentage points.
    """

    fp32: Accuracy
    int8_all_quantized: Accuracy
    int8: Accuracy
    drop_points: float
    max_drop_points: float
    float_nodes: tuple[str, ...]
    steps: tuple[GateStep, ...]
    sensitivity: tuple[tuple[str, float], ...]  # (node, relative logit MSE when quantized alone), worst first
    report: QdqReport

    @property
    def fallback_cost_points(self) -> float:
        """Top-1 points the float fallback won back compared with quantizing everything."""
        return self.int8.top1 - self.int8_all_quantized.top1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record; every accuracy in it is in percent, as in manifests and reports."""
        return {
            "fp32": self.fp32.to_dict(),
            "int8_all_quantized": self.int8_all_quantized.to_dict(),
            "int8": self.int8.to_dict(),
            "drop_points": round(self.drop_points, 4),
            "max_drop_points": self.max_drop_points,
            "fallback_cost_points": round(self.fallback_cost_points, 4),
            "float_nodes": list(self.float_nodes),
            "steps": [{"node": step.node, "top1": round(step.top1, 4), "drop_points": round(step.drop_points, 4)}
                      for step in self.steps],
            "sensitivity": [[node, score] for node, score in self.sensitivity],
            "report": self.report.to_dict(),
        }


def evaluate_onnx(
    model: str | Path | onnx.ModelProto,
    batches_with_labels: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    label: str = "",
) -> Accuracy:
    """Top-1/top-5 in percent of an ONNX model (file or in-memory) in onnxruntime on CPU.

    Any batch size works, also on a model exported with a static batch.

    Args:
        label: how errors name the model (default: its file name or graph name).
    """
    session = BatchSession(model, label=label)
    return evaluate_logits(session.logits, _labelled(batches_with_labels))


def apply_accuracy_gate(
    fp32_path: str | Path,
    table: CalibrationTable,
    out_path: str | Path,
    *,
    flavour: Flavour,
    eval_batches: Sequence[tuple[np.ndarray, np.ndarray]],
    max_drop_points: float,
    sensitivity_batches: Sequence[np.ndarray | tuple[np.ndarray, np.ndarray]],
    max_float_fraction: float = 0.25,
) -> GateResult:
    """Quantize, and keep the most sensitive layers in float until top-1 is within ``max_drop_points``.

    Args:
        eval_batches: (images, labels) pairs; read once per candidate model, so pass a list.
        max_drop_points: allowed top-1 drop versus FP32, in percentage points.
        sensitivity_batches: a few hundred held-out images for the layer ranking (labels, if paired
            with the images, are ignored).
        max_float_fraction: the most of the quantizable nodes the fallback may keep in float before
            it gives up (an "INT8" model that is mostly float is not worth shipping).

    Raises:
        AccuracyGateError: the budget is missed even with the allowed fallback; nothing is written.
    """
    if not (max_drop_points >= 0 and math.isfinite(max_drop_points)):
        raise ExportError(f"max_drop_points must be a finite number >= 0, got {max_drop_points}")
    if not 0 <= max_float_fraction <= 1:
        raise ExportError(f"max_float_fraction must be in [0, 1], got {max_float_fraction}")
    eval_batches = list(eval_batches)
    quantizer = QdqQuantizer(fp32_path, table, flavour=flavour)
    fp32 = evaluate_onnx(fp32_path, eval_batches)
    model, report = quantizer.build()
    name = f"the INT8 {flavour} QDQ model of {Path(fp32_path).name}"
    all_quantized = evaluate_onnx(model, eval_batches, label=name)
    drop = _drop(fp32, all_quantized)
    if drop <= max_drop_points:
        report = quantizer.write(out_path)
        return GateResult(fp32, all_quantized, all_quantized, drop, max_drop_points, (), (), (), report)

    sensitivity = rank_sensitivity(quantizer, fp32_path, sensitivity_batches, report.quantized_nodes)
    limit = int(max_float_fraction * len(report.quantized_nodes))
    kept_float: list[str] = []
    steps: list[GateStep] = []
    for node, _ in sensitivity[:limit]:
        kept_float.append(node)
        model, _ = quantizer.build(kept_float)
        accuracy = evaluate_onnx(model, eval_batches, label=f"{name} ({len(kept_float)} layers in float)")
        drop = _drop(fp32, accuracy)
        steps.append(GateStep(node, accuracy.top1, drop))
        if drop <= max_drop_points:
            report = quantizer.write(out_path, exclude_nodes=kept_float)
            return GateResult(
                fp32, all_quantized, accuracy, drop, max_drop_points, tuple(kept_float), tuple(steps),
                tuple(sensitivity), report,
            )
    best = min((step.drop_points for step in steps), default=_drop(fp32, all_quantized))
    raise AccuracyGateError(
        f"INT8 {flavour} model misses the accuracy budget by {best - max_drop_points:.2f} points: top-1 drop "
        f"{best:.2f} > {max_drop_points:g} even with {len(kept_float)} of {len(report.quantized_nodes)} layers "
        f"kept in float (FP32 top-1 {fp32.top1:.2f}%); recalibrate with more or better data, another "
        "--calib-method, or a larger --max-accuracy-drop"
    )


def rank_sensitivity(
    quantizer: QdqQuantizer,
    fp32_path: str | Path,
    sensitivity_batches: Sequence[np.ndarray | tuple[np.ndarray, np.ndarray]],
    candidates: Sequence[str],
) -> list[tuple[str, float]]:
    """Each candidate quantized alone, scored by relative MSE of its logits against FP32; worst first."""
    # Labelled (images, labels) pairs are accepted too: the ranking only needs the images.
    images = [
        validate_batch(batch[0] if isinstance(batch, tuple) else batch, what="sensitivity")
        for batch in sensitivity_batches
    ]
    if not images:
        raise CalibrationError("the accuracy gate needs sensitivity images to rank layers")
    reference = _logits(BatchSession(fp32_path), images)
    scale = float(np.mean(reference**2)) or 1.0
    candidates = list(candidates)
    scores = []
    for node in candidates:
        model, _ = quantizer.build(set(quantizer.node_names) - {node})
        session = BatchSession(model, label=f"the QDQ model of {Path(fp32_path).name} with only {node} quantized")
        error = float(np.mean((_logits(session, images) - reference) ** 2)) / scale
        scores.append((node, error))
    # Stable tie-break on graph order, so equal scores give the same fallback every run.
    order = {node: index for index, node in enumerate(candidates)}
    return sorted(scores, key=lambda item: (-item[1], order[item[0]]))


def _drop(fp32: Accuracy, int8: Accuracy) -> float:
    return fp32.top1 - int8.top1


def _logits(session: BatchSession, images: Iterable[np.ndarray]) -> np.ndarray:
    return np.concatenate([session.logits(batch) for batch in images]).astype(np.float64)


def _labelled(batches_with_labels: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Checked (images, labels) pairs; refuses a mismatched pair and an empty set with one line."""
    images_seen = 0
    for images, labels in batches_with_labels:
        images = validate_batch(images, what="evaluation")
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != images.shape[0]:
            raise CalibrationError(f"{images.shape[0]} images but {labels.shape[0]} labels in an evaluation batch")
        images_seen += images.shape[0]
        yield images, labels
    if images_seen == 0:
        raise CalibrationError("evaluation needs labelled images; none were given")
