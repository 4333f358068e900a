"""ONNX Runtime sessions as calibration and the accuracy gate use them: the runtime's one session wrapper
(:class:`edgeresnet.backends.onnxruntime.runner.OrtSession`) with calibration's error types.

An unreadable model is an :class:`ExportError`; a batch the model cannot take (an image size, a channel
count) a one-line :class:`CalibrationError` naming the model and the shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgeresnet.backends.onnxruntime.runner import OrtSession, describe_model, pad_batch, static_batch_size
from edgeresnet.errors import CalibrationError, ExportError

if TYPE_CHECKING:
    import onnx

__all__ = ["BatchSession", "describe_model", "model_input_shape", "pad_batch", "static_batch_size"]


class BatchSession(OrtSession):
    """A CPU session fed batches of any size (see :class:`OrtSession`), failing as calibration errors.

    Args:
        label: how errors name the model (default :func:`describe_model`), e.g. "the model x.onnx".
        level: onnxruntime graph optimisation, ``"basic"`` where no fusion may swallow a fetched tensor.
    """

    def __init__(self, model: str | Path | onnx.ModelProto, *, label: str = "", level: str = "all") -> None:
        super().__init__(model, label=label, level=level, load_error=ExportError, run_error=CalibrationError)


def model_input_shape(model: onnx.ModelProto, name: str) -> tuple[int | str | None, ...]:
    """An ONNX graph input's shape as onnxruntime reports it: ints, symbolic names or ``None``."""
    value = next(value for value in model.graph.input if value.name == name)
    return tuple(
        dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
        for dim in value.type.tensor_type.shape.dim
    )
