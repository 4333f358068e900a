"""The resume state inside a run's output directory.

``train`` writes three files into ``--output`` (``edgeresnet.checkpoint.CHECKPOINT_FILES``): ``model.safetensors`` and
``card.json`` (the checkpoint, the kept epoch's weights) and ``train_state.pt`` (the last epoch's
weights, optimizer, history and best epoch, for ``--resume``), each atomically, after every epoch.
Whether the run may write there at all is the placement policy's to decide
(:func:`edgeresnet.placement.claim_directory`), as for every other output: :func:`claim_output` tells it
which files a run writes and what makes a directory a checkpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgeresnet.checkpoint import CHECKPOINT_FILES, RESUME_FILE, not_a_checkpoint_directory, written_files
from edgeresnet.errors import CheckpointError
from edgeresnet.placement import check_claimable, claim_directory, replace_files

STATE_VERSION = 2


@dataclass(frozen=True)
class RunIdentity:
    """What a resumed run must share with the run that wrote the state, or it is not the same run."""

    model: str
    class_names: tuple[str, ...]
    in_chans: int
    input_size: int
    train_fingerprint: str
    train_images: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "class_names": list(self.class_names), "in_chans": self.in_chans,
                "input_size": self.input_size, "train_fingerprint": self.train_fingerprint,
                "train_images": self.train_images}

    def mismatch(self, saved: dict[str, Any]) -> str:
        """Why ``saved`` (a stored identity) is another run; empty when it is this one."""
        if saved.get("model") != self.model:
            return f"was trained as {saved.get('model')}, not {self.model}"
        if list(saved.get("class_names", [])) != list(self.class_names):
            old, new = list(saved.get("class_names", [])), list(self.class_names)
            return f"was trained on {len(old)} classes ({_names(old)}), this data has {len(new)} ({_names(new)})"
        if saved.get("in_chans") != self.in_chans:
            return f"was trained with {saved.get('in_chans')} input channels, this run has {self.in_chans}"
        if saved.get("input_size") != self.input_size:
            return f"was trained at input size {saved.get('input_size')}, this run uses {self.input_size}"
        if saved.get("train_fingerprint") != self.train_fingerprint:
            return (f"was trained on other images ({saved.get('train_images')} training images with another "
                    f"content hash; this run has {self.train_images}): use the same --data and --train-limit")
        return ""


def _names(names: list[str]) -> str:
    return ", ".join(names[:4]) + (", …" if len(names) > 4 else "")


def require_resume_state(output: Path) -> None:
    """``--resume`` needs the state file; checked before anything is created or locked."""
    if not (output / RESUME_FILE).is_file():
        raise CheckpointError(f"nothing to resume: {output / RESUME_FILE} does not exist")


def check_output(output: Path, *, overwrite: bool, resume: bool) -> None:
    """What :func:`claim_output` would refuse, checked without creating or locking anything."""
    check_claimable(output, **_claim_rules(), overwrite=overwrite, resume=resume)


@contextlib.contextmanager
def claim_output(output: Path, *, overwrite: bool, resume: bool) -> Iterator[Path]:
    """Hold ``output`` for this run: the files it writes are :data:`edgeresnet.checkpoint.CHECKPOINT_FILES`."""
    with claim_directory(output, **_claim_rules(), overwrite=overwrite, resume=resume) as path:
        yield path


def _claim_rules() -> dict[str, Any]:
    return {"writes": CHECKPOINT_FILES, "adopt": written_files, "unsuitable": not_a_checkpoint_directory,
            "noun": "a checkpoint"}


def save_state(output: Path, record: dict[str, Any]) -> None:
    """One file holds model, optimizer, progress and the best epoch, so a resume never mixes epochs."""
    with replace_files(output) as staged:
        torch.save({"version": STATE_VERSION, **record}, staged / RESUME_FILE)


def load_state(output: Path, identity: RunIdentity, epochs: int) -> dict[str, Any]:
    """The resume state of ``output``, checked against this run before anything is loaded from it."""
    path = output / RESUME_FILE
    try:
        # weights_only=True: the resume file is data, never code, even though we wrote it ourselves.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read resume state {path}: {type(error).__name__}") from error
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path} was written by another edgeresnet version and cannot be resumed")
    why = identity.mismatch(state.get("identity", {}))
    if why:
        raise CheckpointError(f"cannot resume {output}: it {why}")
    done = int(state["epochs_done"])
    if done >= epochs:
        raise CheckpointError(f"{output} already finished {done} epochs; raise --epochs above {done} "
                              "to train further")
    return state
