"""The `edgeresnet` command line: thin Click adapters over the library.

Each command's docstring is its help. A user mistake (any EdgeResNetError) becomes one line on
stderr and exit code 2; ``--debug`` shows the traceback. Heavy imports happen inside commands so
``edgeresnet --help`` stays instant.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from edgeresnet import __version__
from edgeresnet.errors import EdgeResNetError

USER_ERROR_EXIT = 2


class EdgeResNetGroup(click.Group):
    """Turns library errors into one-line messages with exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeResNetError as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            ctx.exit(USER_ERROR_EXIT)


class ModelNameType(click.ParamType):
    """An architecture name from the registry; unknown names fail with the closest suggestions."""

    name = "MODEL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from edgeresnet.models import get_model_info

        try:
            return get_model_info(str(value)).name
        except EdgeResNetError as error:
            self.fail(str(error), param, ctx)


class IntListType(click.ParamType):
    """A comma-separated list of positive integers, e.g. ``1,8,32``."""

    name = "N[,N...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            numbers = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
        if not numbers or any(n < 1 for n in numbers):
            self.fail(f"{value!r} must list positive integers", param, ctx)
        return numbers


@click.group(cls=EdgeResNetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeresnet")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only print warnings and results.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Train, export, quantize, compile and benchmark ResNet classifiers for edge targets."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("nncf", "openvino", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects instead of a table.")
@click.option("--family", default=None, help="Only list this family (e.g. resnet, resnet-cifar, resnext).")
def models_command(as_json: bool, family: str | None) -> None:
    """List every registered architecture: family, parameters, MACs and default input size.

    Parameters are counted with 1000 classes (10 for the CIFAR family) and 3 input channels; MACs
    at the default input size.
    """
    from edgeresnet import list_models

    infos = [info for info in list_models() if family is None or info.family == family]
    if family is not None and not infos:
        families = sorted({info.family for info in list_models()})
        raise EdgeResNetError(f"unknown family {family!r}; families: {', '.join(families)}")
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="edgeresnet models")
    for column in ("name", "family", "params", "MACs", "input"):
        table.add_column(column, justify="right" if column in ("params", "MACs", "input") else "left")
    for info in infos:
        table.add_row(info.name, info.family, f"{info.params / 1e6:.2f}M", _format_macs(info.macs),
                      f"{info.input_size}×{info.input_size}")
    Console(width=100).print(table)


def _format_macs(macs: int) -> str:
    return f"{macs / 1e9:.2f}G" if macs >= 1e9 else f"{macs / 1e6:.1f}M"


@cli.command("train")
@click.option("--model", "model_name", type=ModelNameType(), default="resnet20", show_default=True,
              help="Architecture name (see `edgeresnet models`).")
@click.option("--data", default="fashion-mnist", show_default=True,
              help="Data source: fashion-mnist[:DIR], an image folder, or an .npz with images/labels.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("runs/train"), show_default=True,
              help="Checkpoint directory (weights .safetensors + card.json), rewritten every epoch.")
@click.option("--epochs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.2, show_default=True,
              help="Peak learning rate (SGD, Nesterov momentum 0.9).")
@click.option("--schedule", type=click.Choice(["cosine", "onecycle"]), default="cosine", show_default=True,
              help="Learning-rate schedule after the linear warm-up.")
@click.option("--label-smoothing", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option("--input-size", type=click.IntRange(min=28), default=None,
              help="Square input side; default: the dataset's native size, else the model's.")
@click.option("--in-chans", type=click.Choice(["1", "3"]), default=None,
              help="Input channels; default: the dataset's (3 when fine-tuning from --weights).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from these weights (.safetensors or a PyTorch state dict; torchvision/timm layout).")
@click.option("--resume", is_flag=True, help="Continue the run in --output after its last finished epoch.")
@click.option("--train-limit", type=click.IntRange(min=1), default=None,
              help="Train on a class-balanced subset of this many images (quick runs).")
@click.option("--eval-limit", type=click.IntRange(min=1), default=None,
              help="Evaluate on a class-balanced subset of this many images.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-augment", is_flag=True, help="Disable random crop and flip.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train_command(
    model_name: str, data: str, output: Path, epochs: int, batch_size: int, lr: float, schedule: str,
    label_smoothing: float, weight_decay: float, input_size: int | None, in_chans: str | None,
    weights: Path | None, resume: bool, train_limit: int | None, eval_limit: int | None,
    threads: int | None, seed: int, no_augment: bool, no_progress: bool,
) -> None:
    """Train a ResNet from scratch or fine-tune it from weights, writing a checkpoint directory.

    Runs the same way under `torchrun --nproc_per_node N -m edgeresnet train ...` for data-parallel
    training (gloo on CPU, nccl on GPU).

    Example: edgeresnet train --model resnet20 --data fashion-mnist --epochs 2 --output runs/r20
    """
    from edgeresnet.train import TrainConfig, train

    config = TrainConfig(
        model=model_name, data=data, output=str(output), epochs=epochs, batch_size=batch_size, lr=lr,
        schedule=schedule, label_smoothing=label_smoothing, weight_decay=weight_decay,
        input_size=input_size, in_chans=int(in_chans) if in_chans else None,
        weights=str(weights) if weights else None, resume=resume, train_limit=train_limit,
        eval_limit=eval_limit, threads=threads, seed=seed, augment=not no_augment,
        progress=not no_progress,
    )

    def report_epoch(_: str, metrics: dict[str, Any]) -> None:
        click.echo(
            f"epoch {metrics['epoch']}/{epochs}  loss {metrics['train_loss']:.4f}  "
            f"train top-1 {metrics['train_top1']:.2f}%  test top-1 {metrics['top1']:.2f}%  "
            f"top-5 {metrics['top5']:.2f}%  {metrics['images_per_s']:.0f} img/s  {metrics['seconds']:.0f}s"
        )

    result = train(config, on_epoch=report_epoch)
    click.echo(f"checkpoint: {result.checkpoint}  (top-1 {result.top1:.2f}%)")


def main() -> None:
    cli(prog_name="edgeresnet")


if __name__ == "__main__":
    main()
