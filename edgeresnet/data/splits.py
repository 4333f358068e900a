"""Deterministic, disjoint train / calibration / evaluation splits.

Split membership must be identical on every machine and NumPy version: calibration tables and
bundles record a hash of the calibration data, and training must never see evaluation images.
NumPy's ``Generator`` streams are not guaranteed to stay the same across releases, so the seeded
shuffles here come from a fixed integer hash (SplitMix64) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import numpy as np

from edgeresnet.errors import DatasetError

SplitName = Literal["train", "calibration", "evaluation"]
SPLIT_NAMES: tuple[SplitName, ...] = get_args(SplitName)

# The one seed every source splits with; changing it changes every split and every data hash.
SPLIT_SEED = 20240601

# Per-class fractions for sources that do not ship their own evaluation set.
DEFAULT_FRACTIONS: dict[SplitName, float] = {"train": 0.8, "evaluation": 0.1, "calibration": 0.1}


def check_split_name(which: str) -> SplitName:
    if which not in SPLIT_NAMES:
        raise DatasetError(f"unknown split {which!r}; choose one of {', '.join(SPLIT_NAMES)}")
    return which  # type: ignore[return-value]


def _splitmix64(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def stable_permutation(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` that is the same on every platform and NumPy version."""
    seed_key = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    # SplitMix64 is a bijection on 64-bit integers, so the keys never tie.
    keys = _splitmix64(np.arange(n, dtype=np.uint64) ^ seed_key)
    return np.argsort(keys, kind="stable").astype(np.int64)


def holdout_split(n: int, holdout: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(rest, holdout): ``holdout`` seeded items out of ``range(n)``, both sorted ascending."""
    order = stable_permutation(n, seed)
    return np.sort(order[holdout:]), np.sort(order[:holdout])


def _class_counts(n: int, fractions: Mapping[SplitName, float]) -> dict[SplitName, int]:
    """How many of a class's ``n`` items each split gets.

    The first split in ``fractions`` (train) takes the remainder; every other split with a non-zero
    fraction gets at least one item while items last, in the mapping's order (so a class with two
    images gives one to train and one to evaluation before calibration gets any).
    """
    names = list(fractions)
    counts = dict.fromkeys(names, 0)
    if n == 0:
        return counts
    remaining = n - 1  # train always keeps one
    for name in names[1:]:
        if fractions[name] <= 0:
            continue
        take = min(max(1, int(fractions[name] * n + 0.5)), remaining)
        counts[name] = take
        remaining -= take
    counts[names[0]] = remaining + 1
    return counts


def per_class_split(
    labels: np.ndarray,
    num_classes: int,
    fractions: Mapping[SplitName, float] = DEFAULT_FRACTIONS,
    seed: int = SPLIT_SEED,
) -> dict[SplitName, np.ndarray]:
    """Split item indices per class by ``fractions``; each split's indices are sorted ascending."""
    labels = np.asarray(labels, dtype=np.int64)
    parts: dict[SplitName, list[np.ndarray]] = {name: [] for name in fractions}
    for cls in range(num_classes):
        members = np.flatnonzero(labels == cls)
        members = members[stable_permutation(len(members), seed + cls)]
        start = 0
        for name, count in _class_counts(len(members), fractions).items():
            parts[name].append(members[start : start + count])
            start += count
    return {
        name: np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.int64)
        for name, chunks in parts.items()
    }


def balanced_indices(labels: np.ndarray, num_classes: int, n: int, seed: int) -> np.ndarray:
    """``n`` seeded indices spread as evenly over the classes as their sizes allow, sorted ascending."""
    labels = np.asarray(labels, dtype=np.int64)
    order = stable_permutation(len(labels), seed)
    # A stable sort by class keeps each class's members in the seeded order.
    by_class = order[np.argsort(labels[order], kind="stable")]
    available = np.bincount(labels, minlength=num_classes)
    quota = np.zeros(num_classes, dtype=np.int64)
    remaining = n
    while remaining > 0:
        active = np.flatnonzero(available > quota)
        share = remaining // len(active)
        if share == 0:
            # Fewer items left than classes: the seeded order decides who gets the last ones.
            lucky = active[stable_permutation(len(active), seed)[:remaining]]
            quota[lucky] += 1
            break
        add = np.minimum(share, available[active] - quota[active])
        quota[active] += add
        remaining -= int(add.sum())
    starts = np.concatenate([[0], np.cumsum(available)[:-1]])
    picked = [by_class[start : start + count] for start, count in zip(starts, quota, strict=True)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
