"""Read a QDQ model back: a summary for reports, and TensorRT's explicit-quantization rules as checks.

TensorRT cannot run on the project's machines, so its input is checked here on CPU instead: every
rule TensorRT's explicit quantization relies on becomes one readable violation line. The rules are
NVIDIA's (the explicit-quantization guide, and what ModelOpt's ONNX quantizer writes):

- Q/DQ pairs are symmetric int8 with zero point 0, activations per tensor;
- every Conv reads Q/DQ data and Q/DQ weights, per channel on the output-channel axis or per tensor;
- a Gemm/MatMul is either quantized the same way or left whole in high precision (the classifier);
- at a residual Add the shortcut carries Q/DQ and the convolution branch does not (Q/DQ there keeps
  Conv+Add from fusing); the bias stays float.

All the forms NVIDIA's tools write are read alike: int8 weight initializers → DequantizeLinear (PTQ),
float weights → QuantizeLinear → DequantizeLinear (QAT and ModelOpt), zero points as initializers or
omitted with opset 21's ``output_dtype``, and float32 or float16 scales.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.calibration.model import node_attribute
from edgeresnet.calibration.residual import residual_inputs
from edgeresnet.errors import ExportError

if TYPE_CHECKING:
    import onnx

_QDQ = ("QuantizeLinear", "DequantizeLinear")
_WEIGHTED = ("Conv", "Gemm", "MatMul")
_HIGH_PRECISION_ALLOWED = ("Gemm", "MatMul")  # NVIDIA's defaults may keep the classifier out of INT8
# ONNX TensorProto data types a QuantizeLinear ``output_dtype`` names (opset 21).
_ONNX_DTYPES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 21: "uint4", 22: "int4"}


def small_conv_reason(weight_shape: tuple[int, ...], *, group: int, kernel_shape: tuple[int, ...],
                      reads_graph_input: bool) -> str:
    """Why TensorRT has no INT8 kernel worth using for this Conv, or "" where it has one.

    NVIDIA's rule as ModelOpt applies it: a Conv with fewer than 16 input or output channels runs in INT8
    only if it is a plain Conv with a channel count divisible by 8, a square kernel, and 16 channels on
    one side or the graph input as its data (the stem); a grouped Conv needs output channels divisible
    by 8 and kernels of at least 3.
    """
    out_channels, in_channels = weight_shape[0], weight_shape[1]
    if out_channels >= 16 and in_channels >= 16:
        return ""
    if group == 1:
        if ((out_channels % 8 == 0 or in_channels % 8 == 0) and len(set(kernel_shape)) <= 1
                and (reads_graph_input or out_channels >= 16 or in_channels >= 16)):
            return ""
    elif out_channels % 8 == 0 and all(k >= 3 for k in kernel_shape):
        return ""
    return f"{in_channels}→{out_channels} channels: TensorRT has no INT8 kernel for it (NVIDIA leaves it in float)"


@dataclass(frozen=True)
class WeightQuantizer:
    """Where a weight's quantization lives: the constant weight and the Q or DQ carrying scale and axis."""

    weight: np.ndarray
    params: onnx.NodeProto


def inspect_qdq(path: str | Path) -> dict[str, Any]:
    """Op counts, quantized/float compute nodes and the dtypes and granularity of the Q/DQ pairs."""
    view = _QdqView(path)
    activation_dtypes, weight_dtypes, bias_dtypes = set(), set(), set()
    per_channel = per_tensor = 0
    for node in view.model.graph.node:
        if node.op_type not in _QDQ:
            continue
        stored = view.constant(node.input[0])
        if view.weight_quantizer(node) is not None:
            if node.op_type == "DequantizeLinear":
                weight_dtypes.add(view.quantized_dtype(node))
                scale = view.constant(view.weight_quantizer(node).params.input[1])
                if scale is not None and scale.size > 1:
                    per_channel += 1
                else:
                    per_tensor += 1
        elif stored is not None and stored.dtype == np.int32:  # 32-bit constants are biases
            bias_dtypes.add(stored.dtype.name)
        elif node.op_type == "QuantizeLinear":
            activation_dtypes.add(view.quantized_dtype(node))
    compute = [node for node in view.model.graph.node if node.op_type not in _QDQ and node.op_type != "Constant"]
    quantized = [node.name for node in compute if any(view.from_dq(name) for name in node.input)]
    floating = [
        node.name for node in compute
        if (node.op_type in _WEIGHTED or view.is_residual_add(node)) and node.name not in quantized
    ]
    return {
        "opset": view.opset,
        "nodes": len(view.model.graph.node),
        "op_counts": dict(sorted(Counter(node.op_type for node in view.model.graph.node).items())),
        "quantize_linear": sum(node.op_type == "QuantizeLinear" for node in view.model.graph.node),
        "dequantize_linear": sum(node.op_type == "DequantizeLinear" for node in view.model.graph.node),
        "activation_dtypes": sorted(activation_dtypes),
        "weight_dtypes": sorted(weight_dtypes),
        "bias_dtypes": sorted(bias_dtypes),
        "scale_dtypes": sorted({view.constant(node.input[1]).dtype.name for node in view.model.graph.node
                                if node.op_type in _QDQ and view.constant(node.input[1]) is not None}),
        "per_channel_weights": per_channel,
        "per_tensor_weights": per_tensor,
        "quantized_nodes": quantized,
        "float_nodes": floating,
    }


