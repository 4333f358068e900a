"""run_benchmark: accuracy × latency (× throughput) rows for bundles and checkpoints, one artifact at a time.

Each artifact is loaded, evaluated on the shared preprocessed evaluation inputs (or, without data, checked
against its golden outputs), then timed at every batch size with the same thread count, and closed
before the next one loads, so artifacts never compete for cores or memory. Anything that fails for one
artifact becomes that artifact's ``error`` and the others still run; only user mistakes in the job (a
path that is no artifact, bad settings, unusable data) stop the run before it starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeresnet.bench.artifacts import (
    PYTORCH_BACKEND,
    Artifact,
    artifact_device,
    load_artifact,
    open_runner,
    preload_backend,
    synchronizer,
)
from edgeresnet.bench.baseline import NO_CHECKPOINT, named_uniquely, with_pytorch_baseline
from edgeresnet.bench.endtoend import file_rows
from edgeresnet.bench.evaluation import EvalData, Evaluation
from edgeresnet.bench.inputs import TimingInputs, check_golden, timing_inputs
from edgeresnet.bench.job import DEVICES, BenchmarkJob, Device, job_from
from edgeresnet.bench.latency import measure_latency
from edgeresnet.bench.memory import PeakMemory, measurement_method
from edgeresnet.bench.rows import (
    FILE_MEASURE,
    MODEL_MEASURE,
    THROUGHPUT_MEASURE,
    BenchmarkResult,
    BenchmarkRow,
)
from edgeresnet.bench.throughput import measure_throughput
from edgeresnet.environment import cpu_info, environment
from edgeresnet.errors import DatasetError, EdgeResNetError
from edgeresnet.evaluation import compare_paired
from edgeresnet.runtime.base import Runner
from edgeresnet.runtime.progress import ProgressBar

log = logging.getLogger(__name__)

__all__ = ["DEVICES", "NO_CHECKPOINT", "BenchmarkResult", "Device", "benchmark_environment", "describe_error",
           "run_benchmark"]
# Evaluation batch for models with a dynamic batch dimension: big enough to amortise call overhead,
# small enough for 224×224 ResNet-50 activations on an edge board.
EVAL_BATCH = 32


@dataclass
class _Run:
    """One benchmark run's shared state: the job, resolved settings, the data, the progress bar."""

    job: BenchmarkJob
    threads: int
    image_files: tuple[Path, ...]
    eval_data: EvalData | None
    num_classes: int | None
    bar: Any = None
    evaluations: dict[str, tuple[Artifact, Evaluation]] = field(default_factory=dict)


def run_benchmark(job: BenchmarkJob | Sequence[str | Path], *, progress: bool = True, **options: Any) -> BenchmarkResult:
    """Measure every artifact of ``job`` at every batch size: latency, throughput, accuracy, size, memory.

    ``job`` is a :class:`~edgeresnet.bench.job.BenchmarkJob`, or the artifacts with the job's other fields
    as keywords (``run_benchmark(paths, data="fashion-mnist", batch_sizes=(1, 8))``).
    """
    job = job_from(job, options)
    files = _image_files(job)
    baseline = with_pytorch_baseline(named_uniquely([load_artifact(path) for path in job.artifacts]),
                                     job.checkpoint)
    if not baseline.artifacts:
        raise EdgeResNetError(f"nothing left to benchmark: {baseline.notes[0] if baseline.notes else NO_CHECKPOINT}")
    _require_one_label_set(baseline.artifacts)
    # Fixed and recorded: a row measured with "whatever the runtime picked" cannot be compared.
    threads = job.threads or int(cpu_info()["usable_cores"] or 1)
    rows: list[BenchmarkRow] = []
    if baseline.missing:
        rows += _baseline_error_rows(baseline.missing, job, threads)
    per_artifact = len(job.batch_sizes) * (job.latency + job.throughput + bool(files))
    with _evaluation_data(job) as (eval_data, num_classes), \
            ProgressBar(len(baseline.artifacts) * per_artifact, enabled=progress, unit="row") as bar:
        run = _Run(job, threads, files, eval_data, num_classes, bar)
        for artifact in baseline.artifacts:
            rows += _measure_artifact(artifact, run)
        eval_images = len(eval_data.images) if eval_data is not None else None
    rows = _mark_reference_and_agreement(rows, run.evaluations, baseline.stale)
    return BenchmarkResult(rows=rows, environment=benchmark_environment(job, threads, eval_images=eval_images,
                                                                         image_files=len(files)),
                           notes=list(baseline.notes))


