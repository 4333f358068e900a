"""Calibration: one streaming pass of real images through the FP32 model in onnxruntime.

Every activation a QDQ writer may quantize is exposed as an extra graph output; each batch is split
into micro-batches (or the model's static batch) so memory stays bounded by ``micro_batch`` images of
activations whatever the data size, and each tensor keeps only a running min/max and a fixed-size histogram. All methods' ranges
come from the same pass, so ``auto`` can compare them without reading the data again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgeresnet.bundle import sha256_file
from edgeresnet.calibration.data_check import check_calibration_data, validate_batch
from edgeresnet.calibration.histogram import RangeHistogram
from edgeresnet.calibration.methods import ENTROPY_LEVELS, derive_range
from edgeresnet.calibration.model import calibration_tensors, input_name, load_fp32_model
from edgeresnet.calibration.session import BatchSession, describe_model
from edgeresnet.calibration.table import METHODS, CalibrationTable, Method, require_sha256
from edgeresnet.environment import tool_versions
from edgeresnet.errors import CalibrationError


def calibrate(
    onnx_path: str | Path,
    batches: Iterable[np.ndarray],
    *,
    method: Method,
    data_hash: str,
    percentile: float = 99.99,
    num_bins: int = 2048,
    micro_batch: int = 8,
) -> CalibrationTable:
    """Compute one method's calibration table for an FP32 ONNX model from real preprocessed images.

    Args:
        batches: float32 N×C×H×W arrays, already preprocessed exactly as at inference.
        data_hash: sha256 hex digest identifying the calibration data (recorded, not recomputed).
        micro_batch: images per onnxruntime call; bounds the memory the exposed activations take. A
            model with a static batch N is fed N at a time instead (a short last piece is padded and
            the padding left out of every histogram).
    """
    if method not in METHODS:
        raise CalibrationError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    return _tables(onnx_path, batches, (method,), data_hash, percentile, num_bins, micro_batch)[method]


def calibrate_all(
    onnx_path: str | Path,
    batches: Iterable[np.ndarray],
    *,
    data_hash: str,
    percentile: float = 99.99,
    num_bins: int = 2048,
    micro_batch: int = 8,
) -> dict[str, CalibrationTable]:
    """Every method's table from one pass over the data (for ``--calib-method auto``)."""
    return _tables(onnx_path, batches, METHODS, data_hash, percentile, num_bins, micro_batch)


def collect_histograms(
    onnx_path: str | Path, batches: Iterable[np.ndarray], *, num_bins: int = 2048, micro_batch: int = 8
) -> tuple[dict[str, RangeHistogram], int]:
    """Run the data once and return each calibration tensor's histogram and the number of images."""
    import onnx

    if micro_batch < 1:
        raise CalibrationError(f"micro_batch must be >= 1, got {micro_batch}")
    model = load_fp32_model(onnx_path)
    names = calibration_tensors(model)
    image_input = input_name(model)
    existing = {value.name for value in model.graph.output}
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names if name not in existing
    )
    # Basic optimisations only: no fusion may swallow a tensor we need (ORT keeps graph outputs anyway).
    session = BatchSession(model, label=describe_model(onnx_path), level="basic")
    histograms = {name: RangeHistogram(num_bins) for name in names}
    fetch = [name for name in names if name != image_input]
    samples = 0
    for batch in batches:
        batch = validate_batch(batch)
        check_calibration_data(batch)
        for chunk, outputs in session.pieces(batch, fetch, max_batch=micro_batch):
            if image_input in histograms:
                histograms[image_input].update(chunk)
            for name, values in zip(fetch, outputs, strict=True):
                histograms[name].update(values)
        samples += batch.shape[0]
    if samples == 0:
        raise CalibrationError("no calibration images: the calibration data set is empty")
    return histograms, samples


def _tables(
    onnx_path: str | Path,
    batches: Iterable[np.ndarray],
    methods: Iterable[Method],
    data_hash: str,
    percentile: float,
    num_bins: int,
    micro_batch: int,
) -> dict[str, CalibrationTable]:
    if not 50.0 < percentile <= 100.0:
        raise CalibrationError(f"percentile must be in (50, 100], got {percentile}")
    require_sha256("data_hash", data_hash)
    if not Path(onnx_path).is_file():
        raise CalibrationError(f"ONNX model not found: {onnx_path}")
    model_hash = sha256_file(onnx_path)
    histograms, samples = collect_histograms(onnx_path, batches, num_bins=num_bins, micro_batch=micro_batch)
    created_by = tool_versions()
    method_params: dict[str, dict[str, float]] = {
        "minmax": {},
        "percentile": {"percentile": percentile, "num_bins": num_bins},
        "entropy": {"entropy_levels": ENTROPY_LEVELS, "num_bins": num_bins},
    }
    return {
        method: CalibrationTable(
            method=method,
            num_samples=samples,
            data_hash=data_hash,
            ranges={name: derive_range(hist, method, percentile=percentile) for name, hist in histograms.items()},
            model_hash=model_hash,
            created_by=created_by,
            params=method_params[method],
        )
        for method in methods
    }
