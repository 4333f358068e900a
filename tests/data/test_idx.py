from __future__ import annotations

import gzip

import numpy as np
import pytest

from edgeresnet.data import read_idx
from edgeresnet.data.fashion_mnist import DEFAULT_DIR
from edgeresnet.errors import DatasetError

from .conftest import write_idx


@pytest.mark.skipif(not DEFAULT_DIR.is_dir(), reason="Fashion-MNIST is not installed")
def test_real_fashion_mnist_files() -> None:
    train_images = read_idx(DEFAULT_DIR / "train-images-idx3-ubyte.gz")
    train_labels = read_idx(DEFAULT_DIR / "train-labels-idx1-ubyte.gz")
    test_images = read_idx(DEFAULT_DIR / "t10k-images-idx3-ubyte.gz")
    test_labels = read_idx(DEFAULT_DIR / "t10k-labels-idx1-ubyte.gz")
    assert train_images.shape == (60000, 28, 28) and train_images.dtype == np.uint8
    assert test_images.shape == (10000, 28, 28)
    assert train_labels.shape == (60000,) and test_labels.shape == (10000,)
    # Fashion-MNIST is exactly balanced: 6,000 / 1,000 images per class.
    assert np.bincount(train_labels).tolist() == [6000] * 10
    assert np.bincount(test_labels).tolist() == [1000] * 10
    # Golden values of the standard release: first label, pixel sums (mean 0.2860 as in MEAN).
    assert int(train_labels[0]) == 9
    assert int(train_images[0].sum()) == 76247
    assert int(train_images.sum(dtype=np.int64)) == 3431114169
    assert int(test_images.sum(dtype=np.int64)) == 573469082


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_synthetic_round_trip(tmp_path, dtype: str, compress: bool) -> None:
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = write_idx(tmp_path / "x.idx", array, compress=compress)
    loaded = read_idx(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


def test_truncated_payload_names_the_file(tmp_path) -> None:
    path = write_idx(tmp_path / "images.idx", np.zeros((4, 28, 28), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match=r"images\.idx is truncated"):
        read_idx(path)


def test_truncated_gzip_names_the_file(tmp_path) -> None:
    path = write_idx(tmp_path / "labels.gz", np.arange(1000, dtype=np.uint8) % 10)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DatasetError, match=r"labels\.gz"):
        read_idx(path)


@pytest.mark.parametrize(
    "payload",
    [b"\x00\x00", b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", b"\x00\x00\x07\x01\x00\x00\x00\x01\x05"],
    ids=["too-short", "bad-zero-bytes", "bad-type-code"],
)
def test_bad_magic(tmp_path, payload: bytes) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(DatasetError, match=r"bad\.gz is not an IDX file"):
        read_idx(path)


def test_trailing_bytes_are_corrupt(tmp_path) -> None:
    path = write_idx(tmp_path / "x.idx", np.zeros(3, np.uint8), compress=False)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DatasetError, match="corrupt"):
        read_idx(path)
