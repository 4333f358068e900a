"""`edgeresnet pipeline`: the main job in one command."""

from __future__ import annotations

from pathlib import Path

import click

from edgeresnet.bench.job import DEFAULT_MAX_ACCURACY_DROP, DEFAULT_MIN_TIME_S, MODES, batch_sizes_text
from edgeresnet.cli.benchmark import show_result
from edgeresnet.cli.core import IntListType, ModelNameType, ProgressEcho, ThreadsType, cli, number_range
from edgeresnet.cli.export import REFUSED_EXIT, TARGET_CHOICES
from edgeresnet.pipeline import PipelineOptions, run_pipeline


@cli.command("pipeline")
@click.option("--model", "model_name", type=ModelNameType(), default="resnet20", show_default=True,
              help="Architecture to train (`edgeresnet models` lists them).")
@click.option("--data", default="fashion-mnist", show_default=True,
              help="Data source for training, calibration and evaluation.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/pipeline"),
              show_default=True, help="Report directory: checkpoint, bundles, benchmark, summary.md.")
@click.option("--epochs", type=number_range(int, 1, 10_000), default=2, show_default=True,
              help="Training epochs (ignored with --checkpoint).")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Skip training: start from this checkpoint directory.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Fine-tune from these weights instead of training from scratch.")
@click.option("--target", "targets", multiple=True, type=click.Choice(TARGET_CHOICES),
              help="Export targets (repeatable; default: every target whose export step runs here).")
@click.option("--batch-sizes", type=IntListType(), default=batch_sizes_text(), show_default=True,
              help="Batch sizes to time, comma-separated (as `benchmark`).")
@click.option("--threads", type=ThreadsType(), default=None, help="CPU threads (default: all usable).")
@click.option("--max-accuracy-drop", type=number_range(float, 0, 100), default=DEFAULT_MAX_ACCURACY_DROP, show_default=True,
              help="Top-1 points an INT8 artifact may lose versus FP32: the export's accuracy gate and the "
                   "benchmark's recommendation.")
@click.option("--calib-size", type=number_range(int, 1, 10**7), default=None,
              help="Calibration images (default: the whole calibration split, up to 512).")
@click.option("--train-limit", type=number_range(int, 1, 10**9), default=None, help="Train on a subset (quick runs).")
@click.option("--eval-limit", type=number_range(int, 1, 10**9), default=None, help="Evaluate on a subset (quick runs).")
@click.option("--min-time", type=number_range(float, 0, 3600), default=DEFAULT_MIN_TIME_S, show_default=True,
              help="Time each artifact and batch size for at least this many seconds (as `benchmark`).")
@click.option("--mode", "benchmark_mode", type=click.Choice(MODES), default="latency", show_default=True,
              help="Benchmark latency, throughput (several requests in flight) or both (as `benchmark`).")
@click.option("--overwrite", is_flag=True, help="Replace the results a previous pipeline run wrote into --output.")
def pipeline_command(
    model_name: str, data: str, output: Path, epochs: int, checkpoint: Path | None, weights: Path | None,
    targets: tuple[str, ...], batch_sizes: list[int], threads: int | None, max_accuracy_drop: float,
    calib_size: int | None, train_limit: int | None, eval_limit: int | None, min_time: float, benchmark_mode: str,
    overwrite: bool,
) -> None:
    """Train → export FP32 and INT8 for every installed target → compile → benchmark → one report.

    The report directory gets summary.md (what was built, accuracy and latency per artifact, the
    recommended artifact, the accuracy-versus-latency plot), the bundles and the benchmark files.

    An INT8 artifact the accuracy gate refuses is left out and the pipeline goes on with the rest; it then
    exits with status 3, as `export` does.

    Example: edgeresnet pipeline --model resnet20 --data fashion-mnist --output runs/pipeline
    """
    options = PipelineOptions(
        output=output, model=model_name, data=data, epochs=epochs, checkpoint=checkpoint, weights=weights,
        targets=targets or None, batch_sizes=tuple(batch_sizes), threads=threads,
        max_accuracy_drop=max_accuracy_drop, calib_size=calib_size, train_limit=train_limit,
        eval_limit=eval_limit, min_time_s=min_time, benchmark_mode=benchmark_mode, overwrite=overwrite,  # type: ignore[arg-type]
    )
    result = run_pipeline(options, progress=ProgressEcho())
    show_result(result.benchmark, options.max_accuracy_drop)
    click.echo(f"summary: {result.summary}")
    click.echo(f"total {sum(result.seconds.values()):.0f}s (" +
               ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items()) + ")")
    for name, refusal in result.refused.items():  # exit 3 as `export`: published, but an INT8 artifact refused
        click.echo(f"refused {name}: {refusal.describe(cli=True)}", err=True)
    if result.refused:
        click.get_current_context().exit(REFUSED_EXIT)
