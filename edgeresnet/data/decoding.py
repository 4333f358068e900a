"""Decoding image files: the one decoder every data path uses (training, calibration, export, benchmark, runtime).

A decoded image is a Pillow image in mode ``L`` (grayscale) or ``RGB`` (colour), or the same pixels as a
uint8 ``H×W`` / ``H×W×3`` array, the layout of the in-memory datasets, so a folder and an array holding
the same pixels go through identical preprocessing.

Three things happen here, in this order, for every file:

1. **Reduced-size JPEG decoding.** When the caller says how small the image is about to be resized
   (``draft``), a JPEG is decoded by libjpeg at the smallest DCT scale (1/2, 1/4, 1/8) that still
   leaves it at least :data:`DRAFT_MARGIN` times that size, so a 12-megapixel photo is never decoded in
   full to make a 224-pixel input. The final resize then still reduces by at least that factor, so its
   antialiasing filter, not the DCT scaling alone, shapes the result. Where the scale does not divide
   the size, the last decoded column or row holds only part of a pixel's share of the picture; the
   picture's exact box is recorded (:data:`PICTURE_BOX`) and the resize reads that box. The margin was
   chosen by measurement (``benchmarks/e2e_latency.py``, against a plain full-resolution decode + the
   same resize): at 1.4 the top-1 labels agree on 99.54% (95% CI 99.39 to 99.65) of 10,000 JPEGs for a
   ResNet-20 at 28 px, where one pixel weighs most (1.25 gave 99.43%, 2.5 gave 99.81%), and on real
   photos of 1.2 to 12 MP at the ImageNet preprocessing it stays ≥ 44.5 dB PSNR from the plain path. It
   lets a 4032×3024 phone photo decode at 1/8 (504×378) for a 256-pixel resize, the scale Pillow's own
   ``draft`` picks for 224 px; a margin of 1.5 or more needs 1/4, a quarter more decode time and
   2.5 times the resize.
2. **EXIF orientation.** Phones store photos as the sensor saw them and record the rotation in EXIF;
   the pixels are turned upright here, for training and the runtime alike.
3. **Mode normalisation.** Every mode a user meets (1, L, LA, I;16, I, F, P, RGBA, CMYK, YCbCr...)
   becomes ``L`` or ``RGB``; alpha is dropped, as torchvision's loader does.

Decompression bombs (more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS``) are refused before any
pixel is decoded, as :class:`ImageTooLargeError`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from edgeresnet.data.walk import walk_files
from edgeresnet.errors import DatasetError

# Every format Pillow decodes that a camera, scanner or phone writes; GIF and TIFF go through the same
# mode conversion (palette, 16-bit) as the others, and an animated GIF gives its first frame.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"})

# How far above the resize target a reduced-size JPEG decode must stay (see the module docstring).
DRAFT_MARGIN = 1.4

# A reduced-size decode whose scale does not divide the image's size ends in a column or row holding only
# part of a pixel's share of the picture (a 270-px JPEG at 1/4 is 68 px holding 67.5). Its exact box in the
# decoded pixels is kept in the image's ``info`` under this key (Pillow copies ``info`` with the image), and
# the resize reads that box: without it
# such a file was stretched by up to a pixel (for 270 px, top-1 agreement with a full decode was 98.74% of
# 1,429 JPEGs; 99.72% with the box; benchmarks/e2e_latency.py).
class _PictureBoxKey:
    """The ``info`` key of the picture box: an object, so no file's metadata (a PNG text chunk fills ``info``
    with its own string keys) can ever set it."""

    def __repr__(self) -> str:
        return "PICTURE_BOX"


PICTURE_BOX = _PictureBoxKey()

# Where a point (x, y) of a stored w×h image goes when its EXIF orientation is applied (pixel edges at
# integers), as Pillow's exif_transpose turns it: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate
# 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise.
_ORIENTED_POINT: dict[int, Callable[[float, float, int, int], tuple[float, float]]] = {
    2: lambda x, y, w, h: (w - x, y),
    3: lambda x, y, w, h: (w - x, h - y),
    4: lambda x, y, w, h: (x, h - y),
    5: lambda x, y, w, h: (y, x),
    6: lambda x, y, w, h: (h - y, x),
    7: lambda x, y, w, h: (h - y, w - x),
    8: lambda x, y, w, h: (y, w - x),
}

# EXIF orientations (5-8) that swap width and height when applied.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION_TAG = 0x0112


class ImageTooLargeError(ValueError):
    """More pixels than Pillow's decompression-bomb limit; refused before decoding."""


