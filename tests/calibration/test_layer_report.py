"""The per-layer report: every quantized tensor's SQNR against FP32, ranked, and its files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from edgeresnet.calibration import QdqQuantizer, build_layer_report
from edgeresnet.calibration.layer_report import write_layer_reports


@pytest.mark.parametrize("flavour", ["onnxruntime", "tensorrt"])
def test_every_quantized_tensor_is_measured_and_ranked(tables: dict, fp32_onnx: Path, eval_batches: list,
                                                      flavour: str) -> None:
    model, report = QdqQuantizer(fp32_onnx, tables["minmax"], flavour=flavour).build()
    layers = build_layer_report(fp32_onnx, model, flavour, [images for images, _ in eval_batches], max_images=200)
    assert layers.images == 200 and len(layers.tensors) >= len(report.quantized_nodes) // 2
    local = [error.sqnr_db for error in layers.tensors]
    assert local == sorted(local)  # worst first
    for error in layers.tensors:
        assert error.consumers and set(error.consumers) <= set(report.quantized_nodes), error
        # 8-bit minmax ranges: ~30-50 dB locally. Cumulative is read after each DequantizeLinear; read
        # before it, a fused ReLU's name would hold the Add's unrectified output and show ~0 dB.
        assert 20 < error.sqnr_db < 70 and error.cumulative_sqnr_db > 10, error
        assert error.clipped_pct < 0.5  # minmax clips only what lies beyond its calibration images
        assert error.grid[0] <= 0.0 <= error.grid[1]


def test_a_clipped_range_ranks_first_and_its_files_are_written(tables: dict, fp32_onnx: Path, eval_batches: list,
                                                               tmp_path: Path) -> None:
    table = tables["minmax"]
    broken = "/layer1/Relu_output_0"  # layer1.conv1 -> ReLU, read by layer1.conv2 alone
    low, high = table.ranges[broken]
    clipped = dataclasses.replace(table, ranges={**table.ranges, broken: (low * 0.05, high * 0.05)})
    model, _ = QdqQuantizer(fp32_onnx, clipped, flavour="onnxruntime").build()
    layers = build_layer_report(fp32_onnx, model, "onnxruntime", [images for images, _ in eval_batches])
    worst = layers.tensors[0]
    assert worst.tensor == broken and worst.clipped_pct > 10 and worst.sqnr_db < 15
    ranking = layers.node_ranking([node for error in layers.tensors for node in error.consumers])
    assert ranking[0][0] in worst.consumers
    written = write_layer_reports(tmp_path, {"onnxruntime-int8": layers})
    assert [path.name for path in written] == ["layer_report.md", "layer_report.json", "layer_report.png"]
    record = json.loads((tmp_path / "layer_report.json").read_text())
    assert record["onnxruntime-int8"]["tensors"][0]["tensor"] == broken
    assert f"`{broken}`" in (tmp_path / "layer_report.md").read_text().split("| 1 |")[1].split("\n")[0]
    png = (tmp_path / "layer_report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000  # a drawn figure, not an empty canvas
