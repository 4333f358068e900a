"""Which layer hurts: the INT8-vs-FP32 activation error of every quantized tensor of one QDQ model.

For each tensor a QDQ model quantizes, on evaluation images, two signal-to-quantization-noise ratios
(SQNR, in dB: ``10·log10(Σx² / Σ(x − x̂)²)``, higher is better):

- ``sqnr_db`` (local): the FP32 activation against its own quantize-dequantize with the scale and zero
  point the artifact holds, read from its QuantizeLinear nodes. It isolates what this one tensor's
  range costs: a range clipped too hard or too wide shows here and nowhere else. This is the ranking
  the accuracy gate's fallback uses.
- ``cumulative_sqnr_db``: the FP32 activation against the same tensor in the INT8 model, where every
  quantizer upstream has had its effect: what the layer actually receives. It falls with depth, so it
  says how much error reaches a layer, not which range caused it.

``clipped_pct`` is the share of values beyond the quantization grid. The ranking puts the lowest local
SQNR first. Written beside the export report as Markdown, JSON and a PNG plot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.atomic import atomic_write_text, atomic_write_with
from edgeresnet.calibration.data_check import validate_batch
from edgeresnet.calibration.model import input_name, load_fp32_model
from edgeresnet.calibration.session import BatchSession, describe_model

if TYPE_CHECKING:
    import onnx

_PASS_THROUGH = frozenset({"MaxPool", "Flatten", "Reshape"})  # QDQ writers give their output the input's grid
LAYER_REPORT_IMAGES = 512  # evaluation images the report runs; SQNR of 512 images' activations is stable
MICRO_BATCH = 16


@dataclass(frozen=True)
class TensorError:
    """One quantized activation's error; SQNRs in dB (``None`` where the error is exactly zero)."""

    tensor: str
    consumers: tuple[str, ...]
    sqnr_db: float | None
    cumulative_sqnr_db: float | None
    clipped_pct: float
    grid: tuple[float, float]  # the lowest and highest value the quantized tensor can represent

    def to_dict(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "consumers": list(self.consumers), "sqnr_db": self.sqnr_db,
                "cumulative_sqnr_db": self.cumulative_sqnr_db, "clipped_pct": round(self.clipped_pct, 5),
                "grid": [round(self.grid[0], 6), round(self.grid[1], 6)]}


@dataclass(frozen=True)
class LayerReport:
    """Every quantized tensor of one QDQ model, worst local SQNR first."""

    flavour: str
    images: int
    tensors: tuple[TensorError, ...]

    def node_ranking(self, candidates: Sequence[str]) -> list[tuple[str, float]]:
        """``candidates`` (quantized nodes) ordered by the worst local SQNR among the tensors they read.

        A node reading no measured tensor goes last; ties keep graph order (the order of ``candidates``).
        """
        worst: dict[str, float] = {}
        for error in self.tensors:
            value = math.inf if error.sqnr_db is None else error.sqnr_db
            for node in error.consumers:
                worst[node] = min(worst.get(node, math.inf), value)
        order = {node: index for index, node in enumerate(candidates)}
        ranked = sorted(candidates, key=lambda node: (worst.get(node, math.inf), order[node]))
        return [(node, worst.get(node, math.inf)) for node in ranked]

    def to_dict(self) -> dict[str, Any]:
        return {"flavour": self.flavour, "images": self.images, "metric": "SQNR dB, 10*log10(sum x^2 / sum (x-q(x))^2)",
                "tensors": [error.to_dict() for error in self.tensors]}

    def markdown(self, title: str, limit: int = 15) -> str:
        lines = [f"### {title}", "",
                 (f"{len(self.tensors)} quantized tensors, {self.images} evaluation images; worst local SQNR first "
                 f"(top {min(limit, len(self.tensors))})."), "",
                 "| rank | tensor | read by | SQNR dB (local) | SQNR dB (cumulative) | clipped |",
                 "|---|---|---|---|---|---|"]
        for rank, error in enumerate(self.tensors[:limit], 1):
            lines.append(f"| {rank} | `{error.tensor}` | {', '.join(error.consumers) or '-'} | "
                         f"{_db(error.sqnr_db)} | {_db(error.cumulative_sqnr_db)} | {error.clipped_pct:.3f}% |")
        return "\n".join(lines) + "\n"


