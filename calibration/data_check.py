"""Refuse calibration data that cannot be real images.

Calibrating on random tensors is the classic silent INT8 failure: the ranges look plausible, the
artifact builds, and accuracy collapses on the target. Neighbouring pixels of real photographs and
scans are strongly correlated (lag-1 correlation typically 0.7-0.99, also after resizing and
normalisation); uniform or Gaussian noise has none, and a constant image has no variation at all.
"""

from __future__ import annotations

import numpy as np

from edgeresnet.errors import CalibrationError

MIN_NEIGHBOUR_CORRELATION = 0.3  # noise sits near 0 (±0.05 at 28×28); real images are far above
MAX_BAD_FRACTION = 0.5  # a few blank or noisy images in a real set are fine; a majority is not


def validate_batch(batch: object, *, what: str = "calibration") -> np.ndarray:
    """A float32 NCHW batch, or a one-line CalibrationError saying what is wrong with it."""
    if not isinstance(batch, np.ndarray):
        raise CalibrationError(f"{what} batches must be numpy arrays, got {type(batch).__name__}")
    if batch.ndim != 4 or batch.shape[0] == 0:
        raise CalibrationError(f"{what} batches must be non-empty N×C×H×W arrays, got shape {batch.shape}")
    if not np.issubdtype(batch.dtype, np.floating):
        raise CalibrationError(
            f"{what} batches must be preprocessed float32 images, got {batch.dtype} (apply the preprocessing spec)"
        )
    if not np.isfinite(batch).all():
        raise CalibrationError(f"{what} batch contains NaN or infinite values")
    return np.ascontiguousarray(batch, dtype=np.float32)


def neighbour_correlation(batch: np.ndarray) -> np.ndarray:
    """Per image, the mean lag-1 correlation of horizontally and vertically adjacent pixels.

    NaN for an image with no variation, or too small (under 2×2) to measure.
    """
    images = batch.astype(np.float64)
    images = images - images.mean(axis=(2, 3), keepdims=True)  # per channel: colour offsets are not structure
    scores = []
    for first, second in (
        (images[:, :, :, :-1], images[:, :, :, 1:]),
        (images[:, :, :-1, :], images[:, :, 1:, :]),
    ):
        if first.size == 0:
            continue
        product = (first * second).sum(axis=(1, 2, 3))
        norm = np.sqrt((first**2).sum(axis=(1, 2, 3)) * (second**2).sum(axis=(1, 2, 3)))
        with np.errstate(invalid="ignore", divide="ignore"):
            scores.append(np.where(norm > 0, product / norm, np.nan))
    if not scores:
        return np.full(batch.shape[0], np.nan)
    return np.mean(scores, axis=0)


def check_calibration_data(batch: np.ndarray) -> None:
    """Raise CalibrationError if a batch looks like random noise or constant images, not real data."""
    batch = validate_batch(batch)
    spread = batch.reshape(batch.shape[0], -1).std(axis=1)
    level = np.abs(batch.reshape(batch.shape[0], -1)).mean(axis=1)
    constant = spread <= 1e-6 * (1.0 + level)
    if constant.mean() >= MAX_BAD_FRACTION:
        raise CalibrationError(
            f"calibration data looks synthetic: {int(constant.sum())} of {len(constant)} images are constant; "
            "calibrate on real, preprocessed images"
        )
    if min(batch.shape[2:]) < 2:
        return  # 1-pixel-wide inputs carry no spatial structure to test
    correlation = neighbour_correlation(batch[~constant])
    noisy = ~(correlation >= MIN_NEIGHBOUR_CORRELATION)  # NaN counts as noisy
    if noisy.mean() >= MAX_BAD_FRACTION:
        finite = correlation[np.isfinite(correlation)]
        median = f"{np.median(finite):.2f}" if finite.size else "n/a"
        raise CalibrationError(
            f"calibration data looks like random noise: {int(noisy.sum())} of {len(noisy)} images have no "
            f"correlation between neighbouring pixels (median {median}, real images "
            f"exceed {MIN_NEIGHBOUR_CORRELATION}); calibrate on real, preprocessed images"
        )
