"""Recording, at export time, what in-distribution inputs look like: the manifest's ``ood`` ranges.

The FP32 ONNX model scores up to ``PROFILE_IMAGES`` class-balanced images of the data source's
calibration split: held out from training and from every accuracy figure of the export, so the
evaluation split stays free to measure the hint's false alarms (benchmarks/ood.py does).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeresnet.bundle.ood import OodProfile
from edgeresnet.data.datasource import DataSource
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.runtime.ood import PROFILE_IMAGES, build_profile


def record_ood_profile(onnx_path: Path, data: DataSource, spec: PreprocessSpec,
                       say: Callable[[str], None], *, limit: int = PROFILE_IMAGES) -> OodProfile | None:
    """The ranges of ``data``'s calibration split under the FP32 model, or None when the split is empty."""
    from edgeresnet.calibration.session import BatchSession

    split = data.split("calibration")
    if len(split) == 0:
        return None
    sample = split.balanced_sample(min(limit, len(split)))
    session = BatchSession(onnx_path)
    pixels, logits = [], []
    for batch, _ in sample.batches(spec, 250):
        pixels.append(to_pixels(batch, spec))
        logits.append(session.logits(batch))
    if not logits:
        return None
    profile = build_profile(pixels, logits, source=f"{sum(len(b) for b in logits)} images of {data.name}'s "
                                                   "calibration split")
    say(f"out-of-distribution ranges from {profile.source}")
    return profile


def to_pixels(batch: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The uint8 N×H×W×C pixels a normalised NCHW batch came from (the inverse of ``spec.normalise``)."""
    mean = np.asarray(spec.mean, np.float32)[None, :, None, None] * 255.0
    scale = np.asarray(spec.std, np.float32)[None, :, None, None] * 255.0
    return np.clip(np.rint(batch * scale + mean), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