def _image_files(job: BenchmarkJob) -> tuple[Path, ...]:
    if not job.images:
        return ()
    from edgeresnet.data.decoding import find_images

    files = tuple(find_images(job.images))
    if not files:
        raise DatasetError(f"no image files in --images {', '.join(map(str, job.images))}")
    return files


@contextlib.contextmanager
def _evaluation_data(job: BenchmarkJob) -> Iterator[tuple[EvalData | None, int | None]]:
    """The shared evaluation inputs, or (None, None) when the job has no data."""
    if job.data is None:
        yield None, None
        return
    from edgeresnet.data import open_source

    source = open_source(job.data)
    evaluation_set = source.split("evaluation")
    if job.eval_limit is not None and job.eval_limit < len(evaluation_set):
        evaluation_set = evaluation_set.balanced_sample(job.eval_limit)
    if len(evaluation_set) == 0:
        raise DatasetError(f"{job.data} has no evaluation images")
    with EvalData(evaluation_set) as eval_data:
        yield eval_data, source.num_classes


def _require_one_label_set(artifacts: list[Artifact]) -> None:
    """Accuracy, agreement and the accuracy budget only compare artifacts of one classifier."""
    first = artifacts[0]
    for other in artifacts[1:]:
        if list(other.labels) != list(first.labels):
            raise EdgeResNetError(
                f"{other.name} predicts other classes than {first.name} ({len(other.labels)} vs "
                f"{len(first.labels)} labels, or in another order): benchmark artifacts of one model together"
            )


def _baseline_error_rows(message: str, job: BenchmarkJob, threads: int) -> list[BenchmarkRow]:
    return [
        BenchmarkRow(artifact="pytorch eager", path="", backend=PYTORCH_BACKEND, device=job.device,
                     precision="fp32", batch_size=batch, threads=threads, error=message)
        for batch in job.batch_sizes
    ]


def _measure_artifact(artifact: Artifact, run: _Run) -> list[BenchmarkRow]:
    base = BenchmarkRow(
        artifact=artifact.name, path=str(artifact.path), backend=artifact.backend,
        device=artifact_device(artifact, run.job.device), precision=artifact.precision, batch_size=0,
        threads=run.threads, file_size_bytes=artifact.file_size_bytes, proxy_for=artifact.proxy_for,
    )
    run.bar.set_description_str(f"{artifact.name}: loading")
    try:
        # The shared preprocessed inputs and the runtime library load before the memory baseline:
        # neither belongs to this artifact.
        inputs = run.eval_data.inputs(artifact.preprocessing) if run.eval_data is not None else timing_inputs(artifact)
        preload_backend(artifact)
        memory = PeakMemory()
        runner = open_runner(artifact, device=run.job.device, threads=run.threads,
                             allow_host_code=run.job.allow_host_code)
    except Exception as error:  # noqa: BLE001  (recorded in the rows: one backend failing must not stop the others)
        return _failed_rows(base, describe_error(error, artifact), run)
    with runner:
        base = dataclasses.replace(base, runtime=_runtime_text(runner, artifact))
        run.bar.set_description_str(f"{artifact.name}: accuracy" if run.eval_data else f"{artifact.name}: golden")
        base = _with_accuracy(base, artifact, runner, inputs, run)
        load_peak = memory.peak_delta()
        rows = []
        for batch_size in run.job.batch_sizes:
            memory.reset()
            for measure in _measures(run.job):
                run.bar.set_description_str(f"{artifact.name}: {measure}, batch {batch_size}")
                row = _timed_row(dataclasses.replace(base, batch_size=batch_size, measure=measure), artifact,
                                 runner, inputs, run)
                row.peak_memory_bytes = max(load_peak, memory.peak_delta())
                rows.append(row)
                run.bar.update(1)
        if run.image_files:
            model_rows = [row for row in rows if row.measure == MODEL_MEASURE] or [
                row for row in rows if row.measure == THROUGHPUT_MEASURE]
            rows += file_rows(runner, artifact, model_rows, run.image_files, run.job, run.bar, describe_error)
    return rows


