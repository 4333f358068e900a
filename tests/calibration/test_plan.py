"""How many images calibration, method choice and evaluation use, from what the data holds."""

from __future__ import annotations

import pytest

from edgeresnet.calibration.plan import (
    DEFAULT_CALIBRATION_IMAGES,
    MAX_SELECTION_IMAGES,
    MIN_CALIBRATION_IMAGES,
    plan_data,
)
from edgeresnet.errors import CalibrationError


@pytest.mark.parametrize(
    ("split", "calibration", "selection"),
    [
        (30, 30, 30),  # a 300-image folder: everything its calibration split holds
        (139, 139, 139),  # the 1,400-image folder of issue 8, where a fixed 512 used to be refused
        (150, 150, 150),
        (6_000, DEFAULT_CALIBRATION_IMAGES, MAX_SELECTION_IMAGES),  # Fashion-MNIST's calibration split
        (128_117, DEFAULT_CALIBRATION_IMAGES, MAX_SELECTION_IMAGES),  # ImageNet-size
    ],
)
def test_default_counts_adapt_to_the_split(split: int, calibration: int, selection: int) -> None:
    plan = plan_data(split, 10_000)
    assert (plan.calibration_images, plan.selection_images, plan.evaluation_images) == (calibration, selection, 10_000)
    assert plan.to_dict()["calibration_split"] == split and plan.requested_calibration_images is None
    assert len(plan.lines()) == 3 and f"calibration: {calibration} images" in plan.lines()[0]


def test_eval_limit_and_explicit_size_are_recorded() -> None:
    plan = plan_data(600, 10_000, requested_calibration=100, eval_limit=300)
    assert (plan.calibration_images, plan.evaluation_images) == (100, 300)
    assert plan.calibration_rule == "--calib-size" and "--eval-limit" in plan.evaluation_rule


def test_the_minimum_is_the_only_refusal_and_says_why() -> None:
    plan_data(MIN_CALIBRATION_IMAGES, 20)
    with pytest.raises(CalibrationError, match=f"has 19 images; INT8 calibration needs at least {MIN_CALIBRATION_IMAGES}"):
        plan_data(MIN_CALIBRATION_IMAGES - 1, 1_000, data_name="x")


def test_an_explicit_size_beyond_the_split_is_refused_not_clamped() -> None:
    with pytest.raises(CalibrationError, match="--calib-size 512 is larger than the calibration split of f "
                                               r"\(139 images\); omit --calib-size"):
        plan_data(139, 139, requested_calibration=512, data_name="f")
