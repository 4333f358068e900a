"""The manifest's parts as typed, frozen records (:mod:`edgeresnet.bundle.manifest` assembles them).

Each ``from_dict`` reads both version 2 and the shapes version 1 wrote, and raises a one-line
:class:`~edgeresnet.errors.BundleError` for anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from edgeresnet.bundle.vocabulary import GATE_VERDICTS, GateVerdict
from edgeresnet.errors import BundleError

if TYPE_CHECKING:
    from edgeresnet.parity import ParityCheck


def malformed(what: str) -> BundleError:
    return BundleError(f"manifest.json is malformed: {what}")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise malformed(f"{what!r} must be an object")
    return dict(value)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise malformed(f"{what!r} must be a number")
    return float(value)


def _optional_number(value: Any, what: str) -> float | None:
    return None if value is None else _number(value, what)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise malformed(f"{what!r} must be a non-negative integer")
    return value


def _text(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise malformed(f"{what!r} must be a string")
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
            raise malformed("'input.shape' must be [batch or null, channels, height, width] of positive integers")
        if any(d is None for d in shape[1:]):
            raise malformed("'input.shape' may leave only the batch dynamic")
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
    max_drop_points: float | None = None  # the accuracy gate's budget, in points
    strict_gate: bool = False  # whether the budget applied to the interval's upper end

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
            "max_drop_points": self.max_drop_points, "strict_gate": self.strict_gate,
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
                raise malformed("'accuracy.drop_ci95_points' must be [low, high]")
            interval = (_number(interval[0], "accuracy.drop_ci95_points"),
                        _number(interval[1], "accuracy.drop_ci95_points"))
        model_topk = TopK.from_dict(model, "accuracy.model") if model is not None else None
        measured = record.get("measured", model is not None)
        if not isinstance(measured, bool):
            raise malformed("'accuracy.measured' must be true or false")
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
            max_drop_points=_optional_number(record.get("max_drop_points"), "accuracy.max_drop_points"),
            strict_gate=_flag(record.get("strict_gate", False), "accuracy.strict_gate"),
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
    def from_check(cls, reference: str, check: ParityCheck, *, inputs: str = "evaluation images") -> ParityRecord:
        """From the parity judge's verdict (:func:`edgeresnet.parity.check_parity`); both keep agreement in percent."""
        return cls(reference=reference, images=check.images, max_abs_diff=check.max_abs_diff,
                   top1_agreement_pct=check.top1_agreement_pct, mean_abs_diff=check.mean_abs_diff,
                   logit_range=check.logit_range, allowed_abs_diff=check.allowed_abs_diff, passed=check.passed,
                   inputs=inputs)


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
    plan: dict[str, Any] = field(default_factory=dict)  # how many images calibration, choice and evaluation used
    auto_choice: dict[str, Any] = field(default_factory=dict)  # ``auto``'s scores and whether the data resolved them

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
            plan=_mapping(record.get("plan") or {}, "calibration.plan"),
            auto_choice=_mapping(record.get("auto_choice") or {}, "calibration.auto_choice"),
        )


@dataclass(frozen=True)
class QuantizationRecord:
    """What the INT8 build decided: the layers kept in float, the path chosen, and the gate's record."""

    float_nodes: tuple[str, ...] = ()
    chosen: str | None = None
    flavour: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    gate_verdict: GateVerdict | None = None  # None: written before the gate gave verdicts

    def to_dict(self) -> dict[str, Any]:
        return {"float_nodes": list(self.float_nodes), "chosen": self.chosen, "flavour": self.flavour,
                "details": self.details, "gate_verdict": self.gate_verdict}

    @classmethod
    def from_dict(cls, record: Any) -> QuantizationRecord:
        record = _mapping(record, "quantization")
        nodes = record.get("float_nodes") or []
        if not isinstance(nodes, list | tuple) or not all(isinstance(node, str) for node in nodes):
            raise malformed("'quantization.float_nodes' must be a list of node names")
        details = record.get("details")
        if details is None:  # version 1 kept everything at the top level
            details = {k: v for k, v in record.items() if k not in ("float_nodes", "chosen", "flavour", "gate_verdict")}
        verdict = record.get("gate_verdict")
        if verdict is not None and verdict not in GATE_VERDICTS:
            raise malformed(f"'quantization.gate_verdict' must be one of {', '.join(GATE_VERDICTS)}")
        return cls(float_nodes=tuple(nodes), chosen=_text(record.get("chosen"), "quantization.chosen", optional=True),
                   flavour=_text(record.get("flavour"), "quantization.flavour", optional=True),
                   details=_mapping(details, "quantization.details"), gate_verdict=verdict)


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


__all__ = ["AccuracyRecord", "CalibrationRecord", "EngineRecord", "InputSpec", "ParityRecord", "Provenance",
           "QuantizationRecord", "TopK", "malformed"]


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise malformed(f"{what!r} must be true or false")
    return value
