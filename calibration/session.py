"""onnxruntime sessions as calibration and the accuracy gate use them: any batch in, one-line errors out.

A model exported with a static batch N takes exactly N images per call, while calibration and
evaluation data come in whatever batches the caller has. :class:`BatchSession` cuts each incoming
batch into pieces the model takes (N for a static batch; ``max_batch`` or the whole batch otherwise),
pads a short last piece with copies of its last image and drops the padded rows from every output, so
results do not depend on the model's batch dimension. An onnxruntime failure (an image size or batch
the model cannot take) becomes a one-line :class:`CalibrationError` naming the model and the shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeresnet.calibration.model import open_session
from edgeresnet.errors import CalibrationError, ExportError, one_line

if TYPE_CHECKING:
    import onnx


class BatchSession:
    """A CPU onnxruntime session over a model with one image input, fed batches of any size.

    Args:
        label: how errors name the model (default :func:`describe_model`), e.g. "the model x.onnx".
        level: onnxruntime graph optimisation, ``"basic"`` where no fusion may swallow a fetched tensor.
    """

    def __init__(self, model: str | Path | onnx.ModelProto, *, label: str = "", level: str = "all") -> None:
        self.label = label or describe_model(model)
        try:
            self._session = open_session(model, level=level)
        except Exception as error:  # onnxruntime raises untyped errors for unreadable models
            raise ExportError(f"onnxruntime cannot load {self.label}: {one_line(error)}") from error
        image_input = self._session.get_inputs()[0]
        self.input_name: str = image_input.name
        self.input_shape: tuple[int | str | None, ...] = tuple(image_input.shape)
        self.static_batch = static_batch_size(self.input_shape)
        self._first_output: str = self._session.get_outputs()[0].name

    def pieces(
        self, images: np.ndarray, fetch: Sequence[str] | None = None, *, max_batch: int | None = None
    ) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """Run ``images`` piece by piece; yield each piece (unpadded) with its outputs (padding dropped).

        Args:
            fetch: output names; ``None`` for the model's first output. An empty list still runs the
                model (so data it cannot take is refused) and yields no outputs.
            max_batch: images per call for a dynamic-batch model; a static batch overrides it.
        """
        names = list(fetch) if fetch else [self._first_output]
        size = self.static_batch or max_batch or len(images)
        for start in range(0, len(images), size):
            piece = images[start : start + size]
            outputs = self._run(piece, names)
            yield piece, outputs if fetch is None or fetch else []

    def logits(self, images: np.ndarray) -> np.ndarray:
        """The first output for the whole of ``images``."""
        return np.concatenate([outputs[0] for _, outputs in self.pieces(images)])

    def _run(self, piece: np.ndarray, names: list[str]) -> list[np.ndarray]:
        real = len(piece)
        fed = pad_batch(piece, self.static_batch) if self.static_batch else piece
        try:
            outputs = self._session.run(names, {self.input_name: fed})
        except Exception as error:  # onnxruntime's errors share no base class; only its call is inside
            raise CalibrationError(
                f"a batch of shape {tuple(fed.shape)} does not fit {self.label} (input "
                f"{self.input_name!r} is {_shape_text(self.input_shape)}): {one_line(error)}"
            ) from error
        if len(fed) == real:
            return list(outputs)
        return [out[:real] if out.ndim and out.shape[0] == len(fed) else out for out in outputs]


def pad_batch(piece: np.ndarray, size: int) -> np.ndarray:
    """``piece`` grown to ``size`` images with copies of its last image (unchanged if already that long)."""
    if len(piece) >= size:
        return piece
    return np.concatenate([piece, np.repeat(piece[-1:], size - len(piece), axis=0)])


def static_batch_size(shape: Sequence[int | str | None]) -> int | None:
    """N when the leading (batch) dimension is a fixed N, ``None`` when it is symbolic or unknown."""
    first = shape[0] if len(shape) else None
    return first if isinstance(first, int) and first > 0 else None


def model_input_shape(model: onnx.ModelProto, name: str) -> tuple[int | str | None, ...]:
    """An ONNX graph input's shape as onnxruntime reports it: ints, symbolic names or ``None``."""
    value = next(value for value in model.graph.input if value.name == name)
    return tuple(
        dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
        for dim in value.type.tensor_type.shape.dim
    )


def describe_model(model: str | Path | onnx.ModelProto) -> str:
    """How messages name a model: "the model resnet18.onnx", or the graph name of an in-memory one."""
    if isinstance(model, (str, Path)):
        return f"the model {Path(model).name}"
    return f"the in-memory model {model.graph.name or '(unnamed)'}"


def _shape_text(shape: Sequence[int | str | None]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in shape) + "]"
