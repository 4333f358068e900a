"""Accuracy and logit agreement: the one definition every stage uses (numpy only, no torch).

Training-time evaluation, the accuracy gate, the export's per-target evaluation, ``verify`` and the
benchmark all score models here, so "top-1" means the same thing in a model card, a manifest and a
benchmark report. Accuracies are percentages (0-100) everywhere they are stored or printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeresnet.errors import EdgeResNetError

LogitsFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Accuracy:
    """Top-1 and top-5 in percent over ``images`` (top-5 is top-k for k = min(5, classes))."""

    top1: float
    top5: float
    images: int

    def to_dict(self) -> dict[str, Any]:
        return {"top1": round(self.top1, 4), "top5": round(self.top5, 4), "images": self.images}


class AccuracyCounter:
    """Accumulates top-1/top-5 hits batch by batch."""

    def __init__(self) -> None:
        self.top1_hits = self.top5_hits = self.images = 0

    def update(self, logits: np.ndarray, labels: np.ndarray) -> None:
        logits = np.asarray(logits)
        labels = np.asarray(labels).reshape(-1)
        if logits.ndim != 2 or len(logits) != len(labels):
            raise EdgeResNetError(f"logits of shape {logits.shape} do not match {len(labels)} labels")
        k = min(5, logits.shape[1])
        top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        self.top1_hits += int((logits.argmax(axis=1) == labels).sum())
        self.top5_hits += int((top == labels[:, None]).any(axis=1).sum())
        self.images += len(labels)

    def result(self) -> Accuracy:
        if self.images == 0:
            raise EdgeResNetError("no images were evaluated")
        return Accuracy(100.0 * self.top1_hits / self.images, 100.0 * self.top5_hits / self.images, self.images)


def evaluate_logits(logits_fn: LogitsFn, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> Accuracy:
    """Top-1/top-5 of any model, given as a function from a float32 NCHW batch to logits."""
    counter = AccuracyCounter()
    for images, labels in batches:
        counter.update(logits_fn(images), labels)
    return counter.result()


@dataclass(frozen=True)
class LogitComparison:
    """How closely a candidate's logits follow a reference's on the same inputs."""

    max_abs_diff: float
    mean_abs_diff: float
    logit_range: float
    top1_agreement: float  # fraction of images whose top-1 class is the same, 0-1
    images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def within(self, relative_tolerance: float, min_agreement: float) -> bool:
        """Max difference within ``relative_tolerance`` of the reference's logit range, and agreement."""
        return (self.max_abs_diff <= relative_tolerance * max(1.0, self.logit_range)
                and self.top1_agreement >= min_agreement)


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> LogitComparison:
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape or reference.ndim != 2 or len(reference) == 0:
        raise EdgeResNetError(f"cannot compare logits of shapes {reference.shape} and {candidate.shape}")
    difference = np.abs(reference - candidate)
    return LogitComparison(
        max_abs_diff=float(difference.max()),
        mean_abs_diff=float(difference.mean()),
        logit_range=float(reference.max() - reference.min()),
        top1_agreement=float((reference.argmax(1) == candidate.argmax(1)).mean()),
        images=len(reference),
    )
