"""`edgeresnet export`: FP32 ONNX, one calibration, INT8 per target, the accuracy gate, bundles.

The job is an :class:`~edgeresnet.export.job.ExportJob`; the result an
:class:`~edgeresnet.export.results.ExportResult` with a typed :class:`~edgeresnet.export.results.ExportReport`.
The groundwork (evaluation set, FP32 ONNX, calibration) is :mod:`edgeresnet.export.prepare`; each
target's build is :mod:`edgeresnet.export.targets`. Everything is built in a staging directory inside
the output and published together (:mod:`edgeresnet.placement`). An INT8 artifact the accuracy gate
refuses (:mod:`edgeresnet.calibration.gate`) is left out and listed, with its figures, under ``refused``
in the report: it never takes the FP32 bundles or the other targets with it. Any other failure
publishes nothing.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from edgeresnet.accuracy import Accuracy
from edgeresnet.atomic import atomic_write_json
from edgeresnet.backends import get_backend
from edgeresnet.bundle.files import assemble_bundle
from edgeresnet.bundle.layout import CALIBRATION_FILE, FP32_ONNX, MODEL_BIN, MODEL_ONNX, MODEL_XML
from edgeresnet.bundle.manifest import Manifest
from edgeresnet.bundle.naming import ArtifactName
from edgeresnet.bundle.records import AccuracyRecord, InputSpec, ParityRecord, TopK
from edgeresnet.bundle.vocabulary import Precision, Target
from edgeresnet.calibration import CalibrationTable
from edgeresnet.calibration.gate import GateRefusal, GateRefused, resolution_warning
from edgeresnet.calibration.layer_report import LAYER_REPORT_FILES, write_layer_reports
from edgeresnet.checkpoint import ModelCard, write_checkpoint
from edgeresnet.errors import ExportError
from edgeresnet.export.job import ExportJob
from edgeresnet.export.model_source import ModelSource, load_model_source, source_provenance
from edgeresnet.export.onnx import INPUT_NAME, fix_onnx_batch
from edgeresnet.export.prepare import ExportContext, prepare, prepare_without_data, run_calibration
from edgeresnet.export.results import BundleSummary, ExportReport, ExportResult
from edgeresnet.export.targets import BuiltArtifact, resolve_targets
from edgeresnet.placement import place_outputs

log = logging.getLogger(__name__)

NOT_MEASURED_NOTE = ("not measured: exported without labelled data (pass --data to measure accuracy); "
                     "parity with PyTorch was checked on generated inputs")
REPORT_FILE = "export_report.json"
SOURCE_CHECKPOINT = "pytorch-fp32"

Progress = Callable[[str], None]


def run_export(job: ExportJob, *, source: ModelSource | None = None, progress: Progress | None = None) -> ExportResult:
    """Export ``job.model`` for every requested target; FP32 bundles always, INT8 ones with ``job.int8``.

    An INT8 artifact the accuracy gate refuses is not published and is listed in ``ExportResult.refused``;
    everything else is published together.

    Args:
        source: the model already loaded (default: loaded from ``job``'s model fields).
    """
    say = progress or (lambda message: log.info(message))
    started = time.perf_counter()
    targets = resolve_targets(job.targets)
    if job.calib_table is not None:
        CalibrationTable.load(job.calib_table)  # a bad table fails before any export work
    if source is None:
        source = load_model_source(job.model, weights=job.weights, num_classes=job.num_classes,
                                   in_chans=job.in_chans, input_size=job.input_size, data=job.data or job.calib_data)
    eval_data = job.data or job.calib_data or source.data_source
    if eval_data is None and (job.int8 or source.weights is None):
        what = "INT8 needs calibration and evaluation data" if job.int8 else "the checkpoint names no data"
        raise ExportError(f"no evaluation data: name a data source (data=, or --data on the command line; {what})")
    names = [str(ArtifactName(target, precision)) for target in targets
             for precision in get_backend(target).export_precisions if job.int8 or precision == "fp32"]
    # A weights file travels as a checkpoint beside the bundles: the PyTorch baseline `benchmark` runs.
    baseline = [SOURCE_CHECKPOINT] if source.checkpoint is None and source.weights is not None else []
    # One placement for the whole export: every bundle that passed and the report land together or not at all.
    with place_outputs(job.output, overwrite=job.overwrite,
                       expect=[*names, *baseline, REPORT_FILE, *(LAYER_REPORT_FILES if job.int8 else ())]) as staging:
        work = staging.path.parent / "work"
        work.mkdir()
        if baseline:
            source = _with_baseline_checkpoint(source, staging.path / SOURCE_CHECKPOINT,
                                               job.output.absolute() / SOURCE_CHECKPOINT)
        context = (prepare(source, job, eval_data, work, say) if eval_data is not None
                   else prepare_without_data(source, job, work, say))
        if job.int8:
            run_calibration(context, say)
        summaries, refused = _build_all(context, names, staging.path, say)
        report = _report(context, summaries, refused, time.perf_counter() - started)
        atomic_write_json(staging.path / REPORT_FILE, report.to_dict())
        _write_layer_reports(context, staging.path)
        shutil.rmtree(work)  # scratch space freed before the moves; the staging directory goes after them
    return ExportResult(output=job.output, report=report, bundles={name: job.output / name for name in summaries},
                        withdrawn=tuple(staging.withdrawn), left=tuple(staging.left))


def _build_all(context: ExportContext, names: list[str], staging: Path,
               say: Progress) -> tuple[dict[str, BundleSummary], dict[str, GateRefusal]]:
    """Build and stage every bundle; an INT8 one the gate refuses is left out and returned with its figures."""
    summaries: dict[str, BundleSummary] = {}
    refused: dict[str, GateRefusal] = {}
    for name in names:
        artifact = ArtifactName.parse(name)
        target, precision = artifact.target, artifact.precision
        say(f"building {name}")
        try:
            built = get_backend(target).builder()(context, precision)
        except GateRefused as refusal:
            refused[name] = refusal.refusal
            say(f"{name} refused by the accuracy gate: {refusal.refusal.figures}")
            continue
        _write_target_bundle(context, built, target, precision, staging / name)
        summaries[name] = BundleSummary(model_file=built.model_file, accuracy=built.accuracy,
                                        quantization=built.quantization, comparison=built.comparison)
        if built.layer_report is not None:
            context.layer_reports[name] = built.layer_report
    return summaries, refused


def _with_baseline_checkpoint(source: ModelSource, staged: Path, final: Path) -> ModelSource:
    """Write ``source`` (an architecture with a weights file) as a checkpoint directory at ``staged``;
    the returned source names ``final`` (where it lands) as its checkpoint, keeping the weights file."""
    import dataclasses

    from edgeresnet.models.complexity import count_params

    card = ModelCard(
        architecture=source.architecture, num_classes=source.num_classes, in_chans=source.in_chans,
        preprocessing=source.preprocessing, class_names=list(source.class_names), overrides=dict(source.overrides),
        data={"source": source.data_source} if source.data_source else {},
        training={"from_weights": str(Path(source.weights or "").resolve()), "trained": False},
        params=count_params(source.model),
    )
    write_checkpoint(staged, source.model, card)
    return dataclasses.replace(source, checkpoint=final, checkpoint_sha256=card.weights_sha256)


def _write_target_bundle(context: ExportContext, built: BuiltArtifact, target: Target, precision: Precision,
                         destination: Path) -> Path:
    source = context.source
    c, h, w = source.preprocessing.input_shape()[1:]
    parity_inputs = "evaluation images" if context.accuracy_measured else "generated inputs (no --data)"
    manifest = Manifest(
        architecture=source.architecture, precision=precision, target=target,
        model_file=built.model_file, preprocessing=source.preprocessing, class_names=source.class_names,
        input=InputSpec(name=INPUT_NAME, shape=(context.options.batch, c, h, w)),
        accuracy=(_accuracy_record(context, built) if context.accuracy_measured
                  else AccuracyRecord.not_measured(NOT_MEASURED_NOTE)),
        parity=(ParityRecord.from_check("pytorch fp32", context.parity, inputs=parity_inputs),),
        calibration=context.calibration if precision == "int8" else None,
        quantization=built.quantization,
        provenance=source_provenance(source),
        pixel_model=built.pixel_model, ood=context.ood,
        extra=dict(built.extra),  # notes for people (export's TensorRT notes); no code reads them
    )
    files = _with_static_batch(dict(built.files), context.options.batch, context.work / f"static-{target}-{precision}")
    # The FP32 ONNX travels with every artifact that is not itself that ONNX: `compile` builds other
    # precisions from it, and an INT8 model can be rebuilt from it plus the calibration table.
    if built.files.get(MODEL_ONNX) != context.fp32_onnx:
        files.setdefault(FP32_ONNX, context.fp32_onnx)
    if precision == "int8" and context.table_path is not None:
        files.setdefault(CALIBRATION_FILE, context.table_path)
    return assemble_bundle(destination, manifest, files, golden_inputs=context.golden_inputs,
                           golden_outputs=built.golden_outputs)


def _accuracy_record(context: ExportContext, built: BuiltArtifact) -> AccuracyRecord:
    """The manifest's ``accuracy``: an INT8 bundle carries its paired comparison with FP32 and the gate's budget."""
    fp32, model = _top_k(context.fp32_accuracy), _top_k(built.accuracy)
    if built.comparison is None:
        return AccuracyRecord(measured=True, images=fp32.images, split="evaluation", fp32=fp32, model=model,
                              drop_points=round(fp32.top1 - model.top1, 4))
    record = built.comparison.to_dict()
    low, high = record["drop_ci95_points"]
    return AccuracyRecord(
        measured=True, images=record["images"], split="evaluation", fp32=fp32, model=model,
        drop_points=record["drop_points"], drop_ci95_points=(low, high), agreement_pct=record["agreement_pct"],
        comparison=record, max_drop_points=context.options.max_accuracy_drop, strict_gate=context.options.strict_gate,
    )


def _top_k(accuracy: Accuracy) -> TopK:
    return TopK(top1=round(accuracy.top1, 4), top5=round(accuracy.top5, 4), images=accuracy.images)


def _with_static_batch(files: dict[str, Path], batch: int | None, directory: Path) -> dict[str, Path]:
    """The model files with their batch fixed to ``batch`` (unchanged when the batch stays dynamic)."""
    if batch is None:
        return files

    fixed = dict(files)
    if MODEL_ONNX in files:
        fixed[MODEL_ONNX] = fix_onnx_batch(files[MODEL_ONNX], directory / MODEL_ONNX, batch)
    if MODEL_XML in files:
        from edgeresnet.backends.openvino.convert import fix_ir_batch

        xml = fix_ir_batch(files[MODEL_XML], directory / MODEL_XML, batch)
        fixed[MODEL_XML], fixed[MODEL_BIN] = xml, xml.with_suffix(".bin")
    return fixed


def _report(context: ExportContext, summaries: dict[str, BundleSummary], refused: dict[str, GateRefusal],
            seconds: float) -> ExportReport:
    budget = context.options.max_accuracy_drop
    warnings = [warning for summary in summaries.values()
                if summary.comparison is not None and (warning := resolution_warning(summary.comparison, budget))]
    return ExportReport(
        architecture=context.source.architecture, fp32=context.fp32_accuracy, parity=context.parity,
        calibration=context.calibration, bundles=summaries, refused=refused,
        # Each distinct "cannot resolve" line once: the ONNX Runtime and TensorRT flavours often share one.
        warnings=tuple(dict.fromkeys(warnings)), max_accuracy_drop=budget, strict_gate=context.options.strict_gate,
        layer_reports=dict(context.layer_reports), seconds=seconds, accuracy_measured=context.accuracy_measured,
        provenance=source_provenance(context.source),
    )


def _write_layer_reports(context: ExportContext, output: Path) -> None:
    """layer_report.md/.json/.png beside export_report.json (INT8 exports only)."""
    if context.layer_reports:
        write_layer_reports(output, context.layer_reports)