# The layers whose Q/DQ placement decides what TensorRT fuses and runs in INT8.
PLACEMENT_OPS = ("Conv", "Gemm", "MatMul", "Add", "GlobalAveragePool", "AveragePool", "MaxPool")


def qdq_placement(path: str | Path) -> list[dict[str, Any]]:
    """Where a QDQ model puts its Q/DQ, layer by layer in graph order, in terms two writers can share.

    One record per layer of :data:`PLACEMENT_OPS`: its op, which inputs read a DequantizeLinear
    (``data``, ``weight``, ``bias``; for a residual Add ``shortcut`` and ``branch``), the weight's
    quantization axis, and the float type of its float operands (``float16``/``float32``: the
    precision a strongly typed network runs it in). Names and scale values are left out, so the
    placement of edgeresnet's writer and of ModelOpt's quantizer compare directly.
    """
    view = _QdqView(path)
    records = []
    for node in view.model.graph.node:
        if node.op_type not in PLACEMENT_OPS:
            continue
        if node.op_type == "Add":
            found = residual_inputs(node, view.producers, view.constants)
            roles = {found.shortcut: "shortcut", found.branch: "branch"} if found.shortcut else {}
            names = [roles.get(name, f"input{index}") for index, name in enumerate(node.input)]
        elif node.op_type in _WEIGHTED:
            names = ["data", "weight", "bias"][: len(node.input)]
        else:
            names = ["data"]
        quantized = sorted(role for role, name in zip(names, node.input, strict=False) if view.from_dq(name))
        record: dict[str, Any] = {"op": node.op_type, "quantized": quantized}
        weight_dq = view.from_dq(node.input[1]) if node.op_type in _WEIGHTED else None
        quantizer = view.weight_quantizer(weight_dq) if weight_dq is not None else None
        if quantizer is not None:
            scale = view.constant(quantizer.params.input[1])
            record["weight_axis"] = node_attribute(quantizer.params, "axis", 1) if scale.size > 1 else None
        record["float_type"] = view.float_type(node)
        records.append(record)
    return records


def check_tensorrt_rules(path: str | Path, *, float_nodes: Collection[str] = ()) -> list[str]:
    """TensorRT explicit-quantization violations in a QDQ model; an empty list means it follows the rules.

    Args:
        float_nodes: nodes deliberately kept in float (the accuracy gate's fallback); they need no Q/DQ.
    """
    view = _QdqView(path)
    problems: list[str] = []
    if view.opset < 13:
        problems.append(f"opset {view.opset}: per-channel Q/DQ needs opset >= 13")
    for node in view.model.graph.node:
        if node.op_type in _QDQ:
            problems.extend(_check_pair_params(view, node))
        elif node.op_type in _WEIGHTED and node.name not in float_nodes:
            problems.extend(_check_weighted(view, node))
        elif view.is_residual_add(node) and node.name not in float_nodes:
            problems.extend(_check_residual_add(view, node))
    return problems


