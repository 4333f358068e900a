"""Scales and zero points: the arithmetic both QDQ flavours share.

Everything is computed in float64 and stored as float32 (or float16, for a QDQ model whose float parts
run in FP16) from the table's numbers alone, so building twice from one table gives byte-identical
initializers on any machine. Weights are quantized with the scale as stored, so DequantizeLinear gives
back exactly the weights the rounding chose, whatever the scale's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_INT8_MAX = 127  # symmetric grid [-127, 127]: keeps -x representable, as TensorRT and ORT expect
_UINT8_MAX = 255
_INT32_MAX = np.iinfo(np.int32).max
# The smallest positive float16 subnormal: a smaller scale would flush to 0, which DequantizeLinear forbids.
_FLOAT16_TINY = float(np.finfo(np.float16).smallest_subnormal)
_FLOAT16_MAX = float(np.finfo(np.float16).max)
ScaleDtype = type[np.float32] | type[np.float16]


def stored_scale(scale: np.ndarray | float, dtype: ScaleDtype = np.float32) -> np.ndarray:
    """``scale`` as it will be stored: float32, or float16 kept within (0, 65504] so it never flushes to 0."""
    values = np.asarray(scale, dtype=np.float64)
    if dtype is np.float16:
        values = np.clip(values, _FLOAT16_TINY, _FLOAT16_MAX)
    return values.astype(dtype)


@dataclass(frozen=True)
class QuantParams:
    """One Q/DQ pair's parameters: float32 scale(s) and a zero point of the quantized dtype."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    @property
    def dtype(self) -> np.dtype:
        return self.zero_point.dtype


def activation_params(low: float, high: float, *, symmetric: bool, scale_dtype: ScaleDtype = np.float32) -> QuantParams:
    """u8 asymmetric (ONNX Runtime) or s8 symmetric with zero point 0 (TensorRT) from a table range.

    The range is widened to include 0 so that zero (padding, ReLU's floor) is exactly representable.
    """
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if symmetric:
        amax = max(-low, high)
        scale = amax / _INT8_MAX if amax > 0 else 1.0
        return QuantParams(stored_scale(scale, scale_dtype), np.array(0, dtype=np.int8))
    span = high - low
    scale = np.float32(span / _UINT8_MAX if span > 0 else 1.0)
    zero_point = np.clip(np.round(-low / float(scale)), 0, _UINT8_MAX)
    return QuantParams(np.array(scale, dtype=np.float32), np.array(zero_point, dtype=np.uint8))


def weight_params(
    weight: np.ndarray, axis: int, *, scale_dtype: ScaleDtype = np.float32, weight_max: int = _INT8_MAX
) -> tuple[np.ndarray, QuantParams]:
    """Per-channel symmetric s8 weights along ``axis`` (the output channels) on the grid ±``weight_max``."""
    if not 1 <= weight_max <= _INT8_MAX:
        raise ValueError(f"weight_max must be in [1, {_INT8_MAX}], got {weight_max}")
    moved = np.moveaxis(weight.astype(np.float64), axis, 0).reshape(weight.shape[axis], -1)
    amax = np.abs(moved).max(axis=1)
    scale = stored_scale(np.where(amax > 0, amax / weight_max, 1.0), scale_dtype)
    shape = [1] * weight.ndim
    shape[axis] = -1
    divisor = scale.astype(np.float32).reshape(shape)  # float16 scales are exact in float32
    quantized = np.clip(np.round(weight / divisor), -weight_max, weight_max).astype(np.int8)
    return quantized, QuantParams(scale, np.zeros(scale.shape, dtype=np.int8), axis)


def bias_params(bias: np.ndarray, input_scale: np.ndarray, weight_scale: np.ndarray) -> tuple[np.ndarray, QuantParams]:
    """int32 bias with scale input_scale × weight_scale: the layout QLinearConv/QGemm consume directly.

    The product is taken in float32, as the runtimes do, so the fused kernel and the DQ reference agree.
    """
    scale = (np.float32(input_scale) * weight_scale.astype(np.float32)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1.0))
    quantized = np.clip(np.round(bias.astype(np.float64) / safe), -_INT32_MAX, _INT32_MAX).astype(np.int32)
    return quantized, QuantParams(safe, np.zeros(scale.shape, dtype=np.int32), 0)
