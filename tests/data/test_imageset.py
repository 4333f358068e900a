from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeresnet.data import DataSource, ImageSet, PreprocessSpec, open_source
from edgeresnet.errors import DatasetError

from .conftest import save_png, synthetic_images

GRAY_SPEC = PreprocessSpec(input_size=(28, 28), channels="L", mean=(0.5,), std=(0.25,))


def npz_source(tmp_path: Path, images: np.ndarray, labels: np.ndarray) -> DataSource:
    np.savez(tmp_path / "data.npz", images=images, labels=labels)
    return open_source(str(tmp_path / "data.npz"))


def folder_source(root: Path, images: np.ndarray, labels: np.ndarray) -> DataSource:
    # Names sort in array order, so the folder lists the images exactly as the array holds them.
    order = np.argsort(labels, kind="stable")
    for i in order:
        save_png(root / f"class{labels[i]}" / f"{i:04d}.png", images[i])
    return open_source(str(root))


@pytest.fixture
def gray_set(tmp_path) -> ImageSet:
    labels = np.arange(100) % 4
    return npz_source(tmp_path, synthetic_images(100), labels).split("train")


def test_batches_shapes_dtypes_and_order(gray_set: ImageSet) -> None:
    batches = list(gray_set.batches(GRAY_SPEC, 32))
    assert [len(labels) for _, labels in batches] == [32, 32, 12]  # 19 of each class's 25 are train
    inputs, labels = batches[0]
    assert inputs.shape == (32, 1, 28, 28) and inputs.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([lab for _, lab in batches]), gray_set.labels)
    expected = (gray_set.raw(1).astype(np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(inputs[1, 0], expected, rtol=1e-6, atol=1e-6)
    assert [len(lab) for _, lab in gray_set.batches(GRAY_SPEC, 32, drop_last=True)] == [32, 32]
    with pytest.raises(DatasetError, match="batch size"):
        next(gray_set.batches(GRAY_SPEC, 0))


def test_shuffle_is_seeded(gray_set: ImageSet) -> None:
    def labels_of(seed: int) -> list[int]:
        return np.concatenate(
            [lab for _, lab in gray_set.batches(GRAY_SPEC, 16, shuffle=True, seed=seed)]
        ).tolist()

    assert labels_of(0) == labels_of(0)
    assert labels_of(0) != labels_of(1)
    assert sorted(labels_of(0)) == sorted(gray_set.labels.tolist())
    # Images travel with their labels: match each shuffled input back to its source image.
    inputs, labels = next(gray_set.batches(GRAY_SPEC, 16, shuffle=True, seed=0))
    unshuffled = next(gray_set.batches(GRAY_SPEC, len(gray_set)))[0]
    for x, y in zip(inputs, labels, strict=True):
        (match,) = np.flatnonzero((unshuffled == x).all(axis=(1, 2, 3)))
        assert gray_set.labels[match] == y


def test_rgb_model_on_grayscale_data_replicates_channels(gray_set: ImageSet) -> None:
    rgb = GRAY_SPEC.with_channels("RGB")
    (gray, _), (colour, _) = next(gray_set.batches(GRAY_SPEC, 8)), next(gray_set.batches(rgb, 8))
    assert colour.shape == (8, 3, 28, 28)
    for channel in range(3):
        np.testing.assert_array_equal(colour[:, channel], gray[:, 0])


@pytest.mark.parametrize("rgb", [False, True], ids=["gray", "rgb"])
def test_folder_and_in_memory_paths_agree(tmp_path, rgb: bool) -> None:
    shape = (28, 28, 3) if rgb else (28, 28)
    images, labels = synthetic_images(30, shape, seed=5), np.arange(30) % 3  # type: ignore[arg-type]
    order = np.argsort(labels, kind="stable")
    in_memory = npz_source(tmp_path, images[order], labels[order])
    folder = folder_source(tmp_path / "folder", images, labels)
    base = folder.default_preprocess()
    assert base == in_memory.default_preprocess()
    specs = [base, base.with_channels("L" if rgb else "RGB"), folder.default_preprocess(20)]
    for spec in specs:
        for which in ("train", "evaluation"):
            pairs = zip(
                folder.split(which).batches(spec, 4), in_memory.split(which).batches(spec, 4), strict=True
            )
            for (folder_x, folder_y), (memory_x, memory_y) in pairs:
                np.testing.assert_array_equal(folder_x, memory_x)
                np.testing.assert_array_equal(folder_y, memory_y)


def test_balanced_sample(tmp_path) -> None:
    labels = np.repeat(np.arange(4), [60, 30, 20, 10])
    train = npz_source(tmp_path, synthetic_images(120), labels).split("train")
    sample = train.balanced_sample(32, seed=0)
    assert np.bincount(sample.labels).tolist() == [8, 8, 8, 8]
    assert len(set(sample.item_ids.tolist())) == 32
    assert sample.fingerprint() == train.balanced_sample(32, seed=0).fingerprint()
    assert sample.item_ids.tolist() != train.balanced_sample(32, seed=1).item_ids.tolist()
    # Classes hold 48/24/16/8 train images: small classes give all they have, big ones fill the rest.
    assert np.bincount(train.balanced_sample(80).labels).tolist() == [32, 24, 16, 8]
    with pytest.raises(DatasetError, match=f"has {len(train)} images"):
        train.balanced_sample(len(train) + 1)


def test_subset_head_and_fingerprint(gray_set: ImageSet) -> None:
    head = gray_set.head(5)
    assert len(head) == 5 and head.labels.tolist() == gray_set.labels[:5].tolist()
    assert len(gray_set.head(10_000)) == len(gray_set)
    picked = gray_set.subset([3, -1])
    np.testing.assert_array_equal(picked.raw(1), gray_set.raw(len(gray_set) - 1))
    assert head.fingerprint() != gray_set.fingerprint()
    assert head.fingerprint() == gray_set.subset(range(5)).fingerprint()
    assert len(gray_set.subset([])) == 0 and list(gray_set.subset([]).batches(GRAY_SPEC, 4)) == []
    with pytest.raises(DatasetError, match="out of range"):
        gray_set.subset([len(gray_set)])
    with pytest.raises(DatasetError, match="out of range"):
        gray_set.raw(len(gray_set))
    with pytest.raises(ValueError):
        gray_set.labels[0] = 3  # labels are read-only: splits are shared
