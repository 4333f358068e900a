"""Decoding image files into the uint8 arrays every data path works on.

A decoded image is ``H×W`` (grayscale) or ``H×W×3`` (colour) uint8, the same layout as the in-memory
datasets, so a folder and an array holding the same pixels go through identical preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

# Exceptions Pillow raises for a file it cannot decode: unknown format (UnidentifiedImageError is an
# OSError), truncated data (OSError), broken headers (SyntaxError, ValueError, EOFError), and images
# too large to decode safely (DecompressionBombError).
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
)

_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, read without decoding the pixels."""

    size: tuple[int, int]  # (height, width)
    channels: str  # "L" or "RGB": the channel mode decode_image returns


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def probe_image(path: Path) -> ImageHeader:
    """Read a file's header (size and mode); raises one of DECODE_ERRORS when it is not an image."""
    with Image.open(path) as image:
        channels = "L" if image.mode in _GRAY_MODES else "RGB"
        return ImageHeader(size=(image.height, image.width), channels=channels)


def decode_image(path: Path) -> np.ndarray:
    """Decode a file to uint8 ``H×W`` or ``H×W×3``; raises one of DECODE_ERRORS when it cannot.

    EXIF orientation is deliberately not applied: torchvision's and timm's loaders do not apply it,
    and weights trained through them expect the pixels as stored.
    """
    with Image.open(path) as image:
        image.load()  # Image.open is lazy; this is where truncated data fails
        return to_uint8_array(image)


def to_uint8_array(image: Image.Image) -> np.ndarray:
    if image.mode == "L":
        return np.asarray(image, dtype=np.uint8)
    if image.mode.startswith("I"):
        # 16-bit grayscale (PNG): keep the high byte. PIL's convert("L") would clip instead,
        # turning almost every pixel white.
        values = np.asarray(image).astype(np.int64)
        return (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
    if image.mode == "F":
        return np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8)
    if image.mode in _GRAY_MODES:  # 1, LA: drop alpha / expand bits
        return np.asarray(image.convert("L"), dtype=np.uint8)
    # RGB, RGBA, P, CMYK, YCbCr, ...: alpha is dropped, as torchvision's loader does.
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
