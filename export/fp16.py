"""FP32 ONNX → FP16 ONNX with float32 input and output: the float parts of a strongly typed TensorRT network.

Under strong typing the ONNX types are what TensorRT runs, so a network meant to compute in FP16 must
say so in the ONNX. Two callers share one conversion:

- :func:`convert_onnx_to_fp16` writes the FP16 model an FP16 engine is built from;
- the TensorRT QDQ writer (``calibration/qdq.py``) calls :func:`halve_model` on its INT8 model, so that
  the layers left out of INT8 (the classifier, and whatever the accuracy gate keeps in float) run in
  FP16, as NVIDIA ModelOpt's ``high_precision_dtype="fp16"`` default writes them.

Plain onnx on any CPU: the result is checked with ONNX Runtime where TensorRT cannot run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeresnet.atomic import atomic_write_bytes
from edgeresnet.errors import ExportError

_FP16_MAX = 65504.0
# Inputs the ONNX spec types as float32 whatever the data type (Resize scales, Upsample scales).
_FLOAT32_ONLY_INPUTS: dict[str, tuple[int, ...]] = {"Resize": (2,), "Upsample": (1,)}
# QuantizeLinear/DequantizeLinear take float16 inputs and scales from opset 19.
FP16_QDQ_OPSET = 19


@dataclass(frozen=True)
class Fp16Conversion:
    """What the FP16 conversion changed; clipped and flushed values are where FP16 loses information."""

    path: Path
    converted_tensors: int
    clipped_values: int
    flushed_values: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": self.path.name}


def convert_onnx_to_fp16(onnx_path: str | Path, out_path: str | Path) -> Fp16Conversion:
    """Rewrite an FP32 ONNX model to compute in FP16, keeping its float32 input and output.

    Float initializers and constants become FP16 (clipped to ±65504), Casts to float become Casts to
    FP16, and a Cast is added after the input and before the output, so callers feed and read float32
    while a strongly typed TensorRT network runs every layer in FP16.
    """
    import onnx

    try:
        model = onnx.load(str(onnx_path))
    except Exception as error:  # protobuf's DecodeError and friends for a corrupt file
        raise ExportError(f"{onnx_path} is not a readable ONNX model: {error}") from error
    stats = halve_model(model, name=Path(onnx_path).name)
    atomic_write_bytes(out_path, model.SerializeToString())
    return Fp16Conversion(Path(out_path), stats["tensors"], stats["clipped"], stats["flushed"])


def halve_model(model: Any, *, name: str = "the model") -> dict[str, int]:
    """Convert ``model`` in place to compute in FP16 behind float32 I/O; returns what changed.

    Tensors that are already float16 or integer (a QDQ model's int8 weights, zero points and float16
    scales) are left as they are.
    """
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    if any(attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for node in graph.node for attr in node.attribute):
        raise ExportError(f"{name} has control-flow subgraphs; FP16 conversion supports plain graphs")
    opset = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)
    if opset < FP16_QDQ_OPSET and any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node):
        raise ExportError(f"{name}: float16 Q/DQ needs opset {FP16_QDQ_OPSET}, the model has {opset}")
    keep = {node.input[i] for node in graph.node for i in _FLOAT32_ONLY_INPUTS.get(node.op_type, ())
            if i < len(node.input)}
    stats = {"tensors": 0, "clipped": 0, "flushed": 0}
    for initializer in graph.initializer:
        if initializer.data_type == TensorProto.FLOAT and initializer.name not in keep:
            initializer.CopyFrom(_half_tensor(initializer, stats))
    for node in graph.node:
        _convert_node(node, keep, stats)
    _cast_graph_io(graph, helper, TensorProto)
    del graph.value_info[:]  # stale float32 annotations; shape inference rebuilds them
    try:
        onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"the FP16 version of {name} is not a valid model: "
                          f"{str(error).splitlines()[0]}") from error
    return stats


def _half_tensor(tensor: Any, stats: dict[str, int]) -> Any:
    from onnx import numpy_helper

    values = numpy_helper.to_array(tensor)
    clipped = np.clip(values, -_FP16_MAX, _FP16_MAX)
    half = clipped.astype(np.float16)
    stats["tensors"] += 1
    stats["clipped"] += int(np.count_nonzero(clipped != values))
    stats["flushed"] += int(np.count_nonzero((values != 0) & (half == 0)))
    return numpy_helper.from_array(half, tensor.name)


def _convert_node(node: Any, keep: set[str], stats: dict[str, int]) -> None:
    from onnx import TensorProto

    if any(output in keep for output in node.output):
        return
    for attribute in node.attribute:
        if node.op_type in ("Constant", "ConstantOfShape") and attribute.name == "value" \
                and attribute.t.data_type == TensorProto.FLOAT:
            attribute.t.CopyFrom(_half_tensor(attribute.t, stats))
        elif node.op_type == "Constant" and attribute.name in ("value_float", "value_floats"):
            raise ExportError(f"Constant {node.name} uses {attribute.name}; export with tensor constants")
        elif node.op_type == "Cast" and attribute.name == "to" and attribute.i == TensorProto.FLOAT:
            attribute.i = TensorProto.FLOAT16


def _cast_graph_io(graph: Any, helper: Any, tensor_proto: Any) -> None:
    float_inputs = {i.name for i in graph.input if i.type.tensor_type.elem_type == tensor_proto.FLOAT}
    float_inputs -= {init.name for init in graph.initializer}
    casts = []
    for name in sorted(float_inputs):
        half = f"{name}__fp16"
        for node in graph.node:
            node.input[:] = [half if value == name else value for value in node.input]
        casts.append(helper.make_node("Cast", [name], [half], name=f"{name}__to_fp16",
                                      to=tensor_proto.FLOAT16))
    for output in graph.output:
        if output.type.tensor_type.elem_type != tensor_proto.FLOAT:
            continue
        half = f"{output.name}__fp16"
        for node in graph.node:
            node.output[:] = [half if value == output.name else value for value in node.output]
            node.input[:] = [half if value == output.name else value for value in node.input]
        graph.node.append(helper.make_node("Cast", [half], [output.name], name=f"{output.name}__to_fp32",
                                           to=tensor_proto.FLOAT))
    for cast in reversed(casts):  # the input casts go first, keeping the graph topologically sorted
        graph.node.insert(0, cast)
