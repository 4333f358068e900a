"""Verify a deployed model repository: every served file is the bundle's bytes, nothing was added or edited.

"verify OK" for a repository means what it means for a bundle: the files a server loads are the ones
the bundle's manifest hashed, the config and labels are the ones edgeresnet wrote, and no model file
or version directory was slipped in beside them (Triton serves every numeric directory it finds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeresnet.bundle import Manifest, sha256_file
from edgeresnet.errors import EdgeResNetError, one_line
from edgeresnet.limits import read_json
from edgeresnet.placement import RESERVED
from edgeresnet.serve.repository import CONFIG_FILE, MODEL_RECORD, RECORD_FORMAT

MAX_RECORD_BYTES = 16 << 20


@dataclass(frozen=True)
class ModelCheck:
    name: str
    manifest_sha256: str | None  # the bundle this model was written from
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class RepositoryCheck:
    path: Path
    models: tuple[ModelCheck, ...]

    @property
    def ok(self) -> bool:
        return bool(self.models) and all(model.ok for model in self.models)

    def to_dict(self) -> dict[str, Any]:
        return {"repository": str(self.path), "ok": self.ok,
                "models": [{"name": m.name, "bundle_manifest_sha256": m.manifest_sha256, "ok": m.ok,
                            "problems": list(m.problems)} for m in self.models]}


def verify_repository(repository: str | Path) -> RepositoryCheck:
    """Check every model directory of ``repository`` against the record edgeresnet wrote into it."""
    root = Path(repository)
    if not root.is_dir():
        raise EdgeResNetError(f"model repository not found: {root}")
    entries = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not entries:
        raise EdgeResNetError(f"{root} holds no model directories")
    return RepositoryCheck(root, tuple(_check_model(entry) for entry in entries))


def _check_model(directory: Path) -> ModelCheck:
    try:
        record = _read_record(directory)
    except EdgeResNetError as error:
        return ModelCheck(directory.name, None, (str(error),))
    bundle = record.get("bundle") if isinstance(record.get("bundle"), dict) else {}
    recorded_sha = bundle.get("manifest_sha256")
    problems = _manifest_problems(record, recorded_sha) + _file_problems(directory, record)
    problems += _config_problems(directory)
    return ModelCheck(directory.name, recorded_sha if isinstance(recorded_sha, str) else None, tuple(problems))


def _read_record(directory: Path) -> dict[str, Any]:
    path = directory / MODEL_RECORD
    if not path.is_file() or path.is_symlink():
        raise EdgeResNetError(f"no {MODEL_RECORD}: not written by edgeresnet serve-repo, nothing to check it against")

    record = read_json(path, what="repository record", max_bytes=MAX_RECORD_BYTES)  # bounded in size and depth
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise EdgeResNetError(f"{MODEL_RECORD} is not an edgeresnet repository record")
    for key in ("files", "sources", "manifest"):
        if not isinstance(record.get(key), dict):
            raise EdgeResNetError(f"{MODEL_RECORD} has no '{key}' object")
    return record


def _manifest_problems(record: dict[str, Any], recorded_sha: object) -> list[str]:
    """The embedded manifest must be the bundle's, unedited, and name the same bytes as the copies."""
    try:
        manifest = Manifest.from_dict(record["manifest"])
    except (EdgeResNetError, TypeError, ValueError, KeyError) as error:
        return [f"the recorded bundle manifest is malformed: {one_line(error)}"]
    problems = []
    if not recorded_sha or recorded_sha != manifest.manifest_sha256 or manifest.content_sha256() != recorded_sha:
        problems.append("the recorded bundle manifest was modified (its sha256 does not match)")
    for target, source in record["sources"].items():
        if manifest.files.get(source) is None or record["files"].get(target) != manifest.files.get(source):
            problems.append(f"{target} is not recorded as the bundle's {source}")
    return problems


def _file_problems(directory: Path, record: dict[str, Any]) -> list[str]:
    problems = []
    files: dict[str, Any] = record["files"]
    for name, expected in sorted(files.items()):
        path = directory / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{name} points outside the model directory")
        elif path.is_symlink() or not path.is_file():
            problems.append(f"{name} is missing" if not path.is_symlink() else f"{name} is a symbolic link")
        elif sha256_file(path) != expected:
            problems.append(f"{name} was modified (sha256 differs from the record)")
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if not p.is_dir()}
    for extra in sorted(present - set(files) - {MODEL_RECORD, *RESERVED}):  # the ledger: placement's record
        problems.append(f"{extra} is not part of the model edgeresnet wrote (a server may load it)")
    return problems


def _config_problems(directory: Path) -> list[str]:
    """Parse config.pbtxt with Triton's own schema where tritonclient is installed."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return []
    path = directory / CONFIG_FILE
    if not path.is_file():
        return []  # reported as missing above
    try:
        config = text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())
    except (text_format.ParseError, UnicodeDecodeError) as error:
        return [f"{CONFIG_FILE} does not parse as a Triton ModelConfig: {one_line(error)}"]
    if config.name != directory.name:
        return [f"{CONFIG_FILE} names the model {config.name!r}, its directory is {directory.name!r}"]
    return []