def build_layer_report(
    fp32_path: str | Path,
    qdq_model: onnx.ModelProto,
    flavour: str,
    images: Iterable[np.ndarray],
    *,
    max_images: int = LAYER_REPORT_IMAGES,
) -> LayerReport:
    """Measure every quantized activation of ``qdq_model`` against ``fp32_path`` on up to ``max_images``."""
    quantizers = _quantizers(qdq_model)
    fp32 = load_fp32_model(fp32_path)
    fp32_names = _tensor_names(fp32)
    names = [name for name in quantizers if name in fp32_names]
    image_input = input_name(fp32)
    # The INT8 side is read after each tensor's DequantizeLinear: what its consumers receive. (Its float
    # name can hold another value: a fused ReLU's output name is given to the Add before it.)
    dequantized = {name: quantizers[name][5] for name in names}
    fp32_session = BatchSession(_exposing(fp32, names), label=describe_model(fp32_path), level="basic")
    int8_session = BatchSession(_exposing(qdq_model, list(dequantized.values())), label=f"the {flavour} QDQ model",
                                level="basic")
    stats = {name: np.zeros(4) for name in names}  # signal, local noise, cumulative noise, clipped count
    counts = dict.fromkeys(names, 0)
    seen = 0
    for batch in images:
        batch = validate_batch(batch, what="layer report")[: max(0, max_images - seen)]
        if len(batch) == 0:
            break
        seen += len(batch)
        fetch = [name for name in names if name != image_input]
        int8_pieces = int8_session.pieces(batch, [dequantized[name] for name in names], max_batch=MICRO_BATCH)
        for chunk, outputs in fp32_session.pieces(batch, fetch, max_batch=MICRO_BATCH):
            reference = dict(zip(fetch, outputs, strict=True))
            reference[image_input] = chunk
            quantized = dict(zip(names, next(int8_pieces)[1], strict=True))
            for name in names:
                x = reference[name].astype(np.float64)
                scale, zero_point, low, high = quantizers[name][:4]
                codes = np.round(x / scale) + zero_point
                fake = (np.clip(codes, low, high) - zero_point) * scale
                stats[name] += (np.sum(x * x), np.sum((x - fake) ** 2), np.sum((x - quantized[name]) ** 2),
                                np.count_nonzero((codes < low) | (codes > high)))
                counts[name] += x.size
    errors = []
    for name in names:
        signal, local, cumulative, clipped = stats[name]
        scale, zero_point, low, high, consumers, _ = quantizers[name]
        errors.append(TensorError(
            tensor=name, consumers=consumers, sqnr_db=_sqnr(signal, local),
            cumulative_sqnr_db=_sqnr(signal, cumulative),
            clipped_pct=100.0 * clipped / max(counts[name], 1),
            grid=((low - zero_point) * scale, (high - zero_point) * scale),
        ))
    errors.sort(key=lambda error: math.inf if error.sqnr_db is None else error.sqnr_db)
    return LayerReport(flavour=flavour, images=seen, tensors=tuple(errors))


LAYER_REPORT_FILES = ("layer_report.md", "layer_report.json", "layer_report.png")


def write_layer_reports(directory: str | Path, reports: dict[str, LayerReport]) -> list[Path]:
    """``layer_report.md``, ``layer_report.json`` and ``layer_report.png`` for every target's report."""
    import json


    directory = Path(directory)
    if not reports:
        return []
    markdown = ["# Per-layer INT8 quantization report", "",
                ("SQNR of each quantized activation against FP32 on evaluation images (higher is better). "
                 "Local: the tensor's own quantize-dequantize with the artifact's scale; the accuracy gate keeps "
                 "the layers reading the worst of these in float first. Cumulative: the tensor as the INT8 "
                 "model computes it, with every upstream quantizer applied."), ""]
    for name, report in reports.items():
        markdown.append(report.markdown(name))
    written = [
        atomic_write_text(directory / LAYER_REPORT_FILES[0], "\n".join(markdown)),
        atomic_write_text(directory / LAYER_REPORT_FILES[1],
                          json.dumps({name: report.to_dict() for name, report in reports.items()}, indent=2) + "\n"),
    ]
    written.append(plot_layer_reports(reports, directory / LAYER_REPORT_FILES[2]))
    return written


