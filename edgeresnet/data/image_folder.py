"""An image folder: one sub-folder per class, or an ImageNet-style ``train/`` + ``val/`` (or ``test/``) tree.

Listing is cheap (names only); pixels are decoded batch by batch, and an undecodable file is skipped
and counted rather than fatal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from edgeresnet.data.datasource import DataSource
from edgeresnet.data.decoding import DECODE_ERRORS, IMAGE_EXTENSIONS, ImageHeader, is_image_file, probe_image
from edgeresnet.data.imageset import ImageSet
from edgeresnet.data.preprocessing import ChannelMode
from edgeresnet.data.splits import SplitName, per_class_split
from edgeresnet.data.stores import FileStore
from edgeresnet.data.walk import inside, walk_files
from edgeresnet.errors import DatasetError

EVALUATION_DIRS = ("val", "test")  # in order of preference when both exist
# ImageNet-style trees hold their own evaluation set; 10% of train/ becomes calibration data.
IMAGENET_STYLE_FRACTIONS: dict[SplitName, float] = {"train": 0.9, "calibration": 0.1}
# Headers read to find the native size and channels: all of a small folder, an even sample of a big one.
PROBE_LIMIT = 4096

_EXTENSIONS_TEXT = "/".join(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))


def _subdirs(directory: Path, root: Path | None = None) -> list[str]:
    """Class folders: non-hidden sub-folders, a linked one only where it resolves inside the data set's root."""
    root = root or directory
    return sorted(
        entry.name for entry in os.scandir(directory)
        if entry.is_dir() and not entry.name.startswith(".") and (not entry.is_symlink() or inside(entry.path, root))
    )


def _image_files(class_dir: Path, root: Path) -> list[str]:
    """Image files anywhere under ``class_dir``, as sorted POSIX paths relative to ``root``.

    A data set is what lies under its root: links are followed only where they stay inside it, and a link
    loop is walked once (:func:`edgeresnet.data.walk.walk_files`).
    """
    return sorted(path.relative_to(root).as_posix() for path in walk_files(class_dir, root) if is_image_file(path))


@dataclass
class _Listing:
    class_names: list[str]
    relpaths: list[str]
    labels: list[int]
    evaluation_start: int | None  # ImageNet-style: files from here on come from val/ (or test/)


def _list_classes(root: Path, tree: Path, class_names: list[str], listing: _Listing, *, strict: bool) -> None:
    for label, class_name in enumerate(class_names):
        class_dir = tree / class_name
        files = _image_files(class_dir, root) if class_dir.is_dir() else []
        if strict and not files:
            raise DatasetError(f"class folder {class_dir} has no images ({_EXTENSIONS_TEXT})")
        listing.relpaths.extend(files)
        listing.labels.extend([label] * len(files))


def _list_folder(root: Path) -> _Listing:
    subdirs = _subdirs(root, root)
    evaluation_dir = next((name for name in EVALUATION_DIRS if name in subdirs), None)
    if "train" in subdirs and evaluation_dir is not None:
        train_dir, eval_dir = root / "train", root / evaluation_dir
        class_names = _subdirs(train_dir, root)
        if not class_names:
            raise DatasetError(f"{train_dir} has no class sub-folders (expected {train_dir}/<class>/<image>)")
        unknown = sorted(set(_subdirs(eval_dir, root)) - set(class_names))
        if unknown:
            raise DatasetError(f"{eval_dir} has classes that train/ lacks: {', '.join(unknown[:5])}")
        listing = _Listing(class_names, [], [], None)
        _list_classes(root, train_dir, class_names, listing, strict=True)
        listing.evaluation_start = len(listing.relpaths)
        _list_classes(root, eval_dir, class_names, listing, strict=False)
        if listing.evaluation_start == len(listing.relpaths):
            raise DatasetError(
                f"{eval_dir} has no images in class sub-folders: arrange it like train/ (one sub-folder per class)"
            )
        return listing
    if not subdirs:
        raise DatasetError(
            f"{root} has no class sub-folders: put each class's images in its own sub-folder "
            f"({root}/<class>/<image>.{{{_EXTENSIONS_TEXT.replace('/', ',')}}})"
        )
    listing = _Listing(subdirs, [], [], None)
    _list_classes(root, root, subdirs, listing, strict=True)
    return listing


class ImageFolderSource(DataSource):
    """Images in class sub-folders, decoded lazily with Pillow.

    Splits: an ImageNet-style tree (``train/`` and ``val/`` or ``test/``) evaluates on ``val/`` and
    takes a seeded, per-class 10% of ``train/`` for calibration; any other folder gets a seeded
    per-class 80/10/10 train/calibration/evaluation split. Classes are the sorted sub-folder names.
    """

    def __init__(self, root: Path) -> None:
        root = root.expanduser().absolute()
        if not root.is_dir():
            raise DatasetError(f"{root} is not a directory")
        listing = _list_folder(root)
        self.root = root
        self.imagenet_style = listing.evaluation_start is not None
        self._store = FileStore(root, listing.relpaths)
        self._labels = np.asarray(listing.labels, dtype=np.int64)
        self._evaluation_start = listing.evaluation_start
        super().__init__(str(root), listing.class_names)

    @cached_property
    def _split_items(self) -> dict[SplitName, np.ndarray]:
        if self._evaluation_start is None:
            return per_class_split(self._labels, self.num_classes)
        train_pool = np.arange(self._evaluation_start)
        parts = per_class_split(self._labels[train_pool], self.num_classes, IMAGENET_STYLE_FRACTIONS)
        return {
            "train": train_pool[parts["train"]],
            "calibration": train_pool[parts["calibration"]],
            "evaluation": np.arange(self._evaluation_start, len(self._labels)),
        }

    def _make_split(self, which: SplitName) -> ImageSet:
        items = self._split_items[which]
        return ImageSet(self._store, items, self._labels[items], self.class_names, f"{self.name}[{which}]")

    @cached_property
    def _headers(self) -> list[ImageHeader]:
        count = len(self._store)
        sample = np.unique(np.linspace(0, count - 1, min(count, PROBE_LIMIT)).round().astype(np.int64))
        headers: list[ImageHeader] = []
        for item in sample:
            try:
                headers.append(probe_image(self._store.path(int(item))))
            except DECODE_ERRORS as exc:
                self._store.record_failure(int(item), exc)
        if not headers:
            raise DatasetError(f"none of the {len(sample)} images read in {self.root} can be decoded")
        return headers

    @property
    def native_channels(self) -> ChannelMode:
        """Grayscale ("L") when every image read is (all of them, or a sample of a large folder)."""
        return "L" if all(header.channels == "L" for header in self._headers) else "RGB"

    @property
    def native_size(self) -> tuple[int, int] | None:
        """The one size every image read shares, or None when sizes differ."""
        sizes = {header.size for header in self._headers}
        return sizes.pop() if len(sizes) == 1 else None
