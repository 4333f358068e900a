"""The accuracy gate: an INT8 artifact ships only if its top-1 stays within budget of FP32.

FP32 and INT8 see the same evaluation images, so they are compared pairwise
(:func:`edgeresnet.evaluation.compare_paired`): top-1 agreement, the discordant images, and the drop
with its 95% interval. By default the budget applies to the drop's point estimate; ``strict`` requires
the interval's upper end to be within the budget. Either way, when the interval is wider than the
budget the result carries a one-line warning that the data cannot resolve it.

When the fully quantized model misses the budget, the layers are ranked by the per-layer report
(:mod:`edgeresnet.calibration.layer_report`: each quantized tensor's own SQNR on evaluation images,
worst first), and the nodes reading the worst tensors are kept in float one at a time, re-measuring
after each, until the budget holds or the float share passes its limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.calibration.data_check import validate_batch
from edgeresnet.calibration.layer_report import LayerReport, build_layer_report
from edgeresnet.calibration.qdq import Flavour, QdqQuantizer, QdqReport
from edgeresnet.calibration.session import BatchSession
from edgeresnet.calibration.table import CalibrationTable
from edgeresnet.errors import AccuracyGateError, CalibrationError, ExportError
from edgeresnet.evaluation import (
    Accuracy,
    AccuracyCounter,
    PairedComparison,
    compare_paired,
    count_of,
    evaluate_logits,
    format_interval,
)

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class GateStep:
    """One fallback step: ``node`` kept in float, and the top-1 (percent) and drop measured after it."""

    node: str
    top1: float
    drop_points: float
    drop_ci95_points: tuple[float, float] = (math.nan, math.nan)


@dataclass(frozen=True)
class GateResult:
    """What the gate measured and decided; the written model is ``report.path``.

    Accuracies are :class:`edgeresnet.evaluation.Accuracy` in percent; drops are percentage points.
    ``comparison`` is the shipped model against FP32 on the evaluation images.
    """

    fp32: Accuracy
    int8_all_quantized: Accuracy
    int8: Accuracy
    drop_points: float
    max_drop_points: float
    float_nodes: tuple[str, ...]
    steps: tuple[GateStep, ...]
    sensitivity: tuple[tuple[str, float], ...]  # (node, worst local SQNR dB of what it reads), worst first
    report: QdqReport
    comparison: PairedComparison
    all_quantized_comparison: PairedComparison
    strict: bool = False
    layer_report: LayerReport | None = None

    @property
    def fallback_cost_points(self) -> float:
        """Top-1 points the float fallback won back compared with quantizing everything."""
        return self.int8.top1 - self.int8_all_quantized.top1

    @property
    def resolution_warning(self) -> str | None:
        """One line when the evaluation images cannot tell a drop of the budget from none."""
        return resolution_warning(self.comparison, self.max_drop_points)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record; every accuracy in it is in percent, as in manifests and reports."""
        return {
            "fp32": self.fp32.to_dict(),
            "int8_all_quantized": self.int8_all_quantized.to_dict(),
            "int8": self.int8.to_dict(),
            "drop_points": round(self.drop_points, 4),
            "drop_ci95_points": self.comparison.to_dict()["drop_ci95_points"],
            "max_drop_points": self.max_drop_points,
            "strict": self.strict,
            "resolves_budget": self.comparison.resolves(self.max_drop_points),
            "warning": self.resolution_warning,
            "comparison": self.comparison.to_dict(),
            "all_quantized_comparison": self.all_quantized_comparison.to_dict(),
            "fallback_cost_points": round(self.fallback_cost_points, 4),
            "float_nodes": list(self.float_nodes),
            "steps": [{"node": step.node, "top1": round(step.top1, 4), "drop_points": round(step.drop_points, 4),
                       "drop_ci95_points": [round(v, 4) for v in step.drop_ci95_points]} for step in self.steps],
            "sensitivity": [[node, None if math.isinf(score) else score] for node, score in self.sensitivity],
            "report": self.report.to_dict(),
        }


def within_budget(comparison: PairedComparison, max_drop_points: float, *, strict: bool) -> bool:
    """The gate's one rule: the point estimate (default) or the 95% interval's upper end within budget."""
    measured = comparison.drop_ci95_points[1] if strict else comparison.drop_points
    return measured <= max_drop_points + 1e-9


