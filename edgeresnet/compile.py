"""The compile step: a bundle in, a bundle for one target out (OpenVINO IR or TensorRT engine).

    compile_bundle("bundles/r20", target="openvino", precision="fp16", output="bundles/r20-ov-fp16")

Each target is its backend's compile step (the ``compile`` of its record in :mod:`edgeresnet.backends`); it writes the compiled model into a staging
directory and says which ONNX of the source it was built from. The compiled model then re-measures the
golden outputs, which must match the source model's (within the tolerance of the precision), and the
new bundle records where it came from (the source manifest's sha256), how, and on what.

INT8 keeps what the export decided: the layers its accuracy gate kept in float (the manifest's
``quantization["float_nodes"]``) stay float when a QDQ model is checked or rebuilt from
``calibration.json``, and an OpenVINO INT8 bundle's own IR (NNCF's, or the gated QDQ's) is reused,
never replaced by a rebuild from the table.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from edgeresnet.backends import compile_targets, get_backend
from edgeresnet.backends.tensorrt.options import TensorRtBuildOptions, tensorrt_options
from edgeresnet.bundle import (
    CALIBRATION_FILE,
    FP32_ONNX,
    PRECISIONS,
    CompileTarget,
    Precision,
)
from edgeresnet.bundle.files import assemble_bundle
from edgeresnet.bundle.manifest import Manifest
from edgeresnet.bundle.reader import BundleReader
from edgeresnet.bundle.records import EngineRecord, ParityRecord, Provenance
from edgeresnet.errors import BundleError, ExportError
from edgeresnet.parity import check_parity
from edgeresnet.placement import place_outputs
from edgeresnet.runtime.select import AUTO_DEVICE, open_runner, resolve_device

log = logging.getLogger(__name__)

Target = CompileTarget  # the targets `compile` builds (edgeresnet.bundle.vocabulary)


@dataclass(frozen=True)
class SourceBundle:
    """A checked source bundle and the ONNX models it holds, by the precision they compute in."""

    path: Path
    manifest: Manifest
    onnx: dict[str, str]
    reader: BundleReader = field(compare=False, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> SourceBundle:
        path = Path(path)
        reader = BundleReader.open(path)  # the bundle's door: names stay inside it, bytes are hashed
        manifest = reader.manifest
        problems = reader.problems()
        if problems:
            raise BundleError(f"bundle {path} fails its checks: {'; '.join(problems)}")
        onnx: dict[str, str] = {}
        if manifest.model_file.endswith(".onnx"):
            onnx[manifest.precision] = manifest.model_file
        built = manifest.engine.network_onnx if manifest.engine else None  # an engine bundle carries its network
        if built is not None and built in manifest.files:
            onnx.setdefault(manifest.precision, built)
        if FP32_ONNX in manifest.files:
            onnx.setdefault("fp32", FP32_ONNX)
        return cls(path, manifest, onnx, reader)

    def file(self, name: str) -> Path:
        """The real path of a listed file of the source, checked against its sha256 (companions too)."""
        return self.reader.verified_path(name)

    def has_table(self) -> bool:
        return CALIBRATION_FILE in self.manifest.files and "fp32" in self.onnx

    @property
    def float_nodes(self) -> tuple[str, ...]:
        """Layers the export's accuracy gate kept in float: every INT8 model made from this bundle keeps them."""
        return self.manifest.quantization.float_nodes if self.manifest.quantization else ()

    def openvino_int8_ir(self) -> Path | None:
        """The bundle's own OpenVINO INT8 IR: the artifact the export chose and measured (NNCF or the
        table's QDQ after the accuracy gate), which a rebuild from the table could not reproduce."""
        src = self.manifest
        if src.target == "openvino" and src.precision == "int8" and src.model_file.endswith(".xml"):
            return self.file(src.model_file)
        return None

    def require(self, precision: str, purpose: str) -> Path:
        if precision not in self.onnx:
            have = ", ".join(f"{p} ({n})" for p, n in sorted(self.onnx.items())) or "none"
            hint = " (export it with --int8)" if precision == "int8" else ""
            raise ExportError(
                f"bundle {self.path} has no {precision.upper()} ONNX model for {purpose}{hint}; "
                f"it holds: {have}"
            )
        return self.file(self.onnx[precision])


