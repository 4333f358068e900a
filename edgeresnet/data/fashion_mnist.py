"""Fashion-MNIST from its four standard IDX files: the embedded default data source."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from edgeresnet.data.datasource import DataSource, check_input_size
from edgeresnet.data.idx import read_idx
from edgeresnet.data.imageset import ImageSet
from edgeresnet.data.preprocessing import ChannelMode, PreprocessSpec
from edgeresnet.data.splits import SplitName, holdout_split
from edgeresnet.data.stores import ArrayStore
from edgeresnet.errors import DatasetError

SCHEME = "fashion-mnist"
# Where Debian/Ubuntu's dataset-fashion-mnist package puts the files.
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
IMAGE_SIZE = (28, 28)
# Statistics of the 60,000 training images, scaled to [0, 1].
MEAN = (0.2860,)
STD = (0.3530,)
# 5,000 of the 60,000 training images are held out for calibration (the same share for other sizes).
CALIBRATION_SHARE = 5_000 / 60_000

FILE_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find_files(directory: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, stem in FILE_STEMS.items():
        candidates = [directory / f"{stem}.gz", directory / stem]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            missing.append(f"{stem}.gz")
        else:
            found[role] = path
    if missing:
        raise DatasetError(
            f"Fashion-MNIST not found in {directory} (missing {', '.join(missing)}): install it with "
            f"`apt-get install dataset-fashion-mnist`, or use fashion-mnist:/dir with the four IDX files "
            f"({', '.join(f'{stem}.gz' for stem in FILE_STEMS.values())})"
        )
    return found


class FashionMnistSource(DataSource):
    """Fashion-MNIST: 60,000 training and 10,000 test 28×28 grayscale images in 10 classes.

    Splits: train is 55,000 of the training images, calibration the other 5,000 (a fixed seeded
    choice), evaluation the 10,000-image test set. The files are parsed on the first ``split``.
    """

    def __init__(self, directory: Path | None = None) -> None:
        directory = (directory or DEFAULT_DIR).expanduser().absolute()
        self.directory = directory
        self._files = _find_files(directory)
        name = SCHEME if directory == DEFAULT_DIR else f"{SCHEME}:{directory}"
        super().__init__(name, CLASS_NAMES)

    @property
    def native_channels(self) -> ChannelMode:
        return "L"

    @property
    def native_size(self) -> tuple[int, int]:
        return IMAGE_SIZE

    @cached_property
    def _stores(self) -> dict[str, tuple[ArrayStore, np.ndarray]]:
        return {part: self._load(part) for part in ("train", "test")}

    def _load(self, part: str) -> tuple[ArrayStore, np.ndarray]:
        images_path, labels_path = self._files[f"{part}_images"], self._files[f"{part}_labels"]
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SIZE:
            raise DatasetError(
                f"{images_path}: expected uint8 N×28×28 images, got {images.dtype} {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
            raise DatasetError(
                f"{labels_path}: expected {len(images)} uint8 labels, got {labels.dtype} {labels.shape}"
            )
        if len(labels) and labels.max() >= len(CLASS_NAMES):
            raise DatasetError(f"{labels_path}: label {labels.max()} is out of range 0-9")
        return ArrayStore(images), labels.astype(np.int64)

    def _make_split(self, which: SplitName) -> ImageSet:
        if which == "evaluation":
            store, labels = self._stores["test"]
            items = np.arange(len(store))
        else:
            store, labels = self._stores["train"]
            n = len(store)
            holdout = min(max(1, round(n * CALIBRATION_SHARE)), n - 1) if n > 1 else 0
            train_items, calibration_items = holdout_split(n, holdout)
            items = train_items if which == "train" else calibration_items
        return ImageSet(store, items, labels[items], self.class_names, f"{self.name}[{which}]")

    def default_preprocess(
        self, input_size: int | None = None, channels: ChannelMode | None = None
    ) -> PreprocessSpec:
        """Fashion-MNIST statistics; native 28×28, resized to ``input_size`` when that differs."""
        input_size = IMAGE_SIZE[0] if input_size is None else input_size
        check_input_size(input_size)
        spec = PreprocessSpec(
            input_size=(input_size, input_size),
            resize_to=None if (input_size, input_size) == IMAGE_SIZE else input_size,
            channels="L",
            mean=MEAN,
            std=STD,
        )
        return spec.with_channels(channels or "L")
