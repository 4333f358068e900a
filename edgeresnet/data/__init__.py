"""Data sources, their deterministic splits, and the preprocessing spec.

One string names the data wherever it is needed (see :func:`open_source`)::

    source = open_source("fashion-mnist")
    spec = source.default_preprocess()
    for inputs, labels in source.split("evaluation").batches(spec, 256):
        ...

numpy and Pillow only: the torch-free runtime and calibration import this package.
"""

from __future__ import annotations

from edgeresnet.data.datasource import DataSource
from edgeresnet.data.fashion_mnist import FashionMnistSource
from edgeresnet.data.idx import read_idx
from edgeresnet.data.image_folder import ImageFolderSource
from edgeresnet.data.imageset import ImageSet
from edgeresnet.data.npz import NpzSource
from edgeresnet.data.preprocessing import ChannelMode, PreprocessSpec
from edgeresnet.data.source_string import ACCEPTED_FORMS, open_source
from edgeresnet.data.splits import SPLIT_NAMES, SplitName

__all__ = [
    "ACCEPTED_FORMS",
    "SPLIT_NAMES",
    "ChannelMode",
    "DataSource",
    "FashionMnistSource",
    "ImageFolderSource",
    "ImageSet",
    "NpzSource",
    "PreprocessSpec",
    "SplitName",
    "open_source",
    "read_idx",
]
