from __future__ import annotations

import numpy as np
import pytest

from edgeresnet.data import DataSource, FashionMnistSource, open_source
from edgeresnet.errors import DatasetError

from .conftest import write_fashion_mnist, write_idx

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip


def test_metadata(fashion_mnist: DataSource) -> None:
    assert fashion_mnist.name == "fashion-mnist"
    assert fashion_mnist.class_names == CLASSES and fashion_mnist.num_classes == 10
    assert fashion_mnist.native_channels == "L" and fashion_mnist.native_size == (28, 28)


def test_split_sizes_and_disjointness(fashion_mnist: DataSource) -> None:
    train, calibration = fashion_mnist.split("train"), fashion_mnist.split("calibration")
    evaluation = fashion_mnist.split("evaluation")
    assert (len(train), len(calibration), len(evaluation)) == (55_000, 5_000, 10_000)
    assert not set(train.item_ids.tolist()) & set(calibration.item_ids.tolist())
    assert sorted([*train.item_ids, *calibration.item_ids]) == list(range(60_000))
    assert evaluation.item_ids.tolist() == list(range(10_000))
    assert np.bincount(evaluation.labels).tolist() == [1000] * 10
    # A random 5,000 of a balanced set: every class is represented near its 500 share.
    assert np.bincount(calibration.labels, minlength=10).min() > 400


def test_splits_are_deterministic_across_opens(fashion_mnist: DataSource) -> None:
    again = FashionMnistSource()
    for which in ("train", "calibration", "evaluation"):
        np.testing.assert_array_equal(again.split(which).item_ids, fashion_mnist.split(which).item_ids)
    # Golden: pins the split on every machine and NumPy version (calibration tables record this hash).
    assert again.split("calibration").fingerprint() == (
        "2e2446ae9f9b3b8ac37f33f40f67ea0d1ca89374305b22d6ff6b09c485c06664"
    )


def test_default_preprocess(fashion_mnist: DataSource) -> None:
    native = fashion_mnist.default_preprocess()
    assert native.input_size == (28, 28) and native.resize_to is None and native.channels == "L"
    assert native.mean == (0.2860,) and native.std == (0.3530,)
    bigger = fashion_mnist.default_preprocess(32, "RGB")
    assert bigger.input_size == (32, 32) and bigger.resize_to == 32
    assert bigger.channels == "RGB" and bigger.mean == (0.2860,) * 3
    with pytest.raises(DatasetError, match="input size"):
        fashion_mnist.default_preprocess(0)


def test_batches_normalise_with_dataset_statistics(fashion_mnist: DataSource) -> None:
    evaluation = fashion_mnist.split("evaluation")
    spec = fashion_mnist.default_preprocess()
    inputs, labels = next(evaluation.batches(spec, 64))
    assert inputs.shape == (64, 1, 28, 28) and inputs.dtype == np.float32
    np.testing.assert_array_equal(labels, evaluation.labels[:64])
    expected = (evaluation.raw(0).astype(np.float32) / 255 - 0.2860) / 0.3530
    np.testing.assert_allclose(inputs[0, 0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("compress", [True, False])
def test_custom_directory(tmp_path, compress: bool) -> None:
    write_fashion_mnist(tmp_path, train=120, test=30, compress=compress)
    source = open_source(f"fashion-mnist:{tmp_path}")
    assert source.name == f"fashion-mnist:{tmp_path}"
    assert (
        open_source(source.name).split("calibration").fingerprint()
        == source.split("calibration").fingerprint()
    )
    sizes = [len(source.split(which)) for which in ("train", "calibration", "evaluation")]
    assert sizes == [110, 10, 30]


def test_missing_files_say_how_to_get_them(tmp_path) -> None:
    with pytest.raises(DatasetError) as error:
        open_source(f"fashion-mnist:{tmp_path}")
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message and "fashion-mnist:/dir" in message
    assert "train-images-idx3-ubyte.gz" in message and "\n" not in message


def test_corrupt_file_is_named_on_first_use(tmp_path) -> None:
    write_fashion_mnist(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:20])
    source = open_source(f"fashion-mnist:{tmp_path}")
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz"):
        source.split("evaluation")


def test_wrong_image_size_is_refused(tmp_path) -> None:
    write_fashion_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((120, 32, 32), np.uint8))
    with pytest.raises(DatasetError, match="N×28×28"):
        open_source(f"fashion-mnist:{tmp_path}").split("train")


def test_unknown_split_name(fashion_mnist: DataSource) -> None:
    with pytest.raises(DatasetError, match="train, calibration, evaluation"):
        fashion_mnist.split("test")  # type: ignore[arg-type]
