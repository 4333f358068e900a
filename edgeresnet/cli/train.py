"""`edgeresnet train`: train or fine-tune a ResNet into a checkpoint directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from edgeresnet.cli.core import ModelNameType, cli


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
@click.option("--overwrite", is_flag=True, help="Replace a checkpoint already in --output.")
@click.option("--train-limit", type=click.IntRange(min=1), default=None,
              help="Train on a class-balanced subset of this many images (quick runs).")
@click.option("--eval-limit", type=click.IntRange(min=1), default=None,
              help="Evaluate on a class-balanced subset of this many images.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--augment", type=click.Choice(["none", "flip", "crop-flip"]), default="flip", show_default=True,
              help="Training augmentation: random horizontal flip, plus random crops with crop-flip.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train_command(
    model_name: str, data: str, output: Path, epochs: int, batch_size: int, lr: float, schedule: str,
    label_smoothing: float, weight_decay: float, input_size: int | None, in_chans: str | None,
    weights: Path | None, resume: bool, overwrite: bool, train_limit: int | None, eval_limit: int | None,
    threads: int | None, seed: int, augment: str, no_progress: bool,
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
        weights=str(weights) if weights else None, resume=resume, overwrite=overwrite, train_limit=train_limit,
        eval_limit=eval_limit, threads=threads, seed=seed, augment=augment,  # type: ignore[arg-type]
        progress=not no_progress,
    )

    def report_epoch(_: str, metrics: dict[str, Any]) -> None:
        click.echo(
            f"epoch {metrics['epoch']}/{epochs}  loss {metrics['train_loss']:.4f}  "
            f"train top-1 {metrics['train_top1']:.2f}%  test top-1 {metrics['top1']:.2f}%  "
            f"top-5 {metrics['top5']:.2f}%  {metrics['images_per_s']:.0f} img/s  {metrics['seconds']:.0f}s"
        )

    result = train(config, on_epoch=report_epoch)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one line for the run, not one per process
        click.echo(f"checkpoint: {result.checkpoint}  (top-1 {result.top1:.2f}%)")
