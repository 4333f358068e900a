"""QDQ writers: an FP32 ONNX model + a calibration table → an INT8 QDQ ONNX model, for two runtimes.

Both flavours are the same rewrite driven by one table of rules (:data:`FLAVOURS`):

- ``onnxruntime``: u8 asymmetric activations, per-channel 7-bit (±63) s8 weights, int32 bias (scale = input scale ×
  weight scale), Q/DQ on the inputs *and* outputs of Conv/Gemm/Add/pools, and ReLU folded into the
  producer's output quantizer (zero point at 0 clamps exactly like ReLU). That is the shape ORT's
  graph optimiser turns into QLinearConv / QLinearAdd / QLinearGlobalAveragePool / QGemm kernels
  (checked on the optimised graph in the tests: a float bias leaves the Gemm in float, and a pass-through
  MaxPool must keep its input's scale or the QDQ around it stays).
- ``tensorrt``: TensorRT explicit quantization as NVIDIA ModelOpt's ONNX quantizer writes it (its int8
  defaults are the reference; ``tests/calibration/test_modelopt.py`` compares the two on one model):
  symmetric s8 with zero point 0, per-channel weights on the output-channel axis, Q/DQ on the data
  input of every Conv and pooling layer, and at each residual Add **only on the shortcut input**: the
  convolution branch enters the Add unquantized, so TensorRT fuses Conv+Add(+ReLU) into one INT8
  kernel (see :mod:`edgeresnet.calibration.residual`). Float bias. The classifier Gemm and every node
  left out of INT8 stay in high precision, FP16 by default (ModelOpt's ``high_precision_dtype``): a
  strongly typed network runs the ONNX types, so an FP32 graph would run those layers in FP32. The
  FP16 model has float16 scales (opset 19) and float32 input and output.

One Q/DQ pair per quantized tensor, shared by its quantized consumers, in both flavours. Nodes named in
``exclude_nodes`` stay in float (FP16 or FP32) and read float inputs: the accuracy gate's fallback.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from edgeresnet.atomic import atomic_write_with
from edgeresnet.calibration.model import (
    activation_inputs,
    constant_tensors,
    consumers,
    drop_unused_initializers,
    load_fp32_model,
    node_attribute,
)
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
from edgeresnet.errors import CalibrationError, ExportError
from edgeresnet.export.fp16 import FP16_QDQ_OPSET, halve_model

if TYPE_CHECKING:
    import onnx

Flavour = Literal["onnxruntime", "tensorrt"]
HighPrecision = Literal["fp16", "fp32"]
HIGH_PRECISIONS: tuple[str, ...] = ("fp16", "fp32")

_PASS_THROUGH = frozenset({"MaxPool", "Flatten", "Reshape"})  # output keeps the input's scale and zero point
_RELU_PRODUCERS = frozenset({"Conv", "Add", "Gemm"})


@dataclass(frozen=True)
class FlavourRules:
    """What distinguishes one runtime's QDQ dialect from another's."""

    ops: frozenset[str]
    symmetric_activations: bool
    quantize_outputs: bool  # ORT fuses a producer into a QLinear kernel only when its output is quantized
    fuse_relu: bool
    quantize_bias: bool  # ORT's QLinearConv/QGemm take int32 bias; TensorRT wants float bias
    shortcut_only: bool  # TensorRT: Q/DQ on a residual Add's shortcut only, so the Conv before it fuses the Add
    high_precision: tuple[str, ...]  # what the layers left out of INT8 may compute in; the first is the default
    # Largest weight magnitude on the s8 grid. ONNX Runtime's x86 U8S8 kernels without VNNI (AVX2) sum
    # u8×s8 pairs in saturating 16-bit lanes (VPMADDUBSW): with full ±127 weights those sums overflow and
    # cost points (measured: +1.9 pt drop fused vs +0.7 unfused on one folder). 7-bit weights (±63, ORT's
    # own `reduce_range` advice) cannot overflow, and an artifact does not know which CPU it will meet.
    weight_max: int = 127


FLAVOURS: dict[str, FlavourRules] = {
    "onnxruntime": FlavourRules(
        ops=frozenset({"Conv", "Gemm", "Add", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape"}),
        symmetric_activations=False,
        quantize_outputs=True,
        fuse_relu=True,
        quantize_bias=True,
        shortcut_only=False,
        high_precision=("fp32",),  # ORT's CPU kernels for QDQ fusions are float32 ones
        weight_max=63,
    ),
    "tensorrt": FlavourRules(
        ops=frozenset({"Conv", "Add", "GlobalAveragePool", "AveragePool", "MaxPool"}),
        symmetric_activations=True,
        quantize_outputs=False,
        fuse_relu=False,
        quantize_bias=False,
        shortcut_only=True,
        high_precision=("fp16", "fp32"),
    ),
}


@dataclass(frozen=True)
class QdqReport:
    """What a QDQ build quantized and what it left in float."""

    flavour: str
    path: str
    quantized_nodes: tuple[str, ...]
    excluded_nodes: tuple[str, ...]
    float_nodes: tuple[str, ...]  # quantizable op types left float: excluded or unsupported
    fused_relus: tuple[str, ...] = ()
    quantized_tensors: int = 0
    unsupported: dict[str, str] = field(default_factory=dict)
    high_precision: str = "fp32"  # what the layers left out of INT8 compute in

    @property
    def num_quantized(self) -> int:
        return len(self.quantized_nodes)

    @property
    def num_excluded(self) -> int:
        return len(self.excluded_nodes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "num_quantized": self.num_quantized, "num_excluded": self.num_excluded}


def quantize_qdq(
    fp32_path: str | Path,
    table: CalibrationTable,
    out_path: str | Path,
    *,
    flavour: Flavour,
    exclude_nodes: Collection[str] = frozenset(),
    high_precision: HighPrecision | None = None,
) -> QdqReport:
    """Write the INT8 QDQ model for ``flavour`` atomically to ``out_path`` and report what it holds.

    Args:
        high_precision: what the layers left out of INT8 compute in: ``fp16`` (TensorRT's default, as
            ModelOpt writes it) or ``fp32``; None takes the flavour's default (ONNX Runtime: fp32 only).
    """
    quantizer = QdqQuantizer(fp32_path, table, flavour=flavour, high_precision=high_precision)
    return quantizer.write(out_path, exclude_nodes=exclude_nodes)


class QdqQuantizer:
    """Builds QDQ variants of one FP32 model from one table; checks and loads once, builds many times.

    The accuracy gate builds a variant per candidate layer, so the model hash check and the FP32 load
    happen here once and each :meth:`build` works on a copy.
    """

    def __init__(self, fp32_path: str | Path, table: CalibrationTable, *, flavour: Flavour,
                 high_precision: HighPrecision | None = None) -> None:
        if flavour not in FLAVOURS:
            raise ExportError(f"QDQ flavour must be one of {', '.join(FLAVOURS)}, got {flavour!r}")
        allowed = FLAVOURS[flavour].high_precision
        if high_precision is not None and high_precision not in allowed:
            raise ExportError(f"the {flavour} QDQ model keeps its float layers in {' or '.join(allowed)}, "
                              f"not {high_precision!r}")
        table.check_model(fp32_path)
        self.fp32_path = Path(fp32_path)
        self.table = table
        self.flavour = flavour
        self.high_precision: str = high_precision or allowed[0]
        self._fp32 = load_fp32_model(fp32_path)
        if self.high_precision == "fp16":
            self._fp32 = _with_opset(self._fp32, FP16_QDQ_OPSET)
        self.node_names = frozenset(node.name for node in self._fp32.graph.node)

    def build(self, exclude_nodes: Collection[str] = frozenset()) -> tuple[onnx.ModelProto, QdqReport]:
        """The QDQ model in memory, with ``exclude_nodes`` left in float."""
        import onnx

        if isinstance(exclude_nodes, str):  # set("conv1") would silently mean {"c", "o", "n", "v", "1"}
            raise CalibrationError(f"exclude_nodes must be a collection of node names, got the string {exclude_nodes!r}")
        unknown = sorted(set(exclude_nodes) - self.node_names)
        if unknown:
            raise CalibrationError(f"exclude_nodes names nodes not in the model: {', '.join(unknown[:5])}")
        model = onnx.ModelProto()
        model.CopyFrom(self._fp32)
        scale_dtype = np.float16 if self.high_precision == "fp16" else np.float32
        report = _QdqRewrite(model, self.table, self.flavour, frozenset(exclude_nodes), scale_dtype).run()
        if self.high_precision == "fp16":
            halve_model(model, name=f"the {self.flavour} QDQ model of {self.fp32_path.name}")
        report = replace(report, high_precision=self.high_precision)
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as error:  # a bug in the rewrite, not a user mistake
            raise RuntimeError(f"generated QDQ model fails the ONNX checker: {error}") from error
        return model, report

    def write(self, out_path: str | Path, *, exclude_nodes: Collection[str] = frozenset()) -> QdqReport:
        model, report = self.build(exclude_nodes)
        out_path = Path(out_path)
        _save_atomically(model, out_path)
        return replace(report, path=str(out_path))


class _QdqRewrite:
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


def _with_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """``model`` converted up to ``opset`` (node and tensor names are kept, so the table still matches)."""
    import onnx

    current = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)
    if current >= opset:
        return model
    try:
        return onnx.version_converter.convert_version(model, opset)
    except Exception as error:  # the converter raises plain RuntimeErrors for unsupported ops
        raise ExportError(f"cannot convert ONNX opset {current} to {opset} for float16 Q/DQ: {error}; "
                          "use high_precision='fp32'") from error


def _save_atomically(model: onnx.ModelProto, path: Path) -> None:
    import onnx

    atomic_write_with(path, lambda temporary: onnx.save(model, str(temporary)))
