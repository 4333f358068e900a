"""`edgeresnet export`: FP32 ONNX, one calibration, INT8 per target, the accuracy gate, bundles.

The order is fixed so that every number in a manifest comes from the same data: the evaluation split
is preprocessed once and shared by every model evaluated; calibration images come from the
calibration split only. Everything is built in a staging directory inside the output; bundles move
into place only when every requested target passed, so a failed export leaves nothing behind that
looks finished.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeresnet.atomic import atomic_write_json
from edgeresnet.bundle.files import assemble_bundle
from edgeresnet.bundle.manifest import Manifest
from edgeresnet.bundle.records import AccuracyRecord, InputSpec, ParityRecord
from edgeresnet.bundle.vocabulary import CALIB_METHODS, CalibMethod
from edgeresnet.calibration.layer_report import LAYER_REPORT_FILES
from edgeresnet.data import open_source
from edgeresnet.errors import DatasetError, ExportError
from edgeresnet.export.onnx import INPUT_NAME, export_onnx, onnx_parity
from edgeresnet.export.ood_profile import record_ood_profile
from edgeresnet.export.sources import ModelSource, source_provenance
from edgeresnet.export.targets import TARGETS, accuracy_record, resolve_targets
from edgeresnet.parity import ParityCheck
from edgeresnet.placement import place_outputs

log = logging.getLogger(__name__)

NOT_MEASURED_NOTE = ("not measured: exported without labelled data (pass --data to measure accuracy); "
                     "parity with PyTorch was checked on generated inputs")
GOLDEN_COUNT = 8
PARITY_IMAGES = 256
EVAL_BATCH = 250
REPORT_FILE = "export_report.json"
GENERATED_IMAGES = 128
SOURCE_CHECKPOINT = "pytorch-fp32"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportOptions:
    """Every choice `export` makes; defaults are the CLI's defaults."""

    output: Path
    int8: bool = False
    targets: tuple[str, ...] | None = None
    data: str | None = None
    calib_data: str | None = None
    calib_size: int | None = None  # None: as many as the calibration split holds, up to the default (plan.py)
    calib_method: CalibMethod = "auto"
    calib_table: Path | None = None
    max_accuracy_drop: float = 1.0
    strict_gate: bool = False
    opset: int = 17
    batch: int | None = None
    eval_limit: int | None = None
    threads: int | None = None
    overwrite: bool = False


@dataclass
class ExportResult:
    output: Path
    bundles: dict[str, Path] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Context:
    """What every target's build step shares."""

    source: ModelSource
    options: ExportOptions
    work: Path
    fp32_onnx: Path
    eval_batches: list[tuple[np.ndarray, np.ndarray]]
    golden_inputs: np.ndarray
    fp32_accuracy: dict[str, Any]
    parity: ParityCheck  # PyTorch against the FP32 ONNX
    eval_labels: np.ndarray
    fp32_logits: np.ndarray  # FP32 ONNX on the evaluation images: every INT8 comparison is paired with these
    table: Any = None
    table_path: Path | None = None
    calibration: dict[str, Any] | None = None
    calib_batches: list[np.ndarray] = field(default_factory=list)
    gated: dict[str, tuple[Path, Any]] = field(default_factory=dict)
    layer_reports: dict[str, Any] = field(default_factory=dict)  # bundle name -> LayerReport
    progress: Progress = lambda message: None
    accuracy_measured: bool = True  # False for an FP32 export without labelled data
    ood: Any = None  # OodProfile: the in-distribution ranges every bundle records for the runtime's hint


