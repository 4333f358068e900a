"""`edgeresnet benchmark`: accuracy × latency of bundles and checkpoints, as a table and reports."""

from __future__ import annotations

from pathlib import Path

import click

from edgeresnet.cli.core import IntListType, NumberType, ThreadsType, cli
from edgeresnet.errors import EdgeResNetError


@cli.command("benchmark")
# Paths are checked by the library (load_artifact), which says what a file or a missing path is.
@click.argument("artifacts", nargs=-1, required=True, metavar="BUNDLE_OR_CHECKPOINT...",
                type=click.Path(path_type=Path))
@click.option("--data", required=True, help="Data source whose evaluation split measures accuracy.")
@click.option("--batch-sizes", type=IntListType(), default="1,8", show_default=True,
              help="Batch sizes to time, comma-separated.")
@click.option("--threads", type=ThreadsType(), default=None,
              help="CPU threads for every backend (default: every core this process may use).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where PyTorch and ONNX Runtime run; TensorRT engines always run on cuda, OpenVINO on its "
                   "default device.")
@click.option("--allow-host-code", is_flag=True,
              help="Let version-compatible TensorRT engines run the runtime they embed (trusted engines only).")
@click.option("--warmup", type=NumberType(int, 0, 100_000), default=10, show_default=True,
              help="Untimed calls before timing each batch size.")
@click.option("--min-time", type=NumberType(float, 0, 3600), default=2.0, show_default=True,
              help="Time each batch size for at least this many seconds ...")
@click.option("--min-runs", type=NumberType(int, 1, 1_000_000), default=50, show_default=True,
              help="... and at least this many calls.")
@click.option("--max-time", type=NumberType(float, 0, 86_400, low_open=True), default=60.0, show_default=True,
              help="Stop timing a batch size after this many seconds even if --min-runs is not reached.")
@click.option("--eval-limit", type=NumberType(int, 1, 10**9), default=None,
              help="Measure accuracy on a class-balanced subset of this many images (default: the whole split).")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Checkpoint for the PyTorch eager baseline (default: the bundles' source checkpoint).")
@click.option("--max-accuracy-drop", type=NumberType(float, 0, 100), default=1.0, show_default=True,
              help="Top-1 points an artifact may lose versus the FP32 reference and still be marked fastest.")
@click.option("--images", "image_paths", multiple=True, type=click.Path(path_type=Path),
              help="Image files or folders (searched recursively) for file → label rows beside the model-only "
                   "rows; repeat for several.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write benchmark.md, benchmark.csv, benchmark.json and accuracy_latency.png here.")
@click.option("--overwrite", is_flag=True, help="Replace report files an earlier benchmark wrote into --report.")
@click.pass_context
def benchmark_command(
    ctx: click.Context, artifacts: tuple[Path, ...], data: str, batch_sizes: list[int], threads: int | None,
    device: str, warmup: int, min_time: float, min_runs: int, max_time: float, eval_limit: int | None,
    checkpoint: Path | None, max_accuracy_drop: float, image_paths: tuple[Path, ...], report_dir: Path | None,
    allow_host_code: bool, overwrite: bool,
) -> None:
    """Measure latency, throughput and accuracy of BUNDLE_OR_CHECKPOINT... side by side.

    Each artifact (a bundle from `export`/`compile`, or a checkpoint directory for the PyTorch FP32
    eager baseline) is evaluated on the same preprocessed evaluation images and timed at every
    batch size with the same thread count. A backend that fails gets a row with its error; the
    others still run. The fastest artifact within --max-accuracy-drop of the FP32 reference is
    marked per batch size. The tensorrt-* bundles of `export` hold the ONNX an engine is built from:
    they run through ONNX Runtime, named "(QDQ via onnxruntime)" for INT8 and "(ONNX via
    onnxruntime)" for FP32; a compiled engine bundle runs on
    TensorRT. Accuracies are percentages. With --images, each artifact also gets file → label rows:
    the files decoded, preprocessed and classified as an app does, split into decode, preprocess and
    inference time.

    \b
    Example (the trailing slash globs the bundle directories, not export_report.json):
      edgeresnet benchmark runs/r20-export/*/ --data fashion-mnist \\
          --batch-sizes 1,8 --threads 2 --report runs/bench
    """
    from edgeresnet.api import benchmark, check_report_directory, failed_artifacts, write_benchmark_reports
    from edgeresnet.report import print_table

    quiet = bool(ctx.find_root().params.get("quiet"))
    if report_dir is not None:
        check_report_directory(report_dir, overwrite=overwrite)  # a refused --report fails now, not after the run
    result = benchmark(
        list(artifacts), data=data, batch_sizes=batch_sizes, threads=threads, device=device,
        warmup=warmup, min_time_s=min_time, min_runs=min_runs, max_time_s=max_time, eval_limit=eval_limit,
        checkpoint=checkpoint, progress=not quiet, allow_host_code=allow_host_code, images=image_paths,
    )
    # A wide table: rich would otherwise squeeze 14 columns into an 80-column pipe.
    print_table(result, max_accuracy_drop=max_accuracy_drop, width=160)
    if report_dir is not None:
        written = write_benchmark_reports(result, report_dir, overwrite=overwrite, max_accuracy_drop=max_accuracy_drop)
        click.echo(f"reports: {', '.join(str(path) for path in written.values())}", err=True)
    failed = failed_artifacts(result, artifacts)
    if failed is not None:
        raise EdgeResNetError(f"every artifact given failed ({failed}); see the errors above")
