"""Training and fine-tuning: the recipe (config.py), augmentation, data checks and validation split
(dataprep.py), fine-tuning (finetune.py), best-epoch selection, output/resume state, and the loop."""

from __future__ import annotations

from edgeresnet.training.augment import augment_batch
from edgeresnet.training.config import (
    AUGMENTS,
    Augment,
    Recipe,
    Schedule,
    TrainFields,
    TrainJob,
    resolve_recipe,
)
from edgeresnet.training.loop import evaluate, train
from edgeresnet.training.results import EpochMetrics, TrainResult
from edgeresnet.training.state import RESUME_FILE

__all__ = [
    "AUGMENTS",
    "RESUME_FILE",
    "Augment",
    "EpochMetrics",
    "Recipe",
    "Schedule",
    "TrainFields",
    "TrainJob",
    "TrainResult",
    "augment_batch",
    "evaluate",
    "resolve_recipe",
    "train",
]
