"""How many images INT8 calibration, method choice and evaluation use, decided from what the data holds.

A default must work on the data the user has, from a few hundred images to ImageNet size, so no count
here is a fixed number the data must reach. The one refusal is a calibration split below
:data:`MIN_CALIBRATION_IMAGES`. Every count and the rule that produced it is stated in the export's
output and recorded in the manifest (``calibration.plan``).

- Calibration: every image of the calibration split up to :data:`DEFAULT_CALIBRATION_IMAGES`,
  class-balanced. Post-training quantization of ResNets saturates at a few hundred images
  (TensorRT and NNCF both default to about 300-500); more only costs time.
- Method choice (``auto``): every image of the calibration split up to
  :data:`MAX_SELECTION_IMAGES`, the calibration sample included. The score is agreement with the
  FP32 model's own predictions, which needs no labels; the alternative, a held-out rest of the split,
  is 11 images on a 1,400-image folder: a choice made on 11 images is not a choice. The evaluation
  split is never used, so the accuracy claimed for the chosen method stays unbiased.
- Evaluation: the whole evaluation split (or ``--eval-limit`` of it); when it is too small to resolve
  the accuracy budget the gate says so rather than refusing (see gate.py).

An explicit ``--calib-size`` larger than the split is refused, not clamped: a user who asked for a
number should not get a table built from another one without noticing, and omitting the option gives
"all of the split" already.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgeresnet.errors import CalibrationError

DEFAULT_CALIBRATION_IMAGES = 512
MAX_SELECTION_IMAGES = 2000
# Below ~20 images a range is set by individual images' extremes rather than by the distribution: the
# percentile tail (0.001% of the values) is under one image's worth of pixels, and a class-balanced
# sample of a 10-class model has one or two images per class.
MIN_CALIBRATION_IMAGES = 20


@dataclass(frozen=True)
class DataPlan:
    """The image counts one INT8 export uses, and why (``rule`` texts are shown to the user)."""

    calibration_split: int
    calibration_images: int
    calibration_rule: str
    selection_images: int
    selection_rule: str
    evaluation_images: int
    evaluation_rule: str
    requested_calibration_images: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """One line per decision, for the export's progress output."""
        return [
            f"calibration: {self.calibration_images} images ({self.calibration_rule})",
            f"method choice: {self.selection_images} images ({self.selection_rule})",
            f"evaluation: {self.evaluation_images} images ({self.evaluation_rule})",
        ]


def plan_data(
    calibration_split: int,
    evaluation_split: int,
    *,
    requested_calibration: int | None = None,
    eval_limit: int | None = None,
    data_name: str = "the data",
) -> DataPlan:
    """The counts for a calibration split and an evaluation split of the given sizes.

    Raises:
        CalibrationError: the calibration split is under the minimum, or an explicit request exceeds it.
    """
    if calibration_split < MIN_CALIBRATION_IMAGES:
        raise CalibrationError(
            f"the calibration split of {data_name} has {calibration_split} images; INT8 calibration needs at "
            f"least {MIN_CALIBRATION_IMAGES} (fewer set ranges by single images' extremes): give a folder with "
            f"about {MIN_CALIBRATION_IMAGES * 10} images or more (10% of a folder is its calibration split)"
        )
    if requested_calibration is not None:
        if requested_calibration < 1:
            raise CalibrationError(f"--calib-size must be at least 1, got {requested_calibration}")
        if requested_calibration > calibration_split:
            raise CalibrationError(
                f"--calib-size {requested_calibration} is larger than the calibration split of {data_name} "
                f"({calibration_split} images); omit --calib-size to use all of them"
            )
        calibration, calibration_rule = requested_calibration, "--calib-size"
    elif calibration_split <= DEFAULT_CALIBRATION_IMAGES:
        calibration = calibration_split
        calibration_rule = f"the whole calibration split; the default takes up to {DEFAULT_CALIBRATION_IMAGES}"
    else:
        calibration = DEFAULT_CALIBRATION_IMAGES
        calibration_rule = f"class-balanced default, of a {calibration_split}-image calibration split"
    selection = min(calibration_split, MAX_SELECTION_IMAGES)
    selection_rule = ("every calibration-split image, scored by agreement with FP32"
                      if selection == calibration_split
                      else f"{MAX_SELECTION_IMAGES} class-balanced calibration-split images, scored by agreement "
                           "with FP32")
    if eval_limit is not None and eval_limit < evaluation_split:
        evaluation, evaluation_rule = eval_limit, f"--eval-limit, of a {evaluation_split}-image evaluation split"
    else:
        evaluation, evaluation_rule = evaluation_split, "the whole evaluation split, never used for calibration"
    return DataPlan(
        calibration_split=calibration_split, calibration_images=calibration, calibration_rule=calibration_rule,
        selection_images=selection, selection_rule=selection_rule, evaluation_images=evaluation,
        evaluation_rule=evaluation_rule, requested_calibration_images=requested_calibration,
    )
