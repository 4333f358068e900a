"""What the classifier returns: ranked classes per image, and per file in a folder run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeresnet.runtime.ood import OodCheck


@dataclass(frozen=True)
class Prediction:
    """One ranked class for one image.

    ``ood`` is True when the image looks unlike the data the model was trained on (see
    :mod:`edgeresnet.runtime.ood`), False when it passed, and None when the bundle records no
    in-distribution ranges (bundles exported before this field, or without data) or the input was a
    preprocessed tensor.
    """

    index: int
    label: str
    probability: float
    ood: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        # The verdict is the image's, not the class's: written once per row (FilePrediction.to_dict).
        return {"index": self.index, "label": self.label, "probability": self.probability}


@dataclass(frozen=True)
class FilePrediction:
    """One file's result in :meth:`Classifier.predict_iter`: its ranked predictions, or why there are none."""

    path: str
    predictions: tuple[Prediction, ...]
    error: str | None = None
    ood: OodCheck | None = None  # the out-of-distribution verdict, where the bundle records its ranges

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        ood = None if self.ood is None else {"flagged": self.ood.flagged, "energy": round(self.ood.energy, 4),
                                             "reasons": list(self.ood.reasons)}
        return {"image": self.path, "predictions": [p.to_dict() for p in self.predictions], "error": self.error,
                "ood": ood}
