"""The accuracy gate: an INT8 artifact ships on the evidence of its paired comparison with FP32.

FP32 and INT8 see the same evaluation images, so they are compared pairwise
(:func:`edgeresnet.accuracy.compare_paired`): top-1 agreement, the discordant images, and the drop
with its 95% interval. The interval against the budget gives one of three verdicts
(:func:`gate_verdict`): *within* (its upper end is within the budget), *over* (its lower end is above
it: the data show the budget is missed) and *unresolved* (it straddles the budget). By default only
*over* is refused (:func:`publishable`); *unresolved* ships with a one-line warning, because a few
dozen evaluation images cannot tell a 1-point drop from none and one flipped image must not sink an
export. ``strict`` ships only *within*.

When the fully quantized model is refused, the layers are ranked by the per-layer report
(:mod:`edgeresnet.calibration.layer_report`: each quantized tensor's own SQNR on evaluation images,
worst first), and the nodes reading the worst tensors are kept in float one at a time, re-measuring
after each, until the model is publishable or the float share passes its limit; then
:class:`GateRefused` carries the figures (:class:`GateRefusal`) so the caller can publish the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.accuracy import (
    Accuracy,
    AccuracyCounter,
    PairedComparison,
    compare_paired,
    count_of,
    evaluate_logits,
    format_interval,
    interval_verdict,
)
from edgeresnet.bundle.vocabulary import GateVerdict
from edgeresnet.calibration.data_check import validate_batch
from edgeresnet.calibration.layer_report import LayerReport, build_layer_report
from edgeresnet.calibration.qdq import Flavour, QdqQuantizer, QdqReport
from edgeresnet.calibration.session import BatchSession
from edgeresnet.calibration.table import CalibrationTable
from edgeresnet.errors import AccuracyGateError, CalibrationError, ExportError

if TYPE_CHECKING:
    import onnx

def gate_verdict(comparison: PairedComparison, max_drop_points: float) -> GateVerdict:
    """``within``, ``over`` or ``unresolved``: where the drop's 95% interval lies against the budget."""
    low, high = comparison.drop_ci95_points
    return interval_verdict(low, high, max_drop_points)  # type: ignore[return-value]


def publishable(verdict: GateVerdict, *, strict: bool) -> bool:
    """The gate's one rule: by default everything the data do not show to be over; strict, only within."""
    return verdict == "within" if strict else verdict != "over"


def passes_gate(comparison: PairedComparison, max_drop_points: float, *, strict: bool) -> bool:
    return publishable(gate_verdict(comparison, max_drop_points), strict=strict)


def option_name(name: str, *, cli: bool) -> str:
    """How a message names an option: ``--max-accuracy-drop`` on the command line, ``max_accuracy_drop=`` in Python."""
    return "--" + name.replace("_", "-") if cli else f"{name}="


def resolution_warning(comparison: PairedComparison, max_drop_points: float) -> str | None:
    """``"30 evaluation images cannot resolve a 1.0-point budget: ..."`` when the verdict is unresolved, else None."""
    if gate_verdict(comparison, max_drop_points) != "unresolved":
        return None
    return (f"{comparison.images:,} evaluation images cannot resolve a {max_drop_points:.1f}-point budget: the "
            f"drop's 95% interval is {format_interval(*comparison.drop_ci95_points)} points "
            f"({count_of(comparison.discordant, 'discordant image')}); published unresolved; "
            "more evaluation images narrow it")


@dataclass(frozen=True)
class GateRefusal:
    """Why an INT8 artifact was refused, with its figures; :meth:`describe` adds the advice."""

    model: str  # "INT8 onnxruntime model", "OpenVINO INT8"
    verdict: GateVerdict  # over; or unresolved under the strict gate
    max_drop_points: float
    strict: bool
    comparison: PairedComparison  # the closest the gate came (after the fallback it tried)
    figures: str  # one line: what was tried and measured

    def describe(self, *, cli: bool = False) -> str:
        """One line naming the options to change as the caller spells them (CLI flags or keyword arguments)."""
        def name(option: str) -> str:
            return option_name(option, cli=cli)

        if self.verdict == "over":
            verdict = "is over the accuracy budget (the data show the drop exceeds it)"
            advice = (f"recalibrate with more or better data, another {name('calib_method')}, "
                      f"or a larger {name('max_accuracy_drop')}")
        else:
            verdict = "is not shown within the accuracy budget (strict gate)"
            advice = (f"more evaluation images narrow the interval; without {name('strict_gate')} "
                      "an unresolved model is published with a warning")
        return f"{self.model} {verdict}: {self.figures}; {advice}"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "max_drop_points": self.max_drop_points, "strict": self.strict,
                "figures": self.figures, "comparison": self.comparison.to_dict()}


