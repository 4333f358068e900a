"""run_benchmark: accuracy × latency rows for bundles and checkpoints, one artifact at a time.

Each artifact is loaded, evaluated on the shared preprocessed evaluation inputs, then timed at every
batch size with the same thread count, and closed before the next one loads, so artifacts never
compete for cores or memory. Anything that fails for one artifact becomes that artifact's ``error``
and the others still run; only user mistakes in the arguments (a path that is no artifact, bad
settings, unusable data) stop the run before it starts.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgeresnet.bench.artifacts import (
    PYTORCH_BACKEND,
    Artifact,
    artifact_device,
    checkpoint_artifact,
    load_artifact,
    open_runner,
    preload_backend,
    synchronizer,
)
from edgeresnet.bench.endtoend import decodable_files, measure_files
from edgeresnet.bench.evaluation import EvalData, Evaluation
from edgeresnet.bench.latency import (
    DEFAULT_MAX_TIME_S,
    DEFAULT_MIN_RUNS,
    DEFAULT_MIN_TIME_S,
    DEFAULT_WARMUP,
    check_settings,
    measure_latency,
)
from edgeresnet.bench.memory import PeakMemory, measurement_method
from edgeresnet.bench.rows import FILE_MEASURE, MODEL_MEASURE, BenchmarkResult, BenchmarkRow
from edgeresnet.benchmark_defaults import DEFAULT_BATCH_SIZES
from edgeresnet.checkpoint import is_checkpoint_dir
from edgeresnet.environment import cpu_info, environment
from edgeresnet.errors import DatasetError, EdgeResNetError
from edgeresnet.evaluation import compare_paired
from edgeresnet.runtime.progress import ProgressBar

log = logging.getLogger(__name__)

Device = Literal["cpu", "cuda"]
DEVICES: tuple[Device, ...] = ("cpu", "cuda")
# Evaluation batch for models with a dynamic batch dimension: big enough to amortise call overhead,
# small enough for 224×224 ResNet-50 activations on an edge board.
EVAL_BATCH = 32
NO_CHECKPOINT = "no PyTorch checkpoint given (pass --checkpoint DIR, the directory `train` wrote)"


@dataclass(frozen=True)
class _Settings:
    batch_sizes: tuple[int, ...]
    threads: int
    device: Device
    warmup: int
    min_runs: int
    min_time_s: float
    max_time_s: float
    allow_host_code: bool = False
    image_files: tuple[Path, ...] = ()


def run_benchmark(
    artifacts: Sequence[str | Path],
    *,
    data: str,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    threads: int | None = None,
    device: Device = "cpu",
    warmup: int = DEFAULT_WARMUP,
    min_time_s: float = DEFAULT_MIN_TIME_S,
    min_runs: int = DEFAULT_MIN_RUNS,
    max_time_s: float = DEFAULT_MAX_TIME_S,
    eval_limit: int | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    allow_host_code: bool = False,
    images: Sequence[str | Path] = (),
) -> BenchmarkResult:
    """Measure every artifact at every batch size: latency, throughput, accuracy, size, memory.

    Args:
        artifacts: bundle directories and/or checkpoint directories (a checkpoint is the PyTorch
            FP32 eager row).
        data: the data source string; its evaluation split measures accuracy.
        threads: CPU threads for every backend; None uses every core this process may run on.
        checkpoint: the PyTorch baseline when no checkpoint is among ``artifacts``; by default the
            bundles' ``extra["source_checkpoint"]``. Without one the baseline row carries an error.
        eval_limit: evaluate on a class-balanced subset of this many images.
        device: where the PyTorch baseline and ONNX Runtime run; a backend that cannot run there (a
            TensorRT engine, OpenVINO) runs on its own default device, and each row names its device.
        allow_host_code: let version-compatible TensorRT engines load (they run the runtime they embed).
        images: image files and folders (searched recursively) for the file → label rows; none, none.
    """
    from edgeresnet.data import open_source
    from edgeresnet.data.decoding import find_images

    settings = dataclasses.replace(_settings(batch_sizes, threads, device, warmup, min_runs, min_time_s, max_time_s),
                                   allow_host_code=allow_host_code)
    if images:
        files = tuple(find_images(images))
        if not files:
            raise DatasetError(f"no image files in --images {', '.join(map(str, images))}")
        settings = dataclasses.replace(settings, image_files=files)
    if eval_limit is not None and eval_limit < 1:
        raise EdgeResNetError(f"eval_limit must be at least 1, got {eval_limit}")
    if not artifacts:
        raise EdgeResNetError("nothing to benchmark: give at least one bundle or checkpoint directory")
    resolved = [load_artifact(path) for path in artifacts]
    resolved, missing_baseline = _with_pytorch_baseline(_named_uniquely(resolved), checkpoint)
    _require_one_label_set(resolved)
    source = open_source(data)
    evaluation_set = source.split("evaluation")
    if eval_limit is not None and eval_limit < len(evaluation_set):
        evaluation_set = evaluation_set.balanced_sample(eval_limit)
    if len(evaluation_set) == 0:
        raise DatasetError(f"{data} has no evaluation images")

    rows: list[BenchmarkRow] = []
    evaluations: dict[str, tuple[Artifact, Evaluation]] = {}
    if missing_baseline:
        rows += _baseline_error_rows(missing_baseline, settings)
    steps = len(resolved) * len(settings.batch_sizes) * (2 if settings.image_files else 1)
    with EvalData(evaluation_set) as eval_data, ProgressBar(steps, enabled=progress, unit="row") as bar:
        for artifact in resolved:
            artifact_rows, evaluation = _measure_artifact(artifact, eval_data, settings, source.num_classes, bar)
            rows += artifact_rows
            if evaluation is not None:
                evaluations[artifact.name] = (artifact, evaluation)
    rows = _mark_reference_and_agreement(rows, evaluations)
    environment = benchmark_environment(settings, data=data, eval_images=len(evaluation_set))
    return BenchmarkResult(rows=rows, environment=environment)


def _settings(
    batch_sizes: Sequence[int], threads: int | None, device: str, warmup: int, min_runs: int,
    min_time_s: float, max_time_s: float,
) -> _Settings:
    check_settings(warmup=warmup, min_runs=min_runs, min_time_s=min_time_s, max_time_s=max_time_s)
    if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
        raise EdgeResNetError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    if device not in DEVICES:
        raise EdgeResNetError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if threads is not None and threads < 1:
        raise EdgeResNetError(f"threads must be at least 1, got {threads}")
    return _Settings(
        batch_sizes=tuple(dict.fromkeys(int(b) for b in batch_sizes)),
        # Fixed and recorded: a row measured with "whatever the runtime picked" cannot be compared.
        threads=threads or int(cpu_info()["usable_cores"] or 1),
        device=device,  # type: ignore[arg-type]
        warmup=warmup, min_runs=min_runs, min_time_s=min_time_s, max_time_s=max_time_s,
    )


def _named_uniquely(artifacts: list[Artifact]) -> list[Artifact]:
    """Two bundles may share a directory name (runs/a/int8, runs/b/int8): rows need distinct names."""
    seen: dict[str, int] = {}
    named = []
    for artifact in artifacts:
        count = seen.get(artifact.name, 0) + 1
        seen[artifact.name] = count
        named.append(artifact if count == 1 else dataclasses.replace(artifact, name=f"{artifact.name}#{count}"))
    return named


def _with_pytorch_baseline(
    artifacts: list[Artifact], checkpoint: str | Path | None
) -> tuple[list[Artifact], str | None]:
    """Put the PyTorch eager baseline first, or say why there is none."""
    given = {a.path.resolve() for a in artifacts if a.kind == "checkpoint"}
    if checkpoint is not None:
        if Path(checkpoint).resolve() in given:
            return artifacts, None
        return [checkpoint_artifact(checkpoint), *artifacts], None  # a bad --checkpoint is a user error
    if given:
        return artifacts, None
    sources = [a.source_checkpoint for a in artifacts if a.source_checkpoint is not None]
    for source in sources:
        if is_checkpoint_dir(source):
            return [checkpoint_artifact(source), *artifacts], None
    if sources:
        return artifacts, f"the bundles' source checkpoint {sources[0]} is gone; pass --checkpoint DIR"
    return artifacts, NO_CHECKPOINT


def _require_one_label_set(artifacts: list[Artifact]) -> None:
    """Accuracy, agreement and the accuracy budget only compare artifacts of one classifier."""
    first = artifacts[0]
    for other in artifacts[1:]:
        if list(other.labels) != list(first.labels):
            raise EdgeResNetError(
                f"{other.name} predicts other classes than {first.name} ({len(other.labels)} vs "
                f"{len(first.labels)} labels, or in another order): benchmark artifacts of one model together"
            )


def _baseline_error_rows(message: str, settings: _Settings) -> list[BenchmarkRow]:
    return [
        BenchmarkRow(artifact="pytorch eager", path="", backend=PYTORCH_BACKEND, device=settings.device,
                     precision="fp32", batch_size=batch, threads=settings.threads, error=message)
        for batch in settings.batch_sizes
    ]


def _measure_artifact(
    artifact: Artifact, eval_data: EvalData, settings: _Settings, num_classes: int, bar: Any
) -> tuple[list[BenchmarkRow], Evaluation | None]:
    base = BenchmarkRow(
        artifact=artifact.name, path=str(artifact.path), backend=artifact.backend,
        device=artifact_device(artifact, settings.device),
        precision=artifact.precision, batch_size=0, threads=settings.threads,
        file_size_bytes=artifact.file_size_bytes,
    )
    bar.set_description_str(f"{artifact.name}: loading")
    try:
        # The shared preprocessed inputs and the runtime library load before the memory baseline:
        # neither belongs to this artifact.
        eval_data.inputs(artifact.preprocessing)
        preload_backend(artifact)
        memory = PeakMemory()
        runner = open_runner(artifact, device=settings.device, threads=settings.threads,
                             allow_host_code=settings.allow_host_code)
    except Exception as error:  # noqa: BLE001  (recorded in the rows: one backend failing must not stop the others)
        message = describe_error(error, artifact)
        failed = [dataclasses.replace(base, batch_size=b, error=message) for b in settings.batch_sizes]
        if settings.image_files:
            failed += [dataclasses.replace(row, measure=FILE_MEASURE) for row in failed]
        bar.update(len(failed))
        return failed, None

    rows = []
    with runner:
        bar.set_description_str(f"{artifact.name}: accuracy")
        evaluation, accuracy_error = None, None
        try:
            evaluation = _evaluate(artifact, runner, eval_data, num_classes)
        except Exception as error:  # noqa: BLE001  (recorded in the row)
            accuracy_error = f"accuracy: {describe_error(error, artifact)}"
        accuracy = evaluation.accuracy if evaluation else None
        load_peak = memory.peak_delta()
        for batch_size in settings.batch_sizes:
            bar.set_description_str(f"{artifact.name}: batch {batch_size}")
            memory.reset()
            row = dataclasses.replace(
                base, batch_size=batch_size, error=accuracy_error,
                top1=accuracy.top1 if accuracy else None, top5=accuracy.top5 if accuracy else None,
                eval_images=accuracy.images if accuracy else None,
            )
            try:
                row = row.with_latency(_time_batch(runner, eval_data, artifact, batch_size, settings))
            except Exception as error:  # noqa: BLE001  (recorded in the row)
                latency_error = f"batch {batch_size}: {describe_error(error, artifact)}"
                row.error = f"{accuracy_error}; {latency_error}" if accuracy_error else latency_error
            row.peak_memory_bytes = max(load_peak, memory.peak_delta())
            rows.append(row)
            bar.update(1)
        if settings.image_files:
            rows += _file_rows(runner, artifact, rows[-len(settings.batch_sizes):], settings, bar)
    return rows, evaluation


def _file_rows(runner: Any, artifact: Artifact, model_rows: list[BenchmarkRow], settings: _Settings,
               bar: Any) -> list[BenchmarkRow]:
    """The file → label row beside each model-only row (see :mod:`edgeresnet.bench.endtoend`)."""
    rows = []
    try:
        files = decodable_files(settings.image_files, artifact.preprocessing)
    except Exception as error:  # noqa: BLE001  (recorded in the rows)
        files, problem = [], describe_error(error, artifact)
    for model_row in model_rows:
        row = dataclasses.replace(model_row, measure=FILE_MEASURE, error=None, input_images=len(files) or None,
                                  peak_memory_bytes=None)
        row = row.with_latency(None)
        bar.set_description_str(f"{artifact.name}: files, batch {row.batch_size}")
        try:
            if not files:
                raise DatasetError(problem)
            timing = measure_files(
                runner, artifact.preprocessing, artifact.labels, files, row.batch_size,
                warmup=min(settings.warmup, 3), min_runs=settings.min_runs, min_time_s=settings.min_time_s,
                max_time_s=settings.max_time_s,
            )
            row = dataclasses.replace(
                row.with_latency(timing.latency), throughput_ips=timing.pipelined_ips, decode_ms=timing.decode_ms,
                preprocess_ms=timing.preprocess_ms, inference_ms=timing.inference_ms,
            )
        except Exception as error:  # noqa: BLE001  (recorded in the row)
            row.error = f"files, batch {row.batch_size}: {describe_error(error, artifact)}"
        rows.append(row)
        bar.update(1)
    return rows


def _evaluate(artifact: Artifact, runner: Any, eval_data: EvalData, num_classes: int) -> Evaluation:
    if len(artifact.labels) != num_classes:
        raise DatasetError(
            f"the model has {len(artifact.labels)} classes but the data has {num_classes}: "
            "accuracy needs the data the model was trained for"
        )
    if list(artifact.labels) != list(eval_data.images.class_names):
        log.warning("%s: class names differ from the data's; accuracy assumes the same class order", artifact.name)
    return eval_data.evaluate(runner, artifact.preprocessing, batch_size=artifact.static_batch or EVAL_BATCH)


def _time_batch(runner: Any, eval_data: EvalData, artifact: Artifact, batch_size: int, settings: _Settings) -> Any:
    batch = eval_data.latency_batch(artifact.preprocessing, batch_size)
    # One untimed infer() first: a static-batch OpenVINO model compiles its variant for this size here,
    # and a call that cannot work fails with its own message before any timing starts.
    runner.infer(batch)
    # The input bound once and only the model run, as benchmark_app times it (see Runner.bind_for_timing).
    call = runner.bind_for_timing(batch)
    return measure_latency(
        lambda _batch: call(), batch, warmup=settings.warmup, min_runs=settings.min_runs,
        min_time_s=settings.min_time_s, max_time_s=settings.max_time_s, synchronize=synchronizer(runner),
    )


def _mark_reference_and_agreement(
    rows: list[BenchmarkRow], evaluations: dict[str, tuple[Artifact, Evaluation]]
) -> list[BenchmarkRow]:
    """The FP32 reference is the PyTorch baseline, else the first FP32 artifact with an accuracy."""
    candidates = [name for name, (a, _) in evaluations.items() if a.backend == PYTORCH_BACKEND]
    candidates += [name for name, (a, _) in evaluations.items() if a.precision == "fp32"]
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


def benchmark_environment(settings: _Settings, *, data: str, eval_images: int) -> dict[str, Any]:
    """Where the numbers came from: machine, tools, and how they were measured."""
    record = environment()  # machine, GPUs and tool versions
    record.update(
        device=settings.device,
        threads=settings.threads,
        data=data,
        eval_images=eval_images,
        measurement={
            "warmup": settings.warmup, "min_runs": settings.min_runs, "min_time_s": settings.min_time_s,
            "max_time_s": settings.max_time_s, "batch_sizes": list(settings.batch_sizes),
            "peak_memory": measurement_method(),
            "image_files": len(settings.image_files),
        },
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    )
    return record