def plot_layer_reports(reports: dict[str, LayerReport], path: Path) -> Path:
    """Local and cumulative SQNR per tensor in graph order, one panel per report (Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure


    figure = Figure(figsize=(10, 3.2 * len(reports)), layout="constrained")
    for index, (name, report) in enumerate(reports.items(), 1):
        axes = figure.add_subplot(len(reports), 1, index)
        ordered = report.tensors
        local = [np.nan if e.sqnr_db is None else e.sqnr_db for e in ordered]
        cumulative = [np.nan if e.cumulative_sqnr_db is None else e.cumulative_sqnr_db for e in ordered]
        positions = np.arange(len(ordered))
        axes.bar(positions, local, color="#4C72B0", label="local (this tensor's range)")
        axes.plot(positions, cumulative, color="#DD8452", marker=".", label="cumulative (as the INT8 model sees it)")
        worst = int(np.nanargmin(local)) if np.isfinite(local).any() else None
        if worst is not None:
            axes.annotate(ordered[worst].tensor, (worst, local[worst]), fontsize=7, rotation=20)
        axes.set_title(f"{name}: {len(ordered)} quantized tensors, {report.images} evaluation images", fontsize=9)
        axes.set_ylabel("SQNR (dB)")
        axes.set_xlabel("quantized tensor, ranked worst local SQNR first")
        axes.legend(fontsize=7, loc="lower right")
    canvas = FigureCanvasAgg(figure)
    return atomic_write_with(path, lambda temporary: canvas.print_png(str(temporary)))


def _quantizers(model: onnx.ModelProto) -> dict[str, tuple[float, float, float, float, tuple[str, ...], str]]:
    """Per quantized activation: scale, zero point, lowest and highest code, the nodes that read it, and
    the output of (the first of) its DequantizeLinear nodes."""
    from onnx import numpy_helper

    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    readers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.name)
    by_name = {node.name: node for node in model.graph.node}
    producers = {out: node for node in model.graph.node for out in node.output}
    found: dict[str, tuple[float, float, float, float, tuple[str, ...], str]] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in initializers:
            continue
        scale = float(np.asarray(initializers[node.input[1]]).ravel()[0])
        zero = np.asarray(initializers[node.input[2]]) if len(node.input) > 2 else np.array(0, dtype=np.uint8)
        info = np.iinfo(zero.dtype)
        low, high = (-127, 127) if zero.dtype == np.int8 else (info.min, info.max)  # s8 grids are symmetric
        consumers = [reader for dq in readers.get(node.output[0], []) for out in by_name[dq].output
                     for reader in readers.get(out, [])]
        producer = producers.get(node.input[0])
        if producer is not None and producer.op_type in _PASS_THROUGH and _same_grid(producer, node, producers,
                                                                                        initializers):
            # The output of a pass-through op (MaxPool, Flatten) reuses its input's scale: the op decides it.
            consumers = [producer.name]
        previous = found.get(node.input[0])
        merged = tuple(dict.fromkeys([*(previous[4] if previous else ()), *consumers]))
        first_dq = previous[5] if previous else by_name[readers[node.output[0]][0]].output[0]
        found[node.input[0]] = (scale, float(zero.ravel()[0]), float(low), float(high), merged, first_dq)
    return found


def _same_grid(producer: onnx.NodeProto, quantizer: onnx.NodeProto, producers: dict[str, onnx.NodeProto],
               initializers: dict[str, np.ndarray]) -> bool:
    """Whether ``producer`` reads a dequantized input with the same scale and zero point ``quantizer`` uses."""
    source = producers.get(producer.input[0]) if producer.input else None
    if source is None or source.op_type != "DequantizeLinear" or len(source.input) < 3 or len(quantizer.input) < 3:
        return False
    return all(name_a in initializers and name_b in initializers
               and np.array_equal(initializers[name_a], initializers[name_b])
               for name_a, name_b in zip(source.input[1:3], quantizer.input[1:3], strict=True))


def _tensor_names(model: onnx.ModelProto) -> set[str]:
    return {out for node in model.graph.node for out in node.output} | {value.name for value in model.graph.input}


def _exposing(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    existing = {value.name for value in copy.graph.output} | {value.name for value in copy.graph.input}
    # A TensorRT QDQ model keeps its high-precision layers in FP16: expose each tensor with its own type.
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {value.name: value.type.tensor_type.elem_type for value in inferred.graph.value_info}
    copy.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, types.get(name) or onnx.TensorProto.FLOAT, None)
        for name in names if name not in existing
    )
    return copy


def _sqnr(signal: float, noise: float) -> float | None:
    if noise <= 0:
        return None
    return round(10.0 * math.log10(max(signal, 1e-30) / noise), 3)


def _db(value: float | None) -> str:
    return "exact" if value is None else f"{value:.1f}"
