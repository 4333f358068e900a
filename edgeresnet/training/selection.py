"""Which epoch's weights are kept: the best on the validation images carved from the training split."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgeresnet.evaluation import compare_paired, wilson_interval

RULE = "highest validation top-1; ties go to the lower validation loss"
LAST_RULE = "no validation images (--val-fraction 0, or too few images): the last epoch is kept"


@dataclass(frozen=True)
class ValidationScore:
    """One epoch's weights on the validation images."""

    epoch: int
    top1: float  # percent
    loss: float
    images: int
    logits: np.ndarray

    def beats(self, other: ValidationScore | None) -> bool:
        if other is None:
            return True
        return self.top1 > other.top1 or (self.top1 == other.top1 and self.loss < other.loss)

    def summary(self) -> dict[str, Any]:
        hits = round(self.top1 * self.images / 100)
        low, high = wilson_interval(hits, self.images)
        return {"epoch": self.epoch, "top1": round(self.top1, 4), "top1_ci95": [round(low, 2), round(high, 2)],
                "loss": round(self.loss, 5), "images": self.images}


class BestEpoch:
    """Keeps the weights and validation logits of the best epoch so far."""

    def __init__(self) -> None:
        self.best: ValidationScore | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, score: ValidationScore, model: torch.nn.Module) -> bool:
        """Keep ``model``'s weights if ``score`` is the best so far; True when kept."""
        if not score.beats(self.best):
            return False
        self.best = score
        self.state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        return True

    def restore(self, record: dict[str, Any]) -> None:
        """The best epoch saved in a resume state (see :meth:`to_record`)."""
        if record:
            self.best = ValidationScore(epoch=int(record["epoch"]), top1=float(record["top1"]),
                                        loss=float(record["loss"]), images=int(record["images"]),
                                        logits=record["logits"].numpy())
            self.state = copy.copy(record["state"])

    def to_record(self) -> dict[str, Any]:
        if self.best is None or self.state is None:
            return {}
        return {"epoch": self.best.epoch, "top1": self.best.top1, "loss": self.best.loss,
                "images": self.best.images, "logits": torch.from_numpy(self.best.logits), "state": self.state}


def describe_choice(best: ValidationScore | None, last: ValidationScore | None, labels: np.ndarray | None,
                    last_epoch: int) -> dict[str, Any]:
    """The card's record of which epoch was kept and why, with the evidence and its uncertainty."""
    if best is None or last is None or labels is None:
        return {"kept_epoch": last_epoch, "rule": LAST_RULE}
    record: dict[str, Any] = {"kept_epoch": best.epoch, "rule": RULE, "kept": best.summary(),
                              "last": last.summary()}
    if best.epoch == last.epoch:
        record["why"] = (f"the last epoch {last.epoch} scored best on {best.images} validation images "
                         f"(top-1 {best.top1:.2f}%)")
        return record
    # Paired on the same validation images: kept (candidate) against the last epoch (reference).
    paired = compare_paired(labels, last.logits, best.logits)
    record["last_minus_kept"] = paired.to_dict()
    low, high = paired.drop_ci95_points
    resolved = low > 0 or high < 0
    record["why"] = (
        f"epoch {best.epoch} scored {best.top1:.2f}% on {best.images} validation images, the last epoch "
        f"{last.epoch} {last.top1:.2f}%: difference {-paired.drop_points:+.2f} pt (95% CI {-high:+.2f} to "
        f"{-low:+.2f}, paired){'' if resolved else '; within the noise of these images'}"
    )
    return record
