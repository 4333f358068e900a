"""Calibration: one streaming pass, the range methods, and refusing data that is not real images.

The range methods themselves are checked against ONNX Runtime's calibrators in test_methods.py.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from edgeresnet.calibration import calibrate, check_calibration_data
from edgeresnet.errors import CalibrationError
from tests.calibration.conftest import data_hash, smooth_images

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def test_methods_differ_sensibly(tables: dict) -> None:
    minmax, percentile, entropy = tables["minmax"], tables["percentile"], tables["entropy"]
    assert set(minmax.ranges) == set(percentile.ranges) == set(entropy.ranges)
    assert "input" in minmax.ranges and "/layer1/Add_output_0" not in minmax.ranges  # Add output feeds only ReLU
    narrower = 0
    for name, (low, high) in minmax.ranges.items():
        for clipped in (percentile.ranges[name], entropy.ranges[name]):
            assert low - 1e-6 <= clipped[0] <= clipped[1] <= high + 1e-6, name
        narrower += percentile.ranges[name][1] < high
    assert narrower >= len(minmax.ranges) // 2  # percentile clips the top tail of most tensors
    assert percentile.params["percentile"] == 99.999 and entropy.params["num_bins"] == 128  # ORT's defaults
    for name in minmax.ranges:
        if "Relu" in name:
            assert minmax.ranges[name][0] == percentile.ranges[name][0] == entropy.ranges[name][0] == 0.0


def test_single_method_equals_calibrate_all(tables: dict, fp32_onnx: Path, calib_batches: list) -> None:
    table = calibrate(fp32_onnx, iter(calib_batches), method="entropy", data_hash=data_hash(calib_batches))
    assert table == tables["entropy"]


def test_real_looking_images_pass_and_noise_is_refused() -> None:
    images, _ = smooth_images(32, seed=9)
    check_calibration_data(images)
    rng = np.random.default_rng(2)
    for noise in (rng.uniform(-1, 1, images.shape), rng.normal(0, 1, images.shape)):
        with pytest.raises(CalibrationError, match="looks like random noise"):
            check_calibration_data(noise.astype(np.float32))
    with pytest.raises(CalibrationError, match="constant"):
        check_calibration_data(np.full((8, 3, 32, 32), 0.5, dtype=np.float32))
    with pytest.raises(CalibrationError, match="float32"):
        check_calibration_data((images * 100).astype(np.uint8))


@pytest.mark.skipif(not FASHION_MNIST.is_file(), reason="Fashion-MNIST not installed")
def test_real_fashion_mnist_images_pass() -> None:
    with gzip.open(FASHION_MNIST) as file:
        raw = np.frombuffer(file.read(), dtype=np.uint8, offset=16)[: 64 * 784]
    images = ((raw.reshape(64, 1, 28, 28) / 255.0 - 0.286) / 0.353).astype(np.float32)
    check_calibration_data(images)


def test_calibrate_refuses_noise_empty_data_and_bad_inputs(fp32_onnx: Path, calib_batches: list) -> None:
    digest = data_hash(calib_batches)
    noise = np.random.default_rng(3).normal(0, 1, (16, 1, 28, 28)).astype(np.float32)
    with pytest.raises(CalibrationError, match="random noise"):
        calibrate(fp32_onnx, [noise], method="minmax", data_hash=digest)
    with pytest.raises(CalibrationError, match="empty"):
        calibrate(fp32_onnx, [], method="minmax", data_hash=digest)
    with pytest.raises(CalibrationError, match="does not fit the model"):
        calibrate(fp32_onnx, [np.repeat(calib_batches[0], 3, axis=1)], method="minmax", data_hash=digest)
    with pytest.raises(CalibrationError, match="sha256"):
        calibrate(fp32_onnx, calib_batches, method="minmax", data_hash="abc")
    with pytest.raises(CalibrationError, match="method must be one of"):
        calibrate(fp32_onnx, calib_batches, method="kl", data_hash=digest)  # type: ignore[arg-type]
