"""The out-of-distribution hint: is an input far from what the model was trained on?

A classifier ranks its classes for any input, so a 28×28 grayscale clothing model calls a photo, or a
1×1 image, a "Bag" with high probability. Two kinds of evidence say an input is unlike the training
data, each compared with the range held-out in-distribution images fell in (recorded in the bundle at
export time, :class:`edgeresnet.bundle.ood.OodProfile`):

- the model's **energy score**, log-sum-exp of the logits (Liu et al. 2020, "Energy-based
  Out-of-distribution Detection"): low when no class fits well; better separated than the maximum
  softmax probability, which saturates;
- **image statistics** of the uint8 pixels at the model's input size: mean, standard deviation, the
  mean of the border ring, and roughness, the mean difference between neighbouring pixels relative to
  the spread (a constant or blown-up tiny image has no spread; a photo has no empty border where the
  training images had one; noise is rougher for its spread than any picture).

It is a hint, not a guarantee: an input can be far from the training data and pass both (the false
alarm and detection rates measured on Fashion-MNIST are in benchmarks/results/ood.md). Numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeresnet.bundle.ood import PIXEL_FEATURES, OodProfile

# The energy threshold: this share of held-out in-distribution images score lower (false alarms).
ENERGY_QUANTILE = 0.01
# Pixel ranges are the profile images' [min, max], widened by this share of the span on each side.
RANGE_MARGIN = 0.1
# Held-out images the profile is measured on, at most (a few seconds of FP32 inference on 2 cores).
PROFILE_IMAGES = 1000


@dataclass(frozen=True)
class OodCheck:
    """One input's verdict: ``flagged`` when any check is outside its range, and which ones."""

    flagged: bool
    energy: float
    reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        return "; ".join(self.reasons)


def energy(logits: np.ndarray) -> np.ndarray:
    """log-sum-exp of each row of logits, computed stably."""
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))[:, 0]


def pixel_features(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of uint8 ``N×H×W[×C]`` pixels, in 0-255 units.

    Exact integer sums, each over the fewest values that give it: about 0.2 ms for a 224×224 RGB image, far
    below a model call. Mean, spread and border are over all channels; roughness is the mean difference
    between neighbouring pixels of the channels' mean, divided by the spread (at least 1).
    """
    images = np.asarray(pixels)
    if images.ndim == 3:
        images = images[..., None]
    n, height, width, channels = images.shape
    count = height * width * channels
    gray = images[..., 0].astype(np.int16)  # the channels' sum (at most 4 × 255); a sum over axis 3 is 10× slower
    for channel in range(1, channels):
        gray += images[..., channel]
    # The sums of all values, and of the border ring's, are the channel sums' sums: a third of the values.
    sums = gray.reshape(n, -1).sum(axis=1, dtype=np.int64)
    squares = images.astype(np.uint16).reshape(n, -1)
    np.multiply(squares, squares, out=squares)  # 255² fits in 16 bits
    mean = sums / count
    std = np.sqrt(np.maximum(squares.sum(axis=1, dtype=np.int64) / count - mean * mean, 0.0))
    ring = max(1, min(height, width) // 8)
    inner = gray[:, ring:height - ring, ring:width - ring]
    border = (sums - inner.reshape(n, -1).sum(axis=1, dtype=np.int64)) / (count - inner[0].size * channels)
    across = np.abs(np.diff(gray, axis=2)).reshape(n, -1).sum(axis=1, dtype=np.int64) / max(1, height * (width - 1))
    down = np.abs(np.diff(gray, axis=1)).reshape(n, -1).sum(axis=1, dtype=np.int64) / max(1, (height - 1) * width)
    # Roughness relative to the spread: scale-free, so noise (about 1.1) stands apart from pictures of any
    # contrast (Fashion-MNIST at most 0.7); a constant image has none.
    roughness = (across + down) / (2 * channels) / np.maximum(std, 1.0)
    return {"mean": mean, "std": std, "border_mean": border, "roughness": roughness}


def build_profile(pixels: Sequence[np.ndarray], logits: Sequence[np.ndarray], *, source: str) -> OodProfile:
    """The ranges of held-out in-distribution images (uint8 pixel batches and the FP32 model's logits)."""
    scores = np.concatenate([energy(batch) for batch in logits])
    features = [pixel_features(batch) for batch in pixels]
    ranges = {}
    for name in PIXEL_FEATURES:
        values = np.concatenate([f[name] for f in features])
        low, high = float(values.min()), float(values.max())
        pad = RANGE_MARGIN * (high - low)
        ranges[name] = (low - pad, high + pad)
    return OodProfile(images=len(scores), source=source, energy_low=float(np.quantile(scores, ENERGY_QUANTILE)),
                      energy_quantile=ENERGY_QUANTILE, pixel_ranges=ranges, margin=RANGE_MARGIN)


def check_batch(profile: OodProfile, pixels: np.ndarray, logits: np.ndarray,
                features: dict[str, np.ndarray] | None = None) -> list[OodCheck]:
    """One verdict per input: uint8 pixels at the input size and the model's logits for them.

    ``features``: ``pixel_features(pixels)`` when the caller has them already.
    """
    scores = energy(logits)
    features = pixel_features(pixels) if features is None else features
    checks = []
    for i, score in enumerate(scores):
        reasons = []
        if score < profile.energy_low:
            reasons.append(f"energy {score:.2f} below {profile.energy_low:.2f}")
        for name, (low, high) in profile.pixel_ranges.items():
            value = float(features[name][i])
            if not low <= value <= high:
                reasons.append(f"pixel {name.replace('_', ' ')} {value:.1f} outside {low:.1f}-{high:.1f}")
        checks.append(OodCheck(bool(reasons), float(score), tuple(reasons)))
    return checks
