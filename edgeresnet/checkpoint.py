"""Checkpoint directories: weights as .safetensors plus a JSON model card.

The card carries the facts that travel with the weights (architecture, classes, input size, the
preprocessing spec, metrics, a hash of the data), so export, calibration and the runtime never have
to guess them. Written by ``train`` atomically every epoch; read by ``export`` and ``pipeline``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeresnet.atomic import atomic_write_json
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import CheckpointError, EdgeResNetError, first_line

if TYPE_CHECKING:
    import torch

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
# Beside the checkpoint, the last epoch's full state for `train --resume` (training/state.py writes it).
RESUME_FILE = "train_state.pt"
# Every file `train` writes into its --output: the one list the placement policy judges it by.
CHECKPOINT_FILES = (WEIGHTS_FILE, CARD_FILE, RESUME_FILE)
CARD_FORMAT = "edgeresnet-checkpoint"
CARD_VERSION = 1


@dataclass
class ModelCard:
    """What a checkpoint is: enough to rebuild the model and feed it correctly."""

    architecture: str
    num_classes: int
    in_chans: int
    preprocessing: PreprocessSpec
    class_names: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    params: int = 0
    macs: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    weights_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["preprocessing"] = self.preprocessing.to_dict()
        return {"format": CARD_FORMAT, "format_version": CARD_VERSION, **record}

    @classmethod
    def from_dict(cls, record: Any) -> ModelCard:
        if not isinstance(record, dict) or record.get("format") != CARD_FORMAT:
            raise CheckpointError("not an edgeresnet model card (missing 'format': 'edgeresnet-checkpoint')")
        version = record.get("format_version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise CheckpointError(f"model card has no valid format_version (got {version!r})")
        if version > CARD_VERSION:
            raise CheckpointError(
                f"model card format {version} is newer than this edgeresnet understands ({CARD_VERSION}); "
                "upgrade edgeresnet"
            )
        values = {k: v for k, v in record.items() if k not in ("format", "format_version")}
        for name, kind in _CARD_FIELD_TYPES.items():
            if name in values and not isinstance(values[name], kind) or isinstance(values.get(name), bool):
                raise CheckpointError(f"model card is malformed: {name!r} must be a {kind.__name__}")
        if not all(isinstance(name, str) for name in values.get("class_names") or []):
            raise CheckpointError("model card is malformed: 'class_names' must be a list of strings")
        try:
            values["preprocessing"] = PreprocessSpec.from_dict(values["preprocessing"])
            return cls(**values)
        except (KeyError, TypeError, ValueError, AttributeError, EdgeResNetError) as error:
            raise CheckpointError(f"model card is incomplete or malformed: {first_line(error)}") from error


# The types a card's fields must have, checked before use so a malformed card is an error, not a crash.
_CARD_FIELD_TYPES: dict[str, type] = {
    "architecture": str, "num_classes": int, "in_chans": int, "preprocessing": dict, "class_names": list,
    "overrides": dict, "metrics": dict, "data": dict, "training": dict, "params": int, "macs": int,
    "versions": dict, "weights_sha256": str,
}


def is_checkpoint_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CARD_FILE).is_file()


def read_card(directory: str | Path) -> ModelCard:
    directory = Path(directory)
    card_path = directory / CARD_FILE
    if not card_path.is_file():
        raise CheckpointError(f"{directory} is not a checkpoint directory (no {CARD_FILE})")
    from edgeresnet.limits import read_json

    record = read_json(card_path, what="model card", error=CheckpointError)  # bounded in size and depth
    return ModelCard.from_dict(record)


def write_checkpoint(directory: str | Path, model: torch.nn.Module, card: ModelCard) -> Path:
    """Write weights then card, each atomically.

    The card is last and records the weights' sha256, so a crash between the two writes leaves a
    pair that :func:`load_checkpoint` recognises as mismatched instead of silently mixing epochs.
    """
    from edgeresnet.bundle import sha256_file
    from edgeresnet.models import save_weights

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = save_weights(model, directory / WEIGHTS_FILE, metadata={"architecture": card.architecture})
    card.weights_sha256 = sha256_file(weights)
    atomic_write_json(directory / CARD_FILE, card.to_dict())
    return directory


def load_checkpoint(directory: str | Path) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the model a checkpoint describes and load its weights (strictly)."""
    from edgeresnet.models import create_model

    directory = Path(directory)
    card = read_card(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {directory} has a card but no {WEIGHTS_FILE}")
    from edgeresnet.bundle import sha256_file

    if card.weights_sha256 and sha256_file(weights) != card.weights_sha256:
        raise CheckpointError(
            f"{weights} does not match {CARD_FILE} (sha256 differs): the checkpoint was interrupted while "
            "being written or edited since; continue it with `edgeresnet train ... --resume`"
        )
    model = create_model(
        card.architecture,
        num_classes=card.num_classes,
        in_chans=card.in_chans,
        weights=str(weights),
        **card.overrides,
    )
    return model.eval(), card
