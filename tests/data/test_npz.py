from __future__ import annotations

import numpy as np
import pytest

from edgeresnet.data import NpzSource, open_source
from edgeresnet.errors import DatasetError

from .conftest import synthetic_images


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_round_trip(tmp_path) -> None:
    images = synthetic_images(50, (16, 16, 3))
    labels = np.arange(50) % 5
    names = np.array(["a", "b", "c", "d", "e"])
    path = write_npz(tmp_path / "data.npz", images=images, labels=labels, class_names=names)
    source = open_source(str(path))
    assert isinstance(source, NpzSource) and source.name == str(path)
    assert source.class_names == ["a", "b", "c", "d", "e"]
    assert source.native_channels == "RGB" and source.native_size == (16, 16)
    splits = [source.split(which) for which in ("train", "calibration", "evaluation")]
    assert [len(split) for split in splits] == [40, 5, 5]  # 8/1/1 of each class's 10
    ids = np.concatenate([split.item_ids for split in splits])
    assert sorted(ids.tolist()) == list(range(50))
    for split in splits:
        for i in range(len(split)):
            np.testing.assert_array_equal(split.raw(i), images[split.item_ids[i]])
        np.testing.assert_array_equal(split.labels, labels[split.item_ids])


def test_defaults_without_class_names_and_single_channel(tmp_path) -> None:
    path = write_npz(
        tmp_path / "gray.npz", images=synthetic_images(20, (8, 8))[..., None], labels=np.arange(20) % 4
    )
    source = open_source(str(path))
    assert source.class_names == ["0", "1", "2", "3"]
    assert source.native_channels == "L" and source.split("train").raw(0).shape == (8, 8)
    spec = source.default_preprocess()
    assert spec.input_size == (8, 8) and spec.resize_to is None and spec.channels == "L"


def test_pickled_objects_are_refused(tmp_path) -> None:
    names = np.array(["a", {"evil": 1}], dtype=object)
    path = write_npz(
        tmp_path / "evil.npz", images=synthetic_images(4), labels=np.zeros(4, int), class_names=names
    )
    with pytest.raises(DatasetError, match="pickled Python objects"):
        open_source(str(path))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": synthetic_images(4)}, "lacks labels"),
        ({"images": synthetic_images(4).astype(np.float32), "labels": np.zeros(4, int)}, "must be uint8"),
        ({"images": synthetic_images(4, (8, 8, 2)), "labels": np.zeros(4, int)}, "C 1 or 3"),
        ({"images": synthetic_images(4), "labels": np.zeros(3, int)}, "labels must be 4 integers"),
        ({"images": synthetic_images(4), "labels": np.zeros(4)}, "labels must be 4 integers"),
        ({"images": synthetic_images(4), "labels": np.array([0, 1, -1, 0])}, ">= 0"),
        ({"images": synthetic_images(4), "labels": np.array([0, 1, 2, 0]), "class_names": np.array(["a", "b"])},
         "out of range for 2 class_names"),
        ({"images": synthetic_images(4), "labels": np.zeros(4, int), "class_names": np.array(["a", "a"])},
         "unique"),
    ],
)  # fmt: skip
def test_invalid_contents(tmp_path, arrays, message: str) -> None:
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        open_source(str(path))


def test_not_an_npz(tmp_path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="garbage.npz"):
        open_source(str(garbage))
    single = tmp_path / "single.npz"
    with single.open("wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(DatasetError, match="single .npy array"):
        open_source(str(single))
