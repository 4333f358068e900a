"""File → label timing: what an app waits for, beside the model-only rows.

Every step is the runtime's own: :func:`edgeresnet.data.decoding.open_image` (reduced-size JPEG
decoding, EXIF orientation, modes), ``PreprocessSpec.pixels`` (resize and crop), then the model through
``Runner.infer_pixels``, which normalises inside the model where the backend can (OpenVINO) and with
``PreprocessSpec.normalise`` otherwise. A call's time is split into decode, preprocess (resize, crop
and any numpy normalisation) and inference. Throughput comes from ``Classifier.predict_iter``, which
overlaps decoding in a thread pool with inference, as an app classifying a folder would.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeresnet.bench.latency import LatencyStats, latency_stats, should_stop
from edgeresnet.bench.rows import FILE_MEASURE, BenchmarkRow
from edgeresnet.data.decoding import DECODE_ERRORS, open_image
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import DatasetError
from edgeresnet.runtime.base import Runner


@dataclass(frozen=True)
class FileTiming:
    """File → label latency of one batch size, its mean split into steps, and pipelined throughput."""

    latency: LatencyStats
    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    pipelined_ips: float
    images: int  # decodable files used


def decodable_files(files: Sequence[Path], spec: PreprocessSpec) -> list[Path]:
    """The files that decode (each decoded once, which also warms the file cache); DatasetError if none."""
    usable = []
    for path in files:
        try:
            open_image(path, spec.draft_size)
        except DECODE_ERRORS:
            continue
        usable.append(path)
    if not usable:
        raise DatasetError(f"none of the {len(files)} --images files can be decoded")
    return usable


def time_one_call(runner: Runner, spec: PreprocessSpec, batch: Sequence[Path]) -> tuple[float, float, float]:
    """(decode, preprocess, inference) seconds of classifying ``batch`` files once."""
    clock = time.perf_counter
    start = clock()
    images = [open_image(path, spec.draft_size) for path in batch]
    decoded = clock()
    pixels = np.stack([spec.pixels(image) for image in images])
    if runner.preprocesses_in_model:
        prepared = clock()
        runner.infer_pixels(pixels, spec)
    else:
        inputs = spec.normalise(pixels)
        prepared = clock()
        runner.infer(inputs)
    done = clock()
    return decoded - start, prepared - decoded, done - prepared


def measure_files(
    runner: Runner,
    spec: PreprocessSpec,
    labels: Sequence[str],
    files: Sequence[Path],
    batch_size: int,
    *,
    warmup: int,
    min_runs: int,
    min_time_s: float,
    max_time_s: float,
) -> FileTiming:
    """Time file → label calls of ``batch_size`` files (cycling through ``files``), then a pipelined pass."""
    from edgeresnet.runtime.classifier import Classifier

    batches = _batches(files, batch_size)
    for _ in range(warmup):
        time_one_call(runner, spec, next(batches))
    steps: list[tuple[float, float, float]] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while True:
            steps.append(time_one_call(runner, spec, next(batches)))
            if should_stop(len(steps), time.perf_counter() - start, min_runs=min_runs, min_time_s=min_time_s,
                           max_time_s=max_time_s):
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    split = np.asarray(steps) * 1000.0
    # A classifier around the already-open runner (not closed here: the benchmark owns the runner).
    classifier = Classifier(runner, spec, labels)
    stream = list(itertools.islice(itertools.cycle(files), max(len(files), 4 * batch_size)))
    started = time.perf_counter()
    for result in classifier.predict_iter(stream, batch_size=batch_size, top_k=1):
        if result.error is not None:
            raise DatasetError(f"{result.path}: {result.error}")
    pipelined = len(stream) / (time.perf_counter() - started)
    return FileTiming(
        latency=latency_stats(split.sum(axis=1), batch_size),
        decode_ms=float(split[:, 0].mean()),
        preprocess_ms=float(split[:, 1].mean()),
        inference_ms=float(split[:, 2].mean()),
        pipelined_ips=pipelined,
        images=len(files),
    )


def _batches(files: Sequence[Path], batch_size: int) -> itertools.cycle[list[Path]]:
    """Consecutive batches of ``batch_size`` files, wrapping around the list."""
    ring = itertools.cycle(files)
    count = max(1, len(files) // batch_size) if len(files) >= batch_size else 1
    return itertools.cycle([list(itertools.islice(ring, batch_size)) for _ in range(count)])


def file_rows(runner: Runner, artifact: Any, model_rows: list[BenchmarkRow], image_files: Sequence[Path],
              job: Any, bar: Any, describe_error: Callable[[BaseException, Any], str]) -> list[BenchmarkRow]:
    """The file → label row beside each model-only row; a failure is that row's ``error``."""
    rows = []
    try:
        files = decodable_files(image_files, artifact.preprocessing)
    except Exception as error:  # noqa: BLE001  (recorded in the rows)
        files, problem = [], describe_error(error, artifact)
    for model_row in model_rows:
        row = dataclasses.replace(model_row, measure=FILE_MEASURE, error=None, input_images=len(files) or None,
                                  peak_memory_bytes=None)
        row = row.with_latency(None)
        bar.set_description_str(f"{artifact.name}: files, batch {row.batch_size}")
        try:
            if not files:
                raise DatasetError(problem)
            timing = measure_files(
                runner, artifact.preprocessing, artifact.labels, files, row.batch_size,
                warmup=min(job.warmup, 3), min_runs=job.min_runs, min_time_s=job.min_time_s,
                max_time_s=job.max_time_s,
            )
            row = dataclasses.replace(
                row.with_latency(timing.latency), throughput_ips=timing.pipelined_ips, decode_ms=timing.decode_ms,
                preprocess_ms=timing.preprocess_ms, inference_ms=timing.inference_ms,
            )
        except Exception as error:  # noqa: BLE001  (recorded in the row)
            row.error = f"files, batch {row.batch_size}: {describe_error(error, artifact)}"
        rows.append(row)
        bar.update(1)
    return rows
