"""The manifest's parts as typed, frozen records, and the manifest itself (format version 2).

Every reader — compile, verify, benchmark, the pipeline, the runtime — uses these fields; nothing
reads a manifest by key. ``Manifest.from_dict`` migrates a version-1 manifest on the way in
(:func:`migrate_v1`), so old bundles still load; ``to_dict`` always writes the current version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from edgeresnet.bundle.layout import BUNDLE_FORMAT, FORMAT_VERSION
from edgeresnet.bundle.vocabulary import PRECISIONS, TARGETS, Precision, Target
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import BundleError, EdgeResNetError


def _malformed(what: str) -> BundleError:
    return BundleError(f"manifest.json is malformed: {what}")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _malformed(f"{what!r} must be an object")
    return dict(value)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _malformed(f"{what!r} must be a number")
    return float(value)


def _optional_number(value: Any, what: str) -> float | None:
    return None if value is None else _number(value, what)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _malformed(f"{what!r} must be a non-negative integer")
    return value


def _text(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _malformed(f"{what!r} must be a string")
    return value


@dataclass(frozen=True)
class InputSpec:
    """The model's one input: name, NCHW shape (batch ``None`` when dynamic), dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    layout: str = "NCHW"

    @property
    def static_batch(self) -> int | None:
        return self.shape[0] if self.shape else None

    @property
    def channels_height_width(self) -> tuple[int, int, int]:
        c, h, w = self.shape[1:4]
        return int(c or 0), int(h or 0), int(w or 0)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout}

    @classmethod
    def from_dict(cls, record: Any) -> InputSpec:
        record = _mapping(record, "input")
        shape = record.get("shape")
        if not isinstance(shape, list) or len(shape) != 4 or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in shape):
            raise _malformed("'input.shape' must be [batch or null, channels, height, width] of positive integers")
        if any(d is None for d in shape[1:]):
            raise _malformed("'input.shape' may leave only the batch dynamic")
        return cls(name=str(_text(record.get("name", "input"), "input.name")), shape=tuple(shape),
                   dtype=str(_text(record.get("dtype", "float32"), "input.dtype")),
                   layout=str(_text(record.get("layout", "NCHW"), "input.layout")))


@dataclass(frozen=True)
class TopK:
    """Top-1 and top-5 accuracy in percent over ``images``."""

    top1: float
    top5: float
    images: int

    def to_dict(self) -> dict[str, Any]:
        return {"top1": round(self.top1, 4), "top5": round(self.top5, 4), "images": self.images}

    @classmethod
    def from_dict(cls, record: Any, what: str) -> TopK:
        record = _mapping(record, what)
        return cls(top1=_number(record.get("top1"), f"{what}.top1"),
                   top5=_number(record.get("top5", record.get("top1")), f"{what}.top5"),
                   images=_count(record.get("images", 0), f"{what}.images"))


