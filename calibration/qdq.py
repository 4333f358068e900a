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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeresnet.atomic import atomic_write_with
from edgeresnet.calibration.model import load_fp32_model
from edgeresnet.calibration.qdq_flavours import (
    FLAVOURS,
    HIGH_PRECISIONS,
    Flavour,
    FlavourRules,
    HighPrecision,
    QdqReport,
)
from edgeresnet.calibration.qdq_rewrite import QdqRewrite
from edgeresnet.calibration.table import CalibrationTable
from edgeresnet.errors import CalibrationError, ExportError
from edgeresnet.export.fp16 import FP16_QDQ_OPSET, halve_model

if TYPE_CHECKING:
    import onnx

__all__ = ["FLAVOURS", "HIGH_PRECISIONS", "Flavour", "FlavourRules", "HighPrecision", "QdqQuantizer", "QdqReport",
           "quantize_qdq"]


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
        report = QdqRewrite(model, self.table, self.flavour, frozenset(exclude_nodes), scale_dtype).run()
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
