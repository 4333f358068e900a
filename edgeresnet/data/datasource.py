"""DataSource: what every kind of data (Fashion-MNIST, image folder, .npz) offers the pipeline."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from edgeresnet.data.imageset import ImageSet
from edgeresnet.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, ChannelMode, PreprocessSpec
from edgeresnet.data.splits import SplitName, check_split_name
from edgeresnet.errors import DatasetError

# Input size for natural images of unknown or mixed size: what ImageNet-trained weights expect.
DEFAULT_INPUT_SIZE = 224
# Below this size a resize-then-center-crop throws away too much of a small image.
MIN_CROP_INPUT_SIZE = 64
# ImageNet evaluation convention: resize the shorter side to input/0.875, then center-crop.
CROP_FRACTION = 0.875


class DataSource(ABC):
    """A labelled image dataset with deterministic, disjoint train / calibration / evaluation splits.

    Create one with :func:`edgeresnet.data.open_source`; ``name`` is the canonical source string,
    which :func:`open_source` accepts back.
    """

    def __init__(self, name: str, class_names: Sequence[str]) -> None:
        self.name = name
        self.class_names = list(class_names)
        self._splits: dict[SplitName, ImageSet] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.num_classes} classes)"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    @abstractmethod
    def native_channels(self) -> ChannelMode:
        """Grayscale ("L") or colour ("RGB") images."""

    @property
    @abstractmethod
    def native_size(self) -> tuple[int, int] | None:
        """(height, width) shared by every image, or None when sizes differ."""

    def split(self, which: SplitName) -> ImageSet:
        """One of the three disjoint splits; the same images on every call and every machine."""
        which = check_split_name(which)
        if which not in self._splits:
            self._splits[which] = self._make_split(which)
        return self._splits[which]

    @abstractmethod
    def _make_split(self, which: SplitName) -> ImageSet: ...

    def default_preprocess(
        self, input_size: int | None = None, channels: ChannelMode | None = None
    ) -> PreprocessSpec:
        """The preprocessing a model trained on this source should use.

        Natural images: ImageNet mean/std; from ``input_size`` 64 up, the shorter side is resized to
        ``input_size / 0.875`` and center-cropped; smaller inputs are resized directly. Images that
        already have the input size are left unresized (that also keeps the vectorised batch path).
        """
        native = self.native_size
        if input_size is None:
            square = native is not None and native[0] == native[1]
            input_size = native[0] if square else DEFAULT_INPUT_SIZE
        check_input_size(input_size)
        if native == (input_size, input_size) or input_size < MIN_CROP_INPUT_SIZE:
            resize_to = None  # PreprocessSpec resizes straight to input_size when the sizes differ
        else:
            resize_to = round(input_size / CROP_FRACTION)
        spec = PreprocessSpec(
            input_size=(input_size, input_size),
            resize_to=resize_to,
            channels="RGB",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
        return spec.with_channels(channels or self.native_channels)


def check_input_size(input_size: int) -> None:
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise DatasetError(f"input size must be a positive integer, got {input_size!r}")
