"""Where a file → label call spends its time: the runtime's own steps, timed one by one (part of e2e_latency.py).

``Classifier.predict(path)`` runs, in this order: the one decoder (``decoding.open_image``: header,
reduced-size JPEG decoding, EXIF orientation, mode), ``PreprocessSpec.to_channels`` (colour),
``PreprocessSpec.resize_and_crop`` (the center crop is the box the resize reads; its two bands side by side
on the classifier's resize thread; the uint8 array out of Pillow included), the batch (a view for one image),
the normalisation (in the model where the backend does it, else ``PreprocessSpec.normalise`` in numpy), the
out-of-distribution hint's pixel statistics, the backend call, and the hint's verdicts (energy), where the
bundle carries a profile (``edgeresnet.runtime.ood``).
Each is timed here by calling those same functions in that order. In the same loop, call by call, run the
decode floor (Pillow alone decoding that file: ``open`` + ``load``, reduced-size where the runtime reduces),
model-only (a preprocessed float32 tensor through ``Classifier.predict``) and the whole ``Classifier.predict``
of the file, so that "the rest of the call" (checks, softmax, ranking, records) is the whole call less its
steps measured side by side, not across time windows on a host whose speed drifts.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeresnet.data import decoding
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.runtime.ood import check_batch, pixel_features

STAGES = ("decode", "colour", "resize_and_crop", "batch", "normalise_numpy", "ood_pixels", "backend_call", "ood_verdict")
# Timed in the same loop as the stages, beside them.
PAIRED = ("decode_floor", "model_only", "end_to_end")
STAGE_TITLES = {
    "decode_floor": "decode floor: Pillow alone (`open` + `load`) on the same file",
    "decode": "decode (the one decoder: header, draft, EXIF, mode)",
    "colour": "colour (to the spec's channels)",
    "resize_and_crop": "resize + center crop (four bands shared with the resize thread, uint8 H×W×C out)",
    "batch": "batch (a view for one image)",
    "normalise_numpy": "float + normalise in numpy (0 where the model does it)",
    "ood_pixels": "out-of-distribution hint: pixel statistics (before the model call)",
    "backend_call": "backend call (in-model normalisation included)",
    "ood_verdict": "out-of-distribution hint: energy and verdicts",
}


def pillow_decode(path: Path, draft: tuple[int, int] | None = None) -> None:
    """Pillow alone decoding a file: the floor no decoder built on it can go below (draft: reduced size)."""
    with Image.open(path) as image:
        if draft is not None:
            image.draft("RGB", draft)
        image.load()


def split_once(classifier: Any, path: Path) -> dict[str, float]:
    """One file → logits and the hint through the runtime's steps, each timed (seconds)."""
    spec: PreprocessSpec = classifier.spec
    clock = time.perf_counter
    marks = [clock()]
    image = decoding.open_image(path, spec.draft_size)
    marks.append(clock())
    coloured = spec.to_channels(image)
    marks.append(clock())
    pixels = spec.resize_and_crop(coloured, classifier.resize_pool)
    marks.append(clock())
    batch = pixels[None]
    marks.append(clock())
    inputs = None if classifier.runner.preprocesses_in_model else spec.normalise(batch)
    marks.append(clock())
    profile = classifier.ood_profile
    features = pixel_features(batch) if profile is not None else None
    marks.append(clock())
    logits = classifier.logits_from_pixels(batch) if inputs is None else classifier.logits(inputs)
    marks.append(clock())
    if profile is not None:
        check_batch(profile, batch, logits, features)
    marks.append(clock())
    return {stage: marks[k + 1] - marks[k] for k, stage in enumerate(STAGES)}


def measure_split(classifier: Any, paths: list[Path], floor: Callable[[Path], object], tensor: np.ndarray,
                  seconds: float, min_runs: int) -> dict[str, float]:
    """Per stage and paired call, the p50 (ms) over repeated passes through ``paths`` in turn, all in one loop."""
    samples: dict[str, list[float]] = {name: [] for name in (*PAIRED, *STAGES)}
    cycle = _cycle(paths)
    paired: dict[str, Callable[[Path], object]] = {
        "decode_floor": floor,
        "model_only": lambda _: classifier.predict(tensor, top_k=1),
        "end_to_end": lambda path: classifier.predict(path, top_k=1),
    }
    for _ in range(3):  # warm-up: file cache, compiled pixel model
        split_once(classifier, paths[0])
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        runs = 0
        while runs < min_runs or time.perf_counter() - started < seconds:
            path = next(cycle)
            for name, call in paired.items():
                begin = time.perf_counter()
                call(path)
                samples[name].append(time.perf_counter() - begin)
            for stage, spent in split_once(classifier, path).items():
                samples[stage].append(spent)
            runs += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return {stage: 1000.0 * statistics.median(values) for stage, values in samples.items()}


def summarise(per_round: list[dict[str, float]]) -> dict[str, Any]:
    """Median over rounds of each p50, the steps' sum, and where the call's time above (model + floor) goes.

    ``beyond_floor_ms`` splits the end-to-end time above (model-only + decode floor), all from the same
    loop: the decoder's own cost above Pillow's, the preprocessing steps, the backend call above the float
    model-only call (in-model normalisation, the uint8 input, a model called after other work), the hint
    and the rest of the call.
    """
    stages = {name: statistics.median(r[name] for r in per_round) for name in per_round[0]}
    steps = sum(stages[name] for name in STAGES)
    end_to_end, model, floor = stages["end_to_end"], stages["model_only"], stages["decode_floor"]
    rest = end_to_end - steps
    beyond = {
        "decode_above_floor": stages["decode"] - floor,
        "colour": stages["colour"],
        "resize_and_crop": stages["resize_and_crop"],
        "batch": stages["batch"],
        "normalise_numpy": stages["normalise_numpy"],
        "backend_above_model_only": stages["backend_call"] - model,
        "ood_hint": stages["ood_pixels"] + stages["ood_verdict"],
        "rest_of_the_call": rest,
    }
    return {"stages_ms": stages, "steps_sum_ms": steps, "end_to_end_ms": end_to_end,
            "paired_over_model_plus_floor": end_to_end / (model + floor),
            "rest_of_the_call_ms": rest, "beyond_model_plus_floor_ms": beyond}


def _cycle(items: list[Path]) -> Iterator[Path]:
    while True:
        yield from items
