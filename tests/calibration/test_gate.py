"""The accuracy gate: paired against FP32, a verdict from the interval, fall back to float layers, or refuse."""

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
from edgeresnet.calibration.gate import GateRefused, gate_verdict, publishable, resolution_warning
from edgeresnet.errors import AccuracyGateError, CalibrationError, ExportError
from edgeresnet.evaluation import Accuracy, AccuracyCounter, PairedComparison


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
    with pytest.raises(AccuracyGateError, match=r"over the accuracy budget .*: the drop's 95% interval, "
                       r"\+\d+\.\d\d to \+\d+\.\d\d points, lies above the 1-point budget") as caught:
        apply_accuracy_gate(fp32_onnx, hopeless, out, flavour="tensorrt", eval_batches=eval_batches,
                            max_drop_points=1.0)
    assert "1 of 7 layers kept in float" in str(caught.value)  # TensorRT quantizes 7 of this model's layers
    assert re.search(r"FP32 top-1 \d\d\.\d\d%", str(caught.value))  # percent, not a fraction
    assert caught.value.refusal.verdict == "over" and caught.value.refusal.comparison.drop_ci95_points[0] > 1.0
    assert not out.exists()
    with pytest.raises(ExportError, match="max_drop_points"):
        apply_accuracy_gate(fp32_onnx, table, out, flavour="tensorrt", eval_batches=eval_batches,
                            max_drop_points=-1)


def test_gate_records_the_paired_comparison(tables: dict, fp32_onnx: Path, eval_batches: list, tmp_path: Path) -> None:
    from edgeresnet.calibration.session import BatchSession
    from edgeresnet.evaluation import compare_paired

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


def _comparison(low: float, high: float, drop: float) -> PairedComparison:
    return PairedComparison(images=100, reference_top1=90.0, candidate_top1=90.0 - drop, drop_points=drop,
                            drop_ci95_points=(low, high), agreement_pct=95.0, reference_only=3, candidate_only=2)


@pytest.mark.parametrize(
    ("low", "high", "drop", "verdict"),
    [
        (-0.5, 1.0, 0.2, "within"),  # the upper end on the budget is within it
        (-0.5, 0.9, 0.2, "within"),
        (-0.5, 1.1, 0.2, "unresolved"),  # a small estimate does not make a straddling interval within
        (-8.4, 16.7, 3.3, "unresolved"),  # the 30-image case: one flipped image is not evidence
        (1.0, 3.0, 2.0, "unresolved"),  # the lower end on the budget: not shown to be over
        (1.01, 3.0, 2.0, "over"),
    ],
)
def test_verdict_is_where_the_interval_lies_against_the_budget(low: float, high: float, drop: float,
                                                                verdict: str) -> None:
    comparison = _comparison(low, high, drop)
    assert gate_verdict(comparison, 1.0) == verdict
    assert publishable(verdict, strict=False) == (verdict != "over")  # type: ignore[arg-type]
    assert publishable(verdict, strict=True) == (verdict == "within")  # type: ignore[arg-type]
    assert (resolution_warning(comparison, 1.0) is not None) == (verdict == "unresolved")


def _broken(table: Any, factor: float) -> Any:
    tensor = "/stem/stem.2/Relu_output_0"
    low, high = table.ranges[tensor]
    return dataclasses.replace(table, ranges={**table.ranges, tensor: (low * factor, high * factor)})


def test_unresolved_ships_without_fallback_and_the_strict_gate_refuses_it(tables: dict, fp32_onnx: Path,
                                                                         eval_batches: list, tmp_path: Path) -> None:
    # 40 images and a stem range cut to 30%: the estimate is over 1 point, the interval straddles it.
    few = [(eval_batches[0][0][:40], eval_batches[0][1][:40])]
    table = _broken(tables["entropy"], 0.3)
    out = tmp_path / "default.onnx"
    result = apply_accuracy_gate(fp32_onnx, table, out, flavour="onnxruntime", eval_batches=few, max_drop_points=1.0)
    low, high = result.comparison.drop_ci95_points
    assert result.drop_points > 1.0 and low < 1.0 < high
    assert result.verdict == "unresolved" and result.float_nodes == () and result.steps == () and out.exists()
    record = result.to_dict()
    assert record["verdict"] == "unresolved" and record["resolves_budget"] is False
    assert record["warning"].startswith("40 evaluation images cannot resolve a 1.0-point budget: ")

    strict_out = tmp_path / "strict.onnx"
    with pytest.raises(GateRefused) as caught:
        apply_accuracy_gate(fp32_onnx, table, strict_out, flavour="onnxruntime", eval_batches=few,
                            max_drop_points=1.0, strict=True, max_float_fraction=0.0)
    refusal = caught.value.refusal
    assert refusal.verdict == "unresolved" and refusal.strict and not strict_out.exists()
    message = str(caught.value)
    assert "not shown within the accuracy budget (strict gate)" in message and "strict_gate=" in message
    assert "--" not in message and "\n" not in message
    assert "--strict-gate" in refusal.describe(cli=True) and "strict_gate=" not in refusal.describe(cli=True)


def test_refusal_names_keyword_arguments_in_python_and_flags_on_the_command_line(
        tables: dict, fp32_onnx: Path, eval_batches: list, tmp_path: Path) -> None:
    with pytest.raises(GateRefused) as caught:
        apply_accuracy_gate(fp32_onnx, _broken(tables["entropy"], 0.05), tmp_path / "m.onnx", flavour="onnxruntime",
                            eval_batches=eval_batches, max_drop_points=1.0, max_float_fraction=0.0)
    python = str(caught.value)
    assert python.startswith("INT8 onnxruntime model is over the accuracy budget")
    assert "max_accuracy_drop=" in python and "calib_method=" in python and "--" not in python
    cli = caught.value.refusal.describe(cli=True)
    assert "--max-accuracy-drop" in cli and "--calib-method" in cli and "max_accuracy_drop=" not in cli
    assert caught.value.refusal.to_dict()["verdict"] == "over"
