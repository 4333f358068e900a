"""Where export's targets meet the accuracy gate: the gated QDQ model per flavour, its manifest record,
and the choice among OpenVINO's INT8 candidates.

The gate's rule itself (verdicts, what is publishable) lives in :mod:`edgeresnet.calibration.gate`; this
module applies it to what the targets build, and keeps a refusal as a record so the export can publish
everything else (:mod:`edgeresnet.export.workflow`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edgeresnet.bundle.records import QuantizationRecord
from edgeresnet.calibration.gate import (
    GateRefusal,
    GateRefused,
    GateResult,
    gate_verdict,
    passes_gate,
)

if TYPE_CHECKING:
    from edgeresnet.evaluation import PairedComparison
    from edgeresnet.export.prepare import ExportContext as _Context

SENSITIVITY_KEPT = 10
VERDICT_WORDS = {"within": "within budget", "over": "over budget", "unresolved": "unresolved"}


def gated_qdq(context: _Context, flavour: str) -> tuple[Path, GateResult]:
    """The INT8 QDQ model of ``flavour`` after the accuracy gate, built once per export.

    Raises:
        GateRefused: the gate refused it (also on every later call: a refusal is cached like a pass).
    """
    from edgeresnet.calibration import apply_accuracy_gate

    cache = context.gated
    if flavour not in cache:
        context.progress(f"quantizing ({flavour} QDQ) and checking the accuracy gate")
        path = context.work / f"{flavour}_int8.onnx"
        try:
            gate = apply_accuracy_gate(
                context.fp32_onnx, context.table, path, flavour=flavour, eval_batches=context.eval_batches,
                max_drop_points=context.options.max_accuracy_drop, strict=context.options.strict_gate,
            )
        except GateRefused as refused:
            cache[flavour] = refused
            raise
        # The "cannot resolve" warning is not said here: the export says each distinct one once, at the end.
        context.progress(f"{flavour} INT8 against FP32: {gate.comparison.summary()}: {VERDICT_WORDS[gate.verdict]}")
        if gate.float_nodes:
            context.progress(f"{flavour}: kept {len(gate.float_nodes)} sensitive layers in float "
                             f"({', '.join(gate.float_nodes)}) to meet the budget")
        cache[flavour] = (path, gate)
    cached = cache[flavour]
    if isinstance(cached, GateRefused):
        raise cached
    return cached


def gate_record(gate: GateResult, flavour: str) -> QuantizationRecord:
    """The manifest's ``quantization`` for a gated QDQ model: its verdict, float layers, and the gate's record."""
    details = gate.to_dict()
    # The QDQ file's build path is a staging location that no longer exists once the bundle is written.
    if isinstance(details.get("report"), dict):
        details["report"].pop("path", None)
    details["sensitivity"] = [list(item) for item in gate.sensitivity[:SENSITIVITY_KEPT]]
    del details["float_nodes"]
    return QuantizationRecord(float_nodes=tuple(gate.float_nodes), flavour=flavour, details=details,
                              gate_verdict=gate.verdict)


def choose_candidate(model: str, comparisons: Mapping[str, PairedComparison], top1: Mapping[str, float], *,
                     budget: float, strict: bool, preferred: str, refused: Mapping[str, str]) -> str:
    """The most accurate publishable candidate (``preferred`` on a tie), or :class:`GateRefused` for ``model``.

    Args:
        refused: candidates the gate refused before they could be measured here, with their figures.
    """
    passing = [name for name, comparison in comparisons.items() if passes_gate(comparison, budget, strict=strict)]
    if passing:
        return max(passing, key=lambda name: (top1[name], name == preferred))
    side = 1 if strict else 0  # as the gate ranks a refused model's tries
    closest = min(comparisons.values(), key=lambda comparison: comparison.drop_ci95_points[side])
    figures = "; ".join([*(f"{name}: {comparison.summary()}" for name, comparison in comparisons.items()),
                         *(f"{name}: {text}" for name, text in refused.items())])
    raise GateRefused(GateRefusal(model=model, verdict=gate_verdict(closest, budget), max_drop_points=budget,
                                  strict=strict, comparison=closest, figures=figures))