# Exceptions Pillow raises for a file it cannot decode: unknown format (UnidentifiedImageError is an
# OSError), truncated data (OSError), broken headers (SyntaxError, ValueError, EOFError), and images
# too large to decode safely (DecompressionBombError, and our own ImageTooLargeError, a ValueError).
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
)

_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

# (width, height) of an upright image → the smallest (width, height) a decode may reduce it to.
DraftSize = Callable[[int, int], tuple[int, int]]


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, read without decoding the pixels."""

    size: tuple[int, int]  # (height, width), upright (EXIF orientation applied)
    channels: str  # "L" or "RGB": the channel mode decode_image returns


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def no_images_found(inputs: Sequence[str | Path]) -> str:
    """Why a search of ``inputs`` found no image: what is read, and the files skipped, counted by suffix.

    ``"no image files found in scans (read .bmp .gif .jpeg ...; skipped 3 .heic, 1 .txt)"``.
    """
    skipped: dict[str, int] = {}
    for given in map(Path, inputs):
        for path in walk_files(given) if given.is_dir() else ():  # never out of the folder, never round a loop
            suffix = path.suffix.lower() or "(no suffix)"
            skipped[suffix] = skipped.get(suffix, 0) + 1
    read = " ".join(sorted(IMAGE_EXTENSIONS))
    found = "; skipped " + ", ".join(f"{count} {suffix}" for suffix, count in
                                     sorted(skipped.items(), key=lambda item: (-item[1], item[0]))) if skipped else \
        "; there are no files at all"
    return f"no image files found in {', '.join(map(str, inputs))} (read {read}{found})"


def probe_image(path: Path) -> ImageHeader:
    """Read a file's header (size and mode); raises one of DECODE_ERRORS when it is not an image."""
    with Image.open(path) as image:
        _refuse_bombs(image, path)
        channels = "L" if image.mode in _GRAY_MODES else "RGB"
        width, height = _upright_size(image)
        return ImageHeader(size=(height, width), channels=channels)


def open_image(path: Path | BinaryIO, draft: DraftSize | None = None) -> Image.Image:
    """Decode a file to an upright ``L`` or ``RGB`` Pillow image; raises one of DECODE_ERRORS when it cannot.

    ``path`` may also be an open binary stream (the bytes a server received), decoded the same way.

    Args:
        draft: how small the caller will resize the image, as a function of its upright size; a JPEG
            is then decoded at the smallest DCT scale that stays :data:`DRAFT_MARGIN` times above it.
    """
    with Image.open(path) as image:
        _refuse_bombs(image, path)
        orientation = _orientation(image)
        picture = _reduce_jpeg(image, draft, orientation) if draft is not None and image.format == "JPEG" else None
        image.load()  # Image.open is lazy; this is where truncated data fails
        if picture is not None:
            picture = _oriented_box(picture, orientation, image.size)
        # In place: for an upright photo (most files) Pillow's default returns a copy of the decode, which
        # cost 1.1 ms beside a 2.0 ms decode of a 640×427 JPEG (fresh pages; benchmarks/e2e_latency.py).
        ImageOps.exif_transpose(image, in_place=True)
        decoded = to_channel_mode(image)
        if picture is not None:
            decoded.info[PICTURE_BOX] = picture
        return decoded


def decode_image(path: Path, draft: DraftSize | None = None) -> np.ndarray:
    """Decode a file to uint8 ``H×W`` or ``H×W×3`` (see :func:`open_image`)."""
    return np.asarray(open_image(path, draft))


