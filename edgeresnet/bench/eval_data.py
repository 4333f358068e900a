"""Accuracy on the evaluation split, with the same preprocessed inputs for every backend.

Like Polygraphy's comparator with one cached data loader: the evaluation images are preprocessed
once per preprocessing spec and every runner reads exactly those arrays, so a difference between
two rows is the backend's, never the input pipeline's. Arrays that would not fit the memory budget
are spilled once to a temporary file and read back chunk by chunk (plain reads, not a memory map,
so the cache's pages do not count towards an artifact's peak memory).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from edgeresnet.accuracy import Accuracy, AccuracyCounter
from edgeresnet.data.imageset import ImageSet
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import DatasetError
from edgeresnet.runtime.base import Runner

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BUDGET_BYTES = 1 << 30
# Preprocessing chunk: bounds the transient memory of building the cache.
_PREPROCESS_CHUNK = 256


@dataclass(frozen=True)
class Evaluation:
    """One artifact's accuracy (percent, :mod:`edgeresnet.accuracy`) and each image's top-1 class.

    The predictions are kept, rather than the logits, so that agreement with the reference costs one
    integer per image whatever the number of classes.
    """

    accuracy: Accuracy
    predictions: np.ndarray
    labels: np.ndarray  # the labels of the images actually evaluated, for paired comparisons


class _CachedInputs:
    """One spec's preprocessed images: in memory, or in a spill file read back in chunks."""

    def __init__(self, images: ImageSet, spec: PreprocessSpec, spill_dir: Path | None, budget: int) -> None:
        self.spec = spec
        self.count = len(images)
        self._shape = spec.input_shape(1)[1:]
        self._row_bytes = int(np.prod(self._shape)) * 4
        self._array: np.ndarray | None = None
        self._file: Path | None = None
        labels: list[np.ndarray] = []
        if self.count * self._row_bytes <= budget or spill_dir is None:
            chunks = []
            for inputs, batch_labels in images.batches(spec, _PREPROCESS_CHUNK):
                chunks.append(inputs)
                labels.append(batch_labels)
            self._array = np.concatenate(chunks) if chunks else np.zeros((0, *self._shape), np.float32)
        else:
            log.info("evaluation inputs need %.1f GiB; spilling them to %s (use --eval-limit to keep them in memory)",
                     self.count * self._row_bytes / 2**30, spill_dir)
            self._file = spill_dir / f"inputs-{id(self)}.f32"
            with open(self._file, "wb") as handle:
                for inputs, batch_labels in images.batches(spec, _PREPROCESS_CHUNK):
                    np.ascontiguousarray(inputs, dtype=np.float32).tofile(handle)
                    labels.append(batch_labels)
        # Undecodable images are skipped by ImageSet.batches: the labels are the ones actually read.
        self.labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        self.count = len(self.labels)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        if self._array is not None:
            for start in range(0, self.count, size):
                yield np.ascontiguousarray(self._array[start : start + size])
            return
        assert self._file is not None
        with open(self._file, "rb") as handle:
            for start in range(0, self.count, size):
                n = min(size, self.count - start)
                yield np.fromfile(handle, dtype=np.float32, count=n * self._row_bytes // 4).reshape(n, *self._shape)

    def head(self, n: int) -> np.ndarray:
        """The first ``n`` inputs (repeated when there are fewer): a real-image latency batch."""
        if self.count == 0:
            raise DatasetError("the evaluation split is empty: no images to build a latency batch from")
        chunks = self.chunks(min(n, self.count))
        first = next(chunks)
        chunks.close()  # releases the spill file handle now, not at garbage collection
        if len(first) < n:
            first = np.resize(first, (n, *self._shape))
        return np.ascontiguousarray(first, dtype=np.float32)


class EvalData:
    """The evaluation images, preprocessed once per spec and shared by every artifact."""

    def __init__(self, images: ImageSet, *, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES) -> None:
        self.images = images
        self._budget = memory_budget_bytes
        self._cache: dict[PreprocessSpec, _CachedInputs] = {}
        self._spill_dir: Path | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._cache.clear()
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)
            self._spill_dir = None

    def inputs(self, spec: PreprocessSpec) -> _CachedInputs:
        if spec not in self._cache:
            if self._spill_dir is None:
                self._spill_dir = Path(tempfile.mkdtemp(prefix="edgeresnet-bench-"))
            self._cache[spec] = _CachedInputs(self.images, spec, self._spill_dir, self._budget)
        return self._cache[spec]

    def latency_batch(self, spec: PreprocessSpec, batch_size: int) -> np.ndarray:
        return self.inputs(spec).head(batch_size)

    def evaluate(self, runner: Runner, spec: PreprocessSpec, *, batch_size: int = 32) -> Evaluation:
        """Run every cached input of ``spec`` through ``runner`` in chunks of ``batch_size``."""
        cached = self.inputs(spec)
        if cached.count == 0:
            raise DatasetError("the evaluation split is empty")
        counter = AccuracyCounter()
        predictions: list[np.ndarray] = []
        offset = 0
        for chunk in cached.chunks(batch_size):
            logits = runner.infer(chunk)
            counter.update(logits, cached.labels[offset : offset + len(chunk)])
            offset += len(chunk)
            predictions.append(logits.argmax(axis=1))
        return Evaluation(counter.result(), np.concatenate(predictions), cached.labels)


def agreement_pct(predictions: np.ndarray, reference: np.ndarray) -> float:
    """Percentage of images whose top-1 class matches the reference's."""
    if predictions.shape != reference.shape:
        raise ValueError(f"prediction counts differ: {predictions.shape} vs {reference.shape}")
    return 100.0 * float((predictions == reference).mean()) if predictions.size else float("nan")
