"""Where a file → label call spends its time: the runtime's own steps, timed one by one (part of e2e_latency.py).

``Classifier.predict(path)`` runs, in this order: the one decoder (``decoding.open_image``: header,
reduced-size JPEG decoding, EXIF orientation, mode), ``PreprocessSpec.to_channels`` (colour),
``PreprocessSpec.resize_and_crop`` (one Pillow call: the center crop is the box the resize reads),
``to_array`` (the copy out of Pillow's storage), the batch (a view for one image), the normalisation
(in the model where the backend does it, else ``PreprocessSpec.normalise`` in numpy) and the backend call.
Each is timed here by calling those same functions in that order; beside them, the decode floor (Pillow
alone decoding that file: ``open`` + ``load``, reduced-size where the runtime reduces) and what the call
adds around its steps (checks, softmax, ranking) as the end-to-end p50 less the steps' sum.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from edgeresnet.data import decoding
from edgeresnet.data.preprocessing import PreprocessSpec, to_array

STAGES = ("decode", "colour", "resize_and_crop", "copy_out_of_pillow", "batch", "normalise_numpy", "backend_call")
STAGE_TITLES = {
    "decode_floor": "decode floor: Pillow alone (`open` + `load`) on the same file",
    "decode": "decode (the one decoder: header, draft, EXIF, mode)",
    "colour": "colour (to the spec's channels)",
    "resize_and_crop": "resize + center crop (one Pillow call, the crop is its box)",
    "copy_out_of_pillow": "copy out of Pillow (uint8 H×W×C)",
    "batch": "batch (a view for one image)",
    "normalise_numpy": "float + normalise in numpy (0 where the model does it)",
    "backend_call": "backend call (in-model normalisation included)",
}


def pillow_decode(path: Path, draft: tuple[int, int] | None = None) -> None:
    """Pillow alone decoding a file: the floor no decoder built on it can go below (draft: reduced size)."""
    with Image.open(path) as image:
        if draft is not None:
            image.draft("RGB", draft)
        image.load()


def split_once(classifier: Any, path: Path) -> dict[str, float]:
    """One file → logits through the runtime's steps, each timed (seconds)."""
    spec: PreprocessSpec = classifier.spec
    clock = time.perf_counter
    marks = [clock()]
    image = decoding.open_image(path, spec.draft_size)
    marks.append(clock())
    coloured = spec.to_channels(image)
    marks.append(clock())
    resized = spec.resize_and_crop(coloured)
    marks.append(clock())
    pixels = to_array(resized)
    marks.append(clock())
    batch = pixels[None]
    marks.append(clock())
    if classifier.runner.preprocesses_in_model:
        marks.append(clock())
        classifier.logits_from_pixels(batch)
    else:
        inputs = spec.normalise(batch)
        marks.append(clock())
        classifier.logits(inputs)
    marks.append(clock())
    return {stage: marks[k + 1] - marks[k] for k, stage in enumerate(STAGES)}


def measure_split(classifier: Any, paths: list[Path], floor: Callable[[Path], object], seconds: float,
                  min_runs: int) -> dict[str, float]:
    """Per stage, the p50 (ms) over repeated passes through ``paths`` in turn, with the decode floor interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in ("decode_floor", *STAGES)}
    cycle = _cycle(paths)
    for _ in range(3):  # warm-up: file cache, compiled pixel model
        split_once(classifier, paths[0])
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        runs = 0
        while runs < min_runs or time.perf_counter() - started < seconds:
            path = next(cycle)
            begin = time.perf_counter()
            floor(path)
            samples["decode_floor"].append(time.perf_counter() - begin)
            for stage, spent in split_once(classifier, path).items():
                samples[stage].append(spent)
            runs += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return {stage: 1000.0 * statistics.median(values) for stage, values in samples.items()}


def summarise(per_round: list[dict[str, float]], end_to_end_ms: float, model_ms: float) -> dict[str, Any]:
    """Median over rounds of each stage's p50, their sum, and what the call adds around them.

    ``beyond_floor_ms`` splits the end-to-end time above (model-only + decode floor): the decoder's
    own cost above Pillow's, the preprocessing steps, the backend call above the float model-only call
    (in-model normalisation, the uint8 input) and the rest of the call.
    """
    stages = {name: statistics.median(r[name] for r in per_round) for name in per_round[0]}
    steps = sum(stages[name] for name in STAGES)
    rest = end_to_end_ms - steps
    beyond = {
        "decode_above_floor": stages["decode"] - stages["decode_floor"],
        "colour": stages["colour"],
        "resize_and_crop": stages["resize_and_crop"],
        "copies": stages["copy_out_of_pillow"] + stages["batch"],
        "normalise_numpy": stages["normalise_numpy"],
        "backend_above_model_only": stages["backend_call"] - model_ms,
        "rest_of_the_call": rest,
    }
    return {"stages_ms": stages, "steps_sum_ms": steps, "end_to_end_ms": end_to_end_ms,
            "rest_of_the_call_ms": rest, "beyond_model_plus_floor_ms": beyond}


def _cycle(items: list[Path]) -> Iterator[Path]:
    while True:
        yield from items

