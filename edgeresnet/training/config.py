"""What decides a training run: the user's :class:`TrainConfig` and the :class:`Recipe` resolved from it.

The defaults are chosen to hold from a few hundred images to ImageNet size, so everything that
depends on the data is resolved from it rather than fixed: the batch size from the number of
training images, the learning rate linearly from the batch size, the warm-up as a share of the
optimizer steps (a 1,100-image set at batch 128 has only 9 steps an epoch, so a warm-up counted in
epochs would be one step). The resolved values are written into the model card.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from edgeresnet.errors import EdgeResNetError
from edgeresnet.limits import check_threads

Schedule = Literal["cosine", "onecycle"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
# Label-preserving for any data: small random shifts. Mirror images only when asked for ("flip" is
# shift + horizontal flip), since digits, text, signs and many industrial parts are not symmetric.
Augment = Literal["none", "shift", "flip"]
AUGMENTS: tuple[str, ...] = get_args(Augment)
# "auto": shifts once the run sees each image often enough to memorise it. Augmentation regularises
# repeated views; a run that sees each image at most twice only fits more slowly with it (Fashion-MNIST,
# 2 epochs on 52,500 images: 90.90% with shifts, measured on the 2-core machine).
AugmentChoice = Literal["auto", "none", "shift", "flip"]
AUGMENT_CHOICES: tuple[str, ...] = get_args(AugmentChoice)
MIN_EPOCHS_TO_AUGMENT = 3
# "frozen" keeps BatchNorm's running statistics (eval-mode BN, affine parameters still trained).
BatchNormMode = Literal["auto", "train", "frozen"]
BATCHNORM_MODES: tuple[str, ...] = get_args(BatchNormMode)

# Peak SGD learning rate per 256 images, scaled linearly with the batch size (Goyal et al. 2017).
# 0.4 gives 0.2 at batch 128 (the Fashion-MNIST 2-epoch target) and 0.05 at batch 32.
BASE_LR_PER_256 = 0.4
MAX_BATCH_SIZE = 128
MIN_AUTO_BATCH_SIZE = 32
# The automatic batch size aims at this many steps an epoch, so small sets still get enough updates.
TARGET_STEPS_PER_EPOCH = 64
WARMUP_SHARE = 0.1  # of all optimizer steps, linear from ~0 to the peak
# ...but never fewer steps than this (or the whole run): a 5-step run with a 1-step warm-up took its
# first step at the peak rate and its first-epoch loss rose to 2.43, above ln(10) = 2.30.
MIN_WARMUP_STEPS = 10
ONECYCLE_WARMUP_SHARE = 0.3
# Below this per-process batch, BatchNorm batch statistics are too noisy for pretrained features.
MIN_BATCHNORM_BATCH = 16
# Measured on the benchmark's fine-tuning case (500 images of classes 5-9, 15 epochs, ResNet-20 pretrained
# 4 epochs on classes 0-4; 5,000 test images; from scratch 94.06%): 0.1 gave 92.76%, 0.25 94.24%, 0.5
# 94.50%, 0.75 94.82% (+0.76 pt over scratch, 95% CI +0.18 to +1.35), 1.0 95.10%. Classes that unlike
# (tops to shoes and bags) need the pretrained layers to move; 0.75 still keeps them slower than the new
# head for data closer to the weights' own, where a lower rate preserves more (--backbone-lr-scale).
FINE_TUNE_BACKBONE_LR_SCALE = 0.75
# Fewer steps than this rarely train a ResNet to anything useful: the run says so, unless its measured
# accuracy shows otherwise (a fine-tune from good weights is often useful after a few dozen steps).
FEW_STEPS = 200
# "Evidently useful": top-1 at least this share of the way from chance to 100% (82% for 10 classes).
USEFUL_SHARE_ABOVE_CHANCE = 0.8


def short_run_hint(total_steps: int, epochs: int, top1: float | None, classes: int, *, measured_on: str) -> str | None:
    """The hint after a short run that did not reach a useful accuracy, or None.

    Judged on what the run measured, not on the step count alone: a run under ``FEW_STEPS`` steps whose
    top-1 (``measured_on``: validation or training images) is evidently useful gets no hint.
    """
    if total_steps >= FEW_STEPS:
        return None
    chance = 100.0 / classes
    useful = chance + USEFUL_SHARE_ABOVE_CHANCE * (100.0 - chance)
    if top1 is not None and top1 >= useful:
        return None
    reached = "" if top1 is None else f", reaching {top1:.2f}% top-1 on the {measured_on} images (chance {chance:.2f}%)"
    return (f"only {total_steps} optimizer steps in {epochs} epoch{'' if epochs == 1 else 's'}{reached}: "
            "raise --epochs for a useful model")


@dataclass(frozen=True)
class TrainConfig:
    """Everything the user decides about a training run; ``None`` means "resolved from the data"."""

    model: str = "resnet20"
    data: str = "fashion-mnist"
    output: str = "runs/train"
    epochs: int = 2
    batch_size: int | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_steps: int | None = None
    schedule: Schedule = "cosine"
    input_size: int | None = None
    in_chans: int | None = None
    weights: str | None = None
    freeze_epochs: int | None = None
    backbone_lr_scale: float | None = None
    batchnorm: BatchNormMode = "auto"
    val_fraction: float = 0.1
    resume: bool = False
    seed: int = 0
    train_limit: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 500
    augment: AugmentChoice = "auto"
    channels_last: bool = True
    threads: int | None = None
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        _check_positive_int("epochs", self.epochs)
        for name in ("batch_size", "warmup_steps", "train_limit", "eval_limit", "input_size", "threads"):
            value = getattr(self, name)
            if value is not None:
                _check_positive_int(name, value)
        _check_positive_int("eval_batch_size", self.eval_batch_size)
        check_threads(self.threads)  # torch.set_num_threads(100000) crashes the process
        if self.lr is not None:
            _check_finite("lr", self.lr, low=0.0, low_open=True)
        _check_finite("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _check_finite("weight_decay", self.weight_decay, low=0.0)
        _check_finite("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        _check_finite("val_fraction", self.val_fraction, low=0.0, high=0.5)
        if self.backbone_lr_scale is not None:
            _check_finite("backbone_lr_scale", self.backbone_lr_scale, low=0.0, high=1.0)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("augment", self.augment, AUGMENT_CHOICES)
        _check_choice("batchnorm", self.batchnorm, BATCHNORM_MODES)
        if self.in_chans not in (None, 1, 3):
            raise EdgeResNetError(f"in_chans must be 1 or 3, got {self.in_chans}")
        if self.freeze_epochs is not None:
            if isinstance(self.freeze_epochs, bool) or not isinstance(self.freeze_epochs, int) \
                    or self.freeze_epochs < 0:
                raise EdgeResNetError(f"freeze_epochs must be an integer >= 0, got {self.freeze_epochs!r}")
            if self.freeze_epochs and not self.weights:
                raise EdgeResNetError("--freeze-epochs freezes pretrained layers: it needs --weights")
            if self.freeze_epochs >= self.epochs:
                raise EdgeResNetError(
                    f"--freeze-epochs {self.freeze_epochs} leaves no epoch to train the pretrained layers "
                    f"in --epochs {self.epochs}; use fewer freeze epochs or more epochs"
                )
        if self.backbone_lr_scale is not None and not self.weights:
            raise EdgeResNetError("--backbone-lr-scale applies to pretrained layers: it needs --weights")


@dataclass(frozen=True)
class Recipe:
    """The resolved schedule of one run, in optimizer steps; recorded in the model card."""

    batch_size: int
    lr: float
    backbone_lr_scale: float
    warmup_steps: int
    steps_per_epoch: int
    total_steps: int
    freeze_epochs: int
    frozen_batchnorm: bool
    schedule: Schedule
    augment: Augment

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def freeze_steps(self) -> int:
        return self.freeze_epochs * self.steps_per_epoch

    def head_lr(self, step: int) -> float:
        """Learning rate of the classifier head (and of every layer when training from scratch)."""
        warmup = self.warmup_steps
        if step < warmup:
            # From lr/warmup, not from 0.1·lr: the first steps of a fresh network must be small.
            return self.lr * (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, self.total_steps - warmup))
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def backbone_lr(self, step: int) -> float:
        """Pretrained layers: frozen for ``freeze_epochs``, then warmed up again at a lower rate."""
        if step < self.freeze_steps:
            return 0.0
        rewarm = min(1.0, (step - self.freeze_steps + 1) / self.warmup_steps) if self.freeze_epochs else 1.0
        return self.head_lr(step) * self.backbone_lr_scale * rewarm


def resolve_recipe(
    config: TrainConfig, *, train_images: int, world_size: int = 1, fine_tuning: bool = False
) -> Recipe:
    """Fill the data-dependent defaults of ``config`` for ``train_images`` training images."""
    per_process = max(1, train_images // world_size)
    batch_size = config.batch_size or auto_batch_size(per_process)
    batch_size = min(batch_size, per_process)  # a batch larger than the data would be one short step
    steps_per_epoch = max(1, per_process // batch_size)  # the last partial batch is dropped
    total_steps = steps_per_epoch * config.epochs
    lr = config.lr if config.lr is not None else BASE_LR_PER_256 * batch_size * world_size / 256
    share = ONECYCLE_WARMUP_SHARE if config.schedule == "onecycle" else WARMUP_SHARE
    warmup = config.warmup_steps or max(MIN_WARMUP_STEPS, round(share * total_steps))
    warmup = min(warmup, total_steps)
    if fine_tuning:
        freeze = 1 if config.freeze_epochs is None and config.epochs > 2 else (config.freeze_epochs or 0)
        scale = FINE_TUNE_BACKBONE_LR_SCALE if config.backbone_lr_scale is None else config.backbone_lr_scale
    else:
        freeze, scale = 0, 1.0
    if config.batchnorm == "auto":
        frozen_bn = fine_tuning and batch_size < MIN_BATCHNORM_BATCH
    else:
        frozen_bn = config.batchnorm == "frozen"
    augment: Augment = config.augment if config.augment != "auto" else (
        "shift" if config.epochs >= MIN_EPOCHS_TO_AUGMENT else "none")
    return Recipe(batch_size=batch_size, lr=lr, backbone_lr_scale=scale, warmup_steps=warmup,
                  steps_per_epoch=steps_per_epoch, total_steps=total_steps, freeze_epochs=freeze,
                  frozen_batchnorm=frozen_bn, schedule=config.schedule, augment=augment)


def auto_batch_size(train_images: int) -> int:
    """128 for large sets; for small ones the power of two that gives ~64 steps an epoch (at least 32)."""
    wanted = max(1, train_images // TARGET_STEPS_PER_EPOCH)
    power = 1 << (wanted.bit_length() - 1)
    return max(MIN_AUTO_BATCH_SIZE, min(MAX_BATCH_SIZE, power))


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EdgeResNetError(f"{name} must be an integer >= 1, got {value!r}")


def _check_finite(
    name: str, value: Any, *, low: float, high: float | None = None, low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low)
        if high is not None:
            ok = ok and (value < high if high_open else value <= high)
    if not ok:
        left = "(" if low_open else "["
        right = ("" if high is None else f"{high:g}") + (")" if high_open or high is None else "]")
        upper = right if high is not None else "∞)"
        raise EdgeResNetError(f"{name} must be a finite number in {left}{low:g}, {upper}, got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise EdgeResNetError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
