"""The main job in one call: train (or load) → export FP32 + INT8 → compile → benchmark → one report.

The report directory holds the checkpoint, the bundles, the benchmark files (Markdown, CSV, JSON,
plot) and ``summary.md``: what was built, accuracy and latency per artifact, and the recommended
artifact per batch size (:mod:`edgeresnet.bench.recommendation`: the fastest that runs here and that
the accuracy evidence does not put over budget, ties within the timing noise stated).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeresnet.api import write_benchmark_reports
from edgeresnet.atomic import atomic_write_text
from edgeresnet.bench.job import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_MIN_RUNS,
    DEFAULT_MIN_TIME_S,
    BenchmarkJob,
    Mode,
)
from edgeresnet.bundle.naming import ArtifactName
from edgeresnet.errors import EdgeResNetError
from edgeresnet.export.job import ExportJob
from edgeresnet.placement import place_outputs

if TYPE_CHECKING:
    from edgeresnet.calibration.gate import GateRefusal

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PipelineOptions:
    """The pipeline's choices; the defaults are the README's main job."""

    output: Path = Path("runs/pipeline")
    model: str = "resnet20"
    data: str = "fashion-mnist"
    epochs: int = 2
    checkpoint: Path | None = None
    weights: Path | None = None
    targets: tuple[str, ...] | None = None
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    threads: int | None = None
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    calib_size: int | None = None  # None: sized from the calibration split (calibration/plan.py)
    train_limit: int | None = None
    eval_limit: int | None = None
    min_time_s: float = DEFAULT_MIN_TIME_S
    min_runs: int = DEFAULT_MIN_RUNS
    benchmark_mode: Mode = "latency"
    compile_fp16: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.checkpoint is not None and self.weights is not None:
            raise EdgeResNetError("--weights fine-tunes a new model; --checkpoint skips training: give one of them")
        benchmark_job(self, [self.output])  # the benchmark's options are checked now, not after training


@dataclass
class PipelineResult:
    output: Path
    checkpoint: Path
    bundles: dict[str, Path] = field(default_factory=dict)
    recommended: str | None = None  # at the smallest batch size; every batch size's choice is in ``benchmark``
    benchmark: Any = None  # the BenchmarkResult, for the table the CLI prints at the end
    seconds: dict[str, float] = field(default_factory=dict)
    summary: Path | None = None
    refused: dict[str, GateRefusal] = field(default_factory=dict)  # INT8 bundles the accuracy gate refused


SUMMARY_FILE = "summary.md"


# What the pipeline publishes, as one set: the summary first (the name a refusal names first).
PUBLISHED = (SUMMARY_FILE, "benchmark", "bundles")
CHECKPOINT_DIR = "checkpoint"  # published with them when the pipeline trains


def run_pipeline(options: PipelineOptions, *, progress: Progress | None = None) -> PipelineResult:
    """Run every stage, timing each; progress messages go to ``progress``.

    The output holds ``checkpoint/``, ``bundles/``, ``benchmark/`` and ``summary.md``, built together in a
    staging area and published as one set by the placement policy: killed at any moment, the output holds
    the previous run's set whole or this one's (a kill during the moves is finished by the next run). A
    previous run's results are replaced only with ``overwrite``, and only if nobody edited them.
    """
    say = progress or log.info
    output = Path(options.output)
    trains = options.checkpoint is None
    expect = [*PUBLISHED, *([CHECKPOINT_DIR] if trains else [])]
    with place_outputs(output, overwrite=options.overwrite, expect=expect) as staging:
        staged = staging.path
        final = _Relocation(staged, output.absolute())
        seconds: dict[str, float] = {}

        started = time.perf_counter()
        checkpoint = _train_or_load(options, staged, say)
        seconds["train"] = time.perf_counter() - started

        started = time.perf_counter()
        bundles, refused = _export(options, checkpoint, staged / "bundles", say, final)
        seconds["export"] = time.perf_counter() - started

        started = time.perf_counter()
        bundles.update(_compile(options, bundles, staged / "bundles", say, final))
        seconds["compile"] = time.perf_counter() - started

        started = time.perf_counter()
        benchmark = _benchmark(options, checkpoint, bundles, staged / "benchmark", say, final)
        seconds["benchmark"] = time.perf_counter() - started

        result = PipelineResult(output=output, checkpoint=final.of(checkpoint) if trains else checkpoint,
                                bundles={name: final.of(path) for name, path in bundles.items()}, seconds=seconds,
                                benchmark=benchmark, refused=refused)
        result.recommended, text = _summary(options, result, benchmark)
        atomic_write_text(staged / SUMMARY_FILE, text)
    result.summary = output / SUMMARY_FILE
    return result


@dataclass(frozen=True)
class _Relocation:
    """Where what the pipeline builds in its staging area will be once published: the paths it records
    (a bundle's source checkpoint, a compiled bundle's parent, the benchmark's rows) name those."""

    staged: Path
    output: Path

    def of(self, path: Path) -> Path:
        try:
            return self.output / Path(path).absolute().relative_to(self.staged.absolute())
        except ValueError:
            return Path(path)  # not built here (a --checkpoint of the user's)


def _train_or_load(options: PipelineOptions, staged: Path, say: Progress) -> Path:
    if options.checkpoint is not None:
        say(f"using checkpoint {options.checkpoint}")
        return Path(options.checkpoint)
    from edgeresnet.training import TrainJob, train

    say(f"training {options.model} on {options.data} for {options.epochs} epochs")

    def report_epoch(_: str, metrics: dict[str, Any]) -> None:
        validation = "" if metrics["val_top1"] is None else f"validation top-1 {metrics['val_top1']:.2f}% "
        say(f"epoch {metrics['epoch']}/{options.epochs}: {validation}({metrics['images_per_s']:.0f} img/s)")

    result = train(
        TrainJob(model=options.model, data=options.data, output=str(staged / CHECKPOINT_DIR),
                    epochs=options.epochs, weights=str(options.weights) if options.weights else None,
                    train_limit=options.train_limit, eval_limit=options.eval_limit, threads=options.threads),
        on_epoch=report_epoch,
    )
    return result.checkpoint


def _export(options: PipelineOptions, checkpoint: Path, directory: Path, say: Progress,
            final: _Relocation) -> tuple[dict[str, Path], dict[str, GateRefusal]]:
    """The published bundles, and the INT8 ones the accuracy gate refused; the pipeline goes on with what
    was published."""
    import dataclasses

    from edgeresnet.export.model_source import load_model_source
    from edgeresnet.export.workflow import run_export

    say("exporting FP32 and INT8 bundles for every installed target")
    source = load_model_source(str(checkpoint))
    job = ExportJob(model=str(checkpoint), output=directory, int8=True, targets=options.targets,  # type: ignore[arg-type]
                    data=options.data, calib_data=options.data, calib_size=options.calib_size,
                    max_accuracy_drop=options.max_accuracy_drop, eval_limit=options.eval_limit,
                    threads=options.threads)
    # The provenance names where the checkpoint lands, not where it is staged.
    result = run_export(job, source=dataclasses.replace(source, checkpoint=final.of(checkpoint)), progress=say)
    for warning in result.report.warnings:
        say(f"warning: {warning}")
    if result.refused:
        say(f"going on without {', '.join(result.refused)} (refused by the accuracy gate)")
    return dict(result.bundles), dict(result.refused)


def _compile(options: PipelineOptions, bundles: dict[str, Path], directory: Path, say: Progress,
             final: _Relocation) -> dict[str, Path]:
    """Compile what this machine can: an FP16 OpenVINO IR, and TensorRT engines where TensorRT runs."""
    from edgeresnet.compile import compile_bundle

    compiled: dict[str, Path] = {}
    openvino_fp32, openvino_fp16 = str(ArtifactName("openvino", "fp32")), str(ArtifactName("openvino", "fp16"))
    if options.compile_fp16 and openvino_fp32 in bundles:
        say("compiling an OpenVINO FP16 IR")
        compiled[openvino_fp16] = compile_bundle(bundles[openvino_fp32], target="openvino", precision="fp16",
                                                 output=directory / openvino_fp16,
                                                 recorded_source=final.of(bundles[openvino_fp32]))
    for precision in ("fp16", "int8"):
        source = bundles.get(str(ArtifactName("tensorrt", "fp32" if precision == "fp16" else "int8")))
        if source is None:
            continue
        name = str(ArtifactName("tensorrt", precision, "engine"))
        try:
            compiled[name] = compile_bundle(source, target="tensorrt", precision=precision, output=directory / name,
                                            recorded_source=final.of(source))
        except EdgeResNetError as error:
            # TensorRT only exists on the device; the QDQ bundle is what goes there.
            say(f"TensorRT {precision} engine not built here: {error}")
            break
    return compiled


def benchmark_job(options: PipelineOptions, artifacts: list[Path]) -> BenchmarkJob:
    """The pipeline's benchmark, as the job `edgeresnet benchmark` would run with the same options."""
    return BenchmarkJob(artifacts=tuple(artifacts), data=options.data, batch_sizes=options.batch_sizes,
                        threads=options.threads, eval_limit=options.eval_limit, min_time_s=options.min_time_s,
                        min_runs=options.min_runs, mode=options.benchmark_mode,
                        max_accuracy_drop=options.max_accuracy_drop)


def _benchmark(options: PipelineOptions, checkpoint: Path, bundles: dict[str, Path], directory: Path,
               say: Progress, final: _Relocation) -> Any:
    import dataclasses

    from edgeresnet.bench import run_benchmark
    from edgeresnet.bundle import read_manifest

    # An export's TensorRT bundle holds the network an engine is built from; only engine bundles run here.
    runnable = [path for path in bundles.values()
                if (manifest := read_manifest(path)).target != "tensorrt" or manifest.engine is not None]
    say(f"benchmarking {len(runnable)} artifacts and PyTorch eager at batch sizes "
        f"{', '.join(map(str, options.batch_sizes))}")
    result = run_benchmark(benchmark_job(options, [checkpoint, *runnable]), progress=True)
    # Measured in the staging area; the rows name where the artifacts land.
    result = dataclasses.replace(result, rows=[dataclasses.replace(row, path=str(final.of(Path(row.path))))
                                               if row.path else row for row in result.rows])
    write_benchmark_reports(result, directory, max_accuracy_drop=options.max_accuracy_drop)
    return result


def _summary(options: PipelineOptions, result: PipelineResult, benchmark: Any) -> tuple[str | None, str]:
    from edgeresnet.bench import recommend
    from edgeresnet.report import render_markdown

    choices = recommend(benchmark, max_accuracy_drop=options.max_accuracy_drop)
    recommended = choices[min(choices)].row.artifact if choices else None
    lines = [f"# edgeresnet pipeline: {options.model} on {options.data}", ""]
    if choices:
        from edgeresnet.accuracy import top1_points  # numpy: not at the CLI's start

        budget = top1_points(options.max_accuracy_drop)
        lines += [f"**Recommended artifact** (per batch size; within {budget} of FP32 by the paired evidence):", ""]
        lines += [f"- {choice.describe()}" for choice in choices.values()]
        lines.append("")
    lines += ["## Stages", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {value:.0f} |" for stage, value in result.seconds.items()]
    lines += [f"| total | {sum(result.seconds.values()):.0f} |", "", "## Built", "",
              f"- checkpoint: `{_relative(result.checkpoint, result.output)}`"]
    lines += [f"- `{name}`: `{_relative(path, result.output)}`" for name, path in result.bundles.items()]
    # The benchmark's own title would be a second top-level heading here.
    table = render_markdown(benchmark, max_accuracy_drop=options.max_accuracy_drop).replace(
        "# edgeresnet benchmark\n", "", 1).replace("\n## ", "\n### ")
    lines += ["", "## Accuracy and latency", "", "![accuracy vs latency](benchmark/accuracy_latency.png)", "",
              table.strip()]
    return recommended, "\n".join(lines) + "\n"


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)