@dataclass(frozen=True)
class AccuracyRecord:
    """The artifact's measured accuracy, against FP32 on the same images, with its 95% interval.

    ``drop_points`` is FP32 top-1 minus this artifact's, ``drop_ci95_points`` its paired 95% interval
    and ``comparison`` the full :class:`edgeresnet.evaluation.PairedComparison` record. ``measured`` is
    false when no labelled data was available (an FP32 export of a weights file without ``--data``);
    ``note`` then says why.
    """

    measured: bool
    images: int = 0
    split: str | None = None
    fp32: TopK | None = None
    model: TopK | None = None
    drop_points: float | None = None
    drop_ci95_points: tuple[float, float] | None = None
    agreement_pct: float | None = None
    comparison: dict[str, Any] | None = None
    note: str | None = None

    @classmethod
    def not_measured(cls, note: str) -> AccuracyRecord:
        return cls(measured=False, note=note)

    def to_dict(self) -> dict[str, Any]:
        return {
            "measured": self.measured, "images": self.images, "split": self.split,
            "fp32": self.fp32.to_dict() if self.fp32 else None,
            "model": self.model.to_dict() if self.model else None,
            "drop_points": self.drop_points,
            "drop_ci95_points": list(self.drop_ci95_points) if self.drop_ci95_points else None,
            "agreement_pct": self.agreement_pct, "comparison": self.comparison, "note": self.note,
        }

    @classmethod
    def from_dict(cls, record: Any, precision: str) -> AccuracyRecord | None:
        """Read version 2's record, or version 1's ``{"fp32": ..., "<precision>": ..., "drop_points": ...}``."""
        record = _mapping(record, "accuracy")
        if not record:
            return None
        comparison = record.get("comparison")
        if comparison is not None:
            comparison = _mapping(comparison, "accuracy.comparison")
        fp32 = record.get("fp32")
        model = record.get("model", record.get(precision))
        interval = record.get("drop_ci95_points", (comparison or {}).get("drop_ci95_points"))
        if interval is not None:
            if not isinstance(interval, list | tuple) or len(interval) != 2:
                raise _malformed("'accuracy.drop_ci95_points' must be [low, high]")
            interval = (_number(interval[0], "accuracy.drop_ci95_points"),
                        _number(interval[1], "accuracy.drop_ci95_points"))
        model_topk = TopK.from_dict(model, "accuracy.model") if model is not None else None
        measured = record.get("measured", model is not None)
        if not isinstance(measured, bool):
            raise _malformed("'accuracy.measured' must be true or false")
        images = record.get("images", model_topk.images if model_topk else 0)
        return cls(
            measured=measured, images=_count(images, "accuracy.images"),
            split=_text(record.get("split"), "accuracy.split", optional=True),
            fp32=TopK.from_dict(fp32, "accuracy.fp32") if fp32 is not None else None, model=model_topk,
            drop_points=_optional_number(record.get("drop_points", (comparison or {}).get("drop_points")),
                                         "accuracy.drop_points"),
            drop_ci95_points=interval,  # type: ignore[arg-type]
            agreement_pct=_optional_number(record.get("agreement_pct", (comparison or {}).get("agreement_pct")),
                                           "accuracy.agreement_pct"),
            comparison=comparison, note=_text(record.get("note"), "accuracy.note", optional=True),
        )


@dataclass(frozen=True)
class ParityRecord:
    """How closely this model's logits follow a reference on the same inputs. Agreement in percent."""

    reference: str
    images: int
    max_abs_diff: float
    top1_agreement_pct: float
    mean_abs_diff: float | None = None
    logit_range: float | None = None
    allowed_abs_diff: float | None = None
    passed: bool | None = None
    inputs: str = "evaluation images"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Any, reference: str | None = None) -> ParityRecord:
        record = _mapping(record, "parity")
        if "top1_agreement_pct" in record:
            agreement = _number(record["top1_agreement_pct"], "parity.top1_agreement_pct")
        else:  # version 1 stored a fraction
            agreement = 100.0 * _number(record.get("top1_agreement"), "parity.top1_agreement")
        passed = record.get("passed")
        return cls(
            reference=str(_text(record.get("reference", reference or "unknown"), "parity.reference")),
            images=_count(record.get("images", 0), "parity.images"),
            max_abs_diff=_number(record.get("max_abs_diff"), "parity.max_abs_diff"),
            top1_agreement_pct=agreement,
            mean_abs_diff=_optional_number(record.get("mean_abs_diff"), "parity.mean_abs_diff"),
            logit_range=_optional_number(record.get("logit_range"), "parity.logit_range"),
            allowed_abs_diff=_optional_number(record.get("allowed_abs_diff"), "parity.allowed_abs_diff"),
            passed=passed if isinstance(passed, bool) else None,
            inputs=str(record.get("inputs", "evaluation images")),
        )

    @classmethod
    def from_comparison(cls, reference: str, comparison: Any, *, inputs: str = "evaluation images") -> ParityRecord:
        """From a :class:`~edgeresnet.evaluation.LogitComparison` or a verify ``ParityCheck``."""
        base = getattr(comparison, "comparison", comparison)
        return cls(reference=reference, images=base.images, max_abs_diff=float(base.max_abs_diff),
                   top1_agreement_pct=100.0 * float(base.top1_agreement), mean_abs_diff=float(base.mean_abs_diff),
                   logit_range=float(base.logit_range),
                   allowed_abs_diff=getattr(comparison, "allowed_abs_diff", None),
                   passed=getattr(comparison, "passed", None), inputs=inputs)