def _check_pair_params(view: _QdqView, node: onnx.NodeProto) -> list[str]:
    problems = []
    scale = view.constant(node.input[1])
    has_zero_point = len(node.input) > 2 and bool(node.input[2])
    zero_point = view.constant(node.input[2]) if has_zero_point else None
    if scale is None or (has_zero_point and zero_point is None):
        return [f"{node.name}: scale and zero point must be constant initializers"]
    dtype = view.quantized_dtype(node)
    if dtype != "int8":
        where = "" if has_zero_point or node.op_type != "QuantizeLinear" else " (no zero point and no int8 output_dtype)"
        problems.append(f"{node.name}: {dtype} quantization{where}; TensorRT needs symmetric int8")
    elif zero_point is not None and np.any(zero_point != 0):
        problems.append(f"{node.name}: zero point {zero_point.ravel()[:4].tolist()} is not 0 (TensorRT is symmetric)")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        problems.append(f"{node.name}: scale must be positive and finite")
    if view.weight_quantizer(node) is None and scale.size > 1:
        problems.append(f"{node.name}: per-channel activation scale; TensorRT quantizes activations per tensor")
    return problems


def _check_weighted(view: _QdqView, node: onnx.NodeProto) -> list[str]:
    data_dq, weight_dq = view.from_dq(node.input[0]), view.from_dq(node.input[1])
    if data_dq is None and weight_dq is None and (node.op_type in _HIGH_PRECISION_ALLOWED or view.small_conv(node)):
        return []  # left whole in high precision, as NVIDIA's defaults leave the classifier and small convs
    problems = []
    if data_dq is None:
        problems.append(f"{node.name}: {node.op_type} data input has no Q/DQ (list it in float_nodes if deliberate)")
    if weight_dq is None:
        problems.append(f"{node.name}: {node.op_type} weight is not quantized (needs DequantizeLinear on int8 weights)")
    else:
        problems.extend(_check_weight_axis(view, node, weight_dq))
    if len(node.input) > 2 and node.input[2] and view.from_dq(node.input[2]):
        problems.append(f"{node.name}: bias is quantized; TensorRT wants a float bias")
    return problems


def _check_weight_axis(view: _QdqView, node: onnx.NodeProto, dq: onnx.NodeProto) -> list[str]:
    quantizer = view.weight_quantizer(dq)
    if quantizer is None:
        return [f"{node.name}: weight DequantizeLinear does not read a constant weight"]
    scale = view.constant(quantizer.params.input[1])
    if scale is None or scale.size <= 1:
        return []  # per-tensor weights: TensorRT accepts them (per channel is usually more accurate)
    weight = quantizer.weight
    if node.op_type == "Conv":
        expected = 0
    elif node.op_type == "Gemm":
        expected = 0 if node_attribute(node, "transB", 0) else 1
    else:  # MatMul: weight is K×N
        expected = weight.ndim - 1
    axis = node_attribute(quantizer.params, "axis", 1)
    if axis < 0:
        axis += weight.ndim
    if axis != expected or scale.size != weight.shape[expected]:
        return [f"{node.name}: per-channel weight scale on axis {axis}; the output-channel axis is {expected}"]
    return []


def _check_residual_add(view: _QdqView, node: onnx.NodeProto) -> list[str]:
    found = residual_inputs(node, view.producers, view.constants)
    if found.shortcut is None:  # the branches cannot be told apart: one quantized input is enough
        if any(view.from_dq(name) for name in node.input):
            return []
        return [f"{node.name}: residual Add has no Q/DQ on either input"]
    branch_producer = view.producers.get(found.branch or "")
    if branch_producer is not None and branch_producer.op_type == "Conv" and not view.from_dq(branch_producer.input[0]):
        return []  # the convolution branch is float, so there is no INT8 Conv+Add to fuse: a float Add is right
    problems = []
    if not view.from_dq(found.shortcut):
        problems.append(f"{node.name}: residual Add shortcut input {found.shortcut} has no Q/DQ "
                        "(TensorRT's fused Conv+Add reads the shortcut in INT8)")
    branch_dq = view.from_dq(found.branch or "")
    if branch_dq is not None and view.quantized_producer_op(branch_dq) == "Conv":
        problems.append(f"{node.name}: Q/DQ on the convolution branch {found.branch} keeps TensorRT from fusing "
                        "Conv+Add; quantize only the shortcut")
    return problems


