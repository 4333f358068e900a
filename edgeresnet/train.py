"""Training and fine-tuning (the implementation lives in :mod:`edgeresnet.training`).

Kept as the import path callers already use: ``from edgeresnet.train import TrainConfig, train``.
"""

from __future__ import annotations

from edgeresnet.training import (
    AUGMENTS,
    RESUME_FILE,
    Augment,
    EpochMetrics,
    Recipe,
    Schedule,
    TrainConfig,
    TrainResult,
    augment_batch,
    evaluate,
    resolve_recipe,
    train,
)

__all__ = [
    "AUGMENTS",
    "RESUME_FILE",
    "Augment",
    "EpochMetrics",
    "Recipe",
    "Schedule",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "evaluate",
    "resolve_recipe",
    "train",
]
