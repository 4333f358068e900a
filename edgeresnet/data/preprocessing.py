"""The preprocessing spec: the one record of how an image becomes a model input.

It is written into every checkpoint card and bundle manifest and read by training-time evaluation,
calibration, evaluation, the benchmark and the runtime, so preprocessing cannot drift between them.
It depends on numpy and Pillow only: the torch-free runtime uses it as it is.
"""

from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from edgeresnet.data.decoding import PICTURE_BOX, open_image, to_channel_mode
from edgeresnet.errors import DatasetError
from edgeresnet.sharing import share

ChannelMode = Literal["L", "RGB"]
Resample = Literal["bilinear", "bicubic", "nearest"]

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}

# A downscale is resized in this many bands of output rows, always, so that a caller with an idle core
# can share them with it and the pixels never depend on how many cores there were.
RESIZE_BANDS = 4
# Fewer output rows per band than this and a band costs more in calls than it saves.
MIN_BAND_ROWS = 16

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessSpec:
    """How to turn a decoded image into a float32 NCHW model input.

    Steps, in order: convert to ``channels`` ("L" grayscale or "RGB"), resize the shorter side to
    ``resize_to`` (skipped when it is ``None`` and the image already has ``input_size``), center-crop to
    ``input_size``, scale to [0, 1], normalise with ``mean``/``std``, lay out as NCHW float32.
    """

    input_size: tuple[int, int]
    resize_to: int | None = None
    channels: ChannelMode = "RGB"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: Resample = "bilinear"
    layout: Literal["NCHW"] = "NCHW"
    dtype: Literal["float32"] = "float32"

    def __post_init__(self) -> None:
        height, width = self.input_size
        if height < 1 or width < 1:
            raise DatasetError(f"input size must be positive, got {self.input_size}")
        if self.channels not in ("L", "RGB"):
            raise DatasetError(f"channels must be 'L' or 'RGB', got {self.channels!r}")
        if len(self.mean) != self.num_channels or len(self.std) != self.num_channels:
            raise DatasetError(
                f"mean/std need {self.num_channels} values for {self.channels}, "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if self.interpolation not in _RESAMPLE:
            raise DatasetError(f"unknown interpolation {self.interpolation!r}")

    @property
    def num_channels(self) -> int:
        return 1 if self.channels == "L" else 3

    def input_shape(self, batch: int | None = None) -> tuple[Any, ...]:
        """The NCHW shape of a batch (``batch=None`` leaves the batch dimension symbolic)."""
        return (batch, self.num_channels, *self.input_size)

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["input_size"] = list(self.input_size)
        record["mean"] = list(self.mean)
        record["std"] = list(self.std)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> PreprocessSpec:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(record) - known
        if unknown:
            raise DatasetError(f"unknown preprocessing fields: {sorted(unknown)}")
        values = dict(record)
        values["input_size"] = tuple(int(v) for v in values["input_size"])
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)

    def with_channels(self, channels: ChannelMode) -> PreprocessSpec:
        """The same spec for another channel mode; grayscale statistics are averaged/replicated."""
        if channels == self.channels:
            return self
        if channels == "L":
            mean, std = (float(np.mean(self.mean)),), (float(np.mean(self.std)),)
        else:
            mean, std = self.mean * 3, self.std * 3
        return dataclasses.replace(self, channels=channels, mean=mean, std=std)

    # --- application ---------------------------------------------------------------------------

    def apply(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """One image (PIL, or uint8 HW / HWC array) → float32 CHW array."""
        return self.normalise(self.pixels(image)[None])[0]

    def apply_batch(self, images: np.ndarray | list[Any]) -> np.ndarray:
        """Many images → float32 NCHW batch.

        A uint8 ``N×H×W`` or ``N×H×W×C`` array that already has ``input_size`` is converted in one
        vectorised step (the in-memory datasets take this path); anything else goes image by image.
        """
        return self.normalise(self.pixels_batch(images))

    def load(self, path: str | Path, pool: Executor | None = None) -> np.ndarray:
        """An image file → its uint8 ``H×W×C`` model pixels, through the one decoder (fast JPEG path included).

        Raises one of ``edgeresnet.data.decoding.DECODE_ERRORS`` for a file that is no decodable image.
        ``pool``: threads for the resize's bands (see :meth:`resize_and_crop`).
        """
        return self.pixels(open_image(Path(path), self.draft_size), pool)

    def pixels(self, image: Image.Image | np.ndarray, pool: Executor | None = None) -> np.ndarray:
        """One image → uint8 ``H×W×C`` at ``input_size``: channels, resize and crop, no arithmetic.

        This is everything a model with in-model preprocessing (``normalise`` inside the graph) needs.
        """
        if self._at_input_size(image, image_axes=slice(0, 2), ndims=(2, 3)):
            return self._match_channels(image[None])[0]  # a camera frame at input size: no copy
        return self.resize_and_crop(self.to_channels(image), pool)

    # The steps of ``pixels``, public so that benchmarks/e2e_latency.py times each one as it runs here.

    def to_channels(self, image: Image.Image | np.ndarray) -> Image.Image:
        """Colour: any image → a Pillow image in this spec's channel mode (no copy when it already is)."""
        pil = to_channel_mode(_to_pil(image))
        return pil if pil.mode == self.channels else pil.convert(self.channels)

    def pixels_batch(self, images: np.ndarray | list[Any]) -> np.ndarray:
        """Many images → uint8 ``N×H×W×C`` at ``input_size``."""
        if self._at_input_size(images, image_axes=slice(1, 3), ndims=(3, 4)):
            return self._match_channels(images)
        if len(images) == 0:
            height, width = self.input_size
            return np.zeros((0, height, width, self.num_channels), dtype=np.uint8)
        return np.stack([self.pixels(image) for image in images])

    def _at_input_size(self, images: object, *, image_axes: slice, ndims: tuple[int, int]) -> bool:
        """uint8 pixels that need no resize: the vectorised path (datasets in memory, camera frames)."""
        return (
            isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim in ndims
            and tuple(images.shape[image_axes]) == tuple(self.input_size) and self.resize_to is None
        )

    def draft_size(self, width: float, height: float) -> tuple[int, int]:
        """The (width, height) an image of this size is resized to before cropping.

        The decoder reduces a JPEG no further than :data:`~edgeresnet.data.decoding.DRAFT_MARGIN`
        times this, so the resize below stays the one that shapes the pixels.
        """
        if self.resize_to is None:
            return self.input_size[1], self.input_size[0]
        scale = self.resize_to / min(width, height)
        return max(self.input_size[1], round(width * scale)), max(self.input_size[0], round(height * scale))

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 ``N×H×W[×C]`` pixels → float32 NCHW model input: scale, mean/std, layout.

        The same arithmetic the in-model preprocessing of the OpenVINO runner compiles into the graph.
        """
        images = self._match_channels(pixels)
        channel_axis = (1, self.num_channels, 1, 1)
        mean = (np.asarray(self.mean, dtype=np.float32) * 255.0).reshape(channel_axis)
        scale = (1.0 / (np.asarray(self.std, dtype=np.float32) * 255.0)).reshape(channel_axis)
        # Written straight into NCHW, one pass per operation: broadcasting over an innermost axis of 3
        # channels (NHWC) ran numpy's loops 3 elements at a time, 12× slower (1.0 against 0.08 ms for one
        # 224×224 RGB image) for the same float32 arithmetic, bit for bit.
        batch = np.empty((len(images), self.num_channels, *images.shape[1:3]), dtype=np.float32)
        np.subtract(images.transpose(0, 3, 1, 2), mean, out=batch, dtype=np.float32)
        np.multiply(batch, scale, out=batch)
        return batch

    def resize_and_crop(self, pil: Image.Image, pool: Executor | None = None) -> np.ndarray:
        """Resize and center crop → uint8 ``H×W×C``: the crop is the box the resize reads.

        A downscale runs in :data:`RESIZE_BANDS` bands of output rows; a thread of ``pool`` (a caller
        with an idle core) shares them, as Pillow lets go of the GIL while it resamples. The bands are
        the same with or without a pool, on any machine, so the pixels are too. An image from a
        reduced-size JPEG decode is read within the picture box the decoder recorded
        (:data:`~edgeresnet.data.decoding.PICTURE_BOX`), the same region a full decode would show.
        """
        height, width = self.input_size
        resample = _RESAMPLE[self.interpolation]
        # A reduced-size JPEG decode may end in a part pixel: the picture is its recorded box, not the image.
        picture = _picture_box(pil)
        x0, y0, x1, y1 = picture if picture is not None else (0, 0, pil.width, pil.height)
        if self.resize_to is None:
            if picture is None and (pil.height, pil.width) == (height, width):
                return to_array(pil)
            resized_w, resized_h, left, top = width, height, 0, 0
        else:
            resized_w, resized_h = self.draft_size(x1 - x0, y1 - y0)
            left, top = (resized_w - width) // 2, (resized_h - height) // 2
        scale_x, scale_y = (x1 - x0) / resized_w, (y1 - y0) / resized_h
        if self.interpolation == "nearest" or scale_x < 1 or scale_y < 1:
            # Nearest-neighbour ties and upscaling round differently through a box: the plain way.
            pil = pil.resize((resized_w, resized_h), resample, box=picture)
            return to_array(pil.crop((left, top, left + width, top + height)))
        # Resize only the source region the center crop keeps: the same filter at the same scale as
        # resizing the whole image and cropping after (Pillow's filter support still reaches outside
        # the box), without computing the pixels the crop would throw away.
        box = (x0 + left * scale_x, y0 + top * scale_y, x0 + (left + width) * scale_x, y0 + (top + height) * scale_y)
        return _resize_in_bands(pil, (width, height), resample, box, pool)

    def _match_channels(self, images: np.ndarray) -> np.ndarray:
        """uint8 N×H×W[×C] → N×H×W×C with this spec's channel count."""
        if images.ndim == 3:
            images = images[..., None]
        have = images.shape[-1]
        if have == self.num_channels:
            return images
        if have == 1 and self.num_channels == 3:
            return np.repeat(images, 3, axis=-1)
        if have in (3, 4) and self.num_channels == 1:
            # ITU-R 601-2 luma in Pillow's own fixed point (convert("L")), so an array and a Pillow image of the
            # same pixels give the same gray to the last bit; alpha is dropped. (Rounding a float32 dot product
            # instead differed in about one value in 4,000.)
            red, green, blue = (images[..., k].astype(np.uint32) for k in range(3))
            luma = (red * 19595 + green * 38470 + blue * 7471 + 0x8000) >> 16
            return luma.astype(np.uint8)[..., None]
        if have == 4 and self.num_channels == 3:
            return images[..., :3]
        raise DatasetError(f"cannot convert {have}-channel images to {self.channels}")


def to_array(image: Image.Image) -> np.ndarray:
    """A Pillow ``L`` or ``RGB`` image → uint8 ``H×W×C`` (the one copy out of Pillow's storage)."""
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _picture_box(pil: Image.Image) -> tuple[float, float, float, float] | None:
    """The decoder's record of where the picture lies in ``pil`` (within a pixel of its edges), if any."""
    box = pil.info.get(PICTURE_BOX)
    if not (isinstance(box, tuple) and len(box) == 4 and all(isinstance(v, float) for v in box)):
        return None
    x0, y0, x1, y1 = box
    inside = 0 <= x0 < 1 and 0 <= y0 < 1 and pil.width - 1 < x1 <= pil.width and pil.height - 1 < y1 <= pil.height
    return box if inside and x1 - x0 >= 1 and y1 - y0 >= 1 else None


def _resize_in_bands(pil: Image.Image, size: tuple[int, int], resample: Image.Resampling,
                     box: tuple[float, float, float, float], pool: Executor | None) -> np.ndarray:
    """Pillow's resize of ``box`` to ``size``, as bands of output rows, each reading its share of the box.

    With a pool, a pool thread takes bands beside this one (:func:`edgeresnet.sharing.share`: never waited on
    for longer than one band takes here). A band's pixels can differ by one level from the same rows
    of one whole-box call (Pillow takes the box in float32, so a band's filter centres move by a
    rounding), which is why the bands never depend on the machine or on who ran them.
    """
    width, height = size
    bands = max(1, min(RESIZE_BANDS, height // MIN_BAND_ROWS))
    left, top, right, bottom = box
    step = (bottom - top) / height
    rows = [height * k // bands for k in range(bands + 1)]

    def resize_band(k: int) -> np.ndarray:
        band_box = (left, top + rows[k] * step, right, bottom if k == bands - 1 else top + rows[k + 1] * step)
        return to_array(pil.resize((width, rows[k + 1] - rows[k]), resample, box=band_box))

    out = share([functools.partial(resize_band, k) for k in range(bands)], pool)
    return out[0] if bands == 1 else np.concatenate(out)


def _to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise DatasetError(f"image arrays must be uint8 HxW or HxWxC, got dtype {image.dtype}")
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
            raise DatasetError(f"image arrays must be HxW or HxWxC (C=1,3,4), got shape {image.shape}")
        return Image.fromarray(image)
    raise DatasetError(f"unsupported image type {type(image).__name__}")