def _measures(job: BenchmarkJob) -> list[str]:
    return [MODEL_MEASURE] * job.latency + [THROUGHPUT_MEASURE] * job.throughput


def _failed_rows(base: BenchmarkRow, message: str, run: _Run) -> list[BenchmarkRow]:
    measures = _measures(run.job) + [FILE_MEASURE] * bool(run.image_files)
    failed = [dataclasses.replace(base, batch_size=b, measure=m, error=message)
              for m in measures for b in run.job.batch_sizes]
    run.bar.update(len(failed))
    return failed


def _with_accuracy(base: BenchmarkRow, artifact: Artifact, runner: Runner, inputs: Any, run: _Run) -> BenchmarkRow:
    """Accuracy on the evaluation data, or (without data) the golden outputs checked."""
    if run.eval_data is None:
        problem = None
        try:
            problem = check_golden(runner, artifact, inputs)
        except Exception as error:  # noqa: BLE001  (recorded in the row)
            problem = f"golden outputs: {describe_error(error, artifact)}"
        return dataclasses.replace(base, error=problem)
    try:
        evaluation = _evaluate(artifact, runner, run.eval_data, run.num_classes or 0)
    except Exception as error:  # noqa: BLE001  (recorded in the row)
        return dataclasses.replace(base, error=f"accuracy: {describe_error(error, artifact)}")
    run.evaluations[artifact.name] = (artifact, evaluation)
    accuracy = evaluation.accuracy
    return dataclasses.replace(base, top1=accuracy.top1, top5=accuracy.top5, eval_images=accuracy.images)


def _timed_row(row: BenchmarkRow, artifact: Artifact, runner: Runner, inputs: Any, run: _Run) -> BenchmarkRow:
    batch = (run.eval_data.latency_batch(artifact.preprocessing, row.batch_size) if run.eval_data is not None
             else inputs.batch(row.batch_size) if isinstance(inputs, TimingInputs) else None)
    try:
        # One untimed infer() first: a static-batch OpenVINO model compiles its variant for this size here,
        # and a call that cannot work fails with its own message before any timing starts.
        runner.infer(batch)
        if row.measure == THROUGHPUT_MEASURE:
            measured = measure_throughput(artifact, runner, batch, run.job, run.threads)
            return dataclasses.replace(row.with_latency(measured.latency), throughput_ips=measured.images_per_s,
                                       streams=measured.streams)
        return row.with_latency(_time_batch(runner, batch, run.job))
    except Exception as error:  # noqa: BLE001  (recorded in the row)
        problem = f"{row.measure if row.measure != MODEL_MEASURE else 'batch'} {row.batch_size}: " \
                  f"{describe_error(error, artifact)}"
        return dataclasses.replace(row, error=f"{row.error}; {problem}" if row.error else problem)


def _evaluate(artifact: Artifact, runner: Any, eval_data: EvalData, num_classes: int) -> Evaluation:
    if len(artifact.labels) != num_classes:
        raise DatasetError(
            f"the model has {len(artifact.labels)} classes but the data has {num_classes}: "
            "accuracy needs the data the model was trained for"
        )
    if list(artifact.labels) != list(eval_data.images.class_names):
        log.warning("%s: class names differ from the data's; accuracy assumes the same class order", artifact.name)
    return eval_data.evaluate(runner, artifact.preprocessing, batch_size=artifact.static_batch or EVAL_BATCH)


