"""Read a QDQ model back: a summary for reports, and TensorRT's explicit-quantization rules as checks.

TensorRT cannot run on the project's machines, so its input is checked here on CPU instead: every
rule TensorRT's explicit quantization relies on (symmetric int8, zero point 0, per-channel weights on
the output-channel axis, Q/DQ on Conv/Gemm inputs and on both inputs of each residual Add, float
bias) becomes one readable violation line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.calibration.model import node_attribute
from edgeresnet.errors import ExportError

if TYPE_CHECKING:
    import onnx

_QDQ = ("QuantizeLinear", "DequantizeLinear")
_WEIGHTED = ("Conv", "Gemm", "MatMul")


def inspect_qdq(path: str | Path) -> dict[str, Any]:
    """Op counts, quantized/float compute nodes and the dtypes and granularity of the Q/DQ pairs."""
    view = _QdqView(path)
    activation_dtypes, weight_dtypes, bias_dtypes = set(), set(), set()
    per_channel = per_tensor = 0
    for node in view.model.graph.node:
        if node.op_type not in _QDQ:
            continue
        zero_point = view.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        dtype = zero_point.dtype.name if zero_point is not None else "uint8"  # the ONNX default
        stored = view.constant(node.input[0])
        if node.op_type == "QuantizeLinear":
            activation_dtypes.add(dtype)
        elif stored is not None and stored.dtype == np.int32:  # 32-bit constants are biases
            bias_dtypes.add(stored.dtype.name)
        elif stored is not None:
            weight_dtypes.add(stored.dtype.name)
            scale = view.constant(node.input[1])
            if scale is not None and scale.size > 1:
                per_channel += 1
            else:
                per_tensor += 1
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
        "per_channel_weights": per_channel,
        "per_tensor_weights": per_tensor,
        "quantized_nodes": quantized,
        "float_nodes": floating,
    }


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
        elif node.op_type in ("Conv", "Gemm") and node.name not in float_nodes:
            problems.extend(_check_weighted(view, node))
        elif view.is_residual_add(node) and node.name not in float_nodes:
            for name in node.input:
                if not view.from_dq(name):
                    problems.append(
                        f"{node.name}: residual Add input {name} has no Q/DQ (Conv+Add+ReLU fuse only with Q/DQ on both inputs)"
                    )
    return problems


def _check_pair_params(view: _QdqView, node: onnx.NodeProto) -> list[str]:
    problems = []
    if len(node.input) < 3 or not node.input[2]:
        return [f"{node.name}: no zero point, so it is uint8 by default; TensorRT needs int8 with zero point 0"]
    zero_point, scale = view.constant(node.input[2]), view.constant(node.input[1])
    if zero_point is None or scale is None:
        return [f"{node.name}: scale and zero point must be constant initializers"]
    if zero_point.dtype != np.int8:
        problems.append(f"{node.name}: {zero_point.dtype.name} quantization; TensorRT needs symmetric int8")
    elif np.any(zero_point != 0):
        problems.append(f"{node.name}: zero point {zero_point.ravel()[:4].tolist()} is not 0 (TensorRT is symmetric)")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        problems.append(f"{node.name}: scale must be positive and finite")
    is_weight = view.constant(node.input[0]) is not None
    if not is_weight and scale.size > 1:
        problems.append(f"{node.name}: per-channel activation scale; TensorRT quantizes activations per tensor")
    return problems


def _check_weighted(view: _QdqView, node: onnx.NodeProto) -> list[str]:
    problems = []
    if not view.from_dq(node.input[0]):
        problems.append(f"{node.name}: {node.op_type} data input has no Q/DQ (list it in float_nodes if deliberate)")
    weight_dq = view.from_dq(node.input[1])
    if weight_dq is None:
        problems.append(f"{node.name}: {node.op_type} weight is not quantized (needs DequantizeLinear on int8 weights)")
    else:
        problems.extend(_check_weight_axis(view, node, weight_dq))
    if len(node.input) > 2 and node.input[2] and view.from_dq(node.input[2]):
        problems.append(f"{node.name}: bias is quantized; TensorRT wants a float bias")
    return problems


def _check_weight_axis(view: _QdqView, node: onnx.NodeProto, dq: onnx.NodeProto) -> list[str]:
    # Weights are either an int8 initializer → DQ, or a float initializer → Q → DQ.
    source = dq
    weight = view.constant(dq.input[0])
    if weight is None:
        q = view.producers.get(dq.input[0])
        weight = view.constant(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        source = q if weight is not None else dq
    if weight is None:
        return [f"{node.name}: weight DequantizeLinear does not read a constant weight"]
    scale = view.constant(source.input[1])
    if scale is None or scale.size <= 1:
        return [f"{node.name}: per-tensor weight scale; TensorRT rules ask per-channel (output-channel axis)"]
    expected = 0 if node.op_type == "Conv" or node_attribute(node, "transB", 0) else 1
    axis = node_attribute(source, "axis", 1)
    if axis < 0:
        axis += weight.ndim
    if axis != expected or scale.size != weight.shape[expected]:
        return [f"{node.name}: per-channel weight scale on axis {axis}; the output-channel axis is {expected}"]
    return []


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

    def is_residual_add(self, node: onnx.NodeProto) -> bool:
        if node.op_type != "Add" or len(node.input) != 2:
            return False
        sources = [self.from_dq(name) for name in node.input]
        # Look through DQ to the real producer: a constant operand makes it a bias add, not a residual.
        values = [dq.input[0] if dq is not None else name for dq, name in zip(sources, node.input, strict=True)]
        return all(self.constant(value) is None for value in values)
