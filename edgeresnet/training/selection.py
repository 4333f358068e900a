"""Which epoch's weights are kept: the best on the validation images carved from the training split."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgeresnet.evaluation import compare_paired, format_interval, wilson_interval

RULE = ("the last epoch, unless an earlier one has a higher validation top-1 (ties: lower validation loss) "
        "by a margin the validation images resolve (paired 95% interval excluding zero)")
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


def choose(best: ValidationScore | None, last: ValidationScore | None, labels: np.ndarray | None) -> int | None:
    """The epoch to keep: the last one unless the best so far beats it by a resolved margin.

    A choice among epochs on a few dozen validation images would be noise; the end of the schedule is
    the better bet then, and an earlier epoch wins only when the images can tell the difference.
    """
    if best is None or last is None or labels is None:
        return None
    if best.epoch == last.epoch:
        return last.epoch
    low, _ = compare_paired(labels, best.logits, last.logits).drop_ci95_points
    return best.epoch if low > 0 else last.epoch


def describe_choice(best: ValidationScore | None, last: ValidationScore | None, labels: np.ndarray | None,
                    last_epoch: int) -> dict[str, Any]:
    """The card's record of which epoch was kept and why, with the evidence and its uncertainty."""
    if best is None or last is None or labels is None:
        return {"kept_epoch": last_epoch, "rule": LAST_RULE}
    kept = choose(best, last, labels)
    record: dict[str, Any] = {"kept_epoch": kept, "rule": RULE, "best": best.summary(), "last": last.summary()}
    if best.epoch == last.epoch:
        record["why"] = (f"the last epoch {last.epoch} scored best on {best.images} validation images "
                         f"(top-1 {best.top1:.2f}%)")
        return record
    # Paired on the same validation images: the best epoch (candidate) against the last (reference).
    paired = compare_paired(labels, last.logits, best.logits)
    record["last_minus_best"] = paired.to_dict()
    low, high = paired.drop_ci95_points
    evidence = (f"epoch {best.epoch} scored {best.top1:.2f}% on {best.images} validation images, the last epoch "
                f"{last.epoch} {last.top1:.2f}%: difference {-paired.drop_points:+.2f} pt (95% CI "
                f"{format_interval(-high, -low)}, paired)")
    if kept == best.epoch:
        record["why"] = f"{evidence}, resolved: epoch {best.epoch} kept"
    else:
        record["why"] = f"{evidence}, not resolved by these images: the last epoch kept"
    return record
