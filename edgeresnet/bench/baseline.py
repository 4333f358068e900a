"""The PyTorch eager baseline: which checkpoint, whether it still matches the bundles, whether torch is here.

A checkpoint row needs torch (the ``build`` extra). On a runtime-only install (a device) it is skipped
with one note naming the extra, and the FP32 bundle becomes the accuracy reference. A checkpoint whose
weights changed since a bundle was exported from it (its sha256 differs from the bundle's provenance) is
measured but never the reference, and a note says so.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from edgeresnet.bench.artifacts import PYTORCH_BACKEND, Artifact, checkpoint_artifact
from edgeresnet.checkpoint import WEIGHTS_FILE, is_checkpoint_dir

NO_CHECKPOINT = "no PyTorch checkpoint given (pass --checkpoint DIR, the directory `train` wrote)"
NO_TORCH = ("PyTorch eager row skipped: torch is not installed here (pip install 'edgeresnet[build]' adds it); "
            "the FP32 bundle is the accuracy reference")


@dataclass
class Baseline:
    """The artifacts to measure with the baseline placed first, and what to say about it."""

    artifacts: list[Artifact]
    missing: str | None = None  # why there is no baseline row (an error row at every batch size)
    notes: list[str] = field(default_factory=list)
    stale: set[str] = field(default_factory=set)  # artifact names that may not be the reference


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def with_pytorch_baseline(artifacts: list[Artifact], checkpoint: str | Path | None) -> Baseline:
    """Put the PyTorch eager baseline first, or say why there is none."""
    if not torch_installed():
        kept = [a for a in artifacts if a.backend != PYTORCH_BACKEND]
        return Baseline(kept, notes=[NO_TORCH])
    baseline = _place_baseline(artifacts, checkpoint)
    for artifact in baseline.artifacts:
        if artifact.kind == "checkpoint":
            note = _changed_since_export(artifact, artifacts)
            if note:
                baseline.notes.append(note)
                baseline.stale.add(artifact.name)
    return baseline


def _place_baseline(artifacts: list[Artifact], checkpoint: str | Path | None) -> Baseline:
    given = {a.path.resolve() for a in artifacts if a.kind == "checkpoint"}
    if checkpoint is not None:
        if Path(checkpoint).resolve() in given:
            return Baseline(artifacts)
        return Baseline([checkpoint_artifact(checkpoint), *artifacts])  # a bad --checkpoint is a user error
    if given:
        return Baseline(artifacts)
    sources = [a.source_checkpoint for a in artifacts if a.source_checkpoint is not None]
    for source in sources:
        if is_checkpoint_dir(source):
            return Baseline([checkpoint_artifact(source), *artifacts])
    if sources:
        return Baseline(artifacts, missing=f"the bundles' source checkpoint {sources[0]} is gone; pass --checkpoint DIR")
    return Baseline(artifacts, missing=NO_CHECKPOINT)


def _changed_since_export(checkpoint: Artifact, artifacts: list[Artifact]) -> str | None:
    """A one-line note when a bundle made from ``checkpoint`` recorded other weights than it holds now."""
    from edgeresnet.bundle import sha256_file

    root = checkpoint.path.resolve()
    recorded = {a.source_checkpoint_sha256 for a in artifacts
                if a.source_checkpoint is not None and a.source_checkpoint_sha256
                and Path(a.source_checkpoint).resolve() == root}
    weights = checkpoint.path / WEIGHTS_FILE
    if not recorded or not weights.is_file():
        return None
    current = sha256_file(weights)
    if current in recorded:
        return None
    return (f"{checkpoint.name}: its weights changed since the bundles were exported from it (sha256 "
            f"{current[:12]} vs {min(recorded)[:12]} in their provenance); its row is shown but is not "
            "the accuracy reference")


def named_uniquely(artifacts: list[Artifact]) -> list[Artifact]:
    """Two bundles may share a directory name (runs/a/int8, runs/b/int8): rows need distinct names."""
    seen: dict[str, int] = {}
    named = []
    for artifact in artifacts:
        count = seen.get(artifact.name, 0) + 1
        seen[artifact.name] = count
        named.append(artifact if count == 1 else dataclasses.replace(artifact, name=f"{artifact.name}#{count}"))
    return named
