"""``--calib-method auto``: keep the range method whose INT8 model follows FP32 most closely.

Each candidate table is built into an ONNX Runtime QDQ model and scored on every image the method
choice may use (see plan.py) by how closely its outputs follow the FP32 model's on the same images:

1. top-1 agreement with FP32 (images whose predicted class is unchanged), then
2. the mean KL divergence of the INT8 softmax from the FP32 softmax, which separates methods that
   agree on every image, and
3. ties (equal agreement and a KL within :data:`KL_TIE` of the best) go to the least clipping method:
   the one whose ranges give up the least of the observed (minmax) span.

Agreement needs no labels, so the choice never touches the evaluation split, and it measures what
quantization changes rather than accuracy on a handful of images, where three methods tie by chance.
Whether the winner's lead over the runner-up is more than noise is stated (a paired 95% interval of
the difference in agreement), so a choice the data cannot resolve says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeresnet.calibration.qdq import QdqQuantizer
from edgeresnet.calibration.session import BatchSession
from edgeresnet.calibration.table import CalibrationTable
from edgeresnet.errors import CalibrationError
from edgeresnet.evaluation import compare_paired, format_interval

# Equal measured clipping (identical ranges): the method that clips by construction the least.
LEAST_CLIPPING_FIRST = ("minmax", "entropy", "percentile")
KL_TIE = 0.05  # relative: KLs within 5% of the best are a tie (KL of a few hundred images varies by more)


@dataclass(frozen=True)
class MethodScore:
    """One candidate method on the selection images."""

    method: str
    images: int
    agreement: int  # images whose top-1 class is FP32's
    mean_kl: float  # mean KL(FP32 softmax || INT8 softmax), nats
    clipped_span: float  # mean share of the observed span the ranges give up, 0 for minmax

    @property
    def agreement_pct(self) -> float:
        return 100.0 * self.agreement / self.images

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "images": self.images, "agreement": self.agreement,
                "agreement_pct": round(self.agreement_pct, 4), "mean_kl": float(f"{self.mean_kl:.6g}"),
                "clipped_span": round(self.clipped_span, 5)}


@dataclass(frozen=True)
class MethodChoice:
    """The chosen method, every candidate's score (best first), and how firmly the data decides it."""

    method: str
    scores: tuple[MethodScore, ...]
    decided_by: str  # "agreement", "kl" or "tie: least clipping"
    lead_ci95_points: tuple[float, float] | None  # winner's agreement minus the runner-up's, in points

    @property
    def resolved(self) -> bool:
        """Whether the lead over the runner-up is beyond noise (its interval excludes zero)."""
        return self.lead_ci95_points is not None and self.lead_ci95_points[0] > 0

    def summary(self) -> str:
        parts = ", ".join(f"{s.method} {s.agreement_pct:.2f}% agreement (KL {s.mean_kl:.2e})" for s in self.scores)
        images = self.scores[0].images
        if self.resolved:
            verdict = "resolved"
        elif self.decided_by.startswith("tie"):
            verdict = f"tied on {images} images, so the least clipping method"
        else:
            low, high = self.lead_ci95_points or (0.0, 0.0)
            verdict = (f"the {images} images cannot resolve the lead (95% interval {format_interval(low, high)} "
                       "points of agreement)")
        return f"{parts} → {self.method} (by {self.decided_by}; {verdict})"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "decided_by": self.decided_by, "resolved": self.resolved,
                "lead_ci95_points": list(self.lead_ci95_points) if self.lead_ci95_points else None,
                "scores": [score.to_dict() for score in self.scores]}


def choose_method(
    fp32_path: str | Path, tables: Mapping[str, CalibrationTable], images: Sequence[np.ndarray]
) -> MethodChoice:
    """Score every table's ONNX Runtime QDQ model against FP32 on ``images`` and keep the best."""
    if not tables:
        raise CalibrationError("auto needs at least one candidate calibration table")
    if not images or sum(len(batch) for batch in images) == 0:
        raise CalibrationError("auto needs images to compare calibration methods on")
    reference = _logits(BatchSession(fp32_path), images)
    reference_classes = reference.argmax(axis=1)
    observed = tables.get("minmax")
    scores, predictions = [], {}
    for method, table in tables.items():
        model, _ = QdqQuantizer(fp32_path, table, flavour="onnxruntime").build()
        logits = _logits(BatchSession(model, label=f"the {method} INT8 model"), images)
        predictions[method] = logits.argmax(axis=1)
        scores.append(MethodScore(method, len(reference), int((predictions[method] == reference_classes).sum()),
                                  _mean_kl(reference, logits), _clipped_span(table, observed)))
    best_agreement = max(score.agreement for score in scores)
    leaders = [score for score in scores if score.agreement == best_agreement]
    best_kl = min(score.mean_kl for score in leaders)
    tied = [score for score in leaders if score.mean_kl <= best_kl * (1 + KL_TIE) + 1e-12]
    winner = min(tied, key=lambda score: (score.clipped_span, _preference(score.method)))
    decided_by = ("agreement" if len(leaders) == 1 else "kl" if len(tied) == 1 else "tie: least clipping")
    ranked = sorted(scores, key=lambda s: (s is not winner, -s.agreement, s.mean_kl, s.clipped_span))
    lead = None
    if len(ranked) > 1:
        runner_up = ranked[1]
        # Agreement with FP32's classes as the "label": winner as reference, runner-up as candidate.
        paired = compare_paired(reference_classes, predictions[winner.method], predictions[runner_up.method])
        lead = paired.drop_ci95_points
    return MethodChoice(winner.method, tuple(ranked), decided_by, lead)


def _preference(method: str) -> int:
    return LEAST_CLIPPING_FIRST.index(method) if method in LEAST_CLIPPING_FIRST else len(LEAST_CLIPPING_FIRST)


def _logits(session: BatchSession, images: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([session.logits(batch) for batch in images]).astype(np.float64)


def _mean_kl(reference: np.ndarray, candidate: np.ndarray) -> float:
    def log_softmax(logits: np.ndarray) -> np.ndarray:
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    log_p, log_q = log_softmax(reference), log_softmax(candidate)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=1)))


def _clipped_span(table: CalibrationTable, observed: CalibrationTable | None) -> float:
    if observed is None or table is observed:
        return 0.0
    shares = []
    for name, (low, high) in observed.ranges.items():
        span = high - low
        if name in table.ranges and span > 0:
            kept_low, kept_high = table.ranges[name]
            shares.append(max(0.0, 1.0 - (kept_high - kept_low) / span))
    return float(np.mean(shares)) if shares else 0.0
