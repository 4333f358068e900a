"""`edgeresnet compile`, `predict` and `verify`: from a bundle to the target, and checks on the target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from edgeresnet import api
from edgeresnet.backends import compile_targets, get_backend, model_file_backends
from edgeresnet.backends.tensorrt.options import tensorrt_options
from edgeresnet.bundle.vocabulary import PRECISIONS
from edgeresnet.cli.core import ThreadsType, cli, number_range
from edgeresnet.errors import BundleError, DatasetError, EdgeResNetError
from edgeresnet.limits import printable

_TRT_OPTIONS = ("max_batch", "opt_batch", "workspace_mib", "timing_cache", "version_compatible",
                "hardware_compatibility")


class BackendType(click.ParamType):
    """A runtime backend name, checked against the runtime's backend table when used."""

    name = "|".join(model_file_backends())

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        # Click upper-cases a type's name in --help; every other choice there is lower-case, as typed.
        return f"[{self.name}]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return get_backend(str(value).lower()).name
        except EdgeResNetError as error:
            self.fail(str(error), param, ctx)


@cli.command("compile")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--target", type=click.Choice(compile_targets()), required=True,
              help="Compile an OpenVINO IR or a TensorRT engine.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="Precision of the compiled model  [default: the bundle's]")
@click.option("--device", default="auto", show_default=True,
              help="Device to compile for and check on: CPU/GPU/NPU for OpenVINO, cuda for TensorRT.")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Directory of the new bundle.")
@click.option("--overwrite", is_flag=True, help="Replace a bundle an earlier compile wrote at --output.")
@click.option("--max-batch", type=number_range(int, 1, 4096), default=32, show_default=True,
              help="TensorRT: the largest batch the engine accepts.")
@click.option("--opt-batch", type=number_range(int, 1, 4096), default=1, show_default=True,
              help="TensorRT: the batch size the kernels are tuned for.")
@click.option("--workspace-mib", type=number_range(int, 1, 1 << 20), default=1024, show_default=True,
              help="TensorRT: builder workspace limit.")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TensorRT: timing-cache file to start from, e.g. an older bundle's timing.cache (only read; "
                   "the updated cache goes into the new bundle)  [default: a fresh one, kept in the bundle]")
@click.option("--version-compatible", is_flag=True,
              help="TensorRT: an engine later TensorRT versions can run.")
@click.option("--hardware-compatibility", type=click.Choice(["none", "ampere+", "same-cc"]), default="none",
              show_default=True, help="TensorRT: GPUs besides this one that the engine must run on.")
