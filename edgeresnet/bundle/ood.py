"""The manifest's ``ood`` record: what in-distribution inputs looked like, measured at export time.

``export`` runs the FP32 model on held-out images of the data it was trained for (the calibration
split, never used for training or for the accuracy figures) and records, per check, the range those
images fell in. The runtime flags an input outside any range as out of distribution
(:mod:`edgeresnet.runtime.ood` holds the checks). Optional: bundles without it load and are not checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgeresnet.errors import BundleError

# Image statistics the runtime computes on the uint8 pixels at the model's input size (0-255 units).
PIXEL_FEATURES = ("mean", "std", "border_mean", "roughness")


@dataclass(frozen=True)
class OodProfile:
    """Ranges of held-out in-distribution images: an input outside one of them is flagged.

    ``energy_low``: the model's energy score (log-sum-exp of the logits; low means no class fits well)
    below which an input is flagged; ``energy_quantile`` of the profile images scored lower.
    ``pixel_ranges``: per image statistic, the [low, high] the profile images spanned, widened by
    ``margin`` of that span on each side.
    """

    images: int
    source: str
    energy_low: float
    energy_quantile: float
    pixel_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    margin: float = 0.1
    method: str = "energy+pixel-ranges"

    def __post_init__(self) -> None:
        numbers = [self.energy_low, self.energy_quantile, self.margin,
                   *(v for pair in self.pixel_ranges.values() for v in pair)]
        if self.images < 1 or not all(math.isfinite(v) for v in numbers):
            raise BundleError("malformed manifest.json: 'ood' needs at least one image and finite numbers")
        unknown = set(self.pixel_ranges) - set(PIXEL_FEATURES)
        if unknown:
            raise BundleError(f"malformed manifest.json: 'ood' has unknown image statistics {sorted(unknown)}")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "images": self.images, "source": self.source,
                "energy_low": round(self.energy_low, 6), "energy_quantile": self.energy_quantile,
                "pixel_ranges": {k: [round(low, 4), round(high, 4)] for k, (low, high) in self.pixel_ranges.items()},
                "margin": self.margin}

    @classmethod
    def from_dict(cls, record: Any) -> OodProfile:
        try:
            return cls(images=int(record["images"]), source=str(record["source"]),
                       energy_low=float(record["energy_low"]), energy_quantile=float(record["energy_quantile"]),
                       pixel_ranges={str(k): (float(v[0]), float(v[1])) for k, v in record["pixel_ranges"].items()},
                       margin=float(record.get("margin", 0.1)), method=str(record.get("method", cls.method)))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise BundleError(f"malformed manifest.json: 'ood' {error}") from error