@dataclass(frozen=True)
class CalibrationRecord:
    """Where an INT8 model's activation ranges came from."""

    method: str
    samples: int
    data_hash: str | None = None
    data: str | None = None
    split: str | None = "calibration"
    file: str | None = None
    skipped_images: int = 0
    requested_method: str | None = None
    candidates: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Any) -> CalibrationRecord:
        record = _mapping(record, "calibration")
        candidates = record.get("candidates", record.get("auto_candidates")) or {}
        return cls(
            method=str(_text(record.get("method"), "calibration.method")),
            samples=_count(record.get("samples", 0), "calibration.samples"),
            data_hash=_text(record.get("data_hash"), "calibration.data_hash", optional=True),
            data=_text(record.get("data"), "calibration.data", optional=True),
            split=_text(record.get("split"), "calibration.split", optional=True),
            file=_text(record.get("file"), "calibration.file", optional=True),
            skipped_images=_count(record.get("skipped_images", 0), "calibration.skipped_images"),
            requested_method=_text(record.get("requested_method"), "calibration.requested_method", optional=True),
            candidates=_mapping(candidates, "calibration.candidates"),
        )


@dataclass(frozen=True)
class QuantizationRecord:
    """What the INT8 build decided: the layers kept in float, the path chosen, and the gate's record."""

    float_nodes: tuple[str, ...] = ()
    chosen: str | None = None
    flavour: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"float_nodes": list(self.float_nodes), "chosen": self.chosen, "flavour": self.flavour,
                "details": self.details}

    @classmethod
    def from_dict(cls, record: Any) -> QuantizationRecord:
        record = _mapping(record, "quantization")
        nodes = record.get("float_nodes") or []
        if not isinstance(nodes, list | tuple) or not all(isinstance(node, str) for node in nodes):
            raise _malformed("'quantization.float_nodes' must be a list of node names")
        details = record.get("details")
        if details is None:  # version 1 kept everything at the top level
            details = {k: v for k, v in record.items() if k not in ("float_nodes", "chosen", "flavour")}
        return cls(float_nodes=tuple(nodes), chosen=_text(record.get("chosen"), "quantization.chosen", optional=True),
                   flavour=_text(record.get("flavour"), "quantization.flavour", optional=True),
                   details=_mapping(details, "quantization.details"))


@dataclass(frozen=True)
class EngineRecord:
    """Facts of a compiled model that decide where it can run: the compiler, its version, the device."""

    runtime: str
    version: str | None = None
    device: str | None = None
    gpu: str | None = None
    compute_capability: str | None = None
    version_compatible: bool = False
    hardware_compatibility: str = "none"
    network_onnx: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def compatibility_record(self) -> dict[str, Any]:
        """The flat record :func:`edgeresnet.verify.tensorrt_compatibility` judges."""
        return {**self.details, "version": self.version, "gpu": self.gpu,
                "compute_capability": self.compute_capability, "version_compatible": self.version_compatible,
                "hardware_compatibility": self.hardware_compatibility}

    @classmethod
    def from_dict(cls, record: Any) -> EngineRecord:
        record = _mapping(record, "engine")
        known = {f.name for f in fields(cls)}
        details = record.get("details")
        if details is None:
            details = {k: v for k, v in record.items() if k not in known and k != "onnx"}
        capability = record.get("compute_capability")
        return cls(
            runtime=str(_text(record.get("runtime"), "engine.runtime")),
            version=None if record.get("version") is None else str(record["version"]),
            device=_text(record.get("device"), "engine.device", optional=True),
            gpu=_text(record.get("gpu"), "engine.gpu", optional=True),
            compute_capability=None if capability is None else str(capability),
            version_compatible=bool(record.get("version_compatible", False)),
            hardware_compatibility=str(record.get("hardware_compatibility") or "none"),
            network_onnx=_text(record.get("network_onnx", record.get("onnx")), "engine.network_onnx", optional=True),
            details=_mapping(details, "engine.details"),
        )