@click.pass_context
def compile_command(ctx: click.Context, bundle: Path, target: str, precision: str | None, device: str,
                    output: Path, overwrite: bool, **trt_options: Any) -> None:
    """Compile a bundle for its target: an OpenVINO IR (FP32, FP16, INT8) or a TensorRT engine.

    The compiled model re-measures the bundle's golden outputs, which must match the source model's,
    and the new bundle records its source, precision and device. TensorRT needs TensorRT and an NVIDIA
    GPU: run it on the device (carry the bundle there; for INT8 its QDQ ONNX and calibration.json).

    Example: edgeresnet compile bundles/r20 --target openvino --precision fp16 --output bundles/r20-ov
    """
    from edgeresnet.compile import CompileJob

    given = [name for name in _TRT_OPTIONS if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    if target != "tensorrt" and given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise EdgeResNetError(f"{flags}: only for --target tensorrt")
    job = CompileJob(bundle=bundle, output=output, target=target, precision=precision,  # type: ignore[arg-type]
                     device=device, overwrite=overwrite,
                     tensorrt=tensorrt_options(trt_options) if target == "tensorrt" else None)
    result = api.compile_bundle(job)
    parity, precision = result.manifest.parity[-1], result.manifest.precision
    click.echo(f"compiled {target} {precision} bundle: {result.path}  (golden top-1 agreement "
               f"{parity.top1_agreement_pct:.0f}% on {parity.images} inputs, max |Δlogit| {parity.max_abs_diff:.2e})")


_ALLOW_HOST_CODE = click.option(
    "--allow-host-code", is_flag=True,
    help="Let a version-compatible TensorRT engine run the TensorRT runtime embedded in it (host code). "
         "Only for engines from a source you trust.",
)


@cli.command("predict")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", type=number_range(int, 1, 100_000), default=5, show_default=True, help="Classes per image.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write one row per image to this .csv or .jsonl file instead of printing them.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
@click.option("--batch-size", type=number_range(int, 1, 4096), default=8, show_default=True,
              help="Images per model call.")
@click.option("--workers", type=ThreadsType(), default=None,
              help="Decoding threads  [default: one per usable core]")
@click.option("--backend", type=BackendType(), default=None,
              help="Runtime to use  [default: by the model file: .onnx onnxruntime, .xml openvino, "
                   ".engine tensorrt]")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, or an OpenVINO device (CPU, GPU).")
@click.option("--threads", type=ThreadsType(), default=None, help="CPU threads for the runtime.")
@_ALLOW_HOST_CODE
@click.pass_context
def predict_command(ctx: click.Context, bundle: Path, images: tuple[Path, ...], top_k: int, as_json: bool,
                    output: Path | None, overwrite: bool, batch_size: int, workers: int | None,
                    backend: str | None, device: str, threads: int | None, allow_host_code: bool) -> None:
    """Classify image files, and every image in folders (searched recursively), with a bundle.

    Files are decoded in a thread pool while the model runs, BATCH_SIZE at a time. A file that cannot
    be decoded becomes a row with its error and the run goes on; the exit code is 2 only when no
    image at all could be classified. BUNDLE may also be an .onnx that carries its preprocessing and
    labels.

    Example: edgeresnet predict bundles/r20-int8 shoe.png shirt.jpg --top-k 3

    \b
    Example (a folder, recursively, into a file):
      edgeresnet predict bundles/r50-ov-int8 photos/ --output preds.csv
    """
    from edgeresnet.data.decoding import find_images, no_images_found
    from edgeresnet.runtime.classifier import Classifier
    from edgeresnet.runtime.loading import check_input_memory
    from edgeresnet.runtime.predictions import check_output, write_predictions
    from edgeresnet.runtime.progress import ProgressBar

    if output is not None:
        check_output(output, overwrite=overwrite)  # refused before the model loads
    files = find_images(images)
    if not files:
        raise DatasetError(no_images_found(images))
    quiet = bool(ctx.find_root().params.get("quiet"))
    with Classifier.load(bundle, backend=backend, device=device, threads=threads,
                         allow_host_code=allow_host_code) as classifier, \
            ProgressBar(len(files), enabled=not quiet and output is not None, unit="img") as bar:
        # Up to three batches are in memory at once (one run, two decoded ahead): refused now if they cannot be.
        check_input_memory(classifier.spec, what=f"--batch-size {batch_size}", batch=3 * batch_size)
        results = classifier.predict_iter(files, batch_size=batch_size, top_k=top_k, workers=workers)
        if output is not None:
            flagged = []

            def on_row(row: Any) -> None:
                bar.update(1)
                if row.ood is not None and row.ood.flagged:
                    flagged.append(row.path)

            total, failed = write_predictions(results, output, overwrite=overwrite, on_row=on_row)
            click.echo(f"{total - failed} of {total} images classified: {output}", err=True)
            if flagged:
                click.echo(f"note: {len(flagged)} of {total} images look unlike the images the model was trained on "
                           "(the ood column): their labels may mean nothing", err=True)
        else:
            rows = list(results)
            total, failed = len(rows), sum(not row.ok for row in rows)
            _print_predictions(rows, as_json)
    if failed:
        click.echo(f"warning: {failed} of {total} images could not be classified (see their error rows)", err=True)
    if failed == total:
        raise DatasetError(f"none of the {total} images could be classified")


def _print_predictions(rows: list[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=2))
        return
    # Labels come from the bundle (anyone may write one) and paths from the disk: escaped before printing.
    labels = [printable(p.label) for row in rows for p in row.predictions]
    width = max(map(len, labels), default=0)
    for row in rows:
        click.echo(printable(row.path))
        if not row.ok:
            click.echo(f"  error: {printable(row.error)}")
        for rank, prediction in enumerate(row.predictions, start=1):
            click.echo(f"  {rank}. {printable(prediction.label):<{width}}  {prediction.probability:7.2%}  "
                       f"(class {prediction.index})")
        if row.ood is not None and row.ood.flagged:
            click.echo(f"  note: unlike the images the model was trained on ({row.ood.describe()}): "
                       "the labels above may mean nothing")


@cli.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--backend", type=BackendType(), default=None,
              help="Runtime to verify with  [default: by the model file]")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, or an OpenVINO device (CPU, GPU).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_ALLOW_HOST_CODE
def verify_command(bundle: Path, backend: str | None, device: str, as_json: bool, allow_host_code: bool) -> None:
    """Check a bundle on this machine: file hashes, format, runtime versions, and its golden outputs.

    A TensorRT engine must also match the TensorRT version and GPU it was built for; a version-compatible
    one loads only with --allow-host-code. Exits 0 when every check passes, 2 with the reason otherwise.

    Example: edgeresnet verify bundles/r20-int8
    """
    from edgeresnet.verify import verify_bundle

    report = verify_bundle(bundle, backend=backend, device=device, allow_host_code=allow_host_code)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(f"bundle {printable(bundle)}: {'OK' if report.passed else 'FAILED'}")
        for check in report.checks:
            click.echo(f"  ok: {printable(check)}")
    for warning in report.warnings:
        click.echo(f"warning: {printable(warning)}", err=True)
    if not report.passed:
        raise BundleError(f"verify failed: {'; '.join(report.failures)}")
