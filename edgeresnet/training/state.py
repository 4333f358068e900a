"""The output directory of a run and the resume state inside it.

``train`` writes three files into ``--output``: ``model.safetensors`` and ``card.json`` (the
checkpoint, the kept epoch's weights) and ``train_state.pt`` (the last epoch's weights, optimizer,
history and best epoch, for ``--resume``). It never replaces a file of those names that it did not
write (no ``card.json`` beside it) without ``--overwrite``, never touches any other file, and a run
that fails before its first checkpoint leaves no directory behind that it created.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgeresnet.atomic import atomic_write_with
from edgeresnet.checkpoint import CARD_FILE, WEIGHTS_FILE
from edgeresnet.errors import CheckpointError

RESUME_FILE = "train_state.pt"
TOOL_FILES = (WEIGHTS_FILE, CARD_FILE, RESUME_FILE)
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


def check_output(output: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, an --output that this run may not write into."""
    if output.exists() and not output.is_dir():
        raise CheckpointError(f"--output {output} is a file, not a directory")
    has_card = (output / CARD_FILE).is_file()
    if resume:
        if not (output / RESUME_FILE).is_file():
            raise CheckpointError(f"nothing to resume: {output / RESUME_FILE} does not exist")
        if not has_card:
            raise CheckpointError(f"{output} has {RESUME_FILE} but no {CARD_FILE}: not a checkpoint edgeresnet "
                                  "train wrote, so it is not resumed")
        return
    if overwrite:
        return
    if has_card:
        raise CheckpointError(f"{output} already holds a checkpoint: continue it with --resume, "
                              "replace it with --overwrite, or choose another --output")
    foreign = [name for name in (WEIGHTS_FILE, RESUME_FILE) if (output / name).exists()]
    if foreign:
        raise CheckpointError(f"{output} holds {' and '.join(foreign)} that edgeresnet train did not write "
                              f"(no {CARD_FILE}): choose another --output, or --overwrite to replace "
                              f"{'them' if len(foreign) > 1 else 'it'}")


@contextlib.contextmanager
def output_directory(output: Path) -> Iterator[Path]:
    """Create ``output`` (and missing parents); if the block fails, remove what was created and is empty."""
    created: list[Path] = []
    for parent in [output, *output.parents]:
        if parent.exists():
            break
        created.append(parent)
    output.mkdir(parents=True, exist_ok=True)
    _check_writable(output)
    try:
        yield output
    except BaseException:
        for directory in created:  # innermost first
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty: a checkpoint already written is kept
        raise


def _check_writable(output: Path) -> None:
    """An unwritable --output fails now, not after an epoch of training."""
    fd, name = tempfile.mkstemp(prefix=".write-check.", dir=output)
    os.close(fd)
    os.unlink(name)


def save_state(output: Path, record: dict[str, Any]) -> None:
    """One file holds model, optimizer, progress and the best epoch, so a resume never mixes epochs."""
    atomic_write_with(output / RESUME_FILE, lambda tmp: torch.save({"version": STATE_VERSION, **record}, tmp))


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


def remove_stale_temporaries(output: Path) -> None:
    """Leftovers of a killed atomic write (``.name.*.tmp``) of the tool's own files."""
    for name in TOOL_FILES:
        for leftover in output.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink() if leftover.is_file() else shutil.rmtree(leftover)
