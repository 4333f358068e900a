"""A dataset in one ``.npz``: ``images`` (uint8 N×H×W or N×H×W×C), ``labels``, optional ``class_names``."""

from __future__ import annotations

import zipfile
from functools import cached_property
from pathlib import Path

import numpy as np

from edgeresnet.data.datasource import DataSource
from edgeresnet.data.imageset import ImageSet
from edgeresnet.data.preprocessing import ChannelMode
from edgeresnet.data.splits import SplitName, per_class_split
from edgeresnet.data.stores import ArrayStore
from edgeresnet.errors import DatasetError


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    # allow_pickle=False: an .npz can carry pickled objects, and unpickling runs arbitrary code.
    if path.is_file() and not zipfile.is_zipfile(path) and path.read_bytes()[:6] != b"\x93NUMPY":
        raise DatasetError(f"{path} is not an .npz archive (expected one with images and labels)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path} is a single .npy array; expected an .npz with images and labels")
        with loaded as archive:
            missing = [key for key in ("images", "labels") if key not in archive.files]
            if missing:
                raise DatasetError(
                    f"{path} lacks {' and '.join(missing)} (it has: {', '.join(archive.files)})"
                )
            return {key: archive[key] for key in ("images", "labels", "class_names") if key in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DatasetError(
                f"{path} holds pickled Python objects, which are never loaded; "
                f"store class_names as a string array (np.array(names, dtype=str))"
            ) from exc
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"cannot read {path}: {exc} (truncated or not an .npz?)") from exc


def _check_images(path: Path, images: np.ndarray) -> np.ndarray:
    shape_ok = images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))
    if images.dtype != np.uint8 or not shape_ok:
        raise DatasetError(
            f"{path}: images must be uint8 N×H×W or N×H×W×C with C 1 or 3, got {images.dtype} {images.shape}"
        )
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise DatasetError(f"{path}: images array is empty ({images.shape})")
    # One grayscale layout (N×H×W) everywhere, as Fashion-MNIST and decoded files have.
    return images[..., 0] if images.ndim == 4 and images.shape[-1] == 1 else images


def _check_labels(path: Path, labels: np.ndarray, count: int) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != count:
        raise DatasetError(
            f"{path}: labels must be {count} integers (one per image), got {labels.dtype} {labels.shape}"
        )
    if labels.min() < 0:
        raise DatasetError(f"{path}: labels must be >= 0, found {labels.min()}")
    return labels.astype(np.int64)


def _check_class_names(path: Path, names: np.ndarray | None, labels: np.ndarray) -> list[str]:
    highest = int(labels.max())
    if names is None:
        # Without names the labels define the classes; a gap (say one stray label 1,000,000) would
        # silently build a model with a million classes that were never seen.
        present = np.unique(labels)
        if len(present) != highest + 1:
            raise DatasetError(
                f"{path}: without class_names the labels must number the classes 0..K-1, but they hold "
                f"{len(present)} distinct values up to {highest}; renumber them or add a class_names array"
            )
        return [str(i) for i in range(highest + 1)]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DatasetError(f"{path}: class_names must be a 1-D string array, got {names.dtype} {names.shape}")
    decoded = [name.decode() if isinstance(name, bytes) else str(name) for name in names.tolist()]
    if len(set(decoded)) != len(decoded) or not all(decoded):
        raise DatasetError(f"{path}: class_names must be unique and non-empty")
    if highest >= len(decoded):
        raise DatasetError(f"{path}: label {highest} is out of range for {len(decoded)} class_names")
    return decoded


class NpzSource(DataSource):
    """Images and labels from an .npz; seeded per-class 80/10/10 train/calibration/evaluation split."""

    def __init__(self, path: Path) -> None:
        path = path.expanduser().absolute()
        arrays = _read_arrays(path)
        images = _check_images(path, arrays["images"])
        labels = _check_labels(path, arrays["labels"], len(images))
        class_names = _check_class_names(path, arrays.get("class_names"), labels)
        self.path = path
        self._store = ArrayStore(images)
        self._labels = labels
        super().__init__(str(path), class_names)

    @property
    def native_channels(self) -> ChannelMode:
        return "L" if self._store.images.ndim == 3 else "RGB"

    @property
    def native_size(self) -> tuple[int, int]:
        return (int(self._store.images.shape[1]), int(self._store.images.shape[2]))

    @cached_property
    def _split_items(self) -> dict[SplitName, np.ndarray]:
        return per_class_split(self._labels, self.num_classes)

    def _make_split(self, which: SplitName) -> ImageSet:
        items = self._split_items[which]
        return ImageSet(self._store, items, self._labels[items], self.class_names, f"{self.name}[{which}]")
