"""`auto`: methods scored by agreement with FP32 on every image the choice may use; ties to least clipping."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edgeresnet.calibration.choice import choose_method
from edgeresnet.errors import CalibrationError
from tests.calibration.conftest import smooth_images


def test_a_badly_clipping_method_loses_on_agreement(tables: dict, fp32_onnx: Path) -> None:
    images, _ = smooth_images(256, seed=11)
    batches = [images[:128], images[128:]]
    minmax = tables["minmax"]
    crushed = dataclasses.replace(minmax, method="entropy",
                                  ranges={name: (low * 0.2, high * 0.2) for name, (low, high) in minmax.ranges.items()})
    choice = choose_method(fp32_onnx, {"minmax": minmax, "entropy": crushed}, batches)
    assert choice.method == "minmax" and choice.decided_by == "agreement" and choice.resolved
    scores = {score.method: score for score in choice.scores}
    assert scores["minmax"].images == 256 and scores["minmax"].agreement > scores["entropy"].agreement
    assert scores["minmax"].clipped_span == 0.0 and scores["entropy"].clipped_span == pytest.approx(0.8, abs=0.01)
    assert "minmax" in choice.summary() and choice.to_dict()["scores"][0]["method"] == "minmax"


def test_identical_methods_tie_to_the_least_clipping(tables: dict, fp32_onnx: Path) -> None:
    images, _ = smooth_images(64, seed=12)
    same = dataclasses.replace(tables["minmax"], method="percentile")
    for order in (("percentile", "minmax"), ("minmax", "percentile")):
        candidates = {"minmax": tables["minmax"], "percentile": same}
        choice = choose_method(fp32_onnx, {name: candidates[name] for name in order}, [images])
        assert choice.method == "minmax" and choice.decided_by == "tie: least clipping" and not choice.resolved


def test_choice_needs_images(tables: dict, fp32_onnx: Path) -> None:
    with pytest.raises(CalibrationError, match="needs images"):
        choose_method(fp32_onnx, tables, [])
    with pytest.raises(CalibrationError, match="at least one"):
        choose_method(fp32_onnx, {}, [np.zeros((1, 1, 28, 28), dtype=np.float32)])
