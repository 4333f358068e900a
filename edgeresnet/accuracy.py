"""Accuracy and paired top-1 comparison: the one definition every stage uses (numpy only, no torch).

Training-time evaluation, the accuracy gate, the export's per-target evaluation, ``verify`` and the
benchmark all score models here, so "top-1" means the same thing in a model card, a manifest and a
benchmark report. Accuracies are percentages (0-100) everywhere they are stored or printed. Whether two
models' logits match (parity) is judged in :mod:`edgeresnet.parity`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


# --- how a difference and its interval read, everywhere one is printed ------------------------------


def format_interval(low: float, high: float) -> str:
    """A 95% interval of a difference in points, the one way every table and message writes it: ``-0.17 to +0.07``."""
    return f"{low:+.2f} to {high:+.2f}"


def format_difference(points: float, interval: tuple[float, float]) -> str:
    """A difference in points with its 95% interval: ``+0.45 (+0.12 to +0.89)``."""
    return f"{points:+.2f} ({format_interval(*interval)})"


def count_of(count: int, noun: str) -> str:
    """``1 discordant image``, ``9 discordant images``: a count with its noun in the right number."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


# A drop equal to the budget is within it, whatever the float rounding.
BUDGET_TOLERANCE = 1e-9


def interval_verdict(low: float, high: float, budget: float) -> str:
    """The one evidence rule for an accuracy drop's 95% interval against a budget (the export's gate and the
    benchmark's ★ both use it): ``within`` when all of it is at or under the budget, ``over`` when all of it
    is above, ``unresolved`` when it straddles the budget (too few images to tell)."""
    if high <= budget + BUDGET_TOLERANCE:
        return "within"
    if low > budget + BUDGET_TOLERANCE:
        return "over"
    return "unresolved"


def top1_points(value: float) -> str:
    """A budget in words: ``1 top-1 point``, ``0.5 top-1 points``."""
    return f"{value:g} top-1 point{'' if value == 1 else 's'}"