@dataclass
class Compiled:
    """What a target compiler produced: files for the new bundle and how to check them."""

    files: dict[str, Path]
    model_file: str
    source_model: Path  # the model (an ONNX, or the source's own IR) the compiled model must agree with
    device: str
    extra: dict[str, Any] = field(default_factory=dict)
    runner_options: dict[str, Any] = field(default_factory=dict)


# A backend's compile step (its record's ``compile``): source, precision, work directory, device, build options.
Compiler = Callable[[SourceBundle, str, Path, str, Any], Compiled]


@dataclass(frozen=True)
class CompileJob:
    """One compile: ``bundle`` into a new bundle at ``output`` for ``target``.

    Args:
        precision: of the compiled model; ``None`` keeps the source bundle's.
        device: where the model is compiled for and checked: an OpenVINO device (``CPU``, ``GPU``), or
            ``cuda`` for TensorRT; ``auto`` is the target's default.
        overwrite: replace a bundle an earlier run wrote at ``output`` (never a directory of the user's).
        tensorrt: how to build the engine (TensorRT only; ``None`` is the defaults).
        recorded_source: where the manifest says the source bundle is, when ``bundle`` is about to move
            there (the pipeline compiles in its staging area); ``bundle`` by default.
    """

    bundle: Path
    output: Path
    target: CompileTarget
    precision: Precision | None = None
    device: str = AUTO_DEVICE
    overwrite: bool = False
    tensorrt: TensorRtBuildOptions | None = None
    recorded_source: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bundle", Path(self.bundle))
        object.__setattr__(self, "output", Path(self.output))
        if self.target not in compile_targets():
            raise ExportError(f"compile targets are {', '.join(compile_targets())}, not {self.target!r}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.tensorrt is not None and self.target != "tensorrt":
            raise ExportError("TensorRT build options are only for --target tensorrt")


class CompileFields(TypedDict, total=False):
    """The keyword form of :func:`edgeresnet.compile_bundle`: the :class:`CompileJob` fields after bundle and
    output, for type checkers (defaults and checks stay in CompileJob; a test keeps the two in step)."""

    target: CompileTarget
    precision: Precision | None
    device: str
    overwrite: bool
    tensorrt: TensorRtBuildOptions | None
    recorded_source: Path | None


def compile_bundle(
    bundle: str | Path,
    *,
    target: CompileTarget,
    precision: Precision | None,
    output: str | Path,
    device: str = AUTO_DEVICE,
    overwrite: bool = False,
    recorded_source: str | Path | None = None,
    **trt_options: Any,
) -> Path:
    """Compile ``bundle`` for ``target`` at ``precision`` into a new bundle at ``output``.

    The flat keyword form of :func:`run_compile` (see :class:`CompileJob` for the fields): ``trt_options`` are
    :class:`~edgeresnet.backends.tensorrt.options.TensorRtBuildOptions` fields (``max_batch``, ``timing_cache``,
    ...), refused for other targets and checked by name.
    """
    if target not in compile_targets():  # before the TensorRT-only check, which would name the wrong mistake
        raise ExportError(f"compile targets are {', '.join(compile_targets())}, not {target!r}")
    if trt_options and target != "tensorrt":
        raise ExportError(f"{', '.join(sorted(trt_options))}: only for --target tensorrt")
    tensorrt = tensorrt_options(trt_options) if target == "tensorrt" else None
    return run_compile(CompileJob(bundle=Path(bundle), output=Path(output), target=target, precision=precision,
                                  device=device, overwrite=overwrite, tensorrt=tensorrt,
                                  recorded_source=Path(recorded_source) if recorded_source else None))


def run_compile(job: CompileJob) -> Path:
    """Run a :class:`CompileJob`; returns the new bundle's directory."""
    device = resolve_device(get_backend(job.target), job.device)
    source = SourceBundle.open(job.bundle)
    precision = job.precision or source.manifest.precision
    output = job.output.absolute()
    if output.resolve() == source.path.resolve():
        raise ExportError("the compiled bundle must go to a new directory, not over its source")
    target = job.target
    with place_outputs(output.parent, overwrite=job.overwrite, expect=[output.name],
                       lock_name=f".{output.name}.lock") as staging:
        work = staging.path.parent / "work"
        work.mkdir()
        compiled = get_backend(target).compiler()(source, precision, work, device, job.tensorrt)
        inputs, expected = source.reader.golden()
        reference = _reference_logits(source, compiled.source_model, inputs, expected)
        model = compiled.files[compiled.model_file]
        with open_runner(model, backend=target, device=compiled.device, precision=precision,
                         **compiled.runner_options) as runner:
            outputs = runner.infer(inputs)
        comparison = check_parity(reference, outputs, precision)
        if not comparison.passed:
            raise ExportError(f"the compiled {target} {precision} model does not reproduce its source "
                              f"{compiled.source_model.name}: {comparison.describe()}")
        log.debug("compiled %s %s: %s", target, precision, comparison.describe())
        record = ParityRecord.from_check(f"source {compiled.source_model.name}", comparison,
                                         inputs="golden inputs")
        manifest = _compiled_manifest(source, target, precision, compiled, record)
        if job.recorded_source is not None:
            manifest.provenance = dataclasses.replace(manifest.provenance, parent_bundle=str(job.recorded_source))
        assemble_bundle(staging.path / output.name, manifest, compiled.files, golden_inputs=inputs,
                        golden_outputs=outputs)
    return output


def _reference_logits(
    source: SourceBundle, model: Path, inputs: np.ndarray, golden: np.ndarray
) -> np.ndarray:
    """The source model's logits on the golden inputs: its golden outputs, if it is the bundle's model."""
    if model == source.reader.resolve(source.manifest.model_file):
        return golden
    from edgeresnet.backends.onnxruntime.runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(model) as runner:
        return runner.infer(inputs)


def _compiled_manifest(source: SourceBundle, target: str, precision: str, compiled: Compiled,
                       parity: ParityRecord) -> Manifest:
    src = source.manifest
    int8 = precision == "int8"
    notes = dict(compiled.extra)
    facts = notes.pop(target, None)
    engine = EngineRecord.from_dict({"runtime": target, "device": compiled.device, **facts}) if facts else None
    # The link to what the source was made from (checkpoint or weights file) survives every compile.
    provenance = Provenance(
        **{**src.provenance.to_dict(), "parent_bundle": str(source.path.resolve()),
           "parent_manifest_sha256": source.reader.manifest_file_sha256,  # the manifest compiled from "parent_target": src.target,
           "parent_precision": src.precision, "parent_model": compiled.source_model.name,
           "parent_accuracy": src.accuracy.to_dict() if src.accuracy else None},
    )
    return Manifest(
        architecture=src.architecture, precision=precision, target=target,  # type: ignore[arg-type]
        model_file=compiled.model_file, preprocessing=src.preprocessing, class_names=list(src.class_names),
        input=src.input, parity=(parity,),
        calibration=src.calibration if int8 else None, quantization=src.quantization if int8 else None,
        engine=engine, provenance=provenance, ood=src.ood,
        build={"compile": {"precision": precision, "device": compiled.device}},
        extra=notes,
    )


# --- INT8 inputs ------------------------------------------------------------------------------------


def qdq_from_table(source: SourceBundle, staging: Path, flavour: str) -> Path:
    """Rebuild the QDQ model for ``flavour`` from the bundle's calibration table, without recalibrating.

    The layers the accuracy gate kept in float stay float: quantizing them would undo the gate.
    """
    from edgeresnet.calibration import CalibrationTable, quantize_qdq

    table = CalibrationTable.load(source.file(CALIBRATION_FILE))
    out = staging / f"model_int8_{flavour}.onnx"
    quantize_qdq(source.file(source.onnx["fp32"]), table, out, flavour=flavour,  # type: ignore[arg-type]
                 exclude_nodes=source.float_nodes)
    return out