def to_channel_mode(image: Image.Image) -> Image.Image:
    """Any Pillow mode → ``L`` or ``RGB``."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode.startswith("I"):
        # 16-bit / 32-bit grayscale (PNG, TIFF): keep the high byte. PIL's convert("L") would clip
        # instead, turning almost every pixel white.
        values = np.asarray(image).astype(np.int64)
        return Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), mode="L")
    if image.mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8), mode="L")
    if image.mode in _GRAY_MODES:  # 1, LA: drop alpha / expand bits
        return image.convert("L")
    if image.mode == "P" and "transparency" in image.info:
        # Palette transparency must go through RGBA (Pillow warns otherwise); alpha is dropped after.
        return image.convert("RGBA").convert("RGB")
    # RGBA, P, CMYK, YCbCr, LAB, HSV: alpha is dropped, as torchvision's loader does.
    return image.convert("RGB")


def to_uint8_array(image: Image.Image) -> np.ndarray:
    """A Pillow image of any mode → uint8 ``H×W`` or ``H×W×3``."""
    return np.asarray(to_channel_mode(image), dtype=np.uint8)


def _refuse_bombs(image: Image.Image, path: Path | BinaryIO) -> None:
    # Pillow itself only warns between its limit and twice its limit; a file that large is refused
    # here in one line, before a single pixel is decoded.
    limit = Image.MAX_IMAGE_PIXELS
    pixels = image.width * image.height
    if limit is not None and pixels > limit:
        raise ImageTooLargeError(
            f"{Path(path).name if isinstance(path, (str, os.PathLike)) else 'the image'} is {image.width}×{image.height} ({pixels / 1e6:.0f} MP), more than Pillow's "
            f"decompression-bomb limit of {limit / 1e6:.0f} MP (PIL.Image.MAX_IMAGE_PIXELS)"
        )


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except (ValueError, TypeError, SyntaxError, OSError):  # a broken EXIF block is no orientation
        return 1


def _upright_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    return (height, width) if _orientation(image) in _TRANSPOSING_ORIENTATIONS else (width, height)


def _reduce_jpeg(image: Image.Image, draft: DraftSize, orientation: int) -> tuple[float, float, float, float] | None:
    """Ask libjpeg for the smallest DCT scale that keeps the image DRAFT_MARGIN × above the target.

    Returns the picture's box in the decoded pixels (as stored, before EXIF orientation) where the scale
    does not divide the size, so that the last column or row holds only part of a pixel; else None.
    """
    transposed = orientation in _TRANSPOSING_ORIENTATIONS
    width, height = image.size
    upright = (height, width) if transposed else (width, height)
    target_w, target_h = draft(*upright)
    need = (math.ceil(target_w * DRAFT_MARGIN), math.ceil(target_h * DRAFT_MARGIN))
    if transposed:
        need = (need[1], need[0])
    if need[0] < width or need[1] < height:
        # Pillow picks the largest 1/2, 1/4, 1/8 scale whose result is still at least ``need``, and
        # returns the original's extent in the decoded pixels (Image.thumbnail resizes that box too).
        drafted = image.draft(image.mode, need)
        if drafted is not None:
            box = tuple(float(v) for v in drafted[1])
            if box[2:] != tuple(float(v) for v in image.size):
                return box  # type: ignore[return-value]
    return None


def _oriented_box(box: tuple[float, float, float, float], orientation: int,
                  size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Where a box of a stored ``size`` image lies once its EXIF orientation is applied."""
    move = _ORIENTED_POINT.get(orientation)
    if move is None:
        return box
    (x0, y0), (x1, y1) = move(box[0], box[1], *size), move(box[2], box[3], *size)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Files named on a command line, with every folder among them searched recursively for images.

    A file is kept as given, whatever its name (the user chose it); a folder contributes its image
    files (by extension, hidden ones skipped) in sorted order. A path that does not exist is a
    DatasetError before anything runs.
    """
    found: list[Path] = []
    for given in map(Path, inputs):
        if given.is_dir():  # links out of the folder and link loops are not followed (edgeresnet.data.walk)
            found.extend(path for path in walk_files(given) if is_image_file(path))
        elif given.exists():
            found.append(given)
        else:
            raise DatasetError(f"image not found: {given}")
    return found
