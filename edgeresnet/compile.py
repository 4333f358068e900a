"""The compile step: a bundle in, a bundle for one target out (OpenVINO IR or TensorRT engine).

    compile_bundle("bundles/r20", target="openvino", precision="fp16", output="bundles/r20-ov-fp16")

Each target is one function in :data:`COMPILERS`; it writes the compiled model into a staging
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
from typing import Any

import numpy as np

from edgeresnet.bundle import (
    CALIBRATION_FILE,
    COMPILE_TARGETS,
    FP32_ONNX,
    MANIFEST_FILE,
    PRECISIONS,
    CompileTarget,
    Precision,
)
from edgeresnet.bundle.files import assemble_bundle, sha256_file
from edgeresnet.bundle.manifest import Manifest
from edgeresnet.bundle.reader import BundleReader
from edgeresnet.bundle.records import EngineRecord, ParityRecord, Provenance
from edgeresnet.errors import BundleError, ExportError
from edgeresnet.parity import check_parity
from edgeresnet.placement import place_outputs
from edgeresnet.runtime.select import AUTO_DEVICE, get_backend, open_runner, resolve_device

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


Compiler = Callable[[SourceBundle, str, Path, str, dict[str, Any]], Compiled]


def compile_bundle(
    bundle: str | Path,
    *,
    target: Target,
    precision: Precision,
    output: str | Path,
    device: str = AUTO_DEVICE,
    overwrite: bool = False,
    recorded_source: str | Path | None = None,
    **trt_options: Any,
) -> Path:
    """Compile ``bundle`` for ``target`` at ``precision`` into a new bundle at ``output``.

    Args:
        overwrite: replace a bundle an earlier run wrote at ``output`` (never a directory of the user's).
        recorded_source: where the manifest says the source bundle is, when ``bundle`` is about to move
            there (the pipeline compiles in its staging area); ``bundle`` by default.
        device: where the model is compiled for and checked: an OpenVINO device (``CPU``, ``GPU``), or
            ``cuda`` for TensorRT; ``auto`` is the target's default.
        trt_options: :class:`edgeresnet.export.tensorrt.TensorRtBuildOptions` fields (``max_batch``,
            ``opt_batch``, ``workspace_mib``, ``timing_cache``, ``version_compatible``,
            ``hardware_compatibility``); TensorRT only.
    """
    if target not in COMPILE_TARGETS:
        raise ExportError(f"compile targets are {', '.join(COMPILERS)}, not {target!r}")
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if trt_options and target != "tensorrt":
        raise ExportError(f"{', '.join(sorted(trt_options))}: only for --target tensorrt")
    device = resolve_device(get_backend(target), device)
    source = SourceBundle.open(bundle)
    output = Path(output).absolute()
    if output.resolve() == source.path.resolve():
        raise ExportError("the compiled bundle must go to a new directory, not over its source")
    with place_outputs(output.parent, overwrite=overwrite, expect=[output.name],
                       lock_name=f".{output.name}.lock") as staging:
        work = staging.path.parent / "work"
        work.mkdir()
        compiled = COMPILERS[target](source, precision, work, device, trt_options)
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
        if recorded_source is not None:
            manifest.provenance = dataclasses.replace(manifest.provenance, parent_bundle=str(Path(recorded_source)))
        assemble_bundle(staging.path / output.name, manifest, compiled.files, golden_inputs=inputs,
                        golden_outputs=outputs)
    return output


def _reference_logits(
    source: SourceBundle, model: Path, inputs: np.ndarray, golden: np.ndarray
) -> np.ndarray:
    """The source model's logits on the golden inputs: its golden outputs, if it is the bundle's model."""
    if model == source.file(source.manifest.model_file):
        return golden
    from edgeresnet.runtime.onnxruntime import OnnxRuntimeRunner

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
           "parent_manifest_sha256": sha256_file(source.path / MANIFEST_FILE), "parent_target": src.target,
           "parent_precision": src.precision, "parent_model": compiled.source_model.name,
           "parent_accuracy": src.accuracy.to_dict() if src.accuracy else None},
    )
    return Manifest(
        architecture=src.architecture, precision=precision, target=target,  # type: ignore[arg-type]
        model_file=compiled.model_file, preprocessing=src.preprocessing, labels=list(src.labels),
        input=src.input, parity=(parity,),
        calibration=src.calibration if int8 else None, quantization=src.quantization if int8 else None,
        engine=engine, provenance=provenance, ood=src.ood,
        build={"compile": {"precision": precision, "device": compiled.device}},
        extra=notes,
    )


# --- INT8 inputs ------------------------------------------------------------------------------------


def _qdq_from_table(source: SourceBundle, staging: Path, flavour: str) -> Path:
    """Rebuild the QDQ model for ``flavour`` from the bundle's calibration table, without recalibrating.

    The layers the accuracy gate kept in float stay float: quantizing them would undo the gate.
    """
    from edgeresnet.calibration import CalibrationTable, quantize_qdq

    table = CalibrationTable.load(source.file(CALIBRATION_FILE))
    out = staging / f"model_int8_{flavour}.onnx"
    quantize_qdq(source.file(source.onnx["fp32"]), table, out, flavour=flavour,  # type: ignore[arg-type]
                 exclude_nodes=source.float_nodes)
    return out


# --- OpenVINO ---------------------------------------------------------------------------------------


def compile_openvino(source: SourceBundle, precision: str, staging: Path, device: str,
                     options: dict[str, Any]) -> Compiled:
    from edgeresnet.export.openvino import convert_qdq_to_ir, convert_to_ir, openvino_version

    xml = staging / "model.xml"
    extra = {"openvino": {"version": openvino_version(), "device": device, "weights": precision}}
    ir = source.openvino_int8_ir() if precision == "int8" else None
    if ir is not None:  # the IR is device-independent: the new bundle is the same model, checked on `device`
        return Compiled(files={"model.xml": ir, "model.bin": ir.with_suffix(".bin")}, model_file="model.xml",
                        source_model=ir, device=device, extra=extra)
    if precision == "int8":
        if "int8" in source.onnx:
            onnx_model = source.file(source.onnx["int8"])
        elif source.has_table():
            onnx_model = _qdq_from_table(source, staging, "onnxruntime")
        else:
            onnx_model = source.require("int8", "an OpenVINO INT8 IR")
        convert_qdq_to_ir(onnx_model, xml)
    else:
        onnx_model = source.require("fp32", f"an OpenVINO {precision.upper()} IR")
        convert_to_ir(onnx_model, xml, precision=precision)  # type: ignore[arg-type]
    return Compiled(files={"model.xml": xml, "model.bin": xml.with_suffix(".bin")}, model_file="model.xml",
                    source_model=onnx_model, device=device, extra=extra)


# --- TensorRT ---------------------------------------------------------------------------------------


def compile_tensorrt(source: SourceBundle, precision: str, staging: Path, device: str,
                     options: dict[str, Any]) -> Compiled:
    from edgeresnet.export import tensorrt as trt_export

    build_options = _build_options(trt_export, options)
    if device.lower() not in ("cuda", "cuda:0"):
        raise ExportError(
            "TensorRT builds on the first visible GPU (cuda): choose it with CUDA_VISIBLE_DEVICES"
        )
    network_onnx, action = _tensorrt_source(source, precision)
    carry = (f"the bundle's QDQ ONNX ({source.onnx.get('int8', 'model.onnx')}) plus {CALIBRATION_FILE}"
             if precision == "int8" else f"the bundle's ONNX ({network_onnx.name})")
    trt_export.require_tensorrt_gpu(carry)  # fail before any work when the machine cannot build
    extra: dict[str, Any] = {}
    reference = network_onnx
    if action == "qdq-from-table":
        network_onnx = reference = _qdq_from_table(source, staging, "tensorrt")
    elif action == "fp16":
        conversion = trt_export.convert_onnx_to_fp16(network_onnx, staging / "model_fp16.onnx")
        extra["fp16_conversion"] = conversion.to_dict()
        network_onnx = conversion.path
    engine = staging / "model.engine"
    # The updated cache goes into the new bundle; the caller's --timing-cache (perhaps another bundle's
    # timing.cache, listed in its manifest with its sha256) is only read.
    cache_out = staging / "timing.cache"
    build = trt_export.build_engine(network_onnx, engine, options=build_options, carry=carry,
                                    timing_cache_out=cache_out)
    files = {"model.engine": engine, "model.onnx": network_onnx}
    if precision != "fp32" and "fp32" in source.onnx:
        files[FP32_ONNX] = source.file(source.onnx["fp32"])
    if CALIBRATION_FILE in source.manifest.files and precision == "int8":
        files[CALIBRATION_FILE] = source.file(CALIBRATION_FILE)
    if cache_out.is_file():
        files["timing.cache"] = cache_out
    # The cache's path on the build machine means nothing elsewhere; the bundle's copy is what counts.
    settings = {**build_options.to_dict(), "timing_cache": "timing.cache" if "timing.cache" in files else None}
    record = {**build.to_manifest(), **extra, "onnx": "model.onnx", "network_precision": precision,
              "version_compatible": build_options.version_compatible,
              "hardware_compatibility": build_options.hardware_compatibility, "options": settings}
    return Compiled(files=files, model_file="model.engine", source_model=reference, device=device,
                    extra={"tensorrt": record},
                    runner_options={"allow_host_code": build_options.version_compatible})


def _build_options(trt_export: Any, options: dict[str, Any]) -> Any:
    fields = set(trt_export.TensorRtBuildOptions.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ExportError(
            f"unknown TensorRT option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    values = dict(options)
    cache = values.get("timing_cache")
    if cache and Path(cache).exists() and not Path(cache).is_file():
        raise ExportError(f"--timing-cache {cache} is not a file")
    values["timing_cache"] = Path(cache) if cache else None
    return trt_export.TensorRtBuildOptions(**values)


def _tensorrt_source(source: SourceBundle, precision: str) -> tuple[Path, str]:
    """The ONNX to build from and what to do with it first: use it, convert it to FP16, or rebuild the QDQ."""
    if precision == "fp32":
        return source.require("fp32", "a TensorRT FP32 engine"), "as-is"
    if precision == "fp16":
        if "fp16" in source.onnx:
            return source.file(source.onnx["fp16"]), "as-is"
        return source.require("fp32", "a TensorRT FP16 engine"), "fp16"
    from edgeresnet.calibration import check_tensorrt_rules

    problems: list[str] = []
    if "int8" in source.onnx:
        qdq = source.file(source.onnx["int8"])
        problems = check_tensorrt_rules(qdq, float_nodes=source.float_nodes)
        if not problems:
            return qdq, "as-is"
    if source.has_table():
        return source.file(source.onnx["fp32"]), "qdq-from-table"
    if problems:
        raise ExportError(
            f"{source.onnx['int8']} does not follow TensorRT's QDQ rules ({problems[0]}; {len(problems)} "
            f"problems) and the bundle has no {CALIBRATION_FILE} + {FP32_ONNX} to rebuild it from: "
            "export with --target tensorrt"
        )
    return source.require("int8", "a TensorRT INT8 engine"), "as-is"


# The one dispatch table: a target name → the function that compiles for it.
COMPILERS: dict[str, Compiler] = {"openvino": compile_openvino, "tensorrt": compile_tensorrt}
