"""Range methods: each tensor's ``(low, high)`` from the calibration pass, by a named method.

- ``minmax``: the observed extremes (no clipping; outliers cost resolution). Exact, computed here.
- ``entropy`` and ``percentile``: ONNX Runtime's own threshold search
  (``onnxruntime.quantization.calibrate.HistogramCollector``) with the defaults its
  ``create_calibrator`` uses, on a histogram identical to the one its calibrators build. At those
  defaults entropy searches 128 bins for 128 levels, a single candidate, so it keeps the observed
  range; percentile cuts 0.001% of |x|. An earlier in-house entropy search (TensorRT-style, 2048 bins
  into 128 levels) clipped far harder than ONNX Runtime's on the same tensors (a stem ReLU's range
  3.5 against 10.6) and cost 4 points on a small folder, so the maintained implementation decides;
  ``tests/calibration/test_methods.py`` checks our table against ``create_calibrator`` end to end.

ONNX Runtime clamps each range to the observed minimum and maximum, so a post-ReLU tensor keeps
``low = 0`` under every method; the TensorRT writer takes ``max(|low|, high)`` of a range.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgeresnet.errors import CalibrationError

# The defaults of onnxruntime.quantization's EntropyCalibrater and PercentileCalibrater,
# recorded in every table so a table says exactly how its ranges were computed.
# Percentile is symmetric there (a histogram of |x|, one threshold for both sides); entropy is not.
ORT_METHOD_PARAMS: dict[str, dict[str, float]] = {
    "entropy": {"num_bins": 128, "num_quantized_bins": 128, "symmetric": 0},
    "percentile": {"num_bins": 2048, "percentile": 99.999, "symmetric": 1},
}
DEFAULT_PERCENTILE = ORT_METHOD_PARAMS["percentile"]["percentile"]


class MinMaxCollector:
    """Running minimum and maximum of every tensor."""

    def __init__(self) -> None:
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}
        self.smallest_magnitude: dict[str, float] = {}  # where ONNX Runtime's |x| histogram starts

    def update(self, tensors: Mapping[str, np.ndarray]) -> None:
        for name, values in tensors.items():
            flat = np.asarray(values, dtype=np.float32).ravel()
            if flat.size == 0:
                continue
            low, high = float(flat.min()), float(flat.max())
            if not (np.isfinite(low) and np.isfinite(high)):
                raise CalibrationError("the FP32 model produced NaN or infinite activations on the calibration data")
            self.low[name] = min(self.low.get(name, low), low)
            self.high[name] = max(self.high.get(name, high), high)
            smallest = float(np.abs(flat).min())
            self.smallest_magnitude[name] = min(self.smallest_magnitude.get(name, smallest), smallest)

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {name: (self.low[name], self.high[name]) for name in self.low}


class OrtHistogramCollector:
    """Each tensor's histogram over ``±max|x|`` and ONNX Runtime's threshold search on it.

    ONNX Runtime's calibrators gather all calibration outputs and build each histogram in one call,
    over ``±max|x|`` of the whole data; streaming batch by batch through its collector would instead
    grow the histogram as the range widens and give other thresholds (for entropy, far tighter ones).
    Here the range comes first (the minmax pass), so the histogram is built batch by batch over the
    final range and is identical to ONNX Runtime's one-shot histogram with bounded memory; ONNX
    Runtime's own ``compute_collection_result`` then picks the thresholds.

    Args:
        observed: :class:`MinMaxCollector` run on the same data.
    """

    def __init__(self, method: str, observed: MinMaxCollector, *, percentile: float = DEFAULT_PERCENTILE) -> None:
        if method not in ORT_METHOD_PARAMS:
            raise CalibrationError(f"ONNX Runtime's histogram collector computes entropy or percentile, not {method!r}")
        if not 50.0 < percentile <= 100.0:
            raise CalibrationError(f"percentile must be in (50, 100], got {percentile}")
        self.method = method
        self.params: dict[str, float] = dict(ORT_METHOD_PARAMS[method])
        if method == "percentile":
            self.params["percentile"] = percentile
        self.num_bins = int(self.params["num_bins"])
        self.symmetric = bool(self.params["symmetric"])
        self.extremes = observed.ranges()
        top = {name: float(np.float32(max(abs(low), abs(high)))) for name, (low, high) in self.extremes.items()}
        # The histogram's span, as ONNX Runtime's one-shot np.histogram call chooses it.
        self.span = ({name: (observed.smallest_magnitude[name], top[name]) for name in top} if self.symmetric
                     else {name: (-top[name], top[name]) for name in top})
        self.counts = {name: np.zeros(self.num_bins, dtype=np.int64) for name in top}

    def update(self, tensors: Mapping[str, np.ndarray]) -> None:
        for name, values in tensors.items():
            if name not in self.counts:
                continue
            flat = np.asarray(values, dtype=np.float32).ravel()
            counts, _ = np.histogram(np.abs(flat) if self.symmetric else flat, self.num_bins, range=self.span[name])
            self.counts[name] += counts

    def ranges(self) -> dict[str, tuple[float, float]]:
        from onnxruntime.quantization.calibrate import HistogramCollector

        collector = HistogramCollector(
            method=self.method, symmetric=self.symmetric, num_bins=self.num_bins,
            num_quantized_bins=int(self.params.get("num_quantized_bins", 128)),
            percentile=self.params.get("percentile", DEFAULT_PERCENTILE), scenario="same",
        )
        result: dict[str, tuple[float, float]] = {}
        for name, counts in self.counts.items():
            low, high = self.extremes[name]
            start, stop = self.span[name]
            if stop <= start or counts.sum() == 0:
                result[name] = (float(low), float(high))
                continue
            _, edges = np.histogram(np.zeros(1, dtype=np.float32), self.num_bins, range=(start, stop))
            edges = edges.astype(np.float32)
            collector.histogram_dict = {name: (counts, edges, np.float32(low), np.float32(high), np.float32(stop))}
            with _quiet():  # the collector prints a few lines per call
                values = collector.compute_collection_result()[name]
            result[name] = (float(values[0]), float(values[1]))
        return result


@contextlib.contextmanager
def _quiet() -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        yield
