"""The training data of a run: checked, split into fit and validation images, and its statistics.

The validation images are carved from the training split (never from the evaluation split, whose
numbers the checkpoint card and the bundle manifest report), and choose the epoch that is kept.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from edgeresnet.data import DataSource, ImageSet, PreprocessSpec
from edgeresnet.data.splits import stable_permutation
from edgeresnet.errors import DatasetError

log = logging.getLogger(__name__)

# At most this many validation images: enough to tell epochs apart, a trifle of a large set.
MAX_VALIDATION_IMAGES = 2_500
# Normalisation statistics from this many training images (spread over the classes): the mean and
# standard deviation of the pixels settle far sooner than that.
STATISTICS_IMAGES = 1_000
_VALIDATION_SEED = 7919


def check_classes(source: DataSource, train_set: ImageSet) -> None:
    """Refuse data a classifier cannot be trained on: one class, or a class with no usable image."""
    if source.num_classes < 2:
        names = ", ".join(repr(name) for name in source.class_names) or "none"
        raise DatasetError(f"{source.name} has {source.num_classes} class ({names}): a classifier needs at least 2")
    counts = np.bincount(train_set.labels, minlength=source.num_classes)
    empty = [source.class_names[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        shown = ", ".join(repr(name) for name in empty[:5]) + (f", … {len(empty) - 5} more" if len(empty) > 5 else "")
        raise DatasetError(f"{len(empty)} of {source.num_classes} classes have no training images in "
                           f"{train_set.name}: {shown}")
    _check_every_class_decodes(source, train_set)


def _check_every_class_decodes(source: DataSource, train_set: ImageSet) -> None:
    """One decodable image per class, found before any training (a whole class of broken files would
    otherwise train a model that can never predict it). Usually one decode per class."""
    labels = train_set.labels
    for cls in range(source.num_classes):
        members = np.flatnonzero(labels == cls)
        failure = ""
        for position in members:
            try:
                train_set.raw(int(position))
                failure = ""
                break
            except DatasetError as error:
                failure = str(error)
        if failure:
            raise DatasetError(f"none of the {len(members)} training images of class "
                               f"{source.class_names[cls]!r} can be decoded ({failure})")


def carve_validation(train_set: ImageSet, fraction: float, seed: int = 0) -> tuple[ImageSet, ImageSet | None]:
    """(fit, validation): a seeded per-class share of the training images held out to choose the epoch.

    Every class with at least two images gives at least one; the total is capped at
    ``MAX_VALIDATION_IMAGES``. ``fraction`` 0 keeps every image for fitting (and the last epoch).
    """
    if fraction <= 0 or len(train_set) < 4:
        return train_set, None
    fraction = min(fraction, MAX_VALIDATION_IMAGES / len(train_set))
    labels = train_set.labels
    held: list[np.ndarray] = []
    for cls in range(train_set.num_classes):
        members = np.flatnonzero(labels == cls)
        if len(members) < 2:
            continue
        members = members[stable_permutation(len(members), _VALIDATION_SEED + seed * 1009 + cls)]
        held.append(members[: max(1, round(fraction * len(members)))])
    if not held:
        return train_set, None
    validation = np.sort(np.concatenate(held))
    fit = np.setdiff1d(np.arange(len(train_set)), validation, assume_unique=True)
    return (train_set.subset(fit, name=f"{train_set.name}[fit]"),
            train_set.subset(validation, name=f"{train_set.name}[validation]"))


def with_training_statistics(spec: PreprocessSpec, train_set: ImageSet, *, seed: int = 0) -> PreprocessSpec:
    """``spec`` with mean/std measured on the training images, after its resize/crop and channel mode."""
    sample = train_set.balanced_sample(min(STATISTICS_IMAGES, len(train_set)), seed=seed)
    raw_spec = dataclasses.replace(spec, mean=(0.0,) * spec.num_channels, std=(1.0,) * spec.num_channels)
    total = np.zeros(spec.num_channels)
    squares = np.zeros(spec.num_channels)
    pixels = 0
    for batch, _ in sample.batches(raw_spec, 100):
        values = batch.astype(np.float64)
        total += values.sum(axis=(0, 2, 3))
        squares += (values**2).sum(axis=(0, 2, 3))
        pixels += values.shape[0] * values.shape[2] * values.shape[3]
    if pixels == 0:
        raise DatasetError(f"no image of {train_set.name} could be decoded to measure its statistics")
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean**2, 0.0))
    if float(std.min()) < 1e-3:
        raise DatasetError(f"the training images of {train_set.name} are all one flat colour "
                           f"(pixel std {float(std.min()):.1e}): nothing to learn from")
    return dataclasses.replace(spec, mean=tuple(round(float(m), 4) for m in mean),
                               std=tuple(round(float(s), 4) for s in std))
