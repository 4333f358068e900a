"""PyTorch → ONNX: export, simplify, annotate, check, and prove parity on real images.

Files in, files out: the model is written atomically, and an export whose logits drift from
PyTorch beyond tolerance is an error, not a warning.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.atomic import atomic_write_bytes
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import ExportError
from edgeresnet.parity import ParityCheck, check_parity

if TYPE_CHECKING:
    from collections.abc import Iterable

    import onnx
    import torch

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(
    model: torch.nn.Module,
    spec: PreprocessSpec,
    out_path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    metadata: dict[str, Any] | None = None,
    simplify: bool = True,
) -> Path:
    """Export ``model`` in eval mode to ONNX with a dynamic (or ``batch``-static) batch dimension.

    BatchNorm is folded into the convolutions, the graph is simplified with onnxslim, ``metadata``
    (architecture, preprocessing, labels, ...) goes into the model's metadata_props, and the ONNX
    checker must pass before the file is written.
    """
    import onnx
    import torch

    if opset < 17:
        raise ExportError(f"opset must be 17 or newer, got {opset}")
    if batch is not None and batch < 1:
        raise ExportError(f"static batch must be at least 1, got {batch}")
    model = model.eval()
    example = torch.zeros(spec.input_shape(batch or 1), dtype=torch.float32)
    dynamic_axes = None if batch else {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter folds BatchNorm into Conv in eval mode and needs no onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buffer, opset_version=opset, dynamo=False, do_constant_folding=True,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=dynamic_axes,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    if simplify:
        proto = _simplify(proto)
    _set_metadata(proto, metadata or {})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"exported ONNX fails the checker: {str(error).splitlines()[0]}") from error
    return atomic_write_bytes(out_path, proto.SerializeToString())


def fix_onnx_batch(path: str | Path, out_path: str | Path, batch: int) -> Path:
    """Copy an ONNX model with the batch dimension of its input and output fixed to ``batch``."""
    import onnx

    if batch < 1:
        raise ExportError(f"static batch must be at least 1, got {batch}")
    proto = onnx.load(str(path))
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_value = batch
    # Intermediate shapes recorded for the dynamic batch would contradict the fixed one.
    del proto.graph.value_info[:]
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"cannot fix the batch of {path} to {batch}: {str(error).splitlines()[0]}") from error
    return atomic_write_bytes(out_path, proto.SerializeToString())


PIXELS_NAME = "pixels"


def add_pixel_input(path: str | Path, out_path: str | Path, spec: PreprocessSpec) -> Path:
    """Copy an ONNX model (FP32 or QDQ) so that it takes uint8 N×H×W×C pixels and normalises them itself.

    A Transpose to NCHW, Cast, Sub(255·mean) and Mul(1/(255·std)) are prepended as graph nodes, the
    arithmetic of ``PreprocessSpec.normalise``; ONNX Runtime then runs them in its own kernels, so an
    app hands over pixels and no numpy arithmetic runs per image (``OnnxRuntimeRunner``'s
    ``pixel_model``). The model's metadata is kept.

    Laid out for ONNX Runtime's kernels (profiled on 224×224 RGB, results identical): the uint8 pixels
    are transposed, not the 4× larger floats, and mean and scale are stored as C×1×W blocks rather than
    C values. A constant whose innermost axis has 3 elements is broadcast 3 at a time (0.6-1.3 ms per
    image, against 0.07 ms); a C×1×W block stays long-run in NCHW and, where the layout optimizer moves
    the Transpose below the arithmetic (QDQ models with NHWC convolutions), becomes a W×C row there.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load(str(path))
    if len(proto.graph.input) != 1:
        raise ExportError(f"{path} has {len(proto.graph.input)} inputs; an image classifier has one")
    original = proto.graph.input[0]
    dims = original.type.tensor_type.shape.dim
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else "N"
    height, width = spec.input_size
    pixels = helper.make_tensor_value_info(PIXELS_NAME, TensorProto.UINT8, [batch, height, width, spec.num_channels])
    block = (1, spec.num_channels, 1, width)
    per_channel = (1, spec.num_channels, 1, 1)
    mean = numpy_helper.from_array(
        np.broadcast_to((255.0 * np.asarray(spec.mean, np.float32)).reshape(per_channel), block).copy(), "pixels_mean")
    scale = numpy_helper.from_array(
        np.broadcast_to((1.0 / (255.0 * np.asarray(spec.std, np.float32))).reshape(per_channel), block).copy(),
        "pixels_inverse_std")
    nodes = [
        helper.make_node("Transpose", [PIXELS_NAME], ["pixels_nchw"], perm=[0, 3, 1, 2], name="pixels_to_nchw"),
        helper.make_node("Cast", ["pixels_nchw"], ["pixels_float"], to=TensorProto.FLOAT, name="pixels_cast"),
        helper.make_node("Sub", ["pixels_float", "pixels_mean"], ["pixels_centred"], name="pixels_sub_mean"),
        helper.make_node("Mul", ["pixels_centred", "pixels_inverse_std"], [original.name], name="pixels_scale"),
    ]
    graph = proto.graph
    del graph.input[:]
    graph.input.append(pixels)
    graph.initializer.extend([mean, scale])
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *existing])
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"cannot add a pixel input to {path}: {str(error).splitlines()[0]}") from error
    return atomic_write_bytes(out_path, proto.SerializeToString())


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Constant-fold and clean the graph; a failure keeps the unsimplified (still valid) model."""
    try:
        import onnxslim

        return onnxslim.slim(proto)
    except Exception as error:  # noqa: BLE001  (onnxslim is an optimisation: losing it must not lose the export)
        log.warning("onnxslim could not simplify the graph (%s); keeping it as exported", error)
        return proto


def _set_metadata(proto: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    existing = {prop.key: prop for prop in proto.metadata_props}
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if key in existing:
            existing[key].value = text
        else:
            proto.metadata_props.add(key=key, value=text)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an ONNX file (without loading its weights)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ExportError(f"{path} is not a readable ONNX model: {error}") from error
    return {prop.key: prop.value for prop in proto.metadata_props}


def onnx_parity(
    model: torch.nn.Module, onnx_path: str | Path, batches: Iterable[np.ndarray], *, threads: int | None = None
) -> ParityCheck:
    """Run the same real batches through PyTorch and ONNX Runtime and judge the FP32 export's logits.

    The verdict is :func:`edgeresnet.parity.check_parity`'s at FP32, the judge ``verify`` and
    ``compile`` use, so an export is never accepted on terms a later stage would refuse.
    """
    import torch

    from edgeresnet.runtime.onnxruntime import OnnxRuntimeRunner

    model = model.eval()
    references, candidates = [], []
    with OnnxRuntimeRunner(onnx_path, threads=threads) as runner, torch.no_grad():
        for batch in batches:
            references.append(model(torch.from_numpy(batch)).numpy())
            candidates.append(runner.infer(batch))
    if not references:
        raise ExportError("no images to check ONNX parity on")
    return check_parity(np.concatenate(references), np.concatenate(candidates), "fp32")
