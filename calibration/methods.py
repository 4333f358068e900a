"""Range methods: turn one tensor's streamed histogram into a ``(low, high)`` range.

- ``minmax``: the observed extremes; no clipping, so outliers cost resolution.
- ``percentile``: clip the tails so that at most ``(100 - p)``% of all values fall beyond each side.
- ``entropy``: TensorRT's entropy calibration (Migacz, "8-bit inference with TensorRT", GTC 2017):
  choose the clipping threshold whose 128-level quantized distribution has the smallest KL divergence
  from the clipped reference distribution.

Each side of zero is handled on its own, so a signed tensor gets an asymmetric range (what ONNX
Runtime's u8 activations can use); the TensorRT writer takes ``max(|low|, high)`` of it. Post-ReLU
tensors have an empty negative side, where all three methods agree on ``low = 0``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeresnet.calibration.histogram import RangeHistogram
from edgeresnet.errors import CalibrationError

ENTROPY_LEVELS = 128  # TensorRT's choice: the positive half of the symmetric int8 grid
_COARSE_CANDIDATES = 256  # thresholds tried before refining; the full sweep is ~8x slower for the same pick


def minmax_range(histogram: RangeHistogram) -> tuple[float, float]:
    return float(histogram.minimum), float(histogram.maximum)


def percentile_range(histogram: RangeHistogram, percentile: float = 99.99) -> tuple[float, float]:
    if not 50.0 < percentile <= 100.0:
        raise CalibrationError(f"percentile must be in (50, 100], got {percentile}")
    allowed_tail = (100.0 - percentile) / 100.0 * histogram.count
    high = _side_percentile(histogram.positive, allowed_tail, histogram.bin_width)
    low = _side_percentile(histogram.negative, allowed_tail, histogram.bin_width)
    return _clamped(histogram, low, high)


def entropy_range(histogram: RangeHistogram, levels: int = ENTROPY_LEVELS) -> tuple[float, float]:
    positive = histogram.positive.copy()
    positive[0] -= histogram.zeros  # exact zeros quantize without error whatever the threshold
    high = _entropy_threshold(positive, levels) * histogram.bin_width
    low = _entropy_threshold(histogram.negative, levels) * histogram.bin_width
    return _clamped(histogram, low, high)


def derive_range(histogram: RangeHistogram, method: str, *, percentile: float) -> tuple[float, float]:
    """One table of methods, so collect.py and the CLI's ``auto`` share the same dispatch."""
    methods: dict[str, Callable[[], tuple[float, float]]] = {
        "minmax": lambda: minmax_range(histogram),
        "percentile": lambda: percentile_range(histogram, percentile),
        "entropy": lambda: entropy_range(histogram),
    }
    return methods[method]()


def _clamped(histogram: RangeHistogram, low_magnitude: float, high: float) -> tuple[float, float]:
    # Never wider than what was observed: a bin edge can overshoot the true extreme.
    low = max(-low_magnitude, float(histogram.minimum)) if histogram.minimum < 0 else float(histogram.minimum)
    high = min(high, float(histogram.maximum)) if histogram.maximum > 0 else float(histogram.maximum)
    return low, high


def _side_percentile(side: np.ndarray, allowed_tail: float, bin_width: float) -> float:
    """Magnitude below which all but ``allowed_tail`` values of this side lie (bin upper edge)."""
    if side.sum() == 0:
        return 0.0
    beyond = np.cumsum(side[::-1])[::-1]  # beyond[j] = count in bins j.. end
    # First bin j whose successors hold at most allowed_tail values: threshold at its upper edge.
    tail_after = np.append(beyond[1:], 0)
    index = int(np.argmax(tail_after <= allowed_tail))
    return (index + 1) * bin_width


def _entropy_threshold(side: np.ndarray, levels: int) -> float:
    """Threshold, in bins, that minimises KL(reference || quantized) for one side of zero."""
    nonzero = np.flatnonzero(side)
    if nonzero.size == 0:
        return 0.0
    stop = int(nonzero[-1]) + 1  # beyond the last occupied bin the reference stops changing
    if stop <= levels:
        return float(stop)  # fewer occupied bins than levels: nothing to gain by clipping
    counts = side[:stop].astype(np.float64)
    suffix = np.append(np.cumsum(counts[::-1])[::-1], 0.0)
    candidates = np.arange(levels, stop + 1)
    step = max(1, candidates.size // _COARSE_CANDIDATES)
    divergence = {int(i): _kl_for_threshold(counts, suffix, int(i), levels) for i in candidates[::step]}
    best = min(divergence, key=lambda i: (divergence[i], i))
    for i in range(max(levels, best - step + 1), min(stop, best + step - 1) + 1):
        if i not in divergence:
            divergence[i] = _kl_for_threshold(counts, suffix, i, levels)
    best = min(divergence, key=lambda i: (divergence[i], i))
    return float(best)


def _kl_for_threshold(counts: np.ndarray, suffix: np.ndarray, threshold: int, levels: int) -> float:
    reference = counts[:threshold].copy()
    reference[-1] += suffix[threshold]  # clipped values saturate into the last bin
    occupied = reference > 0
    # Merge the `threshold` bins into `levels` groups (the last takes the remainder), then spread each
    # group's mass evenly back over its occupied bins: what the quantized tensor can still represent.
    width = threshold // levels
    starts = np.arange(levels) * width
    lengths = np.diff(np.append(starts, threshold))
    group_mass = np.add.reduceat(counts[:threshold], starts)
    group_occupied = np.add.reduceat(occupied.astype(np.float64), starts)
    per_bin = np.divide(group_mass, group_occupied, out=np.zeros_like(group_mass), where=group_occupied > 0)
    quantized = np.repeat(per_bin, lengths) * occupied
    p = reference / reference.sum()
    q_total = quantized.sum()
    if q_total == 0:
        return np.inf
    q = quantized / q_total
    mask = p > 0
    # An occupied reference bin that quantizes to nothing (clipped mass in an empty group) is heavily
    # penalised rather than infinite, as TensorRT and MXNet smooth it.
    return float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