def run_export(source: ModelSource, options: ExportOptions, *, progress: Progress | None = None) -> ExportResult:
    """Export ``source`` for every requested target; FP32 bundles always, INT8 ones with ``options.int8``."""
    say = progress or (lambda message: log.info(message))
    started = time.perf_counter()
    targets = resolve_targets(options.targets)
    _check_options(options)
    eval_data = options.data or options.calib_data or source.data_source
    if eval_data is None and (options.int8 or source.weights is None):
        what = "INT8 needs calibration and evaluation data" if options.int8 else "the checkpoint names no data"
        raise ExportError(f"no evaluation data: pass --data ({what})")
    names = [f"{target}-{precision}" for target in targets
             for precision in (("fp32", "int8") if options.int8 else ("fp32",))]
    # A weights file travels as a checkpoint beside the bundles: the PyTorch baseline `benchmark` runs.
    baseline = [SOURCE_CHECKPOINT] if source.checkpoint is None and source.weights is not None else []
    # One placement for the whole export: every bundle and the report land together or not at all.
    with place_outputs(options.output, overwrite=options.overwrite,
                       expect=[*names, *baseline, REPORT_FILE, *(LAYER_REPORT_FILES if options.int8 else ())]
                       ) as staging:
        work = staging.path.parent / "work"
        work.mkdir()
        if baseline:
            source = _with_baseline_checkpoint(source, staging.path / SOURCE_CHECKPOINT,
                                               Path(options.output).absolute() / SOURCE_CHECKPOINT)
        context = (_prepare(source, options, eval_data, work, say) if eval_data is not None
                   else _prepare_without_data(source, options, work, say))
        if options.int8:
            _calibrate(context, say)
        summaries: dict[str, Any] = {}
        for name in names:
            target, precision = name.rsplit("-", 1)
            say(f"building {name}")
            built = TARGETS[target].build(context, precision)
            _write_target_bundle(context, built, target, precision, staging.path / name)
            summaries[name] = {"model_file": built.model_file, "accuracy": built.accuracy,
                               "quantization": built.quantization,
                               "comparison": built.comparison.to_dict() if built.comparison else None}
            if built.layer_report is not None:
                context.layer_reports[name] = built.layer_report
        report = {**_report(context, summaries, time.perf_counter() - started),
                  "accuracy_measured": context.accuracy_measured,
                  "provenance": source_provenance(source).to_dict()}
        atomic_write_json(staging.path / REPORT_FILE, report)
        _write_layer_reports(context, staging.path)
        shutil.rmtree(work)  # scratch space freed before the moves; the staging directory goes after them
    output = Path(options.output)
    return ExportResult(output=output, bundles={name: output / name for name in names}, report=report)


def _with_baseline_checkpoint(source: ModelSource, staged: Path, final: Path) -> ModelSource:
    """Write ``source`` (an architecture with a weights file) as a checkpoint directory at ``staged``;
    the returned source names ``final`` (where it lands) as its checkpoint, keeping the weights file."""
    import dataclasses

    from edgeresnet.checkpoint import ModelCard, write_checkpoint
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


def _prepare_without_data(source: ModelSource, options: ExportOptions, work: Path, say: Progress) -> _Context:
    """FP32 export of a weights file with no labelled data: parity on generated inputs, accuracy not measured.

    The generated images are smooth random colour fields (upsampled noise), which give varied,
    decisive logits; the "labels" handed to the build steps are the PyTorch model's own predictions,
    so what they compute is agreement, and the manifest records accuracy as not measured.
    """
    import torch

    spec = source.preprocessing
    say(f"no --data: checking parity on {GENERATED_IMAGES} generated inputs; accuracy will not be measured")
    images = spec.apply_batch(_generated_images(spec, GENERATED_IMAGES))
    with torch.no_grad():
        predictions = source.model.eval()(torch.from_numpy(images)).argmax(1).numpy()
    batches = [(images[i : i + 64], predictions[i : i + 64]) for i in range(0, len(images), 64)]
    fp32_onnx = work / "model_fp32.onnx"
    export_onnx(source.model, spec, fp32_onnx, opset=options.opset, metadata=source.metadata())
    parity = onnx_parity(source.model, fp32_onnx, [b for b, _ in batches], threads=options.threads)
    if not parity.passed:
        raise ExportError(f"ONNX export disagrees with PyTorch on generated inputs: {parity.describe()}")
    from edgeresnet.calibration.session import BatchSession
    from edgeresnet.evaluation import AccuracyCounter

    fp32_logits = BatchSession(fp32_onnx).logits(images)
    counter = AccuracyCounter()
    counter.update(fp32_logits, predictions)  # agreement with PyTorch, not accuracy: there are no labels
    return _Context(
        source=source, options=options, work=work, fp32_onnx=fp32_onnx, eval_batches=batches,
        golden_inputs=images[: options.batch or GOLDEN_COUNT], fp32_accuracy=accuracy_record(counter.result()),
        parity=parity, eval_labels=predictions, fp32_logits=fp32_logits, progress=say,
        accuracy_measured=False,
    )


