"""The accuracy gate: pass within budget, fall back to float layers, or fail loudly."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeresnet.calibration import apply_accuracy_gate, check_tensorrt_rules, evaluate_onnx, inspect_qdq
from edgeresnet.errors import AccuracyGateError, CalibrationError, ExportError
from edgeresnet.evaluation import Accuracy, AccuracyCounter


def accuracies(record: Any) -> Iterator[float]:
    """Every top-1/top-5 value anywhere in a written record."""
    if isinstance(record, dict):
        for key, value in record.items():
            if key in ("top1", "top5"):
                yield value
            else:
                yield from accuracies(value)
    elif isinstance(record, list):
        for item in record:
            yield from accuracies(item)


def test_evaluate_onnx_reports_percent_like_the_shared_counter(fp32_onnx: Path, eval_batches: list) -> None:
    import onnxruntime as ort

    accuracy = evaluate_onnx(fp32_onnx, eval_batches)
    assert isinstance(accuracy, Accuracy)
    assert accuracy.images == 512 and 80.0 < accuracy.top1 <= accuracy.top5 <= 100.0
    session = ort.InferenceSession(str(fp32_onnx), providers=["CPUExecutionProvider"])
    counter = AccuracyCounter()
    for images, labels in eval_batches:
        counter.update(session.run(None, {"input": images})[0], labels)
    assert accuracy == counter.result()


def test_evaluate_onnx_refuses_bad_evaluation_data_in_one_line(fp32_onnx: Path, eval_batches: list) -> None:
    images, labels = eval_batches[0]
    with pytest.raises(CalibrationError, match="128 images but 127 labels"):
        evaluate_onnx(fp32_onnx, [(images, labels[:-1])])
    with pytest.raises(CalibrationError, match="none were given"):
        evaluate_onnx(fp32_onnx, [])
    wide = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")  # 32×32: the model takes 28×28
    with pytest.raises(CalibrationError) as caught:
        evaluate_onnx(fp32_onnx, [(wide, labels)])
    message = str(caught.value)
    assert "\n" not in message and "tiny_resnet.onnx" in message and "(128, 1, 32, 32)" in message


def test_gate_passes_within_budget(tables: dict, fp32_onnx: Path, eval_batches: list, sensitivity_batches: list,
                                   tmp_path: Path) -> None:
    out = tmp_path / "model.int8.onnx"
    result = apply_accuracy_gate(fp32_onnx, tables["entropy"], out, flavour="onnxruntime", eval_batches=eval_batches,
                                 max_drop_points=3.0, sensitivity_batches=sensitivity_batches)
    assert result.drop_points <= 3.0 and result.float_nodes == () and result.steps == ()
    assert result.report.path == str(out) and inspect_qdq(out)["float_nodes"] == []
    assert result.drop_points == pytest.approx(result.fp32.top1 - result.int8.top1)


def test_gate_record_is_in_percent(tables: dict, fp32_onnx: Path, eval_batches: list, sensitivity_batches: list,
                                   tmp_path: Path) -> None:
    result = apply_accuracy_gate(fp32_onnx, tables["entropy"], tmp_path / "model.int8.onnx", flavour="onnxruntime",
                                 eval_batches=eval_batches, max_drop_points=3.0,
                                 sensitivity_batches=sensitivity_batches)
    assert result.fp32.top1 > 80.0  # clearly more than 1 % accurate, so a fraction would show as <= 1
    record = json.loads(json.dumps(result.to_dict()))
    values = list(accuracies(record))
    assert len(values) == 6 and all(1.0 < value <= 100.0 for value in values)
    assert record["fp32"] == {"top1": round(result.fp32.top1, 4), "top5": round(result.fp32.top5, 4), "images": 512}


@pytest.mark.parametrize(
    ("flavour", "broken_tensor", "expected_float"),
    [
        # ORT: the stem's fused ReLU output is quantized once, as MaxPool's input.
        ("onnxruntime", "/stem/stem.2/Relu_output_0", {"/pool/MaxPool"}),
        # TensorRT: the stem's ReLU output is MaxPool's quantized input (layer1, 8→8 channels, stays float
        # by NVIDIA's rule, so MaxPool's output is never quantized).
        ("tensorrt", "/stem/stem.2/Relu_output_0", {"/pool/MaxPool"}),
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
    assert result.fp32.top1 - result.int8_all_quantized.top1 > 20  # points: the broken range really hurts
    assert set(result.float_nodes) == expected_float
    assert result.drop_points <= 2.0 and result.fallback_cost_points > 20
    assert [step.node for step in result.steps] == list(result.float_nodes)
    assert {node for node, _ in result.sensitivity[: len(expected_float)]} == expected_float
    assert set(result.report.excluded_nodes) == expected_float
    record = json.loads(json.dumps(result.to_dict()))
    assert record["report"]["excluded_nodes"] == list(result.float_nodes)
    assert all(1.0 < value <= 100.0 for value in accuracies(record))  # percent, steps included
    assert [step["top1"] for step in record["steps"]] == [round(step.top1, 4) for step in result.steps]
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
    assert "1 of 7 layers kept in float" in str(caught.value)  # TensorRT quantizes 7 layers of this model
    assert re.search(r"FP32 top-1 \d\d\.\d\d%", str(caught.value))  # percent, not a fraction
    assert not out.exists()
    with pytest.raises(ExportError, match="max_drop_points"):
        apply_accuracy_gate(fp32_onnx, table, out, flavour="tensorrt", eval_batches=eval_batches,
                            max_drop_points=-1, sensitivity_batches=sensitivity_batches)
