"""The accuracy gate: pass within budget, fall back to float layers, or fail loudly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from edgeresnet.calibration import apply_accuracy_gate, check_tensorrt_rules, evaluate_onnx, inspect_qdq

from edgeresnet.errors import AccuracyGateError, ExportError


def test_evaluate_onnx(fp32_onnx: Path, eval_batches: list) -> None:
    accuracy = evaluate_onnx(fp32_onnx, eval_batches)
    assert accuracy.n == 512 and 0.8 < accuracy.top1 <= accuracy.top5 <= 1.0


def test_gate_passes_within_budget(tables: dict, fp32_onnx: Path, eval_batches: list, sensitivity_batches: list,
                                   tmp_path: Path) -> None:
    out = tmp_path / "model.int8.onnx"
    result = apply_accuracy_gate(fp32_onnx, tables["entropy"], out, flavour="onnxruntime", eval_batches=eval_batches,
                                 max_drop_points=3.0, sensitivity_batches=sensitivity_batches)
    assert result.drop_points <= 3.0 and result.float_nodes == () and result.steps == ()
    assert result.report.path == str(out) and inspect_qdq(out)["float_nodes"] == []


@pytest.mark.parametrize(
    ("flavour", "broken_tensor", "expected_float"),
    [
        # ORT: the stem's fused ReLU output is quantized once, as MaxPool's input.
        ("onnxruntime", "/stem/stem.2/Relu_output_0", {"/pool/MaxPool"}),
        # TensorRT: MaxPool's output feeds layer1's conv1 and its residual Add, each with its own pair.
        ("tensorrt", "/pool/MaxPool_output_0", {"/layer1/conv1/Conv", "/layer1/Add"}),
    ],
)
def test_gate_falls_back_to_float_layers(tables: dict, fp32_onnx: Path, eval_batches: list,
                                         sensitivity_batches: list, tmp_path: Path, flavour: str,
                                         broken_tensor: str, expected_float: set) -> None:
    table = tables["entropy"]
    low, high = table.ranges[broken_tensor]
    broken = dataclasses.replace(table, ranges={**table.ranges, broken_tensor: (low * 0.01, high * 0.01)})
    out = tmp_path / f"{flavour}.onnx"
    result = apply_accuracy_gate(fp32_onnx, broken, out, flavour=flavour, eval_batches=eval_batches,
                                 max_drop_points=2.0, sensitivity_batches=sensitivity_batches)
    assert result.fp32.top1 - result.int8_all_quantized.top1 > 0.2  # the broken range really hurts
    assert set(result.float_nodes) == expected_float
    assert result.drop_points <= 2.0 and result.fallback_cost_points > 20
    assert [step.node for step in result.steps] == list(result.float_nodes)
    assert {node for node, _ in result.sensitivity[: len(expected_float)]} == expected_float
    assert set(result.report.excluded_nodes) == expected_float
    assert json.loads(json.dumps(result.to_dict()))["report"]["excluded_nodes"] == list(result.float_nodes)
    if flavour == "tensorrt":
        assert check_tensorrt_rules(out, float_nodes=result.float_nodes) == []


def test_gate_raises_when_the_budget_cannot_be_met(tables: dict, fp32_onnx: Path, eval_batches: list,
                                                   sensitivity_batches: list, tmp_path: Path) -> None:
    table = tables["minmax"]
    hopeless = dataclasses.replace(table, ranges={name: (lo * 0.01, hi * 0.01) for name, (lo, hi) in table.ranges.items()})
    out = tmp_path / "model.int8.onnx"
    with pytest.raises(AccuracyGateError, match=r"misses the accuracy budget by \d+\.\d\d points") as caught:
        apply_accuracy_gate(fp32_onnx, hopeless, out, flavour="tensorrt", eval_batches=eval_batches,
                            max_drop_points=1.0, sensitivity_batches=sensitivity_batches)
    assert "2 of 9 layers kept in float" in str(caught.value)
    assert not out.exists()
    with pytest.raises(ExportError, match="max_drop_points"):
        apply_accuracy_gate(fp32_onnx, table, out, flavour="tensorrt", eval_batches=eval_batches,
                            max_drop_points=-1, sensitivity_batches=sensitivity_batches)
