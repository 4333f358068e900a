"""The accuracy gate: paired against FP32, pass within budget, fall back to float layers, or fail loudly."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeresnet.accuracy import Accuracy, AccuracyCounter
from edgeresnet.calibration import apply_accuracy_gate, check_tensorrt_rules, evaluate_onnx, inspect_qdq
from edgeresnet.errors import AccuracyGateError, CalibrationError, ExportError


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


def test_gate_passes_within_budget(tables: dict, fp32_onnx: Path, eval_batches: list,
                                   tmp_path: Path) -> None:
    out = tmp_path / "model.int8.onnx"
    result = apply_accuracy_gate(fp32_onnx, tables["entropy"], out, flavour="onnxruntime", eval_batches=eval_batches,
                                 max_drop_points=3.0)
    assert result.drop_points <= 3.0 and result.float_nodes == () and result.steps == ()
    assert result.report.path == str(out) and inspect_qdq(out)["float_nodes"] == []
    assert result.drop_points == pytest.approx(result.fp32.top1 - result.int8.top1)


def test_gate_record_is_in_percent(tables: dict, fp32_onnx: Path, eval_batches: list,
                                   tmp_path: Path) -> None:
    result = apply_accuracy_gate(fp32_onnx, tables["entropy"], tmp_path / "model.int8.onnx", flavour="onnxruntime",
                                 eval_batches=eval_batches, max_drop_points=3.0)
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
                                         tmp_path: Path, flavour: str,
                                         broken_tensor: str, expected_float: set) -> None:
    table = tables["entropy"]
    low, high = table.ranges[broken_tensor]
    broken = dataclasses.replace(table, ranges={**table.ranges, broken_tensor: (low * 0.01, high * 0.01)})
    out = tmp_path / f"{flavour}.onnx"
    result = apply_accuracy_gate(fp32_onnx, broken, out, flavour=flavour, eval_batches=eval_batches,
                                 max_drop_points=2.0)
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
                                                   tmp_path: Path) -> None:
    table = tables["minmax"]
    hopeless = dataclasses.replace(table, ranges={name: (lo * 0.01, hi * 0.01) for name, (lo, hi) in table.ranges.items()})
    out = tmp_path / "model.int8.onnx"
    with pytest.raises(AccuracyGateError, match=r"misses the accuracy budget: top-1 drop \d+\.\d\d > 1 points") as caught:
        apply_accuracy_gate(fp32_onnx, hopeless, out, flavour="tensorrt", eval_batches=eval_batches,
                            max_drop_points=1.0)
    assert "1 of 7 layers kept in float" in str(caught.value)  # TensorRT quantizes 7 of this model's layers
    assert re.search(r"FP32 top-1 \d\d\.\d\d%", str(caught.value))  # percent, not a fraction
    assert not out.exists()
    with pytest.raises(ExportError, match="max_drop_points"):
        apply_accuracy_gate(fp32_onnx, table, out, flavour="tensorrt", eval_batches=eval_batches,
                            max_drop_points=-1)


def test_gate_records_the_paired_comparison(tables: dict, fp32_onnx: Path, eval_batches: list, tmp_path: Path) -> None:
    from edgeresnet.accuracy import compare_paired
    from edgeresnet.calibration.session import BatchSession

    out = tmp_path / "model.int8.onnx"
    result = apply_accuracy_gate(fp32_onnx, tables["minmax"], out, flavour="onnxruntime", eval_batches=eval_batches,
                                 max_drop_points=3.0)
    labels = np.concatenate([labels for _, labels in eval_batches])
    images = np.concatenate([images for images, _ in eval_batches])
    expected = compare_paired(labels, BatchSession(fp32_onnx).logits(images), BatchSession(out).logits(images))
    assert result.comparison == expected and result.comparison.images == 512
    record = result.to_dict()
    assert record["comparison"] == expected.to_dict()
    assert record["drop_ci95_points"] == expected.to_dict()["drop_ci95_points"]
    low, high = record["drop_ci95_points"]
    assert low <= record["drop_points"] <= high and high - low > 0.1  # 512 images: never a zero-width interval


def test_budget_the_data_cannot_resolve_is_stated_in_one_line(tables: dict, fp32_onnx: Path, eval_batches: list,
                                                              tmp_path: Path) -> None:
    few = [(eval_batches[0][0][:100], eval_batches[0][1][:100])]
    result = apply_accuracy_gate(fp32_onnx, tables["minmax"], tmp_path / "a.onnx", flavour="onnxruntime",
                                 eval_batches=few, max_drop_points=1.0)
    warning = result.resolution_warning
    assert warning is not None and warning.startswith("100 evaluation images cannot resolve a 1.0-point budget: ")
    assert "\n" not in warning and result.to_dict()["warning"] == warning
    wide = apply_accuracy_gate(fp32_onnx, tables["minmax"], tmp_path / "b.onnx", flavour="onnxruntime",
                               eval_batches=eval_batches, max_drop_points=50.0)
    assert wide.resolution_warning is None and wide.to_dict()["resolves_budget"] is True


def test_strict_gate_judges_the_interval_not_the_estimate(tables: dict, fp32_onnx: Path, eval_batches: list,
                                                         tmp_path: Path) -> None:
    loose = apply_accuracy_gate(fp32_onnx, tables["minmax"], tmp_path / "loose.onnx", flavour="onnxruntime",
                                eval_batches=eval_batches, max_drop_points=1.0)
    budget = max(loose.drop_points, 0.0) + 0.05  # the estimate passes; the interval's upper end cannot
    assert loose.comparison.drop_ci95_points[1] > budget
    passed = apply_accuracy_gate(fp32_onnx, tables["minmax"], tmp_path / "again.onnx", flavour="onnxruntime",
                                 eval_batches=eval_batches, max_drop_points=budget)
    assert passed.float_nodes == () and not passed.strict
    out = tmp_path / "strict.onnx"
    with pytest.raises(AccuracyGateError, match="upper end of the drop's 95% interval"):
        apply_accuracy_gate(fp32_onnx, tables["minmax"], out, flavour="onnxruntime", eval_batches=eval_batches,
                            max_drop_points=budget, strict=True, max_float_fraction=0.0)
    assert not out.exists()