def resolution_warning(comparison: PairedComparison, max_drop_points: float) -> str | None:
    """``"139 evaluation images cannot resolve a 1.0-point budget: ..."``, or ``None`` when they can."""
    if comparison.resolves(max_drop_points):
        return None
    return (f"{comparison.images:,} evaluation images cannot resolve a {max_drop_points:.1f}-point budget: the "
            f"drop's 95% interval is {format_interval(*comparison.drop_ci95_points)} points "
            f"({count_of(comparison.discordant, 'discordant image')}); more evaluation images narrow it")


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
    strict: bool = False,
    max_float_fraction: float = 0.25,
    layer_report_images: int | None = None,
) -> GateResult:
    """Quantize, and keep the worst-ranked layers in float until the drop is within ``max_drop_points``.

    Args:
        eval_batches: (images, labels) pairs; read once per candidate model, so pass a list.
        max_drop_points: allowed top-1 drop versus FP32, in percentage points.
        strict: judge the 95% interval's upper end instead of the point estimate.
        max_float_fraction: the most of the quantizable nodes the fallback may keep in float before
            it gives up (an "INT8" model that is mostly float is not worth shipping).
        layer_report_images: evaluation images the per-layer report runs (default: its own limit).

    Raises:
        AccuracyGateError: the budget is missed even with the allowed fallback; nothing is written.
    """
    if not (max_drop_points >= 0 and math.isfinite(max_drop_points)):
        raise ExportError(f"max_drop_points must be a finite number >= 0, got {max_drop_points}")
    if not 0 <= max_float_fraction <= 1:
        raise ExportError(f"max_float_fraction must be in [0, 1], got {max_float_fraction}")
    eval_batches = list(eval_batches)
    quantizer = QdqQuantizer(fp32_path, table, flavour=flavour)
    labels, fp32_logits = _labels_and_logits(BatchSession(fp32_path), eval_batches)
    fp32 = _accuracy(fp32_logits, labels)
    model, report = quantizer.build()
    name = f"the INT8 {flavour} QDQ model of {Path(fp32_path).name}"
    all_logits = _labels_and_logits(BatchSession(model, label=name), eval_batches)[1]
    all_quantized, first = _accuracy(all_logits, labels), compare_paired(labels, fp32_logits, all_logits)
    images = [batch for batch, _ in eval_batches]
    layers = build_layer_report(fp32_path, model, flavour, images,
                                **({"max_images": layer_report_images} if layer_report_images else {}))
    ranking = tuple(layers.node_ranking(report.quantized_nodes))

    def result(accuracy: Accuracy, comparison: PairedComparison, kept: Sequence[str], steps: Sequence[GateStep],
               written: QdqReport) -> GateResult:
        return GateResult(fp32, all_quantized, accuracy, comparison.drop_points, max_drop_points, tuple(kept),
                          tuple(steps), ranking, written, comparison, first, strict, layers)

    if within_budget(first, max_drop_points, strict=strict):
        return result(all_quantized, first, (), (), quantizer.write(out_path))

    limit = int(max_float_fraction * len(report.quantized_nodes))
    kept_float: list[str] = []
    steps: list[GateStep] = []
    for node, _ in ranking[:limit]:
        kept_float.append(node)
        model, _ = quantizer.build(kept_float)
        session = BatchSession(model, label=f"{name} ({len(kept_float)} layers in float)")
        logits = _labels_and_logits(session, eval_batches)[1]
        comparison = compare_paired(labels, fp32_logits, logits)
        steps.append(GateStep(node, comparison.candidate_top1, comparison.drop_points, comparison.drop_ci95_points))
        if within_budget(comparison, max_drop_points, strict=strict):
            written = quantizer.write(out_path, exclude_nodes=kept_float)
            return result(_accuracy(logits, labels), comparison, kept_float, steps, written)
    judged = "upper end of the drop's 95% interval" if strict else "top-1 drop"
    best = min(steps, key=lambda step: step.drop_ci95_points[1] if strict else step.drop_points, default=None)
    best_value = (best.drop_ci95_points[1] if strict else best.drop_points) if best else (
        first.drop_ci95_points[1] if strict else first.drop_points)
    warning = resolution_warning(first, max_drop_points)
    raise AccuracyGateError(
        f"INT8 {flavour} model misses the accuracy budget: {judged} {best_value:.2f} > {max_drop_points:g} points "
        f"even with {len(kept_float)} of {len(report.quantized_nodes)} layers kept in float (FP32 top-1 "
        f"{fp32.top1:.2f}% on {fp32.images} images; all quantized: {first.summary()})"
        + (f"; {warning}" if warning else "")
        + "; recalibrate with more or better data, another --calib-method, or a larger --max-accuracy-drop"
    )


def _labels_and_logits(session: BatchSession, batches: Iterable[tuple[np.ndarray, np.ndarray]]
                       ) -> tuple[np.ndarray, np.ndarray]:
    labels, logits = [], []
    for images, batch_labels in _labelled(batches):
        labels.append(batch_labels)
        logits.append(session.logits(images))
    return np.concatenate(labels), np.concatenate(logits)


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> Accuracy:
    counter = AccuracyCounter()
    counter.update(logits, labels)
    return counter.result()


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
