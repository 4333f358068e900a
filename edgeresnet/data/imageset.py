"""ImageSet: one split of a data source, as labelled images and preprocessed batches."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.data.splits import balanced_indices, stable_permutation
from edgeresnet.data.stores import DecodedImages, FileStore, ImageStore
from edgeresnet.errors import DatasetError

# More undecodable images than this share of a set means the data is broken, not noisy.
MAX_SKIPPED_FRACTION = 0.5


class ImageSet:
    """Labelled images: a view onto a source's store, cheap to subset.

    Images are uint8 ``H×W`` or ``H×W×3``; :meth:`batches` turns them into float32 NCHW model inputs
    through a :class:`PreprocessSpec`. Images in files are decoded batch by batch; an undecodable one
    is skipped and counted in :attr:`skipped` (complete once a pass of :meth:`batches` has seen every
    image), and only when more than half of the set is undecodable does it become a DatasetError.
    """

    def __init__(
        self,
        store: ImageStore,
        items: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        name: str,
    ) -> None:
        self._store = store
        self._items = np.asarray(items, dtype=np.int64)
        self._labels = np.array(labels, dtype=np.int64)  # a copy: it is frozen below
        self._labels.flags.writeable = False
        if len(self._items) != len(self._labels):
            raise ValueError(f"{len(self._items)} items but {len(self._labels)} labels")
        self.class_names = list(class_names)
        self.name = name
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ImageSet({self.name!r}, {len(self)} images, {self.num_classes} classes)"

    @property
    def labels(self) -> np.ndarray:
        """int64 label of every image, in order (read-only)."""
        return self._labels

    @property
    def item_ids(self) -> np.ndarray:
        """Where each image sits in its source (array row, or file number in sorted order); read-only.

        The same on every open, so it pins down a split's membership. Fashion-MNIST's evaluation
        split numbers the test file's images, the other two splits the training file's.
        """
        view = self._items.view()
        view.flags.writeable = False
        return view

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def skipped(self) -> int:
        """How many images of this set were found undecodable so far."""
        return int(np.isin(self._items, self._store.failed_items()).sum())

    @property
    def skipped_files(self) -> dict[str, str]:
        """Undecodable files found so far in this set: path → reason."""
        if not isinstance(self._store, FileStore):
            return {}
        failures = self._store.failures
        return {str(self._store.path(int(i))): failures[int(i)] for i in self._items if int(i) in failures}

    # --- views ---------------------------------------------------------------------------------

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ImageSet:
        """The images at ``indices`` (positions in this set), in that order."""
        positions = np.asarray(indices)
        if positions.size == 0:
            positions = positions.astype(np.int64)
        if positions.ndim != 1 or positions.dtype.kind not in "iu":
            raise DatasetError(f"subset indices must be a 1-D sequence of integers, got {positions.dtype}")
        if positions.size and (positions.min() < -len(self) or positions.max() >= len(self)):
            raise DatasetError(f"subset index out of range for {self.name} with {len(self)} images")
        return ImageSet(
            self._store,
            self._items[positions],
            self._labels[positions],
            self.class_names,
            name or f"{self.name}[subset of {positions.size}]",
        )

    def head(self, n: int) -> ImageSet:
        """The first ``n`` images (all of them when the set is smaller)."""
        if n < 0:
            raise DatasetError(f"head needs n >= 0, got {n}")
        return self.subset(np.arange(min(n, len(self))), name=f"{self.name}[:{n}]")

    def balanced_sample(self, n: int, seed: int = 0) -> ImageSet:
        """``n`` seeded images spread as evenly over the classes as their sizes allow."""
        if n < 0 or n > len(self):
            raise DatasetError(f"cannot sample {n} images: split {self.name} has {len(self)} images")
        picked = balanced_indices(self._labels, self.num_classes, n, seed)
        return self.subset(picked, name=f"{self.name}[balanced {n}, seed {seed}]")

    # --- images --------------------------------------------------------------------------------

    def raw(self, i: int) -> np.ndarray:
        """Image ``i`` decoded to uint8 ``H×W`` or ``H×W×3``; an undecodable file raises DatasetError."""
        if not -len(self) <= i < len(self):
            raise DatasetError(f"image index {i} out of range for {self.name} with {len(self)} images")
        return self._store.read(int(self._items[i]))

    def batches(
        self,
        spec: PreprocessSpec,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(float32 NCHW inputs, int64 labels) batches of ``batch_size``.

        Batches stay full when images are skipped: the next images fill the gap. Only the last batch
        can be shorter, and ``drop_last`` drops it. ``shuffle`` orders the set by a seeded permutation
        that is the same on every machine (pass the epoch as ``seed`` for a new order each epoch).
        """
        if batch_size < 1:
            raise DatasetError(f"batch size must be at least 1, got {batch_size}")
        order = stable_permutation(len(self), seed) if shuffle else np.arange(len(self))
        pending = _PendingImages()
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            images, ok = self._store.read_many(self._items[chunk], spec.draft_size)
            if not ok.all():
                self._check_enough_decodable()
            pending.add(images, self._labels[chunk][ok])
            while len(pending) >= batch_size:
                batch_images, batch_labels = pending.take(batch_size)
                yield spec.apply_batch(batch_images), batch_labels
        if len(pending) and not drop_last:
            batch_images, batch_labels = pending.take(len(pending))
            yield spec.apply_batch(batch_images), batch_labels

    def _check_enough_decodable(self) -> None:
        skipped = self.skipped
        if skipped > MAX_SKIPPED_FRACTION * len(self):
            path, why = next(iter(self.skipped_files.items()))
            examples = f"{path} ({why.split(':')[0]})"
            raise DatasetError(
                f"{skipped} of {len(self)} images in {self.name} cannot be decoded, e.g. {examples}"
            )

    def fingerprint(self) -> str:
        """sha256 hex of the set's content: class names, labels and image bytes (or file bytes)."""
        if self._fingerprint is None:
            hasher = hashlib.sha256(b"edgeresnet-imageset-v1\n")
            hasher.update(json.dumps(self.class_names).encode() + b"\n")
            hasher.update(self._labels.astype("<i8").tobytes())
            self._store.update_hash(hasher, self._items)
            self._fingerprint = hasher.hexdigest()
        return self._fingerprint


