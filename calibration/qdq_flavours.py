"""The QDQ dialects: what distinguishes one runtime's INT8 QDQ model from another's (see :mod:`.qdq`),
and the report of what a build quantized."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Flavour = Literal["onnxruntime", "tensorrt"]
HighPrecision = Literal["fp16", "fp32"]
HIGH_PRECISIONS: tuple[str, ...] = ("fp16", "fp32")

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
