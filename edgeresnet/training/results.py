"""What a training run returns: the metrics of each epoch and the checkpoint it kept (torch-free records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeresnet.checkpoint import ModelCard


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_top1: float
    val_top1: float | None  # None without validation images
    val_loss: float | None
    lr: float  # the head's learning rate at the epoch's last step
    images_per_s: float
    seconds: float


@dataclass
class TrainResult:
    checkpoint: Path
    card: ModelCard
    history: list[EpochMetrics] = field(default_factory=list)

    @property
    def kept_epoch(self) -> int:
        return int(self.card.metrics.get("kept_epoch", len(self.history)))

    @property
    def top1(self) -> float:
        """Evaluation-split top-1 (percent) of the kept weights."""
        return float(self.card.metrics.get("top1", float("nan")))

    @property
    def top5(self) -> float:
        return float(self.card.metrics.get("top5", float("nan")))
