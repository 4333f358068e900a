"""The QDQ rewrite: one pass over an FP32 ONNX graph inserting Q/DQ pairs as a flavour's rules say.

:class:`~edgeresnet.calibration.qdq.QdqQuantizer` runs it on a copy of the model for every variant it builds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.calibration.model import (
    activation_inputs,
    constant_tensors,
    consumers,
    drop_unused_initializers,
    node_attribute,
)
from edgeresnet.calibration.qdq_flavours import FLAVOURS, QdqReport
from edgeresnet.calibration.qdq_rules import small_conv_reason
from edgeresnet.calibration.qparams import (
    QuantParams,
    ScaleDtype,
    activation_params,
    bias_params,
    weight_params,
)
from edgeresnet.calibration.residual import residual_inputs
from edgeresnet.calibration.table import CalibrationTable
from edgeresnet.errors import CalibrationError

if TYPE_CHECKING:
    import onnx

_PASS_THROUGH = frozenset({"MaxPool", "Flatten", "Reshape"})  # output keeps the input's scale and zero point
_RELU_PRODUCERS = frozenset({"Conv", "Add", "Gemm"})


class QdqRewrite:
    """One pass over the graph in topological order, inserting Q/DQ before (and after) chosen nodes."""

    def __init__(self, model: onnx.ModelProto, table: CalibrationTable, flavour: str, exclude: frozenset[str],
                 scale_dtype: ScaleDtype = np.float32) -> None:
        self.model = model
        self.scale_dtype = scale_dtype
        self.graph = model.graph
        self.table = table
        self.flavour = flavour
        self.rules = FLAVOURS[flavour]
        self.exclude = exclude
        self.constants = constant_tensors(model)
        self.initializers = {tensor.name: tensor for tensor in self.graph.initializer}
        self.graph_outputs = {value.name for value in self.graph.output}
        self.taken = {name for node in self.graph.node for name in (node.name, *node.input, *node.output)}
        self.taken.update(self.initializers)
        self.taken.update(value.name for value in self.graph.input)
        self.new_nodes: list[onnx.NodeProto] = []
        self.new_initializers: list[onnx.TensorProto] = []
        self.shared_dq: dict[str, str] = {}
        self.dq_params: dict[str, QuantParams] = {}
        self.param_names: dict[str, tuple[str, str]] = {}
        self.params: dict[str, QuantParams] = {}
        self.weights: dict[tuple[str, int], tuple[str, QuantParams]] = {}
        self.input_params: dict[str, QuantParams] = {}
        self.quantized_tensors = 0
        self.add_inputs: dict[str, list[str]] = {}

    def run(self) -> QdqReport:
        quantized, unsupported = self._select()
        # Judged on the untouched graph: the rewrite below renames the inputs it quantizes.
        producers = {out: node for node in self.graph.node for out in node.output}
        self.add_inputs = {node.name: self._add_inputs(node, producers) for node in self.graph.node
                           if node.op_type == "Add" and node.name in quantized and self.rules.shortcut_only}
        fused = self._fuse_relus(quantized) if self.rules.fuse_relu else []
        users = consumers(self.model)
        for node in list(self.graph.node):
            if node.name in quantized:
                self._quantize_inputs(node)
            self.new_nodes.append(node)
            if node.name in quantized and self.rules.quantize_outputs:
                self._quantize_output(node, quantized, users)
        del self.graph.node[:]
        self.graph.node.extend(self.new_nodes)
        self.graph.initializer.extend(self.new_initializers)
        drop_unused_initializers(self.model)
        live = {name for node in self.graph.node for name in node.output}
        kept = [value for value in self.graph.value_info if value.name in live]
        del self.graph.value_info[:]
        self.graph.value_info.extend(kept)
        order = [node.name for node in self.graph.node]
        candidates = [node.name for node in self.graph.node if node.op_type in self.rules.ops]
        return QdqReport(
            flavour=self.flavour,
            path="",
            quantized_nodes=tuple(name for name in order if name in quantized),
            excluded_nodes=tuple(name for name in order if name in self.exclude),
            float_nodes=tuple(name for name in candidates if name not in quantized),
            fused_relus=tuple(fused),
            quantized_tensors=self.quantized_tensors,
            unsupported=unsupported,
        )

    def _select(self) -> tuple[set[str], dict[str, str]]:
        quantized: set[str] = set()
        unsupported: dict[str, str] = {}
        for node in self.graph.node:
            if node.op_type not in self.rules.ops or node.name in self.exclude:
                continue
            reason = self._unsupported(node)
            if reason:
                unsupported[node.name] = reason
            else:
                quantized.add(node.name)
        if self.rules.shortcut_only:
            self._float_conv_branches(quantized, unsupported)
        return quantized, unsupported

    def _float_conv_branches(self, quantized: set[str], unsupported: dict[str, str]) -> None:
        """An Add whose convolution branch stays float has no INT8 Conv+Add to fuse: it stays float too."""
        producers = {out: node for node in self.graph.node for out in node.output}
        for add in [node for node in self.graph.node if node.op_type == "Add" and node.name in quantized]:
            branch = producers.get(residual_inputs(add, producers, self.constants).branch or "")
            if branch is not None and branch.op_type == "Conv" and branch.name not in quantized:
                quantized.discard(add.name)
                unsupported[add.name] = f"its convolution branch {branch.name} stays in float"

    def _unsupported(self, node: onnx.NodeProto) -> str:
        if node.op_type in ("Conv", "Gemm") and node.input[1] not in self.initializers:
            return "weight is not a constant initializer"
        if node.op_type == "Conv" and self.rules.shortcut_only:  # TensorRT's INT8 kernels
            weight = tuple(self.initializers[node.input[1]].dims)
            graph_inputs = {value.name for value in self.graph.input}
            reason = small_conv_reason(weight, group=node_attribute(node, "group", 1), kernel_shape=weight[2:],
                                       reads_graph_input=node.input[0] in graph_inputs)
            if reason:
                return reason
        if node.op_type == "Gemm" and node_attribute(node, "transA", 0):
            return "transposed activation input"
        if node.op_type == "Add" and len(activation_inputs(node, self.constants)) != 2:
            return "not a residual add (one input is constant)"
        if len(node.output) != 1:
            return "more than one output"
        if not activation_inputs(node, self.constants):
            return "no activation input"
        return ""

    def _fuse_relus(self, quantized: set[str]) -> list[str]:
        """Drop a ReLU whose producer and consumers are all quantized: the u8 quantizer (zero point 0) clamps."""
        producers = {out: node for node in self.graph.node for out in node.output}
        users = consumers(self.model)
        fused = []
        for relu in [node for node in self.graph.node if node.op_type == "Relu" and node.name not in self.exclude]:
            source, result = relu.input[0], relu.output[0]
            producer = producers.get(source)
            if (
                producer is None
                or producer.name not in quantized
                or producer.op_type not in _RELU_PRODUCERS
                or [user.name for user in users.get(source, [])] != [relu.name]
                or source in self.graph_outputs
                or result in self.graph_outputs
                or not users.get(result)
                or any(user.name not in quantized for user in users[result])
            ):
                continue
            producer.output[0] = result
            self.graph.node.remove(relu)
            fused.append(relu.name)
        return fused

    def _quantize_inputs(self, node: onnx.NodeProto) -> None:
        data = activation_inputs(node, self.constants)
        data = self.add_inputs.get(node.name, data)
        for index, name in enumerate(node.input):
            if name in data:
                node.input[index] = self._activation_dq(name)
                if index == 0:
                    # The pair actually used: a pass-through producer may have set it from its own input.
                    self.input_params[node.name] = self.dq_params[node.input[index]]
        if node.op_type not in ("Conv", "Gemm"):
            return
        axis = 0 if node.op_type == "Conv" or node_attribute(node, "transB", 0) else 1  # the output-channel axis
        weight_dq, weight = self._weight_dq(node.input[1], axis)
        node.input[1] = weight_dq
        if self.rules.quantize_bias and len(node.input) > 2 and self._bias_quantizable(node, weight):
            node.input[2] = self._bias_dq(node.input[2], self.input_params[node.name], weight)

    def _add_inputs(self, add: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> list[str]:
        """The shortcut alone when a Conv feeds the other input directly (it then fuses the Add), else both."""
        found = residual_inputs(add, producers, self.constants)
        branch = producers.get(found.branch or "")
        if found.shortcut is None or branch is None or branch.op_type != "Conv":
            return list(add.input)
        return [found.shortcut]

    def _quantize_output(self, node: onnx.NodeProto, quantized: set[str], users: dict[str, list]) -> None:
        output = node.output[0]
        if output in self.graph_outputs or not any(user.name in quantized for user in users.get(output, [])):
            return  # float consumers read the float tensor; logits stay float
        params = self.input_params[node.name] if node.op_type in _PASS_THROUGH else self._params(output)
        self._activation_dq(output, params)

    def _params(self, tensor: str) -> QuantParams:
        if tensor not in self.params:
            if tensor not in self.table.ranges:
                raise CalibrationError(
                    f"calibration table has no range for tensor {tensor!r}: recalibrate on this model"
                )
            low, high = self.table.ranges[tensor]
            self.params[tensor] = activation_params(low, high, symmetric=self.rules.symmetric_activations,
                                                    scale_dtype=self.scale_dtype)
        return self.params[tensor]

    def _activation_dq(self, tensor: str, params: QuantParams | None = None) -> str:
        if tensor in self.shared_dq:
            return self.shared_dq[tensor]
        params = params if params is not None else self._params(tensor)
        if tensor not in self.param_names:
            self.param_names[tensor] = (
                self._initializer(f"{tensor}_scale", params.scale),
                self._initializer(f"{tensor}_zero_point", params.zero_point),
            )
        scale, zero_point = self.param_names[tensor]
        quantized, dequantized = self._unique(f"{tensor}_quantized"), self._unique(f"{tensor}_dequantized")
        self._node("QuantizeLinear", [tensor, scale, zero_point], quantized)
        self._node("DequantizeLinear", [quantized, scale, zero_point], dequantized)
        self.quantized_tensors += 1
        self.dq_params[dequantized] = params
        self.shared_dq[tensor] = dequantized
        return dequantized

    def _weight_dq(self, name: str, axis: int) -> tuple[str, QuantParams]:
        from onnx import numpy_helper

        if (name, axis) not in self.weights:
            values, params = weight_params(numpy_helper.to_array(self.initializers[name]), axis,
                                           scale_dtype=self.scale_dtype, weight_max=self.rules.weight_max)
            inputs = [
                self._initializer(f"{name}_quantized", values),
                self._initializer(f"{name}_scale", params.scale),
                self._initializer(f"{name}_zero_point", params.zero_point),
            ]
            output = self._unique(f"{name}_dequantized")
            self._node("DequantizeLinear", inputs, output, axis=axis)
            self.weights[(name, axis)] = (output, params)
        return self.weights[(name, axis)]

    def _bias_quantizable(self, node: onnx.NodeProto, weight: QuantParams) -> bool:
        bias = self.initializers.get(node.input[2])
        if bias is None or list(bias.dims) != [weight.scale.size]:
            return False
        # Gemm computes alpha·A·B + beta·C: an int32 C at scale sA·sB is only right when both are 1.
        return node.op_type != "Gemm" or (node_attribute(node, "alpha", 1.0) == 1.0 and node_attribute(node, "beta", 1.0) == 1.0)

    def _bias_dq(self, name: str, input_params: QuantParams, weight: QuantParams) -> str:
        from onnx import numpy_helper

        values, params = bias_params(numpy_helper.to_array(self.initializers[name]), input_params.scale, weight.scale)
        inputs = [
            self._initializer(f"{name}_quantized", values),
            self._initializer(f"{name}_scale", params.scale),
            self._initializer(f"{name}_zero_point", params.zero_point),
        ]
        output = self._unique(f"{name}_dequantized")
        self._node("DequantizeLinear", inputs, output, axis=0)
        return output

    def _initializer(self, base: str, values: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._unique(base)
        self.new_initializers.append(numpy_helper.from_array(np.asarray(values), name))
        return name

    def _node(self, op_type: str, inputs: list[str], output: str, **attributes: Any) -> None:
        import onnx

        name = self._unique(f"{output}_{op_type}")
        self.new_nodes.append(onnx.helper.make_node(op_type, inputs, [output], name=name, **attributes))

    def _unique(self, base: str) -> str:
        name, counter = base, 0
        while name in self.taken:
            counter += 1
            name = f"{base}_{counter}"
        self.taken.add(name)
        return name
