"""Verify a bundle on the machine that will run it: its files, its runtime, and its golden answers.

``verify_bundle`` checks, in order: the manifest can be read (and is not from a newer format) and
follows the bundle schema (``edgeresnet/bundle/schema.json``), every file matches its sha256 and every
file the runtime opens is listed (a tampered engine, ``.bin`` or external-data file is never loaded;
the same door, :class:`~edgeresnet.bundle.reader.BundleReader`, serves ``predict``), the installed runtime matches the one
recorded (a warning for ONNX Runtime/OpenVINO; for a TensorRT engine the TensorRT version and GPU
must match, or the engine cannot be trusted to load), the labels and input size agree with the model
file itself (a re-signed manifest cannot make ``predict`` allocate a 100000×100000 input), and the model reproduces its golden outputs
within the tolerance of its precision (:func:`edgeresnet.parity.check_parity`, the judge export and
``compile`` use too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeresnet.bundle import MANIFEST_FILE
from edgeresnet.bundle.manifest import Manifest
from edgeresnet.bundle.model_bytes import IR_WEIGHTS, ModelBytes
from edgeresnet.bundle.reader import BundleReader
from edgeresnet.bundle.schema import schema_problems
from edgeresnet.environment import package_version
from edgeresnet.errors import EdgeResNetError, one_line
from edgeresnet.limits import printable
from edgeresnet.parity import ParityCheck, check_parity
from edgeresnet.runtime.loading import open_bundle_runner
from edgeresnet.runtime.select import AUTO_DEVICE, Backend, backend_for, resolve_device


@dataclass
class VerifyReport:
    """What verify found: passed checks, warnings, and failures (any failure fails the bundle)."""

    bundle: Path
    checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    golden: ParityCheck | None = None
    runner: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """The report as printable lines (names and labels from the bundle are escaped)."""
        lines = [f"bundle {printable(self.bundle)}: {'OK' if self.passed else 'FAILED'}"]
        lines += [f"  ok: {printable(check)}" for check in self.checks]
        lines += [f"  warning: {printable(warning)}" for warning in self.warnings]
        lines += [f"  failed: {printable(failure)}" for failure in self.failures]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "passed": self.passed, "checks": self.checks,
                "warnings": self.warnings, "failures": self.failures,
                "golden": self.golden.to_dict() if self.golden else None, "runner": self.runner}


def verify_bundle(
    bundle: str | Path, *, backend: str | None = None, device: str = AUTO_DEVICE, allow_host_code: bool = False
) -> VerifyReport:
    """Check a bundle end to end on this machine; problems are reported, not raised.

    Args:
        allow_host_code: let a version-compatible TensorRT engine run the runtime it embeds (see
            :meth:`edgeresnet.runtime.classifier.Classifier.load`); without it such an engine fails.
    """
    report = VerifyReport(bundle=Path(bundle))
    try:
        reader = BundleReader.open(bundle)  # the door predict and benchmark use: the same files, the same checks
    except EdgeResNetError as error:
        report.failures.append(str(error))
        return report
    manifest = reader.manifest
    report.checks.append(f"manifest format {manifest.format_version}: {manifest.architecture} "
                         f"{manifest.precision} for {manifest.target} ({manifest.model_file})")
    _check_schema(report, manifest, reader.record)
    if not _files_intact(report, reader):
        return report  # never load a model whose bytes are not the ones the manifest describes
    _check_model_interface(report, reader)
    if report.failures:
        return report
    try:
        chosen = backend_for(manifest.model_file, backend)
        device = resolve_device(chosen, device)
    except EdgeResNetError as error:
        report.failures.append(str(error))
        return report
    _check_runtime(report, manifest, chosen, device)
    if report.failures:
        return report
    _check_golden(report, reader, chosen, device, allow_host_code)
    return report


def _files_intact(report: VerifyReport, reader: BundleReader) -> bool:
    """Every listed file and every file the runtime opens: inside the bundle, listed, and as hashed."""
    manifest = reader.manifest
    report.failures.extend(reader.problems())  # an unhashed model file among them
    unlisted = reader.unlisted_files()
    if unlisted:
        report.warnings.append(f"files not in the manifest (nothing opens them): {', '.join(unlisted[:5])}")
    if report.failures:
        return False
    report.checks.append(f"{len(manifest.files)} files match their sha256, and they are every file the runtime "
                         f"opens ({', '.join(reader.runtime_names())})")
    return True


def _check_runtime(report: VerifyReport, manifest: Manifest, backend: Backend, device: str) -> None:
    if not backend.installed():
        report.failures.append(f"{backend.name} is not installed here: {backend.install_hint}")
        return
    if backend.verify is not None:  # the backend's own checks (TensorRT: the engine's version and GPU)
        backend.load(backend.verify)(report, manifest, device)
        return
    recorded_versions = manifest.build.get("versions", {})
    recorded = next((recorded_versions[p] for p in backend.packages if p in recorded_versions), None)
    installed = next((v for v in map(package_version, backend.packages) if v), None)
    if recorded and installed and recorded != installed:
        report.warnings.append(f"{backend.name} {installed} here, the bundle was built with {recorded}")
    else:
        report.checks.append(f"{backend.name} {installed or 'installed'}"
                             + (f" (built with {recorded})" if recorded else ""))


def _check_golden(
    report: VerifyReport, reader: BundleReader, backend: Backend, device: str, allow_host_code: bool
) -> None:
    manifest = reader.manifest
    try:
        inputs, expected = reader.golden()
        # The loader the application's Classifier uses, on the bytes checked above: what passes here runs there.
        with open_bundle_runner(reader, backend=backend.name, device=device,
                                allow_host_code=allow_host_code) as runner:
            outputs = runner.infer(inputs)
            report.runner = runner.describe().to_dict()
        comparison = check_parity(expected, outputs, manifest.precision)
    except EdgeResNetError as error:
        report.failures.append(str(error))
        return
    report.golden = comparison
    if outputs.ndim == 2 and outputs.shape[1] != len(manifest.class_names):
        report.failures.append(f"the model gives {outputs.shape[1]} outputs but the manifest lists "
                               f"{len(manifest.class_names)} labels")
        return
    if comparison.passed:
        report.checks.append(f"golden outputs reproduced on {backend.name}: {comparison.describe()}")
    else:
        report.failures.append(f"golden outputs not reproduced on {backend.name}: {comparison.describe()}")


def _check_schema(report: VerifyReport, manifest: Manifest, record: dict[str, Any]) -> None:
    # A version-1 manifest is checked as it reads after migration: the schema describes version 2.
    document = record if manifest.format_version >= 2 else manifest.to_dict()
    problems = schema_problems(document)
    if problems:
        report.failures.append(f"{MANIFEST_FILE} breaks the bundle schema: {'; '.join(problems)}")
    else:
        migrated = "" if manifest.format_version >= 2 else " (after migration from format 1)"
        report.checks.append(f"{MANIFEST_FILE} follows the bundle schema{migrated}")


def _check_model_interface(report: VerifyReport, reader: BundleReader) -> None:
    """The manifest's labels and input size against the model file's own input shape and output width."""
    manifest = reader.manifest
    c, h, w = manifest.input.channels_height_width
    spec = tuple(manifest.preprocessing.input_shape()[1:])
    if spec != (c, h, w):
        report.failures.append(f"the manifest's preprocessing makes {spec[0]}×{spec[1]}×{spec[2]} inputs but its "
                               f"input record says {c}×{h}×{w}")
        return
    try:
        declared = model_interface(reader.model(manifest.model_file))
    except EdgeResNetError as error:
        report.failures.append(str(error))
        return
    if declared is None:
        return  # an engine: its shapes are checked when the golden inputs run
    shape, width = declared
    if any(want is not None and want != have for want, have in zip(shape[1:], (c, h, w), strict=False)):
        dims = "×".join("?" if d is None else str(d) for d in shape[1:])
        report.failures.append(f"{manifest.model_file} takes {dims} inputs but the manifest says {c}×{h}×{w}")
    if width is not None and width != len(manifest.class_names):
        report.failures.append(f"{manifest.model_file} has {width} outputs but the manifest lists "
                               f"{len(manifest.class_names)} labels")
    if not report.failures:
        report.checks.append(f"labels ({len(manifest.class_names)}) and input {c}×{h}×{w} match the model file")


def model_interface(model: ModelBytes) -> tuple[tuple[int | None, ...], int | None] | None:
    """The input shape and output width a model declares (ONNX or OpenVINO IR); None for an engine."""
    suffix = model.path.suffix.lower()
    try:
        if suffix == ".onnx":
            return _onnx_interface(model)
        if suffix == ".xml":
            return _ir_interface(model)
    except EdgeResNetError:
        raise
    except Exception as error:  # protobuf and XML parsers raise their own types for a corrupt file
        raise EdgeResNetError(f"cannot read the model file {model.name}: {one_line(error)}") from error
    return None


def _dims(values: list[int | None]) -> tuple[int | None, ...]:
    return tuple(v if isinstance(v, int) and v > 0 else None for v in values)


def _onnx_interface(model: ModelBytes) -> tuple[tuple[int | None, ...], int | None]:
    # onnxruntime, not onnx: verify runs on the runtime-only install, which has no onnx package.
    from edgeresnet.backends.onnxruntime.runner import OrtSession

    session = OrtSession(model, level="none").session  # one-line error for a model ONNX Runtime cannot read
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise EdgeResNetError(f"{model.name} must have one input and one output")
    output = _dims(list(outputs[0].shape))
    return _dims(list(inputs[0].shape)), output[-1] if output else None


def _ir_interface(model: ModelBytes) -> tuple[tuple[int | None, ...], int | None]:
    from xml.etree import ElementTree  # expat refuses entity expansion bombs

    if IR_WEIGHTS not in model.companions:
        raise EdgeResNetError(f"{model.name} came without its weights (.bin)")
    root = ElementTree.fromstring(model.data)
    parameters = [layer for layer in root.iter("layer") if layer.get("type") == "Parameter"]
    results = [layer for layer in root.iter("layer") if layer.get("type") == "Result"]
    if len(parameters) != 1 or len(results) != 1:
        raise EdgeResNetError(f"{model.name} must have one input and one output")
    data = parameters[0].find("data")
    text = (data.get("shape") if data is not None else "") or ""
    shape = _dims([int(d) if d.strip().lstrip("-").isdigit() else None for d in text.strip("[]").split(",")])
    dims = [d.text for d in results[0].iter("dim")]
    width = int(dims[-1]) if dims and dims[-1] and dims[-1].strip().isdigit() else None
    return shape, width
