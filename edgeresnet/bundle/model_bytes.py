"""A model as a backend loads it: bytes that were hashed, never a path a backend would open again.

The bundle's door (:class:`edgeresnet.bundle.reader.BundleReader`) reads a model file and the files it
reads beside it (an OpenVINO IR's ``.bin``, an ONNX model's external data), checks each against the
manifest's sha256, and hands the bytes over in this record; runners build their sessions from these
bytes, so what runs is what was hashed, whatever happens to the files afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelBytes:
    """The bytes of one model file and of its companions.

    Args:
        path: where the model file lies; it names the model in messages and its suffix picks the backend.
            No runner opens it.
        data: the model file's bytes.
        companions: the files the model reads beside it, by the name the model uses for them (an ONNX
            ``location``; ``"weights"`` for an IR's ``.bin``).
    """

    path: Path
    data: bytes
    companions: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


IR_WEIGHTS = "weights"  # the companion key of an OpenVINO IR's .bin