class _PendingImages:
    """Decoded images waiting to fill a batch; keeps array chunks as views until a batch is cut."""

    def __init__(self) -> None:
        self._chunks: list[tuple[DecodedImages, np.ndarray]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, images: DecodedImages, labels: np.ndarray) -> None:
        if len(labels):
            self._chunks.append((images, labels))
            self._count += len(labels)

    def take(self, n: int) -> tuple[DecodedImages, np.ndarray]:
        taken: list[tuple[DecodedImages, np.ndarray]] = []
        need = n
        while need:
            images, labels = self._chunks[0]
            if len(labels) <= need:
                taken.append(self._chunks.pop(0))
                need -= len(labels)
            else:
                taken.append((images[:need], labels[:need]))
                self._chunks[0] = (images[need:], labels[need:])
                need = 0
        self._count -= n
        labels = np.concatenate([chunk_labels for _, chunk_labels in taken])
        if len(taken) == 1 and isinstance(taken[0][0], np.ndarray):
            return taken[0][0], labels
        images = [image for chunk_images, _ in taken for image in chunk_images]
        return _stack_if_uniform(images), labels


def _stack_if_uniform(images: list[np.ndarray | Image.Image]) -> DecodedImages:
    """One array when every image is an array of the same shape, so preprocessing can take its vectorised path."""
    if images and all(isinstance(image, np.ndarray) and image.shape == images[0].shape for image in images):
        return np.stack(images)
    return images