class GateRefused(AccuracyGateError):
    """An INT8 artifact the gate refused; ``refusal`` holds its figures. Its text names keyword arguments."""

    def __init__(self, refusal: GateRefusal) -> None:
        super().__init__(refusal.describe(cli=False))
        self.refusal = refusal


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

    Accuracies are :class:`edgeresnet.accuracy.Accuracy` in percent; drops are percentage points.
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
    def verdict(self) -> GateVerdict:
        return gate_verdict(self.comparison, self.max_drop_points)

    @property
    def fallback_cost_points(self) -> float:
        """Top-1 points the float fallback won back compared with quantizing everything."""
        return self.int8.top1 - self.int8_all_quantized.top1

    @property
    def resolution_warning(self) -> str | None:
        """One line when the evaluation images cannot tell whether the drop is within the budget."""
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
            "verdict": self.verdict,
            "resolves_budget": self.verdict != "unresolved",
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
    """Quantize, and keep the worst-ranked layers in float while the gate refuses the model.

    Args:
        eval_batches: (images, labels) pairs; read once per candidate model, so pass a list.
        max_drop_points: allowed top-1 drop versus FP32, in percentage points.
        strict: publish only a model whose drop's 95% interval lies within the budget (default: any
            model the data do not show to be over it).
        max_float_fraction: the most of the quantizable nodes the fallback may keep in float before
            it gives up (an "INT8" model that is mostly float is not worth shipping).
        layer_report_images: evaluation images the per-layer report runs (default: its own limit).

    Raises:
        GateRefused: refused even with the allowed fallback; nothing is written.
    """
    if not (max_drop_points >= 0 and math.isfinite(max_drop_points)):
        raise ExportError(f"max_drop_points must be a finite number >= 0, got {max_drop_points}")
    if not 0 <= max_float_fraction <= 1:
        raise ExportError(f"max_float_fraction must be in [0, 1], got {max_float_fraction}")
    run = _Candidates(fp32_path, table, flavour, list(eval_batches), layer_report_images)

    def result(logits: np.ndarray, comparison: PairedComparison, kept: Sequence[str],
               steps: Sequence[GateStep]) -> GateResult:
        written = run.quantizer.write(out_path, exclude_nodes=list(kept))
        return GateResult(run.fp32, run.all_quantized, _accuracy(logits, run.labels), comparison.drop_points,
                          max_drop_points, tuple(kept), tuple(steps), run.ranking, written, comparison,
                          run.first, strict, run.layers)

    if passes_gate(run.first, max_drop_points, strict=strict):
        return result(run.all_logits, run.first, (), ())
    limit = int(max_float_fraction * len(run.quantized_nodes))
    kept: list[str] = []
    steps: list[GateStep] = []
    tried = [run.first]
    for node, _ in run.ranking[:limit]:
        kept.append(node)
        logits, comparison = run.measure(kept)
        steps.append(GateStep(node, comparison.candidate_top1, comparison.drop_points, comparison.drop_ci95_points))
        tried.append(comparison)
        if passes_gate(comparison, max_drop_points, strict=strict):
            return result(logits, comparison, kept, steps)
    raise GateRefused(_refusal(run, tried, len(kept), max_drop_points, strict))


class _Candidates:
    """The FP32 reference and the fully quantized model measured once; each fallback candidate on demand."""

    def __init__(self, fp32_path: str | Path, table: CalibrationTable, flavour: Flavour,
                 eval_batches: list[tuple[np.ndarray, np.ndarray]], layer_report_images: int | None) -> None:
        self.flavour, self.batches = flavour, eval_batches
        self.quantizer = QdqQuantizer(fp32_path, table, flavour=flavour)
        self.labels, self.fp32_logits = _labels_and_logits(BatchSession(fp32_path), eval_batches)
        self.fp32 = _accuracy(self.fp32_logits, self.labels)
        model, report = self.quantizer.build()
        self.name = f"the INT8 {flavour} QDQ model of {Path(fp32_path).name}"
        self.all_logits = _labels_and_logits(BatchSession(model, label=self.name), eval_batches)[1]
        self.all_quantized = _accuracy(self.all_logits, self.labels)
        self.first = compare_paired(self.labels, self.fp32_logits, self.all_logits)
        self.quantized_nodes = report.quantized_nodes
        images = [batch for batch, _ in eval_batches]
        self.layers = build_layer_report(fp32_path, model, flavour, images,
                                         **({"max_images": layer_report_images} if layer_report_images else {}))
        self.ranking = tuple(self.layers.node_ranking(report.quantized_nodes))

    def measure(self, float_nodes: Sequence[str]) -> tuple[np.ndarray, PairedComparison]:
        model, _ = self.quantizer.build(list(float_nodes))
        session = BatchSession(model, label=f"{self.name} ({len(float_nodes)} layers in float)")
        logits = _labels_and_logits(session, self.batches)[1]
        return logits, compare_paired(self.labels, self.fp32_logits, logits)


def _refusal(run: _Candidates, tried: Sequence[PairedComparison], kept: int, budget: float,
             strict: bool) -> GateRefusal:
    """The figures of a refused model: the candidate closest to passing, judged as the gate judges."""
    # Closest: the smallest upper end under the strict gate (it must fall within), else the smallest lower end.
    side = 1 if strict else 0
    best = min(tried, key=lambda comparison: comparison.drop_ci95_points[side])
    low, high = best.drop_ci95_points
    judged = (f"the upper end of the drop's 95% interval, {high:+.2f} points, is above the {budget:g}-point budget"
              if strict else f"the drop's 95% interval, {format_interval(low, high)} points, lies above the "
              f"{budget:g}-point budget")
    figures = (f"{judged} even with {kept} of {len(run.quantized_nodes)} layers kept in float (FP32 top-1 "
               f"{run.fp32.top1:.2f}% on {run.fp32.images} images; all quantized: {run.first.summary()})")
    return GateRefusal(model=f"INT8 {run.flavour} model", verdict=gate_verdict(best, budget), max_drop_points=budget,
                       strict=strict, comparison=best, figures=figures)


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
