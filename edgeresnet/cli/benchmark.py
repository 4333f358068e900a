"""`edgeresnet benchmark`: accuracy × latency (× throughput) of bundles and checkpoints, as a table and reports."""

from __future__ import annotations

from pathlib import Path

import click

from edgeresnet import api
from edgeresnet.bench.job import (
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_MAX_TIME_S,
    DEFAULT_MIN_RUNS,
    DEFAULT_MIN_TIME_S,
    DEFAULT_WARMUP,
    DEVICES,
    MODES,
    BenchmarkJob,
    batch_sizes_text,
)
from edgeresnet.cli.core import IntListType, ThreadsType, cli, number_range
from edgeresnet.errors import EdgeResNetError


@cli.command("benchmark")
# Paths are checked by the library (load_artifact), which says what a file or a missing path is.
@click.argument("artifacts", nargs=-1, required=True, metavar="BUNDLE_OR_CHECKPOINT...",
                type=click.Path(path_type=Path))
@click.option("--data", default=None,
              help="Data source whose evaluation split measures accuracy (default: none; bundles are timed on "
                   "their golden inputs and accuracy is not measured).")
@click.option("--batch-sizes", type=IntListType(), default=batch_sizes_text(),
              show_default=True, help="Batch sizes to time, comma-separated.")
@click.option("--mode", type=click.Choice(MODES), default="latency", show_default=True,
              help="latency: one request at a time; throughput: images/s with several requests in flight "
                   "(OpenVINO streams, concurrent ONNX Runtime sessions, TensorRT contexts); both.")
@click.option("--streams", type=number_range(int, 1, 1024), default=None,
              help="Requests in flight in throughput mode (default: each backend's own choice).")
@click.option("--threads", type=ThreadsType(), default=None,
              help="CPU threads for every backend (default: every core this process may use).")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="Where PyTorch and ONNX Runtime run; TensorRT engines always run on cuda, OpenVINO on its "
                   "default device.")
@click.option("--allow-host-code", is_flag=True,
              help="Let version-compatible TensorRT engines run the runtime they embed (trusted engines only).")
@click.option("--warmup", type=number_range(int, 0, 100_000), default=DEFAULT_WARMUP, show_default=True,
              help="Untimed calls before timing each batch size.")
@click.option("--min-time", type=number_range(float, 0, 3600), default=DEFAULT_MIN_TIME_S, show_default=True,
              help="Time each batch size for at least this many seconds ...")
@click.option("--min-runs", type=number_range(int, 1, 1_000_000), default=DEFAULT_MIN_RUNS, show_default=True,
              help="... and at least this many calls.")
@click.option("--max-time", type=number_range(float, 0, 86_400, low_open=True), default=DEFAULT_MAX_TIME_S, show_default=True,
              help="Stop timing a batch size after this many seconds even if --min-runs is not reached.")
@click.option("--eval-limit", type=number_range(int, 1, 10**9), default=None,
              help="Measure accuracy on a class-balanced subset of this many images (default: the whole split).")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Checkpoint for the PyTorch eager baseline (default: the bundles' source checkpoint).")
@click.option("--max-accuracy-drop", type=number_range(float, 0, 100), default=DEFAULT_MAX_ACCURACY_DROP, show_default=True,
              help="Top-1 points an artifact may lose versus the FP32 reference and still be recommended.")
@click.option("--images", "image_paths", multiple=True, type=click.Path(path_type=Path),
              help="Image files or folders (searched recursively) for file → label rows beside the model-only "
                   "rows; repeat for several.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write benchmark.md, benchmark.csv, benchmark.json and accuracy_latency.png here.")
@click.option("--overwrite", is_flag=True, help="Replace report files an earlier benchmark wrote into --report.")
@click.pass_context
def benchmark_command(
    ctx: click.Context, artifacts: tuple[Path, ...], data: str | None, batch_sizes: list[int], mode: str,
    streams: int | None, threads: int | None, device: str, allow_host_code: bool, warmup: int, min_time: float,
    min_runs: int, max_time: float, eval_limit: int | None, checkpoint: Path | None, max_accuracy_drop: float,
    image_paths: tuple[Path, ...], report_dir: Path | None, overwrite: bool,
) -> None:
    """Measure latency, throughput and accuracy of BUNDLE_OR_CHECKPOINT... side by side.

    Each artifact (a bundle from `export`/`compile`, or a checkpoint directory for the PyTorch FP32
    eager baseline) is evaluated on the same preprocessed evaluation images and timed at every
    batch size with the same thread count. Without --data (on a device) each bundle is timed on its
    golden inputs, which must first reproduce its golden outputs, and accuracy is "not measured".
    A backend that fails gets a row with its error; the others still run. Per batch size, ★ marks the
    recommended artifact: the fastest that runs natively here and that the paired accuracy evidence
    does not put over --max-accuracy-drop; rows the timings cannot tell apart from it are "tied within
    noise" (≈) and the tie goes to the better accuracy evidence, then the smaller file. The tensorrt-*
    bundles of `export` hold the ONNX an engine is built from: they run through ONNX Runtime as a
    [proxy], shown but never recommended; a compiled engine bundle runs on TensorRT, and its row names
    the GPU, TensorRT version and the engine's layer precisions. Accuracies are percentages. With
    --images, each artifact also gets file → label rows.

    \b
    Examples (the trailing slash globs the bundle directories, not export_report.json):
      edgeresnet benchmark runs/r20-export/*/ --data fashion-mnist \\
          --batch-sizes 1,8 --threads 2 --report runs/bench
      edgeresnet benchmark bundles/*/ --mode both          # on a device: no data needed
    """
    quiet = bool(ctx.find_root().params.get("quiet"))
    job = BenchmarkJob(
        artifacts=artifacts, data=data, batch_sizes=tuple(batch_sizes), threads=threads, device=device,  # type: ignore[arg-type]
        mode=mode, streams=streams, warmup=warmup, min_time_s=min_time, min_runs=min_runs,  # type: ignore[arg-type]
        max_time_s=max_time, eval_limit=eval_limit, checkpoint=checkpoint, max_accuracy_drop=max_accuracy_drop,
        allow_host_code=allow_host_code, images=image_paths, report=report_dir, overwrite=overwrite,
    )
    result = api.benchmark(job, progress=not quiet)
    show_result(result, job.max_accuracy_drop)
    if job.report is not None:
        from edgeresnet.report import FILES

        written = [job.report / name for name in FILES.values() if (job.report / name).is_file()]
        click.echo(f"reports: {', '.join(map(str, written))}", err=True)
    failed = api.failed_artifacts(result, artifacts)
    if failed is not None:
        raise EdgeResNetError(f"every artifact given failed ({failed}); see the errors above")


def show_result(result: object, max_accuracy_drop: float) -> None:
    """The tables, notes and recommendation(s), as `benchmark` and `pipeline` end."""
    from edgeresnet.report import print_table

    # A wide table: rich would otherwise squeeze 14 columns into an 80-column pipe.
    print_table(result, max_accuracy_drop=max_accuracy_drop, width=160)  # type: ignore[arg-type]
