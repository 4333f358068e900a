"""Shared fixtures: small synthetic datasets written to tmp_path, and the real Fashion-MNIST once."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeresnet.data import DataSource, open_source
from edgeresnet.data.fashion_mnist import DEFAULT_DIR


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> Path:
    """Write ``array`` in the IDX format (the inverse of read_idx), gzipped when ``compress``."""
    codes = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
             np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}  # fmt: skip
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def synthetic_images(count: int, size: tuple[int, int] = (28, 28), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *size), dtype=np.uint8)


def write_fashion_mnist(directory: Path, train: int = 120, test: int = 30, *, compress: bool = True) -> Path:
    """A tiny Fashion-MNIST directory with the four standard file names."""
    suffix = ".gz" if compress else ""
    labels = np.arange(max(train, test)) % 10
    write_idx(
        directory / f"train-images-idx3-ubyte{suffix}", synthetic_images(train, seed=1), compress=compress
    )
    write_idx(
        directory / f"train-labels-idx1-ubyte{suffix}", labels[:train].astype(np.uint8), compress=compress
    )
    write_idx(
        directory / f"t10k-images-idx3-ubyte{suffix}", synthetic_images(test, seed=2), compress=compress
    )
    write_idx(
        directory / f"t10k-labels-idx1-ubyte{suffix}", labels[:test].astype(np.uint8), compress=compress
    )
    return directory


def save_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def fashion_mnist() -> DataSource:
    if not DEFAULT_DIR.is_dir():
        pytest.skip(
            f"Fashion-MNIST is not installed at {DEFAULT_DIR} (apt-get install dataset-fashion-mnist)"
        )
    return open_source("fashion-mnist")
