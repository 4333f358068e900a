"""Reading and writing bundle directories: assemble, place, read, check hashes, read golden samples."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeresnet.bundle.layout import GOLDEN_FILE, MANIFEST_FILE
from edgeresnet.bundle.manifest import Manifest
from edgeresnet.errors import BundleError

if TYPE_CHECKING:
    import numpy as np



def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle(
    destination: str | Path,
    manifest: Manifest,
    files: dict[str, Path],
    *,
    golden_inputs: np.ndarray,
    golden_outputs: np.ndarray,
    overwrite: bool = False,
) -> Path:
    """Assemble a bundle and move it into place under the placement policy (:mod:`edgeresnet.placement`)."""
    from edgeresnet.placement import place_outputs

    destination = Path(destination).absolute()
    with place_outputs(destination.parent, overwrite=overwrite, expect=[destination.name],
                       lock_name=f".{destination.name}.lock") as staging:
        assemble_bundle(staging.path / destination.name, manifest, files,
                        golden_inputs=golden_inputs, golden_outputs=golden_outputs)
    return destination


def assemble_bundle(
    directory: Path,
    manifest: Manifest,
    files: dict[str, Path],
    *,
    golden_inputs: np.ndarray,
    golden_outputs: np.ndarray,
) -> Path:
    """Write a bundle into the new directory ``directory``: ``files`` (name in bundle → source), golden
    samples, hashes, manifest. Callers stage it; :func:`write_bundle` is the one-bundle case."""
    import numpy as np

    from edgeresnet.atomic import atomic_write_json
    from edgeresnet.environment import environment

    if manifest.model_file not in files:
        raise BundleError(f"bundle model file {manifest.model_file!r} is not among the files given")
    directory.mkdir(parents=True)
    for name, source in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    np.savez_compressed(directory / GOLDEN_FILE, inputs=golden_inputs.astype(np.float32),
                        outputs=golden_outputs.astype(np.float32))
    manifest.golden = {"file": GOLDEN_FILE, "count": len(golden_inputs), **manifest.golden}
    manifest.build = {"created": datetime.now(UTC).isoformat(timespec="seconds"),
                      **environment(), **manifest.build}
    manifest.files = {
        path.relative_to(directory).as_posix(): sha256_file(path)
        for path in sorted(directory.rglob("*")) if path.is_file()
    }
    manifest.manifest_sha256 = manifest.content_sha256()
    atomic_write_json(directory / MANIFEST_FILE, manifest.to_dict())
    return directory


def read_manifest_record(bundle: str | Path) -> dict[str, Any]:
    """The manifest as JSON, read through the bundle's door: one-line errors for a missing, huge, deep,
    binary or non-object file, or a manifest that is a link out of the bundle."""
    from edgeresnet.bundle.reader import BundleReader

    bundle = Path(bundle)
    if not bundle.is_dir():
        raise BundleError(f"bundle not found: {bundle}")
    return BundleReader.of(bundle, None).manifest_record()  # type: ignore[arg-type]


def read_manifest(bundle: str | Path) -> Manifest:
    return manifest_from_record(read_manifest_record(bundle))


def manifest_from_record(record: dict[str, Any]) -> Manifest:
    """The typed manifest of a record read from disk (migrated if older), remembering the record's hash."""
    manifest = Manifest.from_dict(record)
    manifest.loaded_content_sha256 = _record_sha256(record)  # type: ignore[attr-defined]
    return manifest


def _record_sha256(record: dict[str, Any]) -> str:
    content = {k: v for k, v in record.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()


def check_files(bundle: str | Path, manifest: Manifest | None = None) -> list[str]:
    """Problems with the bundle's files (see :meth:`BundleReader.problems`); empty when every hash matches."""
    from edgeresnet.bundle.reader import BundleReader

    reader = BundleReader.open(bundle) if manifest is None else BundleReader.of(bundle, manifest)
    return reader.problems()


def read_golden(bundle: str | Path, manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """The golden inputs and outputs, read through the bundle's door (listed, hashed, inside the bundle)."""
    from edgeresnet.bundle.reader import BundleReader

    return BundleReader.of(bundle, manifest).golden()
