"""The main job in one call: train (or load) → export FP32 + INT8 → compile → benchmark → one report.

The report directory holds the checkpoint, the bundles, the benchmark files (Markdown, CSV, JSON,
plot) and ``summary.md``: what was built, accuracy and latency per artifact, and the recommended
artifact (the fastest at batch 1 within the accuracy budget).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeresnet.atomic import atomic_write_text
from edgeresnet.bundle.vocabulary import DEFAULT_MAX_ACCURACY_DROP
from edgeresnet.errors import EdgeResNetError
from edgeresnet.placement import check_claimable, place_outputs

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
    batch_sizes: tuple[int, ...] = (1, 32)
    threads: int | None = None
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    calib_size: int | None = None  # None: sized from the calibration split (calibration/plan.py)
    train_limit: int | None = None
    eval_limit: int | None = None
    min_time_s: float = 1.0
    min_runs: int = 20
    compile_fp16: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.checkpoint is not None and self.weights is not None:
            raise EdgeResNetError("--weights fine-tunes a new model; --checkpoint skips training: give one of them")


@dataclass
class PipelineResult:
    output: Path
    checkpoint: Path
    bundles: dict[str, Path] = field(default_factory=dict)
    recommended: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    summary: Path | None = None
    refused: dict[str, GateRefusal] = field(default_factory=dict)  # INT8 bundles the accuracy gate refused


SUMMARY_FILE = "summary.md"


def run_pipeline(options: PipelineOptions, *, progress: Progress | None = None) -> PipelineResult:
    """Run every stage, timing each; progress messages go to ``progress``.

    The output holds ``checkpoint/``, ``bundles/``, ``benchmark/`` and ``summary.md``, each placed by the
    placement policy: a previous run's results are replaced only with ``overwrite``, and a run into an
    output another run is writing is refused.
    """
    say = progress or log.info
    output = Path(options.output)
    with place_outputs(output, overwrite=options.overwrite, expect=[SUMMARY_FILE]) as staging:
        if options.checkpoint is None:  # refuse now, not after training, what training would refuse then
            check_claimable(output / "checkpoint", overwrite=options.overwrite)
        seconds: dict[str, float] = {}

        started = time.perf_counter()
        checkpoint = _train_or_load(options, output, say)
        seconds["train"] = time.perf_counter() - started

        started = time.perf_counter()
        bundles, refused = _export(options, checkpoint, output / "bundles", say)
        seconds["export"] = time.perf_counter() - started

        started = time.perf_counter()
        bundles.update(_compile(options, bundles, output / "bundles", say))
        seconds["compile"] = time.perf_counter() - started

        started = time.perf_counter()
        benchmark = _benchmark(options, checkpoint, bundles, output / "benchmark", say)
        seconds["benchmark"] = time.perf_counter() - started

        result = PipelineResult(output=output, checkpoint=checkpoint, bundles=bundles, seconds=seconds,
                                refused=refused)
        result.recommended, text = _summary(options, result, benchmark)
        atomic_write_text(staging.path / SUMMARY_FILE, text)
    result.summary = output / SUMMARY_FILE
    return result


def _train_or_load(options: PipelineOptions, output: Path, say: Progress) -> Path:
    if options.checkpoint is not None:
        say(f"using checkpoint {options.checkpoint}")
        return Path(options.checkpoint)
    from edgeresnet.training import TrainConfig, train

    say(f"training {options.model} on {options.data} for {options.epochs} epochs")

    def report_epoch(_: str, metrics: dict[str, Any]) -> None:
        validation = "" if metrics["val_top1"] is None else f"validation top-1 {metrics['val_top1']:.2f}% "
        say(f"epoch {metrics['epoch']}/{options.epochs}: {validation}({metrics['images_per_s']:.0f} img/s)")

    result = train(
        TrainConfig(model=options.model, data=options.data, output=str(output / "checkpoint"),
                    epochs=options.epochs, weights=str(options.weights) if options.weights else None,
                    train_limit=options.train_limit, eval_limit=options.eval_limit, threads=options.threads,
                    overwrite=options.overwrite),
        on_epoch=report_epoch,
    )
    return result.checkpoint


def _export(options: PipelineOptions, checkpoint: Path, directory: Path,
            say: Progress) -> tuple[dict[str, Path], dict[str, GateRefusal]]:
    """The published bundles, and the INT8 ones the accuracy gate refused; the pipeline goes on with what
    was published."""
    from edgeresnet.export.job import ExportJob
    from edgeresnet.export.workflow import run_export

    say("exporting FP32 and INT8 bundles for every installed target")
    job = ExportJob(model=str(checkpoint), output=directory, int8=True, targets=options.targets,  # type: ignore[arg-type]
                    data=options.data, calib_data=options.data, calib_size=options.calib_size,
                    max_accuracy_drop=options.max_accuracy_drop, eval_limit=options.eval_limit,
                    threads=options.threads, overwrite=options.overwrite)
    result = run_export(job, progress=say)
    for warning in result.report.warnings:
        say(f"warning: {warning}")
    if result.refused:
        say(f"going on without {', '.join(result.refused)} (refused by the accuracy gate)")
    return dict(result.bundles), dict(result.refused)


def _compile(options: PipelineOptions, bundles: dict[str, Path], directory: Path, say: Progress) -> dict[str, Path]:
    """Compile what this machine can: an FP16 OpenVINO IR, and TensorRT engines where TensorRT runs."""
    from edgeresnet.compile import compile_bundle

    compiled: dict[str, Path] = {}
    if options.compile_fp16 and "openvino-fp32" in bundles:
        say("compiling an OpenVINO FP16 IR")
        compiled["openvino-fp16"] = compile_bundle(bundles["openvino-fp32"], target="openvino", precision="fp16",
                                                   output=directory / "openvino-fp16", overwrite=options.overwrite)
    for precision in ("fp16", "int8"):
        source = bundles.get(f"tensorrt-{'fp32' if precision == 'fp16' else 'int8'}")
        if source is None:
            continue
        try:
            compiled[f"tensorrt-{precision}-engine"] = compile_bundle(
                source, target="tensorrt", precision=precision, output=directory / f"tensorrt-{precision}-engine",
                overwrite=options.overwrite)
        except EdgeResNetError as error:
            # TensorRT only exists on the device; the QDQ bundle is what goes there.
            say(f"TensorRT {precision} engine not built here: {error}")
            break
    return compiled


def _benchmark(options: PipelineOptions, checkpoint: Path, bundles: dict[str, Path], directory: Path,
               say: Progress) -> Any:
    from edgeresnet.api import write_benchmark_reports
    from edgeresnet.bench import run_benchmark
    from edgeresnet.bundle import read_manifest

    # An export's TensorRT bundle holds the network an engine is built from; only engine bundles run here.
    runnable = [path for path in bundles.values()
                if (manifest := read_manifest(path)).target != "tensorrt" or manifest.engine is not None]
    say(f"benchmarking {len(runnable)} artifacts and PyTorch eager at batch sizes "
        f"{', '.join(map(str, options.batch_sizes))}")
    result = run_benchmark([checkpoint, *runnable], data=options.data, batch_sizes=options.batch_sizes,
                           threads=options.threads, eval_limit=options.eval_limit, min_time_s=options.min_time_s,
                           min_runs=options.min_runs, progress=True)
    write_benchmark_reports(result, directory, overwrite=options.overwrite,
                            max_accuracy_drop=options.max_accuracy_drop)
    return result


def _summary(options: PipelineOptions, result: PipelineResult, benchmark: Any) -> tuple[str | None, str]:
    from edgeresnet.report import best_within_budget, render_markdown

    best = best_within_budget(benchmark, max_accuracy_drop=options.max_accuracy_drop)
    batch = min(best) if best else None
    recommended = best[batch].artifact if batch is not None else None
    lines = [f"# edgeresnet pipeline: {options.model} on {options.data}", ""]
    if recommended is not None:
        row = best[batch]
        lines += [(f"**Recommended artifact:** `{recommended}` — the fastest at batch {batch} within "
                   f"{options.max_accuracy_drop:g} top-1 point of FP32 ({row.latency_p50_ms:.3f} ms p50, "
                   f"top-1 {row.top1:.2f}%)."), ""]
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

