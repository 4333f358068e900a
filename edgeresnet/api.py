"""The public Python API: the four jobs of the CLI as functions, re-exported from :mod:`edgeresnet`.

    import edgeresnet

    run = edgeresnet.train("resnet20", "fashion-mnist", "runs/r20", epochs=2)
    export = edgeresnet.export_model("runs/r20", "runs/r20-export", int8=True)  # or an ExportJob
    compiled = edgeresnet.compile_bundle("runs/r20-export/openvino-fp32", "runs/r20-ov-fp16",
                                         target="openvino", precision="fp16")
    result = edgeresnet.benchmark(["runs/r20", *export.bundles.values()], data="fashion-mnist")
    # or a typed job: edgeresnet.benchmark(BenchmarkJob(artifacts=(...), data=None, mode="both"))

Essentials are positional, options keyword-only with the CLI's defaults, results are typed records.
Every output goes through the placement policy (:mod:`edgeresnet.placement`): nothing already there is
replaced without ``overwrite=True``, and nothing edgeresnet did not write is ever replaced. This module
imports nothing heavy at import time, so ``import edgeresnet`` stays cheap; each function imports the
stage it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeresnet.bench.job import BenchmarkJob
from edgeresnet.bundle.vocabulary import CompileTarget, Precision
from edgeresnet.export.job import ExportJob  # cheap: the vocabulary and errors only

if TYPE_CHECKING:
    from edgeresnet.bench import BenchmarkResult
    from edgeresnet.bundle import Manifest
    from edgeresnet.export.results import ExportResult
    from edgeresnet.training import TrainResult

Progress = Callable[[str], None]


def train(
    model: str,
    data: str,
    output: str | Path,
    *,
    epochs: int = 2,
    weights: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    on_epoch: Callable[[str, dict[str, Any]], None] | None = None,
    **options: Any,
) -> TrainResult:
    """Train (or fine-tune from ``weights``) ``model`` on ``data`` into the checkpoint directory ``output``.

    ``options`` are the other fields of :class:`edgeresnet.training.TrainConfig` (``batch_size``, ``lr``,
    ``schedule``, ``input_size``, ``augment``, ``train_limit``, ``threads``, ...).
    """
    from edgeresnet.training import TrainConfig
    from edgeresnet.training import train as run_training

    config = TrainConfig(model=model, data=data, output=str(output), epochs=epochs,
                         weights=str(weights) if weights else None, resume=resume, overwrite=overwrite,
                         **options)
    return run_training(config, on_epoch=on_epoch)


def export_model(
    job: ExportJob | str | Path,
    output: str | Path | None = None,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> ExportResult:
    """Export a model into bundles: ``export_model(ExportJob(...))``, or ``export_model(model, output, **options)``.

    ``model`` is a checkpoint directory or an architecture name with ``weights=``; ``options`` are the
    other fields of :class:`edgeresnet.export.job.ExportJob`, which declares each with its default and
    checks it (an unknown keyword is a one-line error). One bundle per target and precision, plus
    ``export_report.json``, land in ``output`` together.

    The accuracy gate judges each INT8 model by the 95% interval of its paired top-1 drop against FP32:
    a model the data show to be over ``max_accuracy_drop`` keeps its worst layers in float or is refused;
    an unresolved one (the interval straddles the budget) is published with a warning, unless
    ``strict_gate``. A refused INT8 artifact is not published and appears in ``result.refused`` (name ->
    :class:`edgeresnet.calibration.gate.GateRefusal`, whose ``describe()`` says why); everything else is.
    """
    from edgeresnet.errors import ExportError
    from edgeresnet.export.workflow import run_export

    if isinstance(job, ExportJob):
        if output is not None or options:
            raise ExportError("export_model() takes an ExportJob alone, or a model, an output and keyword options")
        return run_export(job, progress=progress)
    if output is None:
        raise ExportError("export_model() needs an output directory: export_model(model, output, ...)")
    return run_export(ExportJob.from_keywords(job, output, **options), progress=progress)


@dataclass(frozen=True)
class CompiledBundle:
    """A bundle ``compile_bundle`` wrote, with its manifest (parity with its source included)."""

    path: Path
    manifest: Manifest


def compile_bundle(
    bundle: str | Path,
    output: str | Path,
    *,
    target: CompileTarget,
    precision: Precision | None = None,
    device: str = "auto",
    overwrite: bool = False,
    **trt_options: Any,
) -> CompiledBundle:
    """Compile ``bundle`` for ``target`` (at its own precision unless ``precision``) into ``output``.

    ``trt_options`` are :class:`edgeresnet.export.tensorrt.TensorRtBuildOptions` fields (TensorRT only).
    """
    from edgeresnet.bundle import read_manifest
    from edgeresnet.compile import compile_bundle as run_compile

    chosen = precision or read_manifest(bundle).precision
    path = run_compile(bundle, target=target, precision=chosen, output=output, device=device,
                       overwrite=overwrite, **trt_options)
    return CompiledBundle(path=path, manifest=read_manifest(path))


def benchmark(job: BenchmarkJob | Sequence[str | Path] | str | Path, *, progress: bool = False,
              **options: Any) -> BenchmarkResult:
    """Measure latency, throughput and accuracy of bundles and checkpoints side by side.

    ``job`` is a :class:`edgeresnet.bench.BenchmarkJob`, or the artifacts with the job's fields as keywords
    (``benchmark(paths, data="fashion-mnist", batch_sizes=(1, 8))``). Without ``data`` the bundles are
    timed on their golden inputs and accuracy is not measured. With ``report`` the Markdown, CSV, JSON and
    plot land in that directory together (refused before any measurement if it would be refused after).
    """
    from edgeresnet.bench import run_benchmark
    from edgeresnet.bench.job import job_from

    job = job_from(job, options)
    if job.report is not None:
        check_report_directory(job.report, overwrite=job.overwrite)  # refuse before the measurements
    result = run_benchmark(job, progress=progress)
    if job.report is not None:
        write_benchmark_reports(result, job.report, overwrite=job.overwrite, max_accuracy_drop=job.max_accuracy_drop)
    return result


def failed_artifacts(result: BenchmarkResult, artifacts: Sequence[str | Path]) -> str | None:
    """The first error when every row of the artifacts the user gave failed (a baseline the benchmark
    added on its own does not count), else None."""
    given = {str(Path(path)) for path in artifacts}
    rows = [row for row in result.rows if row.path in given]
    if rows and all(row.error for row in rows):
        return str(rows[0].error)
    return None


def check_report_directory(directory: Path, *, overwrite: bool) -> None:
    """Refuse now what :func:`write_benchmark_reports` would refuse after the run."""
    from edgeresnet.placement import preflight
    from edgeresnet.report import FILES

    preflight(directory, FILES.values(), overwrite=overwrite, what="--report")


def write_benchmark_reports(
    result: BenchmarkResult, directory: Path, *, overwrite: bool = False, max_accuracy_drop: float | None = None
) -> dict[str, Path]:
    """The benchmark's report files, staged and published together under the placement policy."""
    from edgeresnet.placement import place_outputs
    from edgeresnet.report import FILES, write_reports

    if max_accuracy_drop is None:  # the budget the run was measured against
        from edgeresnet.bench import DEFAULT_MAX_ACCURACY_DROP

        max_accuracy_drop = float(result.environment.get("max_accuracy_drop", DEFAULT_MAX_ACCURACY_DROP))
    with place_outputs(directory, overwrite=overwrite, expect=FILES.values(), what="--report") as staging:
        written = write_reports(result, staging.path, max_accuracy_drop=max_accuracy_drop)
    return {kind: directory / path.name for kind, path in written.items()}