class _QdqView:
    def __init__(self, path: str | Path) -> None:
        import onnx
        from onnx import numpy_helper

        try:
            self.model = onnx.load(str(path))
        except Exception as error:  # missing file, protobuf DecodeError
            raise ExportError(f"cannot read QDQ model {path}: {error}") from error
        self.constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in self.model.graph.initializer}
        for node in self.model.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.producers = {out: node for node in self.model.graph.node for out in node.output}
        self.opset = next((e.version for e in self.model.opset_import if e.domain in ("", "ai.onnx")), 0)

    def constant(self, name: str) -> np.ndarray | None:
        return self.constants.get(name)

    def from_dq(self, name: str) -> onnx.NodeProto | None:
        producer = self.producers.get(name)
        return producer if producer is not None and producer.op_type == "DequantizeLinear" else None

    def from_q(self, name: str) -> onnx.NodeProto | None:
        producer = self.producers.get(name)
        return producer if producer is not None and producer.op_type == "QuantizeLinear" else None

    def weight_quantizer(self, node: onnx.NodeProto) -> WeightQuantizer | None:
        """For a Q or DQ of a constant weight: the weight and the node whose scale and axis quantize it."""
        stored = self.constant(node.input[0])
        if stored is not None:
            is_weight = node.op_type == "QuantizeLinear" or stored.dtype not in (np.int32, np.uint32)
            return WeightQuantizer(stored, node) if is_weight else None
        q = self.from_q(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if q is not None and self.constant(q.input[0]) is not None:  # float weight → Q → DQ (QAT, ModelOpt)
            return WeightQuantizer(self.constant(q.input[0]), q)
        return None

    def quantized_dtype(self, node: onnx.NodeProto) -> str:
        """The integer type a Q produces or a DQ reads: the zero point's, else what the graph says."""
        if len(node.input) > 2 and node.input[2] and self.constant(node.input[2]) is not None:
            return self.constant(node.input[2]).dtype.name
        if node.op_type == "QuantizeLinear":
            output_dtype = node_attribute(node, "output_dtype", 0)  # opset 21; 0 means "from the zero point"
            return _ONNX_DTYPES.get(output_dtype, f"ONNX type {output_dtype}") if output_dtype else "uint8"
        stored = self.constant(node.input[0])
        if stored is not None:
            return stored.dtype.name
        q = self.from_q(node.input[0])
        return self.quantized_dtype(q) if q is not None else "uint8"

    def small_conv(self, node: onnx.NodeProto) -> bool:
        """A float Conv NVIDIA's rule leaves out of INT8 (see :func:`small_conv_reason`)."""
        weight = self.constant(node.input[1])
        if node.op_type != "Conv" or weight is None or weight.ndim < 3:
            return False
        graph_inputs = {value.name for value in self.model.graph.input}
        source = self.producers.get(node.input[0])
        reads_input = node.input[0] in graph_inputs or (source is not None and source.op_type == "Cast"
                                                         and source.input[0] in graph_inputs)
        return bool(small_conv_reason(tuple(weight.shape), group=node_attribute(node, "group", 1),
                                      kernel_shape=tuple(weight.shape[2:]), reads_graph_input=reads_input))

    def float_type(self, node: onnx.NodeProto) -> str | None:
        """The float type a node computes in, from its constant operands or its DQ inputs' scales."""
        for name in node.input:
            dq = self.from_dq(name)
            value = self.constant(dq.input[1]) if dq is not None else self.constant(name)
            if value is not None and value.dtype.kind == "f":
                return value.dtype.name
        return None

    def quantized_producer_op(self, dq: onnx.NodeProto) -> str | None:
        """The op whose output a DQ's pair quantizes (looking through the QuantizeLinear)."""
        q = self.from_q(dq.input[0])
        producer = self.producers.get(q.input[0]) if q is not None else None
        return producer.op_type if producer is not None else None

    def is_residual_add(self, node: onnx.NodeProto) -> bool:
        if node.op_type != "Add" or len(node.input) != 2:
            return False
        sources = [self.from_dq(name) for name in node.input]
        # Look through DQ to the real producer: a constant operand makes it a bias add, not a residual.
        values = [dq.input[0] if dq is not None else name for dq, name in zip(sources, node.input, strict=True)]
        values = [self.from_q(value).input[0] if self.from_q(value) is not None else value for value in values]
        return all(self.constant(value) is None for value in values)
