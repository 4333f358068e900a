"""open_source: the one parser of data-source strings (``--data``, ``--calib-data``, the Python API)."""

from __future__ import annotations

import difflib
from pathlib import Path

from edgeresnet.data.datasource import DataSource
from edgeresnet.data.fashion_mnist import SCHEME, FashionMnistSource
from edgeresnet.data.image_folder import ImageFolderSource
from edgeresnet.data.npz import NpzSource
from edgeresnet.errors import DatasetError

ACCEPTED_FORMS = (
    "fashion-mnist",
    "fashion-mnist:/dir/with/idx/files",
    "/path/to/image-folder (one sub-folder per class, or train/ + val/)",
    "/path/to/data.npz (images, labels[, class_names])",
)
_HINT = "accepted: " + "; ".join(ACCEPTED_FORMS)
_SCHEMES = (SCHEME,)


def open_source(text: str) -> DataSource:
    """Open a data source from its string form; anything unusable raises a one-line DatasetError."""
    text = text.strip()
    if not text:
        raise DatasetError(f"empty data source; {_HINT}")
    scheme, colon, rest = text.partition(":")
    if scheme.lower() == SCHEME:
        directory = Path(rest) if colon and rest else None
        return FashionMnistSource(directory)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource(path)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return NpzSource(path)
        raise DatasetError(f"{text} is a file but not an .npz; {_HINT}")
    raise DatasetError(
        f"unknown data source {text!r}{_suggestion(scheme)}: no such file or directory; {_HINT}"
    )


def _suggestion(scheme: str) -> str:
    # "fashion_mnist", "fashionmnist", "mnist" are the likely slips.
    normalized = scheme.lower().replace("_", "-")
    close = difflib.get_close_matches(normalized, _SCHEMES, n=1, cutoff=0.5)
    if not close and "mnist" in normalized:
        close = [SCHEME]
    return f" (did you mean {close[0]}?)" if close else ""
