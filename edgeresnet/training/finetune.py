"""Fine-tuning from weights: what the weights expect, and which layers train when.

The classifier head is new (its size is the data's number of classes), so it is trained alone
first while the pretrained layers stay frozen (``freeze_epochs``); then the pretrained layers join
at a lower learning rate (``Recipe.backbone_lr``). With small batches, BatchNorm keeps the running
statistics the weights came with instead of trusting a handful of images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from edgeresnet.checkpoint import CARD_FILE, read_card
from edgeresnet.data import PreprocessSpec
from edgeresnet.errors import CheckpointError, WeightsError
from edgeresnet.models import weights_shape

log = logging.getLogger(__name__)

HEAD = "fc"
# A stem sees the scale it was trained at; beyond a factor of 2 its filters meet different objects.
MAX_SIZE_RATIO = 2.0


@dataclass(frozen=True)
class PretrainedWeights:
    """What a weights file says about the input it expects."""

    path: str
    num_classes: int | None
    in_chans: int | None
    # From an edgeresnet checkpoint card beside the file (``train`` writes both); None for plain files.
    preprocessing: PreprocessSpec | None
    architecture: str | None
    class_names: tuple[str, ...] | None

    @property
    def input_size(self) -> int | None:
        return self.preprocessing.input_size[0] if self.preprocessing else None


def inspect_weights(path: str) -> PretrainedWeights:
    num_classes, in_chans = weights_shape(path)
    card_path = Path(path).parent / CARD_FILE
    preprocessing = architecture = class_names = None
    if card_path.is_file():
        try:
            card = read_card(card_path.parent)
            preprocessing, architecture = card.preprocessing, card.architecture
            class_names = tuple(card.class_names)
        except CheckpointError as error:
            log.warning("ignoring %s beside the weights: %s", card_path, error)
    return PretrainedWeights(str(path), num_classes, in_chans, preprocessing, architecture, class_names)


def check_weights_fit(
    weights: PretrainedWeights, *, model: str, in_chans: int | None, input_size: int | None, design_size: int
) -> tuple[int, int]:
    """(in_chans, input_size) to fine-tune with: the weights' own unless the user asked otherwise.

    Grayscale data meets 3-channel weights by replicating its channel (the preprocessing spec does it),
    never by changing the stem. A user-chosen input size far from the one the weights were trained at
    is refused: the pretrained filters would see objects at another scale.
    """
    if weights.architecture and weights.architecture != model:
        raise WeightsError(f"weights {weights.path} belong to a {weights.architecture} checkpoint, not {model}")
    stem_chans = weights.in_chans or 3
    if in_chans is not None and in_chans != stem_chans:
        raise WeightsError(
            f"weights {weights.path} take {stem_chans}-channel input; --in-chans {in_chans} does not fit them "
            f"(leave --in-chans unset and the data is fed as {stem_chans} channel{'s' * (stem_chans > 1)})"
        )
    trained_at = weights.input_size or design_size
    if input_size is None:
        return stem_chans, trained_at
    ratio = input_size / trained_at
    if not 1 / MAX_SIZE_RATIO <= ratio <= MAX_SIZE_RATIO:
        low, high = round(trained_at / MAX_SIZE_RATIO), round(trained_at * MAX_SIZE_RATIO)
        raise WeightsError(
            f"weights {weights.path} were trained at {trained_at}×{trained_at} input; --input-size {input_size} "
            f"is {max(ratio, 1 / ratio):.1f}× {'smaller' if ratio < 1 else 'larger'}: use {low} to {high}, "
            "or train from scratch"
        )
    return stem_chans, input_size


def split_head(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(pretrained parameters, head parameters)."""
    head_ids = {id(p) for p in model.get_submodule(HEAD).parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return backbone, [p for p in model.parameters() if id(p) in head_ids]


def set_phase(model: nn.Module, *, backbone_frozen: bool, frozen_batchnorm: bool) -> None:
    """Put ``model`` in training mode for one phase: head only, or everything.

    Frozen layers do not require gradients (so backward stops at the head, which also makes the
    phase cheap), and their BatchNorm layers use the running statistics the weights came with.
    """
    model.train()
    backbone, _ = split_head(model)
    for parameter in backbone:
        parameter.requires_grad_(not backbone_frozen)
    if backbone_frozen or frozen_batchnorm:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def reset_head_to_zero(model: nn.Module) -> None:
    """A zero head predicts the uniform distribution: the first loss is exactly ln(classes)."""
    head = model.get_submodule(HEAD)
    nn.init.zeros_(head.weight)
    if head.bias is not None:
        nn.init.zeros_(head.bias)
