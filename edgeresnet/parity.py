"""Parity: does a candidate model's logits match a reference's on the same inputs? The one judge.

``export`` (PyTorch against its ONNX), ``compile`` (a compiled model against its source) and ``verify``
(a bundle against its golden outputs) all ask this question, and all answer it with
:func:`check_parity` under the tolerance of a precision in :data:`TOLERANCES`, so a pair of logits
that passes one stage passes every stage. Agreement is in percent, as the manifest's
:class:`~edgeresnet.bundle.records.ParityRecord` stores it. Numpy only: the runtime install has no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeresnet.bundle.vocabulary import RuntimePrecision
from edgeresnet.errors import EdgeResNetError


@dataclass(frozen=True)
class Tolerance:
    """How far a model's logits may be from a reference and still count as the same model.

    Args:
        relative: the largest allowed |Δlogit|, as a fraction of the reference's logit range (at least 1).
        min_decisive_top1_pct: the smallest allowed share (percent) of images whose top-1 agrees, counting
            a disagreement only when the reference's margin between the two classes exceeds the allowed
            |Δlogit| (a near tie may flip under any rounding and says nothing about the model).
    """

    relative: float
    min_decisive_top1_pct: float


# FP32 reorderings (BN folding, fused kernels) move logits by ~1e-5 relative and a wrong graph by whole
# units; FP16 rounding by ~1e-3; INT8 kernels differ between CPUs (VNNI or not) and runtimes by a few
# quantization steps of the output, ~1-5% of the range.
TOLERANCES: dict[RuntimePrecision, Tolerance] = {
    "fp32": Tolerance(relative=1e-3, min_decisive_top1_pct=100.0),
    "fp16": Tolerance(relative=2e-2, min_decisive_top1_pct=100.0),
    "bf16": Tolerance(relative=5e-2, min_decisive_top1_pct=95.0),
    "int8": Tolerance(relative=0.15, min_decisive_top1_pct=90.0),
}


@dataclass(frozen=True)
class ParityCheck:
    """A candidate's logits measured against a reference's and judged by a precision's tolerance."""

    precision: str
    images: int
    max_abs_diff: float
    mean_abs_diff: float
    logit_range: float  # of the reference
    top1_agreement_pct: float  # images whose top-1 class is the same in both
    decisive_top1_agreement_pct: float  # the same, forgiving flips between near-tied classes
    allowed_abs_diff: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.images} images, max |Δlogit| {self.max_abs_diff:.2e} "
                f"(allowed {self.allowed_abs_diff:.2e} for {self.precision}), "
                f"top-1 agreement {self.top1_agreement_pct:.1f}%")


def check_parity(reference: np.ndarray, candidate: np.ndarray, precision: str) -> ParityCheck:
    """Compare ``candidate`` logits with ``reference`` (both images × classes) under ``precision``'s tolerance."""
    if precision not in TOLERANCES:
        raise EdgeResNetError(f"no tolerance for precision {precision!r}; known: {', '.join(TOLERANCES)}")
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape or reference.ndim != 2 or len(reference) == 0:
        raise EdgeResNetError(f"logits of shape {candidate.shape} cannot be compared with {reference.shape}")
    tolerance = TOLERANCES[precision]  # type: ignore[index]
    difference = np.abs(reference - candidate)
    logit_range = float(reference.max() - reference.min())
    allowed = tolerance.relative * max(1.0, logit_range)
    ref_top, cand_top = reference.argmax(1), candidate.argmax(1)
    rows = np.arange(len(reference))
    margin = reference[rows, ref_top] - reference[rows, cand_top]
    # Percentages from whole counts, so 9 of 10 is exactly 90.0 at a tolerance's boundary.
    images = len(reference)
    agreeing = int((ref_top == cand_top).sum())
    decisive_pct = 100.0 * (images - int(((ref_top != cand_top) & (margin > allowed)).sum())) / images
    max_abs_diff = float(difference.max())
    return ParityCheck(
        precision=precision,
        images=images,
        max_abs_diff=max_abs_diff,
        mean_abs_diff=float(difference.mean()),
        logit_range=logit_range,
        top1_agreement_pct=100.0 * agreeing / images,
        decisive_top1_agreement_pct=decisive_pct,
        allowed_abs_diff=allowed,
        passed=max_abs_diff <= allowed and decisive_pct >= tolerance.min_decisive_top1_pct,
    )


__all__ = ["TOLERANCES", "ParityCheck", "Tolerance", "check_parity"]
