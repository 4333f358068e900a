"""Calibration: one streaming pass of real images through the FP32 model in onnxruntime.

Every activation a QDQ writer may quantize is exposed as an extra graph output; each batch is split
into micro-batches (or the model's static batch) so memory stays bounded by ``micro_batch`` images of
activations whatever the data size. Each tensor keeps only a running min/max and, for the clipping
methods, ONNX Runtime's own streamed histogram (see methods.py). All methods' ranges come from the
same pass, so ``auto`` can compare them without reading the data again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from edgeresnet.bundle import sha256_file
from edgeresnet.calibration.data_check import check_calibration_data, validate_batch
from edgeresnet.calibration.methods import DEFAULT_PERCENTILE, MinMaxCollector, OrtHistogramCollector
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
    percentile: float = DEFAULT_PERCENTILE,
    micro_batch: int = 8,
) -> CalibrationTable:
    """Compute one method's calibration table for an FP32 ONNX model from real preprocessed images.

    Args:
        batches: float32 N×C×H×W arrays, already preprocessed exactly as at inference.
        data_hash: sha256 hex digest identifying the calibration data (recorded, not recomputed).
        micro_batch: images per onnxruntime call; bounds the memory the exposed activations take. A
            model with a static batch N is fed N at a time instead (a short last piece is padded and
            the padding left out of every range).
    """
    if method not in METHODS:
        raise CalibrationError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    return _tables(onnx_path, batches, (method,), data_hash, percentile, micro_batch)[method]


def calibrate_all(
    onnx_path: str | Path,
    batches: Iterable[np.ndarray],
    *,
    data_hash: str,
    percentile: float = DEFAULT_PERCENTILE,
    micro_batch: int = 8,
) -> dict[str, CalibrationTable]:
    """Every method's table from one pass over the data (for ``--calib-method auto``)."""
    return _tables(onnx_path, batches, METHODS, data_hash, percentile, micro_batch)


def collect_ranges(
    onnx_path: str | Path,
    batches: Iterable[np.ndarray],
    methods: Sequence[Method] = METHODS,
    *,
    percentile: float = DEFAULT_PERCENTILE,
    micro_batch: int = 8,
) -> tuple[dict[str, dict[str, tuple[float, float]]], int]:
    """Run the data once; return each method's range per calibration tensor, and the number of images."""
    import onnx

    if micro_batch < 1:
        raise CalibrationError(f"micro_batch must be >= 1, got {micro_batch}")
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise CalibrationError(f"calibration method must be one of {', '.join(METHODS)}, got {unknown[0]!r}")
    model = load_fp32_model(onnx_path)
    names = calibration_tensors(model)
    image_input = input_name(model)
    existing = {value.name for value in model.graph.output}
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names if name not in existing
    )
    # Basic optimisations only: no fusion may swallow a tensor we need (ORT keeps graph outputs anyway).
    session = BatchSession(model, label=describe_model(onnx_path), level="basic")
    # Two passes: the observed range first, so each histogram can be built over its final range
    # batch by batch exactly as ONNX Runtime builds it in one shot (see methods.py).
    batches = list(batches)
    minmax = MinMaxCollector()
    samples = _run(session, batches, names, image_input, micro_batch, [minmax])
    if samples == 0:
        raise CalibrationError("no calibration images: the calibration data set is empty")
    observed = minmax.ranges()
    histograms = {method: OrtHistogramCollector(method, minmax, percentile=percentile)
                  for method in methods if method != "minmax"}
    if histograms:
        _run(session, batches, names, image_input, micro_batch, list(histograms.values()))
    ranges = {method: (observed if method == "minmax" else histograms[method].ranges()) for method in methods}
    return {method: {name: ranges[method][name] for name in names} for method in methods}, samples


def _run(session: BatchSession, batches: list[np.ndarray], names: list[str], image_input: str, micro_batch: int,
         collectors: Sequence[MinMaxCollector | OrtHistogramCollector]) -> int:
    fetch = [name for name in names if name != image_input]
    samples = 0
    for batch in batches:
        batch = validate_batch(batch)
        check_calibration_data(batch)
        for chunk, outputs in session.pieces(batch, fetch, max_batch=micro_batch):
            tensors = dict(zip(fetch, outputs, strict=True))
            if image_input in names:
                tensors[image_input] = chunk
            for collector in collectors:
                collector.update(tensors)
        samples += batch.shape[0]
    return samples


def _tables(
    onnx_path: str | Path,
    batches: Iterable[np.ndarray],
    methods: Sequence[Method],
    data_hash: str,
    percentile: float,
    micro_batch: int,
) -> dict[str, CalibrationTable]:
    if not 50.0 < percentile <= 100.0:
        raise CalibrationError(f"percentile must be in (50, 100], got {percentile}")
    require_sha256("data_hash", data_hash)
    if not Path(onnx_path).is_file():
        raise CalibrationError(f"ONNX model not found: {onnx_path}")
    model_hash = sha256_file(onnx_path)
    ranges, samples = collect_ranges(onnx_path, batches, methods, percentile=percentile, micro_batch=micro_batch)
    created_by = tool_versions()
    return {
        method: CalibrationTable(
            method=method,
            num_samples=samples,
            data_hash=data_hash,
            ranges=ranges[method],
            model_hash=model_hash,
            created_by=created_by,
            params=method_params(method, percentile),
        )
        for method in methods
    }


def method_params(method: str, percentile: float = DEFAULT_PERCENTILE) -> dict[str, float]:
    """What a table records about how its method computed the ranges."""
    if method == "minmax":
        return {}
    return OrtHistogramCollector(method, MinMaxCollector(), percentile=percentile).params