def _generated_images(spec: Any, count: int, seed: int = 0) -> np.ndarray:
    """``count`` smooth random uint8 images of the spec's size and channels (HWC, or HW for grayscale)."""
    height, width = spec.input_size
    rng = np.random.default_rng(seed)
    cells = rng.uniform(0, 255, (count, 8, 8, spec.num_channels))
    rows = np.linspace(0, 7, height).round().astype(int)
    cols = np.linspace(0, 7, width).round().astype(int)
    images = cells[:, rows][:, :, cols] + rng.normal(0, 8, (count, height, width, spec.num_channels))
    images = np.clip(images, 0, 255).astype(np.uint8)
    return images[..., 0] if spec.num_channels == 1 else images


def _check_options(options: ExportOptions) -> None:
    if not options.int8 and (options.calib_data is not None or options.calib_table is not None):
        raise ExportError("--calib-data and --calib-table need --int8")
    if options.calib_size is not None and options.calib_size < 1:
        raise ExportError(f"--calib-size must be at least 1, got {options.calib_size}")
    if options.strict_gate and not options.int8:
        raise ExportError("--strict-gate needs --int8")
    if options.max_accuracy_drop < 0:
        raise ExportError(f"--max-accuracy-drop must be >= 0, got {options.max_accuracy_drop}")
    if options.calib_table is not None:
        from edgeresnet.calibration import CalibrationTable

        CalibrationTable.load(options.calib_table)  # a bad table fails before any export work
    if options.calib_method not in CALIB_METHODS:
        raise ExportError(f"unknown calibration method {options.calib_method!r}")


def _prepare(source: ModelSource, options: ExportOptions, eval_data: str, work: Path, say: Progress) -> _Context:
    spec = source.preprocessing
    data = open_source(eval_data)
    label_map = label_mapping(data.class_names, source.class_names, what=data.name)
    evaluation = data.split("evaluation")
    if options.eval_limit is not None and options.eval_limit < len(evaluation):
        evaluation = evaluation.balanced_sample(options.eval_limit)
    if len(evaluation) == 0:
        raise DatasetError(f"the evaluation split of {data.name} is empty")
    say(f"preprocessing {len(evaluation)} evaluation images from {data.name}")
    eval_batches = [(images, label_map[labels]) for images, labels in evaluation.batches(spec, EVAL_BATCH)]
    if not eval_batches:
        raise DatasetError(f"no decodable evaluation images in {data.name}")
    if evaluation.skipped:
        say(f"skipped {evaluation.skipped} undecodable evaluation images")

    say(f"exporting {source.architecture} to ONNX (opset {options.opset})")
    fp32_onnx = work / "model_fp32.onnx"
    # Everything is built and measured with a dynamic batch; a static --batch is applied to the
    # artifacts as they are written (the arithmetic is identical, only the declared shape changes).
    export_onnx(source.model, spec, fp32_onnx, opset=options.opset, metadata=source.metadata())
    parity_batches = _take_images(eval_batches, PARITY_IMAGES)
    parity = onnx_parity(source.model, fp32_onnx, parity_batches, threads=options.threads)
    if not parity.passed:
        raise ExportError(f"ONNX export disagrees with PyTorch: {parity.describe()}")
    say(f"parity with PyTorch: max |Δlogit| {parity.max_abs_diff:.1e}, top-1 agreement "
        f"{parity.top1_agreement_pct:.1f}% on {parity.images} images")
    from edgeresnet.calibration.session import BatchSession
    from edgeresnet.evaluation import AccuracyCounter

    session = BatchSession(fp32_onnx)
    fp32_logits = np.concatenate([session.logits(images) for images, _ in eval_batches])
    labels = np.concatenate([labels for _, labels in eval_batches])
    counter = AccuracyCounter()
    counter.update(fp32_logits, labels)
    fp32 = counter.result()
    say(f"FP32 top-1 {fp32.top1:.2f}% on {fp32.images} evaluation images")
    return _Context(
        source=source, options=options, work=work, fp32_onnx=fp32_onnx, eval_batches=eval_batches,
        golden_inputs=np.concatenate([b for b, _ in eval_batches])[: options.batch or GOLDEN_COUNT],
        fp32_accuracy=accuracy_record(fp32), parity=parity, eval_labels=labels,
        fp32_logits=fp32_logits, progress=say, ood=record_ood_profile(fp32_onnx, data, spec, say),
    )


