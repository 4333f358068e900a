"""Export's shared groundwork: the evaluation set, the FP32 ONNX with its parity and logits, the calibration.

Every number in a manifest comes from the same data: the evaluation split is preprocessed once and
shared by every model evaluated (:class:`ExportContext`); calibration images come from the calibration
split only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.accuracy import Accuracy, AccuracyCounter
from edgeresnet.bundle.layout import CALIBRATION_FILE, FP32_ONNX
from edgeresnet.bundle.records import CalibrationRecord
from edgeresnet.data import open_source
from edgeresnet.errors import DatasetError, ExportError
from edgeresnet.export.model_source import ModelSource
from edgeresnet.export.onnx import export_onnx, onnx_parity
from edgeresnet.export.ood_profile import record_ood_profile
from edgeresnet.parity import ParityCheck

if TYPE_CHECKING:
    from edgeresnet.bundle.ood import OodProfile
    from edgeresnet.calibration.layer_report import LayerReport
    from edgeresnet.calibration.table import CalibrationTable
    from edgeresnet.export.job import ExportJob

GOLDEN_COUNT = 8
PARITY_IMAGES = 256
EVAL_BATCH = 250
GENERATED_IMAGES = 128

Progress = Callable[[str], None]


@dataclass
class ExportContext:
    """What every target's build step shares: the FP32 model, the evaluation set and its FP32 logits, the
    calibration table."""

    source: ModelSource
    options: ExportJob  # named as targets.py reads it
    work: Path
    fp32_onnx: Path
    eval_batches: list[tuple[np.ndarray, np.ndarray]]
    golden_inputs: np.ndarray
    fp32_accuracy: Accuracy
    parity: ParityCheck  # PyTorch against the FP32 ONNX
    eval_labels: np.ndarray
    fp32_logits: np.ndarray  # FP32 ONNX on the evaluation images: every INT8 comparison is paired with these
    table: CalibrationTable | None = None
    table_path: Path | None = None
    calibration: CalibrationRecord | None = None  # the manifest's record of the table and its data
    calib_batches: list[np.ndarray] = field(default_factory=list)
    gated: dict[str, Any] = field(default_factory=dict)  # flavour -> (QDQ path, GateResult), or its GateRefused
    layer_reports: dict[str, LayerReport] = field(default_factory=dict)  # bundle name -> its per-layer report
    progress: Progress = lambda message: None
    accuracy_measured: bool = True  # False for an FP32 export without labelled data
    ood: OodProfile | None = None  # the in-distribution ranges every bundle records for the runtime's hint


def prepare_without_data(source: ModelSource, job: ExportJob, work: Path, say: Progress) -> ExportContext:
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
    fp32_onnx = work / FP32_ONNX
    export_onnx(source.model, spec, fp32_onnx, opset=job.opset, metadata=source.metadata())
    parity = onnx_parity(source.model, fp32_onnx, [b for b, _ in batches], threads=job.threads)
    if not parity.passed:
        raise ExportError(f"ONNX export disagrees with PyTorch on generated inputs: {parity.describe()}")
    from edgeresnet.calibration.session import BatchSession

    fp32_logits = BatchSession(fp32_onnx).logits(images)
    counter = AccuracyCounter()
    counter.update(fp32_logits, predictions)  # agreement with PyTorch, not accuracy: there are no labels
    return ExportContext(
        source=source, options=job, work=work, fp32_onnx=fp32_onnx, eval_batches=batches,
        golden_inputs=images[: job.batch or GOLDEN_COUNT], fp32_accuracy=counter.result(),
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


def prepare(source: ModelSource, job: ExportJob, eval_data: str, work: Path, say: Progress) -> ExportContext:
    spec = source.preprocessing
    data = open_source(eval_data)
    label_map = label_mapping(data.class_names, source.class_names, what=data.name)
    evaluation = data.split("evaluation")
    if job.eval_limit is not None and job.eval_limit < len(evaluation):
        evaluation = evaluation.balanced_sample(job.eval_limit)
    if len(evaluation) == 0:
        raise DatasetError(f"the evaluation split of {data.name} is empty")
    say(f"preprocessing {len(evaluation)} evaluation images from {data.name}")
    eval_batches = [(images, label_map[labels]) for images, labels in evaluation.batches(spec, EVAL_BATCH)]
    if not eval_batches:
        raise DatasetError(f"no decodable evaluation images in {data.name}")
    if evaluation.skipped:
        say(f"skipped {evaluation.skipped} undecodable evaluation images")

    say(f"exporting {source.architecture} to ONNX (opset {job.opset})")
    fp32_onnx = work / FP32_ONNX
    # Everything is built and measured with a dynamic batch; a static --batch is applied to the
    # artifacts as they are written (the arithmetic is identical, only the declared shape changes).
    export_onnx(source.model, spec, fp32_onnx, opset=job.opset, metadata=source.metadata())
    parity_batches = _take_images(eval_batches, PARITY_IMAGES)
    parity = onnx_parity(source.model, fp32_onnx, parity_batches, threads=job.threads)
    if not parity.passed:
        raise ExportError(f"ONNX export disagrees with PyTorch: {parity.describe()}")
    say(f"parity with PyTorch: max |Δlogit| {parity.max_abs_diff:.1e}, top-1 agreement "
        f"{parity.top1_agreement_pct:.1f}% on {parity.images} images")
    from edgeresnet.calibration.session import BatchSession

    session = BatchSession(fp32_onnx)
    fp32_logits = np.concatenate([session.logits(images) for images, _ in eval_batches])
    labels = np.concatenate([labels for _, labels in eval_batches])
    counter = AccuracyCounter()
    counter.update(fp32_logits, labels)
    fp32 = counter.result()
    say(f"FP32 top-1 {fp32.top1:.2f}% on {fp32.images} evaluation images")
    return ExportContext(
        source=source, options=job, work=work, fp32_onnx=fp32_onnx, eval_batches=eval_batches,
        golden_inputs=np.concatenate([b for b, _ in eval_batches])[: job.batch or GOLDEN_COUNT],
        fp32_accuracy=fp32, parity=parity, eval_labels=labels,
        fp32_logits=fp32_logits, progress=say, ood=record_ood_profile(fp32_onnx, data, spec, say),
    )


def run_calibration(context: ExportContext, say: Progress) -> None:
    from edgeresnet.calibration import CalibrationTable, calibrate, calibrate_all, check_calibration_data
    from edgeresnet.calibration.plan import plan_data

    job = context.options
    data = open_source(job.calib_data or job.data or context.source.data_source or "")
    spec = context.source.preprocessing
    label_mapping(data.class_names, context.source.class_names, what=data.name)  # other classes: refused
    split = data.split("calibration")
    plan = plan_data(len(split), len(context.eval_labels), requested_calibration=job.calib_size,
                     eval_limit=job.eval_limit, data_name=data.name)
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
    if job.calib_table is not None:
        table = CalibrationTable.load(job.calib_table)
        table.check_model(context.fp32_onnx)
        say(f"using calibration table {job.calib_table} ({table.method}, {table.num_samples} images)")
        chosen = table
    else:
        say(f"calibrating on {len(samples)} class-balanced images from {data.name}'s calibration split")
        digest = samples.fingerprint()
        if job.calib_method == "auto":
            from edgeresnet.calibration.choice import choose_method

            tables = calibrate_all(context.fp32_onnx, context.calib_batches, data_hash=digest)
            selection = split.balanced_sample(plan.selection_images)
            choice = choose_method(context.fp32_onnx, tables, [b for b, _ in selection.batches(spec, 64)])
            say(f"calibration methods on {choice.scores[0].images} calibration-split images: {choice.summary()}")
            chosen = tables[choice.method]
        else:
            chosen = calibrate(context.fp32_onnx, context.calib_batches, method=job.calib_method,
                               data_hash=digest)
    context.table = chosen
    context.table_path = context.work / CALIBRATION_FILE
    chosen.save(context.table_path)
    context.calibration = CalibrationRecord(
        method=chosen.method, samples=chosen.num_samples, data_hash=chosen.data_hash, data=data.name,
        split="calibration", file=CALIBRATION_FILE, skipped_images=samples.skipped,
        requested_method=job.calib_method if job.calib_table is None else "table",
        plan=plan.to_dict(), auto_choice=choice.to_dict() if choice else {},
    )


def _take_images(batches: Sequence[tuple[np.ndarray, np.ndarray]], count: int, size: int = 64) -> list[np.ndarray]:
    images = np.concatenate([b for b, _ in batches])[:count]
    return [images[i : i + size] for i in range(0, len(images), size)]


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