@dataclass(frozen=True)
class Provenance:
    """What the bundle was made from: a checkpoint or a weights file (with sha256), and a parent bundle."""

    checkpoint: str | None = None
    checkpoint_sha256: str | None = None  # of the checkpoint's weights file
    weights: str | None = None
    weights_sha256: str | None = None
    parent_bundle: str | None = None
    parent_manifest_sha256: str | None = None
    parent_target: str | None = None
    parent_precision: str | None = None
    parent_model: str | None = None
    parent_accuracy: dict[str, Any] | None = None  # measured on the parent artifact, not re-measured

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Any) -> Provenance:
        record = _mapping(record, "provenance")
        values: dict[str, Any] = {}
        for item in fields(cls):
            value = record.get(item.name)
            if item.name == "parent_accuracy":
                values[item.name] = None if value is None else _mapping(value, "provenance.parent_accuracy")
            else:
                values[item.name] = _text(value, f"provenance.{item.name}", optional=True)
        return cls(**values)


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
    labels: list[str]
    input: InputSpec
    accuracy: AccuracyRecord | None = None
    parity: tuple[ParityRecord, ...] = ()
    calibration: CalibrationRecord | None = None
    quantization: QuantizationRecord | None = None
    engine: EngineRecord | None = None
    provenance: Provenance = field(default_factory=Provenance)
    golden: dict[str, Any] = field(default_factory=dict)
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
        self.extra, engine, provenance = _lift_extra(self.extra)
        self.engine = self.engine or engine
        if provenance and self.provenance == Provenance():
            self.provenance = provenance
        self._check_input()
        if self.precision not in PRECISIONS:
            raise _malformed(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.target not in TARGETS:
            raise _malformed(f"target {self.target!r} is not one of {', '.join(TARGETS)}")

    def _check_input(self) -> None:
        """The preprocessing and the input record must describe one input size, and a plausible one.

        Anyone can rewrite and re-hash a manifest; an absurd size would make every app that loads the
        bundle allocate it per image. ``verify`` checks the size against the model file itself.
        """
        spec = tuple(self.preprocessing.input_shape()[1:])
        declared = tuple(self.input.shape[1:])
        if spec != declared:
            raise _malformed(f"the preprocessing makes {'×'.join(map(str, spec))} inputs but 'input.shape' "
                             f"says {'×'.join(map(str, declared))}")
        if max(spec[1:]) > MAX_INPUT_SIDE:
            raise _malformed(f"input size {spec[1]}×{spec[2]} is beyond any image classifier "
                             f"(at most {MAX_INPUT_SIDE} pixels a side)")
        if not self.labels:
            raise _malformed("'labels' is empty")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"format": BUNDLE_FORMAT}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "parity":
                record["parity"] = [p.to_dict() for p in value]
            elif hasattr(value, "to_dict"):
                record[item.name] = value.to_dict()
            else:
                record[item.name] = value
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
            if name in record and record[name] is not None and not isinstance(record[name], kind):
                raise _malformed(f"{name!r} must be a {kind.__name__}")
        if not all(isinstance(label, str) for label in record.get("labels") or [None]):
            raise _malformed("'labels' must be a non-empty list of strings")
        files = record.get("files") or {}
        if not all(isinstance(value, str) for value in files.values()):
            raise _malformed("'files' must map names to sha256 strings")
        known = {item.name for item in fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["format_version"] = version
        try:
            values["preprocessing"] = PreprocessSpec.from_dict(values["preprocessing"])
            return cls(**values)
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, EdgeResNetError) as error:
            raise _malformed(str(error) or type(error).__name__) from error

    def content_sha256(self) -> str:
        """sha256 of the manifest's own content (everything but this hash), canonically serialised."""
        record = self.to_dict()
        record.pop("manifest_sha256", None)
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()

    def replace(self, **changes: Any) -> Manifest:
        return replace(self, **changes)


# Field types of a (migrated) manifest, checked before use so a malformed file is an error, not a crash.
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "architecture": str, "precision": str, "target": str, "model_file": str, "preprocessing": dict,
    "labels": list, "input": dict, "accuracy": dict, "parity": list, "calibration": dict,
    "quantization": dict, "engine": dict, "provenance": dict, "golden": dict, "build": dict, "extra": dict,
    "files": dict, "manifest_sha256": str,
}
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


__all__ = ["AccuracyRecord", "CalibrationRecord", "EngineRecord", "InputSpec", "Manifest", "ParityRecord",
           "Provenance", "QuantizationRecord", "TopK", "migrate_v1"]
