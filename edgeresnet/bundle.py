"""Bundles: what every export and compile produces, and what the runtime, verify and benchmark read.

A bundle is a directory holding the model file(s), ``manifest.json`` and ``golden.npz`` (a few
preprocessed inputs with the outputs they must give). The manifest records what the artifact is,
how it was built, how accurate it measured, and the sha256 of every other file. Bundles are
assembled in a temporary directory and renamed into place, so an interrupted build leaves nothing
that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgeresnet.atomic import atomic_directory, atomic_write_json
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.environment import environment
from edgeresnet.errors import BundleError, EdgeResNetError

MANIFEST_FILE = "manifest.json"
GOLDEN_FILE = "golden.npz"
BUNDLE_FORMAT = "edgeresnet-bundle"
FORMAT_VERSION = 1

Precision = str  # "fp32" | "fp16" | "int8"
Target = str  # "onnxruntime" | "openvino" | "tensorrt"


@dataclass
class Manifest:
    """The facts of one bundle. ``files`` maps every other file in the bundle to its sha256."""

    architecture: str
    precision: Precision
    target: Target
    model_file: str
    preprocessing: PreprocessSpec
    labels: list[str]
    input: dict[str, Any]
    accuracy: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    golden: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    manifest_sha256: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["preprocessing"] = self.preprocessing.to_dict()
        return {"format": BUNDLE_FORMAT, **record}

    @classmethod
    def from_dict(cls, record: Any) -> Manifest:
        if not isinstance(record, dict) or record.get("format") != BUNDLE_FORMAT:
            raise BundleError("manifest.json is not an edgeresnet bundle manifest")
        version = record.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BundleError(f"manifest.json has no valid format_version (got {version!r})")
        if version > FORMAT_VERSION:
            raise BundleError(
                f"bundle format {version} is newer than this edgeresnet reads ({FORMAT_VERSION}); upgrade edgeresnet"
            )
        for name, kind in _FIELD_TYPES.items():
            if name in record and record[name] is not None and not isinstance(record[name], kind):
                raise BundleError(f"manifest.json is malformed: {name!r} must be a {kind.__name__}")
        values = {k: v for k, v in record.items() if k != "format"}
        try:
            values["preprocessing"] = PreprocessSpec.from_dict(values["preprocessing"])
            return cls(**values)
        except (KeyError, TypeError, ValueError, EdgeResNetError) as error:
            raise BundleError(f"manifest.json is malformed: {error}") from error

    def content_sha256(self) -> str:
        """sha256 of the manifest's own content (everything but this hash), canonically serialised."""
        record = self.to_dict()
        record.pop("manifest_sha256", None)
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()


# Field types a manifest must have, checked before use so a malformed file is an error, not a crash.
_FIELD_TYPES: dict[str, type] = {
    "architecture": str, "precision": str, "target": str, "model_file": str, "preprocessing": dict,
    "labels": list, "input": dict, "accuracy": dict, "parity": dict, "calibration": dict,
    "quantization": dict, "golden": dict, "build": dict, "extra": dict, "files": dict, "manifest_sha256": str,
}


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
    overwrite: bool = True,
) -> Path:
    """Assemble a bundle: copy ``files`` (name in bundle → source), golden samples, hashes, manifest."""
    if manifest.model_file not in files:
        raise BundleError(f"bundle model file {manifest.model_file!r} is not among the files given")
    destination = Path(destination).resolve()
    if destination.exists() and not (destination / MANIFEST_FILE).is_file() and any(destination.iterdir()):
        # Replacing a bundle is expected; replacing a user's own directory would lose their files.
        raise BundleError(f"{destination} exists and is not a bundle: refusing to replace it; choose another --output")
    with atomic_directory(destination, overwrite=overwrite) as staging:
        for name, source in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        np.savez_compressed(staging / GOLDEN_FILE, inputs=golden_inputs.astype(np.float32),
                            outputs=golden_outputs.astype(np.float32))
        manifest.golden = {"file": GOLDEN_FILE, "count": len(golden_inputs), **manifest.golden}
        manifest.build = {"created": datetime.now(UTC).isoformat(timespec="seconds"),
                          **environment(), **manifest.build}
        manifest.files = {
            path.relative_to(staging).as_posix(): sha256_file(path)
            for path in sorted(staging.rglob("*")) if path.is_file()
        }
        manifest.manifest_sha256 = manifest.content_sha256()
        atomic_write_json(staging / MANIFEST_FILE, manifest.to_dict())
    return Path(destination)


def read_manifest(bundle: str | Path) -> Manifest:
    bundle = Path(bundle)
    path = bundle / MANIFEST_FILE
    if not bundle.is_dir():
        raise BundleError(f"bundle not found: {bundle}")
    if not path.is_file():
        raise BundleError(f"{bundle} is not a bundle (no {MANIFEST_FILE})")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"cannot read {path}: {error}") from error
    return Manifest.from_dict(record)


def check_files(bundle: str | Path, manifest: Manifest | None = None) -> list[str]:
    """Problems with the bundle's files (missing, altered); empty when every hash matches."""
    bundle = Path(bundle)
    manifest = manifest or read_manifest(bundle)
    problems = []
    if manifest.manifest_sha256 and manifest.content_sha256() != manifest.manifest_sha256:
        problems.append(f"{MANIFEST_FILE} was modified (its content no longer matches its recorded sha256)")
    for name, expected in manifest.files.items():
        path = bundle / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{name} points outside the bundle")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != expected:
            problems.append(f"{name} was modified (sha256 differs from the manifest)")
    return problems


def read_golden(bundle: str | Path, manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    path = Path(bundle) / manifest.golden.get("file", GOLDEN_FILE)
    try:
        with np.load(path, allow_pickle=False) as golden:
            return golden["inputs"], golden["outputs"]
    except (OSError, KeyError, ValueError) as error:
        raise BundleError(f"cannot read golden samples {path}: {error}") from error
