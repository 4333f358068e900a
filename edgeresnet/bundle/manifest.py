"""The manifest of a bundle (format version 2) and the migration from version 1.

Every reader — compile, verify, benchmark, the pipeline, the runtime — uses these fields; nothing
reads a manifest by key. ``Manifest.from_dict`` migrates a version-1 manifest on the way in
(:func:`migrate_v1`), so old bundles still load; ``to_dict`` always writes the current version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from edgeresnet.backends.registry import bundle_targets
from edgeresnet.bundle.layout import BUNDLE_FORMAT, FORMAT_VERSION
from edgeresnet.bundle.ood import OodProfile
from edgeresnet.bundle.records import (
    AccuracyRecord,
    CalibrationRecord,
    EngineRecord,
    InputSpec,
    ParityRecord,
    Provenance,
    QuantizationRecord,
    malformed,
)
from edgeresnet.bundle.vocabulary import PRECISIONS, Precision, Target
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.digests import sha256_json
from edgeresnet.errors import BundleError, EdgeResNetError


@dataclass
class Manifest:
    """The facts of one bundle. ``files`` maps every other file in the bundle to its sha256.

    ``extra`` holds free-form notes for people (``export`` explains there that a TensorRT engine is built
    on the device); no code reads it. Facts live in the typed fields.
    """

    architecture: str
    precision: Precision
    target: Target
    model_file: str
    preprocessing: PreprocessSpec
    class_names: list[str]  # the JSON key is "labels" (the bundle format): see _JSON_KEYS
    input: InputSpec
    accuracy: AccuracyRecord | None = None
    parity: tuple[ParityRecord, ...] = ()
    calibration: CalibrationRecord | None = None
    quantization: QuantizationRecord | None = None
    engine: EngineRecord | None = None
    provenance: Provenance = field(default_factory=Provenance)
    # The bundle's uint8-NHWC-input copy of its ONNX model (preprocessing as graph nodes), if it has one.
    pixel_model: str | None = None
    golden: dict[str, Any] = field(default_factory=dict)
    # Ranges of held-out in-distribution inputs for the runtime's out-of-distribution hint (optional).
    ood: OodProfile | None = None
    build: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    manifest_sha256: str = ""

    def __post_init__(self) -> None:
        # Writers may hand over plain records (dicts, as stages produce them); they become typed here,
        # in the one place that knows how, so every reader sees the same fields.
        if isinstance(self.input, Mapping):
            self.input = InputSpec.from_dict(self.input)
        if isinstance(self.accuracy, Mapping):
            self.accuracy = AccuracyRecord.from_dict(self.accuracy, self.precision)
        if isinstance(self.parity, Mapping):
            self.parity = _parity_from_v1(self.parity)
        elif isinstance(self.parity, list):
            self.parity = tuple(p if isinstance(p, ParityRecord) else ParityRecord.from_dict(p) for p in self.parity)
        if isinstance(self.calibration, Mapping):
            self.calibration = CalibrationRecord.from_dict(self.calibration)
        if isinstance(self.quantization, Mapping):
            self.quantization = QuantizationRecord.from_dict(self.quantization)
        if isinstance(self.engine, Mapping):
            self.engine = EngineRecord.from_dict(self.engine)
        if isinstance(self.provenance, Mapping):
            self.provenance = Provenance.from_dict(self.provenance)
        if isinstance(self.ood, Mapping):
            self.ood = OodProfile.from_dict(self.ood)
        self.extra, engine, provenance = _lift_extra(self.extra)
        self.engine = self.engine or engine
        if provenance and self.provenance == Provenance():
            self.provenance = provenance
        self._check_input()
        if self.precision not in PRECISIONS:
            raise malformed(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.target not in bundle_targets():
            raise malformed(f"target {self.target!r} is not one of {', '.join(bundle_targets())}")

    def _check_input(self) -> None:
        """The preprocessing and the input record must describe one input size, and a plausible one.

        Anyone can rewrite and re-hash a manifest; an absurd size would make every app that loads the
        bundle allocate it per image. ``verify`` checks the size against the model file itself.
        """
        spec = tuple(self.preprocessing.input_shape()[1:])
        declared = tuple(self.input.shape[1:])
        if spec != declared:
            raise malformed(f"the preprocessing makes {'×'.join(map(str, spec))} inputs but 'input.shape' "
                             f"says {'×'.join(map(str, declared))}")
        if max(spec[1:]) > MAX_INPUT_SIDE:
            raise malformed(f"input size {spec[1]}×{spec[2]} is beyond any image classifier "
                             f"(at most {MAX_INPUT_SIDE} pixels a side)")
        if not self.class_names:
            raise malformed("'labels' is empty")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"format": BUNDLE_FORMAT}
        for item in fields(self):
            value = getattr(self, item.name)
            key = _JSON_KEYS.get(item.name, item.name)
            if item.name == "parity":
                record["parity"] = [p.to_dict() for p in value]
            elif hasattr(value, "to_dict"):
                record[key] = value.to_dict()
            else:
                record[key] = value
        record["format_version"] = FORMAT_VERSION
        return record

    @classmethod
    def from_dict(cls, record: Any) -> Manifest:
        if not isinstance(record, dict) or record.get("format") != BUNDLE_FORMAT:
            raise BundleError("manifest.json is not an edgeresnet bundle manifest")
        version = record.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleError(f"manifest.json has no valid format_version (got {version!r})")
        if version > FORMAT_VERSION:
            raise BundleError(
                f"bundle format {version} is newer than this edgeresnet reads ({FORMAT_VERSION}); upgrade edgeresnet"
            )
        if version == 1:
            record = migrate_v1(record)
        for name, kind in _FIELD_TYPES.items():
            if name in record and record[name] is None and name not in _NULLABLE:
                raise malformed(f"{name!r} must not be null")
            if name in record and record[name] is not None and not isinstance(record[name], kind):
                raise malformed(f"{name!r} must be a {kind.__name__}")
        if not all(isinstance(label, str) for label in record.get("labels") or [None]):
            raise malformed("'labels' must be a non-empty list of strings")
        files = record.get("files") or {}
        if not all(isinstance(value, str) for value in files.values()):
            raise malformed("'files' must map names to sha256 strings")
        known = {_JSON_KEYS.get(item.name, item.name): item.name for item in fields(cls)}
        values = {known[k]: v for k, v in record.items() if k in known}
        values["format_version"] = version
        try:
            values["preprocessing"] = PreprocessSpec.from_dict(values["preprocessing"])
            return cls(**values)
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, EdgeResNetError) as error:
            raise malformed(str(error) or type(error).__name__) from error

    def content_sha256(self) -> str:
        """sha256 of the manifest's own content (everything but this hash), canonically serialised."""
        return manifest_content_sha256(self.to_dict())

    def replace(self, **changes: Any) -> Manifest:
        return replace(self, **changes)



