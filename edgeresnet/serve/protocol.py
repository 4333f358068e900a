"""The served model's tensors in the Open Inference Protocol (KServe v2): what a request may carry, what comes back.

One request carries exactly one of three inputs, N items each (N up to the server's max batch):

- ``image``  BYTES [N] or [N, 1]: encoded image files (PNG, JPEG, ...), decoded and resized by the
  bundle's own preprocessing, exactly as ``Classifier.predict`` does for a file;
- ``pixels`` UINT8 [N, H, W, C]: frames already at the model's input size (``Classifier.predict_frames``);
- ``input``  FP32 [N, C, H, W]: tensors already preprocessed (``Classifier.logits``).

The answer holds ``labels`` (BYTES [N, k]), ``probabilities`` (FP32 [N, k]) and ``indices`` (INT64 [N, k]),
best first; ``k`` is the request parameter ``top_k`` (default 5, at most the number of classes).
Anything else is an ``InvalidInput``: HTTP 400 / gRPC INVALID_ARGUMENT, never a server error.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from edgeresnet.data.decoding import DECODE_ERRORS, open_image
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import first_line

IMAGE, PIXELS, TENSOR = "image", "pixels", "input"
LABELS, PROBABILITIES, INDICES = "labels", "probabilities", "indices"
DEFAULT_TOP_K = 5
MAX_IMAGE_BYTES = 64 << 20  # per encoded image; Pillow's bomb check guards the decoded size


class RequestError(ValueError):
    """A request that breaks the protocol above; the server turns it into InvalidInput."""


def input_types(spec: PreprocessSpec, max_batch: int) -> list[dict[str, Any]]:
    """The model metadata's inputs (-1: any batch up to ``max_batch``)."""
    height, width = spec.input_size
    channels = spec.num_channels
    return [{"name": IMAGE, "datatype": "BYTES", "shape": [-1]},
            {"name": PIXELS, "datatype": "UINT8", "shape": [-1, height, width, channels]},
            {"name": TENSOR, "datatype": "FP32", "shape": [-1, channels, height, width]}]


def output_types() -> list[dict[str, Any]]:
    return [{"name": LABELS, "datatype": "BYTES", "shape": [-1, -1]},
            {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, -1]},
            {"name": INDICES, "datatype": "INT64", "shape": [-1, -1]}]


def the_input(inputs: list[Any]) -> Any:
    """The request's one input, whose name says what it holds."""
    if len(inputs) != 1:
        raise RequestError(f"send exactly one input ({IMAGE}, {PIXELS} or {TENSOR}), got {len(inputs)}")
    tensor = inputs[0]
    if tensor.name not in (IMAGE, PIXELS, TENSOR):
        raise RequestError(f"unknown input {tensor.name!r}: send {IMAGE} (BYTES), {PIXELS} (UINT8) or {TENSOR} (FP32)")
    expected = {IMAGE: "BYTES", PIXELS: "UINT8", TENSOR: "FP32"}[tensor.name]
    if tensor.datatype != expected:
        raise RequestError(f"input {tensor.name!r} must be {expected}, got {tensor.datatype}")
    return tensor


def as_array(tensor: Any) -> np.ndarray:
    try:
        return tensor.as_numpy()
    except (ValueError, TypeError) as error:  # data that does not fill the declared shape
        raise RequestError(f"input {tensor.name!r} does not match its shape {list(tensor.shape)}: "
                           f"{first_line(error)}") from error


def check_rows(name: str, array: np.ndarray, item_shape: tuple[int, ...]) -> np.ndarray:
    if array.ndim != len(item_shape) + 1 or tuple(array.shape[1:]) != item_shape:
        raise RequestError(f"input {name!r} must be N×{'×'.join(map(str, item_shape))}, got "
                           f"{'×'.join(map(str, array.shape)) or 'a scalar'}")
    if len(array) == 0:
        raise RequestError(f"input {name!r} holds no items")
    return array


def encoded_images(array: np.ndarray) -> list[bytes]:
    """The items of an ``image`` input: one encoded file each."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) == 0:
        raise RequestError(f"input {IMAGE!r} must be N or N×1 encoded images, got shape {list(array.shape)}")
    items = [bytes(item) if isinstance(item, (bytes, bytearray, np.bytes_)) else None for item in array]
    if any(item is None for item in items):
        raise RequestError(f"input {IMAGE!r} must hold bytes (encoded image files)")
    if any(len(item) > MAX_IMAGE_BYTES for item in items):  # type: ignore[arg-type]
        raise RequestError(f"an encoded image is larger than {MAX_IMAGE_BYTES >> 20} MiB")
    return items  # type: ignore[return-value]


def decode_pixels(spec: PreprocessSpec, data: bytes, position: int) -> np.ndarray:
    """One encoded image → uint8 H×W×C model pixels, through the same decoder as a file on disk."""
    try:
        return spec.pixels(open_image(io.BytesIO(data), spec.draft_size))
    except DECODE_ERRORS as error:
        raise RequestError(f"image {position} cannot be decoded: {first_line(error)}") from error


def top_k_of(parameters: Any, classes: int) -> int:
    """The request parameter ``top_k``: REST gives a dict of numbers, gRPC a map of InferParameter."""
    value: Any = None
    if parameters is not None and "top_k" in parameters:
        value = parameters["top_k"]
        if hasattr(value, "WhichOneof"):  # gRPC InferParameter
            kind = value.WhichOneof("parameter_choice")
            value = getattr(value, kind) if kind else None
    if value is None:
        return min(DEFAULT_TOP_K, classes)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"parameter top_k must be a positive integer, got {value!r}")
    return min(value, classes)