def _calibrate(context: _Context, say: Progress) -> None:
    from edgeresnet.calibration import CalibrationTable, calibrate, calibrate_all, check_calibration_data
    from edgeresnet.calibration.plan import plan_data

    options = context.options
    data = open_source(options.calib_data or options.data or context.source.data_source or "")
    spec = context.source.preprocessing
    label_mapping(data.class_names, context.source.class_names, what=data.name)  # other classes: refused
    split = data.split("calibration")
    plan = plan_data(len(split), len(context.eval_labels), requested_calibration=options.calib_size,
                     eval_limit=options.eval_limit, data_name=data.name)
    for line in plan.lines():
        say(line)
    samples = split.balanced_sample(plan.calibration_images)
    context.calib_batches = [images for images, _ in samples.batches(spec, 64)]
    decoded = sum(len(b) for b in context.calib_batches)
    if decoded < max(1, plan.calibration_images // 2):
        raise DatasetError(f"only {decoded} of {plan.calibration_images} calibration images in {data.name} "
                           f"could be decoded ({samples.skipped} skipped); fix or remove the broken files")
    if samples.skipped:
        say(f"skipped {samples.skipped} undecodable calibration images; calibrating on the "
            f"{len(samples) - samples.skipped} others")
    for batch in context.calib_batches:
        check_calibration_data(batch)

    choice = None
    if options.calib_table is not None:
        table = CalibrationTable.load(options.calib_table)
        table.check_model(context.fp32_onnx)
        say(f"using calibration table {options.calib_table} ({table.method}, {table.num_samples} images)")
        chosen = table
    else:
        say(f"calibrating on {len(samples)} class-balanced images from {data.name}'s calibration split")
        digest = samples.fingerprint()
        if options.calib_method == "auto":
            from edgeresnet.calibration.choice import choose_method

            tables = calibrate_all(context.fp32_onnx, context.calib_batches, data_hash=digest)
            selection = split.balanced_sample(plan.selection_images)
            choice = choose_method(context.fp32_onnx, tables, [b for b, _ in selection.batches(spec, 64)])
            say(f"calibration methods on {choice.scores[0].images} calibration-split images: {choice.summary()}")
            chosen = tables[choice.method]
        else:
            chosen = calibrate(context.fp32_onnx, context.calib_batches, method=options.calib_method,
                               data_hash=digest)
    context.table = chosen
    context.table_path = context.work / "calibration.json"
    chosen.save(context.table_path)
    context.calibration = {
        "file": "calibration.json", "method": chosen.method, "samples": chosen.num_samples,
        "data_hash": chosen.data_hash, "data": data.name, "split": "calibration",
        "skipped_images": samples.skipped,
        "requested_method": options.calib_method if options.calib_table is None else "table",
        "plan": plan.to_dict(),
        "auto_choice": choice.to_dict() if choice else None,
    }


def _take_images(batches: Sequence[tuple[np.ndarray, np.ndarray]], count: int, size: int = 64) -> list[np.ndarray]:
    images = np.concatenate([b for b, _ in batches])[:count]
    return [images[i : i + size] for i in range(0, len(images), size)]


def _write_target_bundle(context: _Context, built: Any, target: str, precision: str, destination: Path) -> Path:
    source = context.source
    c, h, w = source.preprocessing.input_shape()[1:]
    accuracy: dict[str, Any] | AccuracyRecord = (
        _accuracy_section(context, built, precision) if context.accuracy_measured
        else AccuracyRecord.not_measured(NOT_MEASURED_NOTE)
    )
    parity_inputs = "evaluation images" if context.accuracy_measured else "generated inputs (no --data)"
    manifest = Manifest(
        architecture=source.architecture, precision=precision, target=target,  # type: ignore[arg-type]
        model_file=built.model_file, preprocessing=source.preprocessing, labels=source.class_names,
        input=InputSpec(name=INPUT_NAME, shape=(context.options.batch, c, h, w)),
        accuracy=accuracy,  # type: ignore[arg-type]
        parity=(ParityRecord.from_check("pytorch fp32", context.parity, inputs=parity_inputs),),
        calibration=context.calibration if precision == "int8" else None,  # type: ignore[arg-type]
        quantization=built.quantization,  # type: ignore[arg-type]
        provenance=source_provenance(source),
        pixel_model=built.pixel_model, ood=context.ood,
        extra=dict(built.extra),  # notes for people (export's TensorRT notes); no code reads them
    )
    files = _with_static_batch(dict(built.files), context.options.batch, context.work / f"static-{target}-{precision}")
    # The FP32 ONNX travels with every artifact that is not itself that ONNX: `compile` builds other
    # precisions from it, and an INT8 model can be rebuilt from it plus the calibration table.
    if built.files.get("model.onnx") != context.fp32_onnx:
        files.setdefault("model_fp32.onnx", context.fp32_onnx)
    if precision == "int8" and context.table_path is not None:
        files.setdefault("calibration.json", context.table_path)
    return assemble_bundle(destination, manifest, files, golden_inputs=context.golden_inputs,
                           golden_outputs=built.golden_outputs)


def _accuracy_section(context: _Context, built: Any, precision: str) -> dict[str, Any]:
    """The manifest's ``accuracy``: an INT8 bundle carries its paired comparison with FP32, key by key."""
    section = {"fp32": context.fp32_accuracy, precision: built.accuracy,
               "drop_points": round(context.fp32_accuracy["top1"] - built.accuracy["top1"], 4),
               "images": context.fp32_accuracy["images"], "split": "evaluation"}
    if built.comparison is not None:
        record = built.comparison.to_dict()
        section.update(drop_points=record["drop_points"], drop_ci95_points=record["drop_ci95_points"],
                       agreement_pct=record["agreement_pct"], images=record["images"], comparison=record,
                       max_drop_points=context.options.max_accuracy_drop, strict_gate=context.options.strict_gate)
    return section


def _with_static_batch(files: dict[str, Path], batch: int | None, directory: Path) -> dict[str, Path]:
    """The model files with their batch fixed to ``batch`` (unchanged when the batch stays dynamic)."""
    if batch is None:
        return files
    from edgeresnet.export.onnx import fix_onnx_batch

    fixed = dict(files)
    if "model.onnx" in files:
        fixed["model.onnx"] = fix_onnx_batch(files["model.onnx"], directory / "model.onnx", batch)
    if "model.xml" in files:
        from edgeresnet.export.openvino import fix_ir_batch

        xml = fix_ir_batch(files["model.xml"], directory / "model.xml", batch)
        fixed["model.xml"], fixed["model.bin"] = xml, xml.with_suffix(".bin")
    return fixed


def _report(context: _Context, summaries: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "architecture": context.source.architecture,
        "fp32": context.fp32_accuracy,
        "parity": context.parity.to_dict(),
        "calibration": context.calibration,
        "bundles": summaries,
        "max_accuracy_drop": context.options.max_accuracy_drop,
        "strict_gate": context.options.strict_gate,
        "layer_reports": {name: report.to_dict() for name, report in context.layer_reports.items()},
        "seconds": round(seconds, 1),
    }


def _write_layer_reports(context: _Context, output: Path) -> None:
    """layer_report.md/.json/.png beside export_report.json (INT8 exports only)."""
    if context.layer_reports:
        from edgeresnet.calibration.layer_report import write_layer_reports

        write_layer_reports(output, context.layer_reports)


def label_mapping(data_names: Sequence[str], model_names: Sequence[str], *, what: str) -> np.ndarray:
    """Index array taking the data's label numbers to the model's, matching classes by name.

    Unnamed classes ("0", "1", ... or "class_0", ...) match by position. Named classes must be the
    same set (compared ignoring case and punctuation, so a folder "T-shirt-top" is "T-shirt/top"):
    data for other classes would give meaningless accuracies and ranges.
    """
    if len(data_names) != len(model_names):
        raise DatasetError(f"{what} has {len(data_names)} classes but the model predicts {len(model_names)}")
    if _unnamed(data_names) or _unnamed(model_names):
        return np.arange(len(model_names))
    model_index = {_normalised(name): index for index, name in enumerate(model_names)}
    missing = [name for name in data_names if _normalised(name) not in model_index]
    if missing:
        raise DatasetError(
            f"{what}'s classes do not match the model's: {', '.join(missing[:3])} "
            f"{'are' if len(missing) > 1 else 'is'} not among {', '.join(model_names[:4])}, ..."
        )
    return np.array([model_index[_normalised(name)] for name in data_names], dtype=np.int64)


def _normalised(name: str) -> str:
    return "".join(character for character in name.lower() if character.isalnum())


def _unnamed(names: Sequence[str]) -> bool:
    return all(name == str(i) or name == f"class_{i}" for i, name in enumerate(names))