def manifest_content_sha256(record: Mapping[str, Any]) -> str:
    """The manifest hash: sha256 of a manifest record's content (all but ``manifest_sha256``), canonically
    serialised. The one definition: writing hashes the typed manifest, checking also the record as read."""
    return sha256_json({key: value for key, value in record.items() if key != "manifest_sha256"})


def manifest_from_record(record: dict[str, Any]) -> Manifest:
    """The typed manifest of a record read from disk (migrated if older), remembering the record's hash."""
    manifest = Manifest.from_dict(record)
    manifest.loaded_content_sha256 = manifest_content_sha256(record)  # type: ignore[attr-defined]
    return manifest

# Fields whose JSON key in manifest.json differs from their name in code (the format keeps its keys).
_JSON_KEYS = {"class_names": "labels"}

# Field types of a (migrated) manifest, checked before use so a malformed file is an error, not a crash.
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "architecture": str, "precision": str, "target": str, "model_file": str, "preprocessing": dict,
    "labels": list, "input": dict, "accuracy": dict, "parity": list, "calibration": dict,
    "quantization": dict, "engine": dict, "provenance": dict, "golden": dict, "build": dict, "extra": dict,
    "files": dict, "manifest_sha256": str, "pixel_model": str, "ood": dict,
}
# The parts a manifest may leave null (an FP32 bundle has no calibration, an ONNX one no engine, ...).
_NULLABLE = frozenset({"accuracy", "calibration", "quantization", "engine", "pixel_model", "ood"})
_ENGINE_NOTES = ("tensorrt", "openvino")
# The largest input side a manifest may declare: far above any classifier's (ImageNet models use 224-600).
MAX_INPUT_SIDE = 8192


def migrate_v1(record: dict[str, Any]) -> dict[str, Any]:
    """A version-1 manifest as version 2: parity as a list, engine facts and provenance out of ``extra``.

    The recorded ``manifest_sha256`` is kept: it hashes the version-1 content, which
    :func:`edgeresnet.bundle.check_files` checks against the original text.
    """
    migrated = dict(record)
    parity = record.get("parity")
    if isinstance(parity, dict):
        migrated["parity"] = [p.to_dict() for p in _parity_from_v1(parity)]
    extra, engine, provenance = _lift_extra(record.get("extra") if isinstance(record.get("extra"), dict) else {})
    migrated["extra"] = extra
    build = record.get("build") if isinstance(record.get("build"), dict) else {}
    compile_record = build.get("compile") if isinstance(build.get("compile"), dict) else None
    if compile_record is not None:
        provenance = replace(provenance or Provenance(),
                             parent_bundle=compile_record.get("source_bundle"),
                             parent_manifest_sha256=compile_record.get("source_manifest_sha256"),
                             parent_target=compile_record.get("source_target"),
                             parent_precision=compile_record.get("source_precision"),
                             parent_model=compile_record.get("source_model"),
                             parent_accuracy=compile_record.get("source_accuracy"))
    migrated["engine"] = engine.to_dict() if engine else None
    migrated["provenance"] = (provenance or Provenance()).to_dict()
    migrated["accuracy"] = record.get("accuracy") or {}
    return migrated


def _parity_from_v1(parity: Mapping[str, Any]) -> tuple[ParityRecord, ...]:
    if not parity:
        return ()
    if "max_abs_diff" in parity:  # compile's flat record
        return (ParityRecord.from_dict(parity, reference=str(parity.get("reference", "source model"))),)
    return tuple(ParityRecord.from_dict(value, reference=name) for name, value in parity.items()
                 if isinstance(value, Mapping))


def _lift_extra(extra: Mapping[str, Any]) -> tuple[dict[str, Any], EngineRecord | None, Provenance | None]:
    """Split version-1 ``extra`` into the notes it keeps and the facts that now have typed fields."""
    notes = dict(extra or {})
    engine = None
    for runtime in _ENGINE_NOTES:
        record = notes.get(runtime)
        # An engine's facts (a version and a device) move; export's notes for the device stay notes.
        if isinstance(record, Mapping) and record.get("version") is not None:
            engine = EngineRecord.from_dict({"runtime": runtime, **notes.pop(runtime)})
    checkpoint, weights = notes.pop("source_checkpoint", None), notes.pop("source_weights", None)
    provenance = None
    if checkpoint or weights:
        provenance = Provenance(checkpoint=str(checkpoint) if checkpoint else None,
                                weights=str(weights) if weights else None)
    return notes, engine, provenance


__all__ = ["MAX_INPUT_SIDE", "Manifest", "migrate_v1"]
