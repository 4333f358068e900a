"""The FP32 graph as calibration and the quantizers see it.

Calibration and both QDQ writers start from :func:`load_fp32_model`, which normalises the file the
same deterministic way every time (BatchNormalization folded into its Conv, every node named), so the
tensor names in a calibration table always match the graph the quantizer rewrites.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.errors import CalibrationError, ExportError

if TYPE_CHECKING:
    import onnx

# Ops whose activations we quantize (the union of the QDQ flavours' ops); each writer picks its own.
QUANTIZABLE_OPS = frozenset(
    {"Conv", "Gemm", "Add", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape"}
)
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (the axis attribute) needs opset 13


def load_fp32_model(onnx_path: str | Path) -> onnx.ModelProto:
    """Load an FP32 ONNX model, fold BatchNormalization into Conv and name every node."""
    import onnx

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ExportError(f"ONNX model not found: {onnx_path}")
    try:
        model = onnx.load(str(onnx_path))
    except Exception as error:  # protobuf DecodeError and friends have no common base
        raise ExportError(f"cannot read ONNX model {onnx_path}: {error}") from error
    initializers = _initializer_names(model)
    image_inputs = [value.name for value in model.graph.input if value.name not in initializers]
    if len(image_inputs) != 1:
        raise ExportError(f"{onnx_path.name}: expected one image input, found {len(image_inputs)}")
    model = _ensure_opset(model)
    _name_nodes(model)
    _fold_batchnorm(model)
    return model


def input_name(model: onnx.ModelProto) -> str:
    initializers = _initializer_names(model)
    return next(value.name for value in model.graph.input if value.name not in initializers)


def constant_tensors(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node outputs: the tensors that are weights, not activations."""
    from onnx import numpy_helper

    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    return constants


def consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            if name:
                users[name].append(node)
    return users


def activation_inputs(node: onnx.NodeProto, constants: Iterable[str]) -> list[str]:
    """The data (not weight, bias or shape) inputs of a quantizable node."""
    constant_names = set(constants)
    if node.op_type == "Add":
        candidates = list(node.input)
    elif node.op_type == "Gemm":
        candidates = list(node.input[:2])
    else:  # Conv, pools, Flatten, Reshape: input 0 is the data, the rest are weights or shapes
        candidates = list(node.input[:1])
    return [name for name in candidates if name and name not in constant_names]


def calibration_tensors(model: onnx.ModelProto) -> list[str]:
    """The activations whose ranges a table must hold for either QDQ flavour.

    Inputs of quantizable ops, Relu outputs (ONNX Runtime fuses Relu into the producer's quantized
    output) and outputs of quantizable ops that feed something other than a Relu. Graph outputs
    (logits) stay float in both flavours and are skipped.
    """
    constants = constant_tensors(model)
    users = consumers(model)
    graph_outputs = {value.name for value in model.graph.output}
    wanted: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "Relu":
            wanted.add(node.output[0])
        if node.op_type not in QUANTIZABLE_OPS:
            continue
        wanted.update(activation_inputs(node, constants))
        output = node.output[0]
        if output in graph_outputs:
            continue
        if any(user.op_type != "Relu" for user in users.get(output, [])):
            wanted.add(output)
    wanted -= set(constants)
    wanted -= graph_outputs
    # Graph order, so tables and reports read top to bottom.
    order = [input_name(model)] + [out for node in model.graph.node for out in node.output]
    return [name for name in order if name in wanted]


def node_attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def _initializer_names(model: onnx.ModelProto) -> set[str]:
    return {tensor.name for tensor in model.graph.initializer}


def _ensure_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    opset = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ExportError("ONNX model imports no default-domain opset")
    if opset >= MIN_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, MIN_OPSET)
    except Exception as error:  # the converter raises plain RuntimeErrors for unsupported ops
        raise ExportError(f"cannot convert ONNX opset {opset} to {MIN_OPSET} for QDQ: {error}") from error


def _name_nodes(model: onnx.ModelProto) -> None:
    # exclude_nodes and reports speak in node names; give unnamed nodes stable, unique ones.
    taken = {node.name for node in model.graph.node if node.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _fold_batchnorm(model: onnx.ModelProto) -> None:
    """Fold inference BatchNormalization into the Conv before it (W' = W·s, b' = (b − mean)·s + beta)."""
    from onnx import numpy_helper

    if not any(node.op_type == "BatchNormalization" for node in model.graph.node):
        return
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    users = consumers(model)
    remove: list[onnx.NodeProto] = []
    for bn in model.graph.node:
        if bn.op_type != "BatchNormalization":
            continue
        conv = producers.get(bn.input[0])
        params = [initializers.get(name) for name in bn.input[1:5]]
        if (conv is None or conv.op_type != "Conv" or len(users[bn.input[0]]) != 1 or None in params
                or conv.input[1] not in initializers or len(bn.output) != 1):
            raise CalibrationError(
                f"BatchNormalization {bn.name} does not follow a Conv with constant weights: export the "
                "model in eval mode with constant folding (or run onnxslim) before calibrating"
            )
        epsilon = next((attr.f for attr in bn.attribute if attr.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(tensor).astype(np.float64) for tensor in params)
        scale = gamma / np.sqrt(var + epsilon)
        weight = numpy_helper.to_array(initializers[conv.input[1]]).astype(np.float64)
        bias = (numpy_helper.to_array(initializers[conv.input[2]]).astype(np.float64)
                if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0]))
        folded_weight = (weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))).astype(np.float32)
        folded_bias = ((bias - mean) * scale + beta).astype(np.float32)
        weight_name, bias_name = f"{conv.name}.folded_weight", f"{conv.name}.folded_bias"
        model.graph.initializer.extend([numpy_helper.from_array(folded_weight, weight_name),
                                        numpy_helper.from_array(folded_bias, bias_name)])
        del conv.input[1:]
        conv.input.extend([weight_name, bias_name])
        conv.output[0] = bn.output[0]  # keep the BN output's name: it is the tensor downstream reads
        remove.append(bn)
    for node in remove:
        model.graph.node.remove(node)
    drop_unused_initializers(model)


def drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {name for node in model.graph.node for name in node.input}
    dropped = {tensor.name for tensor in model.graph.initializer if tensor.name not in used}
    keep = [tensor for tensor in model.graph.initializer if tensor.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    # Models from IR < 4 also list initializers as graph inputs; those entries go with them.
    inputs = [value for value in model.graph.input if value.name not in dropped]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
