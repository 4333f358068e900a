"""A streaming, bounded-memory range collector for one activation tensor.

Calibration sees the data once. The range is unknown until the end, so the histogram starts at the
first batch's largest magnitude and, when a later batch exceeds it, doubles its edge as often as
needed and merges neighbouring bins pairwise. The merge is exact (no counts are redistributed), and
the final histogram always spends at least half its bins inside the observed range.
"""

from __future__ import annotations

import numpy as np

from edgeresnet.errors import CalibrationError


class RangeHistogram:
    """Min, max and a signed histogram over ``[-edge, edge)`` with ``num_bins`` bins per side.

    ``positive[j]`` counts values in ``[j, j+1)·edge/num_bins`` (zeros land in ``positive[0]``);
    ``negative[j]`` counts values whose magnitude is in ``(j, j+1]·edge/num_bins``. Memory is
    ``2·num_bins`` counters whatever the amount of data. Exact zeros are also counted apart: after a
    ReLU they are half the mass, and since zero is always exactly representable they must not steer
    the entropy search.
    """

    def __init__(self, num_bins: int = 2048) -> None:
        if num_bins < 2 or num_bins & (num_bins - 1):
            raise CalibrationError(f"histogram bins must be a power of two >= 2, got {num_bins}")
        self.num_bins = num_bins
        self.counts = np.zeros(2 * num_bins, dtype=np.int64)  # [negative reversed | positive]
        self.edge = 0.0
        self.minimum = np.inf
        self.maximum = -np.inf
        self.count = 0
        self.zeros = 0

    @property
    def positive(self) -> np.ndarray:
        return self.counts[self.num_bins:]

    @property
    def negative(self) -> np.ndarray:
        return self.counts[: self.num_bins][::-1]

    @property
    def bin_width(self) -> float:
        return self.edge / self.num_bins

    def update(self, values: np.ndarray) -> None:
        flat = np.asarray(values, dtype=np.float32).ravel()
        if flat.size == 0:
            return
        low, high = float(flat.min()), float(flat.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            raise CalibrationError("the FP32 model produced NaN or infinite activations on the calibration data")
        self.minimum, self.maximum = min(self.minimum, low), max(self.maximum, high)
        self.count += flat.size
        self.zeros += int(np.count_nonzero(flat == 0))
        magnitude = max(-low, high)
        if magnitude > self.edge:
            self._grow(magnitude)
        if self.edge == 0.0:  # everything so far is exactly zero
            self.counts[self.num_bins] += flat.size
            return
        keys = np.floor(flat * np.float32(self.num_bins / self.edge)).astype(np.intp)
        keys += self.num_bins
        np.clip(keys, 0, 2 * self.num_bins - 1, out=keys)
        self.counts += np.bincount(keys, minlength=2 * self.num_bins)

    def _grow(self, magnitude: float) -> None:
        if self.edge == 0.0:
            self.edge = magnitude
            return
        factor = 1 << int(np.ceil(np.log2(magnitude / self.edge)))
        self.edge *= factor
        merged = np.zeros_like(self.counts)
        for side, target in ((self.positive, merged[self.num_bins:]), (self.negative, merged[: self.num_bins][::-1])):
            if factor >= self.num_bins:
                target[0] = side.sum()
            else:
                target[: self.num_bins // factor] = side.reshape(-1, factor).sum(axis=1)
        self.counts = merged
