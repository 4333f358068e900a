"""`edgeresnet train`: train or fine-tune a ResNet into a checkpoint directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from edgeresnet import api
from edgeresnet.cli.core import InputSizeType, ModelNameType, ThreadsType, cli, number_range

# edgeresnet.training.config.AUGMENT_CHOICES, without importing torch for --help
_AUGMENTS = ("auto", "none", "shift", "flip")


@cli.command("train")
@click.option("--model", "model_name", type=ModelNameType(), default="resnet20", show_default=True,
              help="Architecture name (see `edgeresnet models`).")
@click.option("--data", default="fashion-mnist", show_default=True,
              help="Data source: fashion-mnist[:DIR], an image folder, or an .npz with images/labels.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("runs/train"), show_default=True,
              help="Checkpoint directory (weights .safetensors + card.json), rewritten every epoch.")
@click.option("--epochs", type=number_range(int, 1, 10_000), default=2, show_default=True,
              help="Passes over the training images.")
@click.option("--batch-size", type=number_range(int, 1, 4096), default=None,
              help="Default: 128, or smaller for small data sets (about 64 steps an epoch, at least 32).")
@click.option("--lr", type=number_range(float, 0, 100, low_open=True), default=None,
              help="Peak learning rate (SGD, Nesterov momentum 0.9). Default: 0.4 × batch size / 256.")
@click.option("--warmup-steps", type=number_range(int, 1, 10**8), default=None,
              help="Linear warm-up in optimizer steps. Default: 10% of all steps, at least 10 (30% with onecycle).")
@click.option("--schedule", type=click.Choice(["cosine", "onecycle"]), default="cosine", show_default=True,
              help="Learning-rate schedule after the warm-up.")
@click.option("--label-smoothing", type=number_range(float, 0, 0.999), default=0.1, show_default=True,
              help="Share of each target spread over the other classes.")
@click.option("--weight-decay", type=number_range(float, 0, 1), default=5e-4, show_default=True,
              help="SGD weight decay, on weights only (not biases or BatchNorm).")
@click.option("--input-size", type=InputSizeType(), default=None,
              help="Square input side; default: the dataset's native size (the weights' size when fine-tuning).")
@click.option("--in-chans", type=click.Choice(["1", "3"]), default=None,
              help="Input channels; default: the dataset's (the weights' when fine-tuning).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Fine-tune from these weights (.safetensors or a PyTorch state dict; torchvision/timm layout).")
@click.option("--freeze-epochs", type=number_range(int, 0, 10_000), default=None,
              help="Fine-tuning: epochs that train only the new head. Default: 1 when --epochs > 2, else 0.")
@click.option("--backbone-lr-scale", type=number_range(float, 0, 1), default=None,
              help="Fine-tuning: learning rate of the pretrained layers relative to the head's. Default: 0.75.")
@click.option("--batchnorm", type=click.Choice(["auto", "train", "frozen"]), default="auto", show_default=True,
              help="BatchNorm statistics: frozen keeps the weights' running statistics (auto: when "
                   "fine-tuning with batches under 16).")
@click.option("--val-fraction", type=number_range(float, 0, 0.5), default=0.1, show_default=True,
              help="Share of the training images (at most 2,500) held out to choose the best epoch; 0 keeps the last.")
@click.option("--resume", is_flag=True, help="Continue the run in --output after its last finished epoch.")
@click.option("--overwrite", is_flag=True, help="Replace a checkpoint an earlier train wrote in --output, or write into a "
              "directory of yours beside its files; a file of yours is never replaced.")
@click.option("--train-limit", type=number_range(int, 1, 10**9), default=None,
              help="Train on a class-balanced subset of this many images (quick runs).")
@click.option("--eval-limit", type=number_range(int, 1, 10**9), default=None,
              help="Evaluate on a class-balanced subset of this many images.")
@click.option("--threads", type=ThreadsType(), default=None, help="CPU threads for PyTorch.")
@click.option("--seed", type=number_range(int, 0, 2**32 - 1), default=0, show_default=True,
              help="Seed of the initial weights, the validation hold-out, subsets, shuffling and augmentation.")
@click.option("--augment", type=click.Choice(_AUGMENTS), default="auto", show_default=True,
              help="Training augmentation: shift = random shifts of up to 1/16 of the side; flip adds "
                   "horizontal mirroring (only for mirror-symmetric classes); auto = shift from 3 epochs on.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train_command(
    model_name: str, data: str, output: Path, epochs: int, batch_size: int | None, lr: float | None,
    warmup_steps: int | None, schedule: str, label_smoothing: float, weight_decay: float,
    input_size: int | None, in_chans: str | None, weights: Path | None, freeze_epochs: int | None,
    backbone_lr_scale: float | None, batchnorm: str, val_fraction: float, resume: bool, overwrite: bool,
    train_limit: int | None, eval_limit: int | None, threads: int | None, seed: int, augment: str,
    no_progress: bool,
) -> None:
    """Train a ResNet from scratch or fine-tune it from weights, writing a checkpoint directory.

    The recipe adapts to the data: batch size, learning rate and warm-up are resolved from the
    number of training images and recorded in the card, with the epoch kept and why: the last one,
    unless an earlier epoch is better on a validation share of the training images by a margin
    those images resolve.

    Runs the same way under `torchrun --nproc_per_node N -m edgeresnet train ...` for data-parallel
    training (gloo on CPU, nccl on GPU).

    Example: edgeresnet train --model resnet20 --data fashion-mnist --epochs 2 --output runs/r20
    """
    from edgeresnet.training import TrainJob

    job = TrainJob(
        model=model_name, data=data, output=str(output), epochs=epochs, batch_size=batch_size, lr=lr,
        warmup_steps=warmup_steps, schedule=schedule, label_smoothing=label_smoothing,  # type: ignore[arg-type]
        weight_decay=weight_decay, input_size=input_size, in_chans=int(in_chans) if in_chans else None,
        weights=str(weights) if weights else None, freeze_epochs=freeze_epochs,
        backbone_lr_scale=backbone_lr_scale, batchnorm=batchnorm, val_fraction=val_fraction,  # type: ignore[arg-type]
        resume=resume, overwrite=overwrite, train_limit=train_limit, eval_limit=eval_limit, threads=threads,
        seed=seed, augment=augment, progress=not no_progress,  # type: ignore[arg-type]
    )

    def report_epoch(_: str, metrics: dict[str, Any]) -> None:
        validation = ("" if metrics["val_top1"] is None
                      else f"  val top-1 {metrics['val_top1']:.2f}%  val loss {metrics['val_loss']:.4f}")
        click.echo(
            f"epoch {metrics['epoch']}/{epochs}  loss {metrics['train_loss']:.4f}  "
            f"train top-1 {metrics['train_top1']:.2f}%{validation}  "
            f"{metrics['images_per_s']:.0f} img/s  {metrics['seconds']:.0f}s"
        )

    result = api.train(job, on_epoch=report_epoch)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one line for the run, not one per process
        metrics = result.card.metrics
        low, high = metrics["top1_ci95"]
        why = metrics["selection"].get("why", metrics["selection"]["rule"])
        click.echo(f"kept epoch {result.kept_epoch}: {why}")
        click.echo(f"checkpoint: {result.checkpoint}  (evaluation top-1 {result.top1:.2f}%, 95% CI "
                   f"{low:.2f}–{high:.2f}, {metrics['eval_images']:,} images)")
