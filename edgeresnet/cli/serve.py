"""`edgeresnet serve-repo` and `serve`: bundles behind an inference server speaking the Open Inference Protocol."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeresnet.cli.core import ThreadsType, cli, number_range
from edgeresnet.cli.deploy import BackendType
from edgeresnet.errors import BundleError, EdgeResNetError

_MAX_QUEUE_DELAY_US = 10_000_000


@cli.command("serve-repo")
@click.argument("bundles", nargs=-1, type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The model repository to write (created if absent; other models in it are kept).")
@click.option("--verify", "verify_repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Instead of writing: check a deployed repository against the bundles it was written from.")
@click.option("--name", "names", multiple=True, help="Model name, once per bundle  [default: the bundle's directory name]")
@click.option("--version", "model_version", type=number_range(int, 1, 10**9), default=1, show_default=True,
              help="The version directory the model files go into.")
@click.option("--max-batch", type=number_range(int, 1, 4096), default=32, show_default=True,
              help="max_batch_size for models with a dynamic batch (an engine's profile or a static batch wins).")
@click.option("--instances", type=number_range(int, 1, 256), default=1, show_default=True,
              help="Model instances per server (Triton's instance_group count).")
@click.option("--max-queue-delay-us", type=click.IntRange(min=0, max=_MAX_QUEUE_DELAY_US), default=100,
              show_default=True, help="How long dynamic batching may hold a request for others.")
@click.option("--threads", type=ThreadsType(), default=None, help="CPU threads per model instance.")
@click.option("--overwrite", is_flag=True, help="Replace model directories an earlier serve-repo wrote.")
@click.option("--json", "as_json", is_flag=True, help="Print the verify report as JSON.")
def serve_repo_command(bundles: tuple[Path, ...], output: Path | None, verify_repo: Path | None,
                       names: tuple[str, ...], model_version: int, max_batch: int, instances: int,
                       max_queue_delay_us: int, threads: int | None, overwrite: bool, as_json: bool) -> None:
    """Write a Triton model repository from bundles, or --verify a deployed one.

    Each bundle becomes REPO/<name>/config.pbtxt, labels.txt, edgeresnet.json (the bundle's manifest and
    every file's sha256) and <version>/model.onnx | model.xml + model.bin | model.plan. Triton serves
    the repository as it is (tritonserver --model-repository REPO); OpenVINO Model Server and KServe read
    the same layout (docs/serving.md).

    Examples:

      edgeresnet serve-repo bundles/r20-int8 bundles/r20-openvino --output models

      edgeresnet serve-repo --verify models
    """
    if verify_repo is not None:
        if bundles or output is not None:
            raise EdgeResNetError("--verify REPO takes no bundles and no --output")
        _verify(verify_repo, as_json)
        return
    if not bundles or output is None:
        raise EdgeResNetError("give the bundles and --output REPO (or --verify REPO)")
    from edgeresnet.serve.repository import RepositoryOptions, write_repository

    options = RepositoryOptions(version=model_version, max_batch=max_batch, instances=instances,
                                max_queue_delay_us=max_queue_delay_us, threads=threads)
    models = write_repository(bundles, output, options, names=list(names) or None, overwrite=overwrite)
    for model in models:
        click.echo(f"{output / model.name}: {model.config.backend}, max_batch_size {model.config.max_batch_size}, "
                   f"from {model.bundle}")
    extra_args = sorted({arg for model in models for arg in model.server_args})
    click.echo(f"serve it: tritonserver --model-repository {output.absolute()}"
               + "".join(f" {arg}" for arg in extra_args))


def _verify(repository: Path, as_json: bool) -> None:
    from edgeresnet.serve.check import verify_repository

    report = verify_repository(repository)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for model in report.models:
            click.echo(f"{model.name}: {'OK' if model.ok else 'FAILED'}"
                       + (f" (bundle manifest sha256 {model.manifest_sha256})" if model.manifest_sha256 else ""))
            for problem in model.problems:
                click.echo(f"  {problem}")
    if not report.ok:
        failed = [m.name for m in report.models if not m.ok]
        raise BundleError(f"repository {repository} fails its checks: {', '.join(failed)}")


@cli.command("serve")
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--name", "names", multiple=True, help="Model name, once per bundle  [default: the bundle's directory name]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; 0.0.0.0 listens on every interface.")
@click.option("--http-port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True,
              help="HTTP port (0: any free port, printed when ready).")
@click.option("--grpc-port", type=click.IntRange(min=0, max=65535), default=8001, show_default=True,
              help="gRPC port (0: any free port, printed when ready).")
@click.option("--max-batch", type=number_range(int, 1, 4096), default=32, show_default=True,
              help="Largest batch dynamic batching forms (and the most items one request may carry).")
@click.option("--max-queue-delay-us", type=click.IntRange(min=0, max=_MAX_QUEUE_DELAY_US), default=0,
              show_default=True, help="How long a batch may wait for more requests once one is queued.")
@click.option("--instances", type=number_range(int, 1, 256), default=1, show_default=True,
              help="Batches run at once, each in its own thread.")
@click.option("--backend", type=BackendType(), default=None, help="Runtime  [default: by the model file]")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, or an OpenVINO device (CPU, GPU).")
@click.option("--threads", type=ThreadsType(), default=None, help="CPU threads for the runtime.")
def serve_command(bundles: tuple[Path, ...], names: tuple[str, ...], host: str, http_port: int, grpc_port: int,
                  max_batch: int, max_queue_delay_us: int, instances: int, backend: str | None, device: str,
                  threads: int | None) -> None:
    """Serve bundles over the Open Inference Protocol (KServe v2), HTTP and gRPC, until SIGTERM.

    KServe's model server core with dynamic batching in front of the runtime Classifier. Send one input
    per request: `image` (BYTES, encoded files), `pixels` (UINT8 N×H×W×C) or `input` (FP32 N×C×H×W);
    get `labels`, `probabilities` and `indices` (top_k, a request parameter, default 5). Health:
    /v2/health/live and /v2/health/ready; metrics: /metrics. Needs the serve extra.

    Example: edgeresnet serve bundles/r20-int8 --http-port 8000 --grpc-port 8001
    """
    from edgeresnet.serve.batching import BatchingOptions
    from edgeresnet.serve.server import Listening, ServeJob, serve

    job = ServeJob(bundles=bundles, names=names, host=host, http_port=http_port, grpc_port=grpc_port,
                   batching=BatchingOptions(max_batch=max_batch, max_delay_s=max_queue_delay_us / 1e6,
                                            instances=instances),
                   backend=backend, device=device, threads=threads)

    def ready(where: Listening) -> None:
        click.echo(f"serving {', '.join(where.models)}: http://{where.host}:{where.http_port} "
                   f"grpc {where.host}:{where.grpc_port}", color=False)

    serve(job, on_ready=ready)
    click.echo("stopped")
