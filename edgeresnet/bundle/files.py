"""Reading and writing bundle directories: assemble, place, read, check hashes, read golden samples."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeresnet.atomic import atomic_write_json
from edgeresnet.bundle.layout import GOLDEN_FILE, MANIFEST_FILE
from edgeresnet.bundle.manifest import Manifest, manifest_content_sha256
from edgeresnet.digests import sha256_file
from edgeresnet.environment import environment
from edgeresnet.errors import BundleError
from edgeresnet.placement import interrupted_publish, place_outputs

if TYPE_CHECKING:
    import numpy as np

# A manifest is small; anything far larger is not one, and is refused before it is parsed.
MAX_MANIFEST_BYTES = 16 << 20


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
    """The manifest as JSON, read safely: one-line errors for a missing, huge, binary or non-object file."""
    bundle = Path(bundle)
    path = bundle / MANIFEST_FILE
    if not bundle.is_dir():
        raise BundleError(f"bundle not found: {bundle}")
    if not path.is_file():
        raise BundleError(f"{bundle} is not a bundle (no {MANIFEST_FILE})")
    journal = interrupted_publish(bundle)
    if journal is not None:
        raise BundleError(f"{bundle} belongs to an output whose last run was interrupted while moving its "
                          f"results into place; rerun that command into {bundle.parent} to finish it")
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path} is too large to be a manifest ({path.stat().st_size} bytes)")
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = "it is not valid UTF-8 JSON" if not isinstance(error, OSError) else str(error.strerror)
        raise BundleError(f"cannot read {path}: {reason}") from error
    if not isinstance(record, dict):
        raise BundleError(f"{path} is not an edgeresnet bundle manifest (not a JSON object)")
    return record


def read_manifest(bundle: str | Path) -> Manifest:
    return manifest_from_record(read_manifest_record(bundle))


def manifest_from_record(record: dict[str, Any]) -> Manifest:
    """The typed manifest of a record read from disk (migrated if older), remembering the record's hash."""
    manifest = Manifest.from_dict(record)
    manifest.loaded_content_sha256 = manifest_content_sha256(record)  # type: ignore[attr-defined]
    return manifest


def check_files(bundle: str | Path, manifest: Manifest | None = None) -> list[str]:
    """Problems with the bundle's files (missing, altered); empty when every hash matches."""
    bundle = Path(bundle)
    manifest = manifest or read_manifest(bundle)
    problems = []
    recorded = manifest.manifest_sha256
    # The hash covers the text as written (a version-1 manifest hashed its own version-1 content).
    actual = {manifest.content_sha256(), getattr(manifest, "loaded_content_sha256", None)}
    if recorded and recorded not in actual:
        problems.append(f"{MANIFEST_FILE} was modified (its content no longer matches its recorded sha256)")
    for name, expected in manifest.files.items():
        path = bundle / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{name} points outside the bundle")
        elif path.is_symlink() or not path.is_file():
            problems.append(f"{name} is missing" if not path.is_symlink() else f"{name} is a symbolic link")
        elif sha256_file(path) != expected:
            problems.append(f"{name} was modified (sha256 differs from the manifest)")
    return problems


def read_golden(bundle: str | Path, manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    name = manifest.golden.get("file", GOLDEN_FILE)
    if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
        raise BundleError(f"the manifest's golden file {name!r} is not a file in the bundle")
    path = Path(bundle) / name
    try:
        with np.load(path, allow_pickle=False) as golden:
            return golden["inputs"], golden["outputs"]
    except (OSError, KeyError, ValueError) as error:
        raise BundleError(f"cannot read golden samples {path}: {error}") from error