# --- paired comparison of two models on the same images -------------------------------------------

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class PairedComparison:
    """A candidate (e.g. INT8) judged against a reference (FP32) on the *same* labelled images.

    Because both models see every image, only the discordant images carry information about the
    difference: ``reference_only`` images the reference gets right and the candidate wrong, and
    ``candidate_only`` the reverse. ``drop_points`` is reference top-1 minus candidate top-1, in points;
    its 95% interval is Tango's score interval for a difference of paired proportions (Tango 1998), which
    stays honest when there are few or no discordant images: 0 discordant images out of 139 still gives
    an upper end of about 2.7 points, not 0.
    """

    images: int
    reference_top1: float  # percent
    candidate_top1: float  # percent
    drop_points: float
    drop_ci95_points: tuple[float, float]
    agreement_pct: float  # images whose top-1 class is the same in both models, percent
    reference_only: int
    candidate_only: int
    interval_method: str = "tango-score"

    @property
    def discordant(self) -> int:
        return self.reference_only + self.candidate_only

    @property
    def ci95_width(self) -> float:
        return self.drop_ci95_points[1] - self.drop_ci95_points[0]

    def resolves(self, budget_points: float) -> bool:
        """Whether the interval is narrow enough to tell a drop of ``budget_points`` from none.

        The interval's half-width (the larger side) must not exceed the budget; otherwise the data
        cannot say whether the candidate is within the budget or beyond it.
        """
        low, high = self.drop_ci95_points
        return max(self.drop_points - low, high - self.drop_points) <= budget_points

    def summary(self) -> str:
        low, high = self.drop_ci95_points
        return (f"drop {self.drop_points:+.2f} pt (95% CI {format_interval(low, high)}), agreement "
                f"{self.agreement_pct:.2f}%, {self.discordant:,} discordant of {count_of(self.images, 'image')}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "reference_top1": round(self.reference_top1, 4),
            "candidate_top1": round(self.candidate_top1, 4),
            "drop_points": round(self.drop_points, 4),
            "drop_ci95_points": [round(self.drop_ci95_points[0], 4), round(self.drop_ci95_points[1], 4)],
            "agreement_pct": round(self.agreement_pct, 4),
            "reference_only": self.reference_only,
            "candidate_only": self.candidate_only,
            "interval_method": self.interval_method,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> PairedComparison:
        low, high = record["drop_ci95_points"]
        return cls(
            images=int(record["images"]), reference_top1=float(record["reference_top1"]),
            candidate_top1=float(record["candidate_top1"]), drop_points=float(record["drop_points"]),
            drop_ci95_points=(float(low), float(high)), agreement_pct=float(record["agreement_pct"]),
            reference_only=int(record["reference_only"]), candidate_only=int(record["candidate_only"]),
            interval_method=str(record.get("interval_method", "tango-score")),
        )


def compare_paired(labels: np.ndarray, reference_logits: np.ndarray, candidate_logits: np.ndarray) -> PairedComparison:
    """Paired top-1 comparison of two models' logits (or predicted class indices) on the same images."""
    labels = np.asarray(labels).reshape(-1)
    reference = _predictions(reference_logits)
    candidate = _predictions(candidate_logits)
    if not (len(labels) == len(reference) == len(candidate)) or len(labels) == 0:
        raise EdgeResNetError(
            f"a paired comparison needs the same non-empty images for both models "
            f"(got {len(labels)} labels, {len(reference)} and {len(candidate)} predictions)"
        )
    reference_correct = reference == labels
    candidate_correct = candidate == labels
    reference_only = int((reference_correct & ~candidate_correct).sum())
    candidate_only = int((candidate_correct & ~reference_correct).sum())
    n = len(labels)
    low, high = paired_difference_ci(reference_only, candidate_only, n)
    return PairedComparison(
        images=n,
        reference_top1=100.0 * float(reference_correct.mean()),
        candidate_top1=100.0 * float(candidate_correct.mean()),
        drop_points=100.0 * (reference_only - candidate_only) / n,
        drop_ci95_points=(100.0 * low, 100.0 * high),
        agreement_pct=100.0 * float((reference == candidate).mean()),
        reference_only=reference_only,
        candidate_only=candidate_only,
    )


def paired_difference_ci(b: int, c: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Tango's score interval for ``(b - c) / n``, the difference of two paired proportions.

    ``b`` and ``c`` are the two discordant counts out of ``n`` pairs. The interval is the set of
    differences ``d`` whose score statistic ``|Z(d)| <= z``; ``Z`` decreases in ``d``, so each end is
    found by bisection. Returned as fractions in [-1, 1].
    """
    if n <= 0 or b < 0 or c < 0 or b + c > n:
        raise EdgeResNetError(f"invalid paired counts b={b}, c={c}, n={n}")
    estimate = (b - c) / n

    def score(d: float) -> float:
        w = -b - c + (2 * n - b + c) * d
        q21 = (np.sqrt(max(w * w + 8.0 * n * c * d * (1.0 - d), 0.0)) - w) / (4.0 * n)
        variance = n * (2.0 * q21 + d * (1.0 - d))
        if variance <= 0:
            return 0.0 if b - c - n * d == 0 else np.sign(b - c - n * d) * np.inf
        return (b - c - n * d) / np.sqrt(variance)

    def boundary(inside: float, outside: float) -> float:
        for _ in range(100):
            middle = 0.5 * (inside + outside)
            if abs(score(middle)) <= z:
                inside = middle
            else:
                outside = middle
        return inside

    low = -1.0 if abs(score(-1.0 + 1e-12)) <= z else boundary(estimate, -1.0)
    high = 1.0 if abs(score(1.0 - 1e-12)) <= z else boundary(estimate, 1.0)
    return float(low), float(high)


def _predictions(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    return values.argmax(axis=1) if values.ndim == 2 else values.reshape(-1).astype(np.int64)


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for one accuracy, ``hits`` correct of ``n``, in percent.

    Unlike the normal approximation it stays inside [0, 100] and honest near 0% and 100%.
    """
    if n <= 0 or not 0 <= hits <= n:
        raise EdgeResNetError(f"invalid accuracy counts: {hits} correct of {n}")
    p = hits / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return float(100.0 * max(0.0, centre - half)), float(100.0 * min(1.0, centre + half))