def _time_batch(runner: Any, batch: Any, job: BenchmarkJob) -> Any:
    # The input bound once and only the model run, as benchmark_app times it (see Runner.bind_for_timing).
    call = runner.bind_for_timing(batch)
    return measure_latency(
        lambda _batch: call(), batch, warmup=job.warmup, min_runs=job.min_runs,
        min_time_s=job.min_time_s, max_time_s=job.max_time_s, synchronize=synchronizer(runner),
    )


def _runtime_text(runner: Runner, artifact: Artifact) -> str:
    """What ran the rows: device, runtime versions, and for a TensorRT engine its layer precisions."""
    info = runner.describe()
    text = f"{info.device}; " + ", ".join(f"{name} {version}" for name, version in info.versions.items())
    if runner.backend == "tensorrt":
        text += f"; layers {_layer_precisions(runner, artifact)}"
    return text


def _layer_precisions(runner: Runner, artifact: Artifact) -> str:
    """The engine inspector's count per precision, else what the bundle recorded at build time."""
    from edgeresnet.runtime.tensorrt_engine import runner_layer_precisions

    try:
        counts = runner_layer_precisions(runner)
    except Exception as error:  # noqa: BLE001  (an inspector that fails must not cost the row)
        log.debug("engine inspector failed for %s: %s", artifact.name, error)
        counts = {}
    if not counts and artifact.kind == "bundle":
        from edgeresnet.bundle import read_manifest

        engine = read_manifest(artifact.path).engine
        counts = dict((engine.details.get("layer_precisions") if engine else None) or {})
    return ", ".join(f"{name} {count}" for name, count in counts.items()) if counts else "not reported"


def _mark_reference_and_agreement(
    rows: list[BenchmarkRow], evaluations: dict[str, tuple[Artifact, Evaluation]], stale: set[str]
) -> list[BenchmarkRow]:
    """The FP32 reference is the PyTorch baseline, else the first FP32 artifact with an accuracy (never a
    checkpoint whose weights changed since the export)."""
    usable = {name: pair for name, pair in evaluations.items() if name not in stale}
    candidates = [name for name, (a, _) in usable.items() if a.backend == PYTORCH_BACKEND]
    candidates += [name for name, (a, _) in usable.items() if a.precision == "fp32"]
    if not candidates:
        return rows
    reference_artifact, reference = evaluations[candidates[0]]
    for row in rows:
        if row.artifact not in evaluations:
            continue
        artifact, evaluation = evaluations[row.artifact]
        row.reference = row.artifact == reference_artifact.name and row.measure == MODEL_MEASURE
        # A paired comparison needs identical inputs: the same preprocessing means the same cached arrays.
        if artifact.preprocessing == reference_artifact.preprocessing:
            paired = compare_paired(evaluation.labels, reference.predictions, evaluation.predictions)
            row.agreement_pct = paired.agreement_pct
            row.drop_points = paired.drop_points
            row.drop_ci95_points = paired.drop_ci95_points
    return rows


def describe_error(error: BaseException, artifact: Artifact | None = None) -> str:
    """A one-line account of a failure for a row; the traceback goes to the debug log."""
    log.debug("benchmark of %s failed", artifact.name if artifact else "?", exc_info=error)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return text if isinstance(error, EdgeResNetError) else f"{type(error).__name__}: {text}".rstrip(": ")


def benchmark_environment(job: BenchmarkJob, threads: int, *, eval_images: int | None,
                          image_files: int = 0) -> dict[str, Any]:
    """Where the numbers came from: machine, tools, and how they were measured."""
    record = environment()  # machine, GPUs and tool versions
    record.update(
        device=job.device,
        threads=threads,
        data=job.data,
        eval_images=eval_images,
        measurement={
            "warmup": job.warmup, "min_runs": job.min_runs, "min_time_s": job.min_time_s,
            "max_time_s": job.max_time_s, "batch_sizes": list(job.batch_sizes), "mode": job.mode,
            "streams": job.streams, "peak_memory": measurement_method(), "image_files": image_files,
        },
        max_accuracy_drop=job.max_accuracy_drop,
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    )
    return record
