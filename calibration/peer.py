"""The peer baseline: what ONNX Runtime's own ``quantize_static`` makes with its defaults.

Benchmarks put our table-driven QDQ model beside this one (MinMax, QDQ, per-tensor, ORT's default
types), so a claim that ours is faster or more accurate is measured against the tool a user would
otherwise reach for. It is a comparison helper only: our artifacts never come from here, because
ORT's calibrator cannot rebuild a model from a saved table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from edgeresnet.atomic import atomic_write_with
from edgeresnet.calibration.data_check import validate_batch
from edgeresnet.calibration.model import input_name, load_fp32_model
from edgeresnet.calibration.session import (
    describe_model,
    model_input_shape,
    pad_batch,
    static_batch_size,
)
from edgeresnet.errors import CalibrationError, one_line


def peer_quantize_static_default(fp32: str | Path, out: str | Path, batches: Iterable[np.ndarray]) -> Path:
    """Quantize ``fp32`` with ``onnxruntime.quantization.quantize_static`` defaults into ``out`` (atomically).

    A model with a static batch N is fed N images at a time, a short last piece padded with copies of
    its last image (which cannot move the MinMax ranges ORT's default calibrator computes).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    model = load_fp32_model(fp32)
    name = input_name(model)
    static_batch = static_batch_size(model_input_shape(model, name))

    class _Reader(CalibrationDataReader):
        def __init__(self, source: Iterable[np.ndarray]) -> None:
            self._pieces: Iterator[np.ndarray] = _pieces(source, static_batch)
            self.count = 0
            self.last_shape: tuple[int, ...] = ()

        def get_next(self) -> dict[str, np.ndarray] | None:
            piece = next(self._pieces, None)
            if piece is None:
                return None
            self.count += 1
            self.last_shape = piece.shape
            return {name: piece}

    reader = _Reader(batches)

    def write(temporary: Path) -> None:
        try:
            quantize_static(str(fp32), str(temporary), reader, quant_format=QuantFormat.QDQ)
        except Exception as error:
            if not type(error).__module__.startswith("onnxruntime.capi"):
                raise  # a bug in ORT's Python quantizer or in ours keeps its traceback
            raise CalibrationError(
                f"onnxruntime quantize_static cannot run {describe_model(fp32)} on a batch of shape "
                f"{reader.last_shape}: {one_line(error)}"
            ) from error
        if reader.count == 0:
            raise CalibrationError("no calibration images: the calibration data set is empty")

    return atomic_write_with(out, write)


def _pieces(batches: Iterable[np.ndarray], static_batch: int | None) -> Iterator[np.ndarray]:
    for batch in batches:
        batch = validate_batch(batch)
        if not static_batch:
            yield batch
            continue
        for start in range(0, len(batch), static_batch):
            yield pad_batch(batch[start : start + static_batch], static_batch)
