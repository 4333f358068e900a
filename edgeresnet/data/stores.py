"""Where a source's images live: one numpy array in memory, or files decoded on demand.

An :class:`ImageSet` is a view (a list of item numbers) onto one store; every split of a source
shares its store, so files found undecodable and file hashes are remembered across splits.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeresnet.data.decoding import DECODE_ERRORS, PICTURE_BOX, DraftSize, decode_image, open_image
from edgeresnet.errors import DatasetError

log = logging.getLogger(__name__)

# Arrays; a file decoded at a reduced size that ends in a part pixel stays a Pillow image, which carries
# its picture box (decoding.PICTURE_BOX) to the resize.
DecodedImages = np.ndarray | list[np.ndarray | Image.Image]

_HASH_CHUNK = 4096  # images per hashing step: bounds the copy that fancy indexing makes


class ImageStore(ABC):
    """Item number → decoded uint8 image."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def read(self, item: int) -> np.ndarray:
        """One decoded image; an undecodable one raises DatasetError naming it."""

    @abstractmethod
    def read_many(self, items: np.ndarray, draft: DraftSize | None = None) -> tuple[DecodedImages, np.ndarray]:
        """(images, ok): the decodable ones among ``items`` in order, and a bool mask over ``items``.

        ``draft`` says how small the images are about to be resized, so files may be decoded at a
        reduced size (see :func:`edgeresnet.data.decoding.open_image`) and come as Pillow images;
        arrays ignore it.
        """

    @abstractmethod
    def update_hash(self, hasher: Any, items: np.ndarray) -> None:
        """Feed the content identity of ``items`` (in order) to a hashlib object."""

    def failed_items(self) -> np.ndarray:
        """Item numbers found undecodable so far."""
        return np.zeros(0, dtype=np.int64)


class ArrayStore(ImageStore):
    """uint8 ``N×H×W`` or ``N×H×W×3`` images held in memory (Fashion-MNIST, .npz)."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def read(self, item: int) -> np.ndarray:
        return self.images[item]

    def read_many(self, items: np.ndarray, draft: DraftSize | None = None) -> tuple[DecodedImages, np.ndarray]:
        return self.images[items], np.ones(len(items), dtype=bool)

    def update_hash(self, hasher: Any, items: np.ndarray) -> None:
        hasher.update(f"array{self.images.shape[1:]}{self.images.dtype.str}".encode())
        for start in range(0, len(items), _HASH_CHUNK):
            hasher.update(np.ascontiguousarray(self.images[items[start : start + _HASH_CHUNK]]).data)


class FileStore(ImageStore):
    """Image files under ``root``, decoded lazily; undecodable ones are recorded, not fatal."""

    def __init__(self, root: Path, relpaths: list[str]) -> None:
        self.root = root
        self.relpaths = relpaths
        # item -> why it could not be decoded; read by ImageSet.skipped and skipped_files
        self.failures: dict[int, str] = {}
        self._digests: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self.relpaths)

    def path(self, item: int) -> Path:
        return self.root / self.relpaths[item]

    def record_failure(self, item: int, exc: BaseException) -> None:
        if item not in self.failures:
            self.failures[item] = f"{type(exc).__name__}: {exc}"
            # One line per file only in debug logs; callers report the count (ImageSet.skipped).
            log.debug("skipping undecodable image %s (%s)", self.path(item), self.failures[item])

    def _try_decode(self, item: int, draft: DraftSize | None = None) -> np.ndarray | Image.Image | None:
        if item in self.failures:
            return None
        try:
            if draft is None:
                return decode_image(self.path(item))
            image = open_image(self.path(item), draft)
            return image if PICTURE_BOX in image.info else np.asarray(image)
        except DECODE_ERRORS as exc:
            self.record_failure(item, exc)
            return None

    def read(self, item: int) -> np.ndarray:
        image = self._try_decode(item)
        if not isinstance(image, np.ndarray):
            raise DatasetError(f"cannot decode image {self.path(item)}: {self.failures[item]}")
        return image

    def read_many(self, items: np.ndarray, draft: DraftSize | None = None) -> tuple[DecodedImages, np.ndarray]:
        decoded = [self._try_decode(int(item), draft) for item in items]
        ok = np.array([image is not None for image in decoded], dtype=bool)
        images = [image for image in decoded if image is not None]
        return images, ok

    def failed_items(self) -> np.ndarray:
        return np.fromiter(self.failures, dtype=np.int64, count=len(self.failures))

    def update_hash(self, hasher: Any, items: np.ndarray) -> None:
        # Relative paths and file bytes: mtimes and absolute paths differ between machines that hold
        # the same data. Per-file digests are cached so subsets and other splits do not reread files.
        for item in items:
            item = int(item)
            digest = self._digests.get(item)
            if digest is None:
                digest = self._file_digest(self.path(item))
                self._digests[item] = digest
            relpath = self.relpaths[item].encode()
            hasher.update(len(relpath).to_bytes(4, "little") + relpath + digest)

    @staticmethod
    def _file_digest(path: Path) -> bytes:
        try:
            with path.open("rb") as handle:
                return hashlib.file_digest(handle, "sha256").digest()
        except OSError as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc
