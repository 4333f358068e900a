"""The peer baseline: what ONNX Runtime's own ``quantize_static`` makes with its defaults.

Benchmarks put our table-driven QDQ model beside this one (MinMax, QDQ, per-tensor, ORT's default
types), so a claim that ours is faster or more accurate is measured against the tool a user would
otherwise reach for. It is a comparison helper only: our artifacts never come from here, because
ORT's calibrator cannot rebuild a model from a saved table.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from edgeresnet.calibration.data_check import validate_batch
from edgeresnet.calibration.model import input_name, load_fp32_model

from edgeresnet.errors import CalibrationError


def peer_quantize_static_default(fp32: str | Path, out: str | Path, batches: Iterable[np.ndarray]) -> Path:
    """Quantize ``fp32`` with ``onnxruntime.quantization.quantize_static`` defaults into ``out`` (atomically)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    name = input_name(load_fp32_model(fp32))

    class _Reader(CalibrationDataReader):
        def __init__(self, source: Iterable[np.ndarray]) -> None:
            self._batches: Iterator[np.ndarray] = iter(source)
            self.count = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            self.count += 1
            return {name: validate_batch(batch)}

    reader = _Reader(batches)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(handle)
    try:
        quantize_static(str(fp32), temp, reader, quant_format=QuantFormat.QDQ)
        if reader.count == 0:
            raise CalibrationError("no calibration images: the calibration data set is empty")
        os.replace(temp, out)
    finally:
        Path(temp).unlink(missing_ok=True)
    return out
