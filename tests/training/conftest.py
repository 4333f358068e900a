"""Small real data sets for training tests: Fashion-MNIST images repackaged as .npz files and folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def fmnist_arrays(fashion_mnist: str) -> tuple[np.ndarray, np.ndarray]:
    """The first 400 Fashion-MNIST training images and labels (real pixels, 10 classes)."""
    from edgeresnet.data import open_source

    split = open_source(fashion_mnist).split("train").head(400)
    images = np.stack([split.raw(i) for i in range(len(split))])
    return images, np.asarray(split.labels)


def write_npz(path: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None) -> str:
    arrays = {"images": images, "labels": labels}
    if class_names is not None:
        arrays["class_names"] = np.array(class_names, dtype=str)
    np.savez(path, **arrays)
    return str(path)


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str]) -> Path:
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        directory = root / names[int(label)]
        directory.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(directory / f"{i:04d}.png")
    return root
