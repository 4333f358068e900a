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
from edgeresnet.bundle.layout import MANIFEST_FILE
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.digests import sha256_file
from edgeresnet.errors import CheckpointError, EdgeResNetError, one_line
from edgeresnet.limits import read_json
from edgeresnet.placement import replace_files

if TYPE_CHECKING:
    import torch

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
# Beside the checkpoint, the last epoch's full state for `train --resume` (training/state.py writes it).
RESUME_FILE = "train_state.pt"
# Every file `train` writes into its --output: the one list the placement policy judges it by.
CHECKPOINT_FILES = (WEIGHTS_FILE, CARD_FILE, RESUME_FILE)
# Files earlier versions wrote beside the checkpoint: the tool's, when an old checkpoint is adopted.
_EARLIER_FILES = ("metrics.json", "metrics.csv", "history.json")
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
            raise CheckpointError(f"model card is incomplete or malformed: {one_line(error)}") from error


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

    record = read_json(card_path, what="model card", error=CheckpointError)  # bounded in size and depth
    try:
        return ModelCard.from_dict(record)
    except CheckpointError as error:  # which file: a command may read several checkpoints
        raise CheckpointError(f"{card_path}: {error}") from error


def write_checkpoint(directory: str | Path, model: torch.nn.Module, card: ModelCard) -> Path:
    """Write weights and card as one set: both replace the previous pair together, or neither does.

    They are written beside the directory's files first (a full disk fails here, the previous checkpoint
    intact), then journaled and moved in (:func:`edgeresnet.placement.replace_files`): a run killed during
    the moves leaves a journal the next run finishes, and the ledger records both files as the tool's. The
    card records the weights' sha256, so a pair mixed by other means is refused by :func:`load_checkpoint`.
    """
    from edgeresnet.models import save_weights

    with replace_files(directory) as staged:
        weights = save_weights(model, staged / WEIGHTS_FILE, metadata={"architecture": card.architecture})
        card.weights_sha256 = sha256_file(weights)
        atomic_write_json(staged / CARD_FILE, card.to_dict())
    return Path(directory)


def written_files(directory: Path) -> dict[str, str | None] | None:
    """The files of a checkpoint an older edgeresnet wrote (no ledger yet), as the placement policy adopts them.

    Its card (by name: the card itself records no hash of itself), its weights (by the sha256 the card
    records) and the other files ``train`` writes or wrote (by name); None when ``directory`` holds no card.
    """
    try:
        card = read_card(directory)
    except CheckpointError:
        return None
    files: dict[str, str | None] = {name: None for name in (*CHECKPOINT_FILES, *_EARLIER_FILES)}
    files[WEIGHTS_FILE] = card.weights_sha256 or None
    return files


def not_a_checkpoint_directory(directory: Path) -> str | None:
    """Why ``train`` must not write into ``directory`` whatever the options: it is a bundle."""
    if (directory / MANIFEST_FILE).is_file() and not (directory / CARD_FILE).is_file():
        return f"{directory} is a bundle, not a checkpoint directory: choose another --output"
    return None


def load_checkpoint(directory: str | Path) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the model a checkpoint describes and load its weights (strictly)."""
    from edgeresnet.models import create_model

    directory = Path(directory)
    card = read_card(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {directory} has a card but no {WEIGHTS_FILE}")
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
