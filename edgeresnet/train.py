"""Training and fine-tuning: SGD with Nesterov momentum, warm-up + cosine, label smoothing, channels-last.

One function, :func:`train`, serves the CLI, the pipeline and Python users. The same code runs as a
single process or under ``torchrun`` (torch.distributed DDP: gloo on CPU, nccl on GPU). Every epoch
writes a complete checkpoint directory atomically plus a resume state, so ``resume=True`` continues
after the last finished epoch (a kill -9 loses at most the epoch in progress).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from edgeresnet.atomic import atomic_write_with
from edgeresnet.checkpoint import ModelCard, write_checkpoint
from edgeresnet.data import DataSource, ImageSet, open_source
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.environment import tool_versions
from edgeresnet.errors import CheckpointError, DatasetError, EdgeResNetError
from edgeresnet.evaluation import AccuracyCounter
from edgeresnet.models import count_macs, count_params, create_model, get_model_info, load_weights

log = logging.getLogger(__name__)

RESUME_FILE = "train_state.pt"
Schedule = Literal["cosine", "onecycle"]
# "flip" is the default: on Fashion-MNIST's 2-epoch budget random crops cost ~0.9 top-1 points
# (91.0% vs 91.9% without augmentation, measured on the 2-core machine); longer runs gain from them.
Augment = Literal["none", "flip", "crop-flip"]
AUGMENTS: tuple[str, ...] = ("none", "flip", "crop-flip")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; recorded in the model card."""

    model: str = "resnet20"
    data: str = "fashion-mnist"
    output: str = "runs/train"
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.2
    schedule: Schedule = "cosine"
    input_size: int | None = None
    in_chans: int | None = None
    weights: str | None = None
    resume: bool = False
    seed: int = 0
    train_limit: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 500
    augment: Augment = "flip"
    channels_last: bool = True
    threads: int | None = None
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise EdgeResNetError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise EdgeResNetError(f"batch size must be at least 1, got {self.batch_size}")
        if self.lr <= 0:
            raise EdgeResNetError(f"learning rate must be positive, got {self.lr}")
        if self.schedule not in ("cosine", "onecycle"):
            raise EdgeResNetError(f"schedule must be cosine or onecycle, got {self.schedule!r}")
        if self.augment not in AUGMENTS:
            raise EdgeResNetError(f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.in_chans not in (None, 1, 3):
            raise EdgeResNetError(f"in_chans must be 1 or 3, got {self.in_chans}")


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_top1: float
    top1: float
    top5: float
    images_per_s: float
    seconds: float


@dataclass
class TrainResult:
    checkpoint: Path
    card: ModelCard
    history: list[EpochMetrics] = field(default_factory=list)

    @property
    def top1(self) -> float:
        return self.history[-1].top1 if self.history else float("nan")


@dataclass(frozen=True)
class _World:
    """Where this process sits in a (possibly single-process) data-parallel run."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


ProgressCallback = Callable[[str, dict[str, Any]], None]


def train(config: TrainConfig, *, on_epoch: ProgressCallback | None = None) -> TrainResult:
    """Train (or fine-tune) ``config.model`` on ``config.data`` and write a checkpoint directory."""
    world = _init_distributed()
    try:
        return _train(config, world, on_epoch)
    finally:
        if world.size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(config: TrainConfig, world: _World, on_epoch: ProgressCallback | None) -> TrainResult:
    if config.threads:
        torch.set_num_threads(config.threads)
    output = Path(config.output)
    source = open_source(config.data)
    info = get_model_info(config.model)
    output.mkdir(parents=True, exist_ok=True)  # an unwritable --output fails now, not after an epoch
    if not config.resume and not config.overwrite and (output / "card.json").is_file():
        raise CheckpointError(f"{output} already holds a checkpoint: continue it with --resume, "
                              "replace it with --overwrite, or choose another --output")
    in_chans = config.in_chans or (_weights_channels(config.weights) if config.weights else source_channels(source))
    input_size = config.input_size or (source.native_size[0] if source.native_size else info.input_size)
    if input_size < 28:
        raise EdgeResNetError(f"input size must be at least 28, got {input_size}")
    spec = source.default_preprocess(input_size, channels="L" if in_chans == 1 else "RGB")

    train_set = _limited(source.split("train"), config.train_limit, config.seed)
    eval_set = _limited(source.split("evaluation"), config.eval_limit, config.seed)
    if len(train_set) < world.size:
        raise DatasetError(f"training split of {source.name} has only {len(train_set)} images")

    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=source.num_classes, in_chans=in_chans)
    if config.weights and not config.resume:
        load_weights(model, config.weights)  # logs a re-initialised head itself
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(world.device, memory_format=memory_format)

    steps_per_epoch = math.ceil(len(train_set) / world.size / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    decay, no_decay = _split_weight_decay(model)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        momentum=config.momentum,
        nesterov=True,
    )
    start_epoch, history = 0, []
    if config.resume:
        start_epoch, history = _load_resume_state(output, config, model, optimizer)
        if world.is_main:
            log.info("resuming %s after epoch %d of %d", output, start_epoch, config.epochs)
    if start_epoch >= config.epochs:
        raise EdgeResNetError(
            f"{output} already finished {start_epoch} epochs; raise --epochs to train further"
        )

    train_model: nn.Module = model
    if world.size > 1:
        train_model = nn.parallel.DistributedDataParallel(model)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    card = _make_card(config, source, train_set, spec, in_chans, model)

    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        loss, top1_train, seen = _train_one_epoch(
            train_model, train_set, spec, optimizer, criterion, config, world, epoch,
            schedule=lambda step: _learning_rate(config, step, total_steps, steps_per_epoch),
            steps_per_epoch=steps_per_epoch,
        )
        elapsed = time.perf_counter() - started
        top1, top5 = evaluate(model, eval_set, spec, batch_size=config.eval_batch_size, device=world.device)
        metrics = EpochMetrics(epoch + 1, loss, top1_train, top1, top5, seen * world.size / elapsed, elapsed)
        history.append(metrics)
        if world.is_main:
            card.metrics = {"epoch": epoch + 1, "top1": top1, "top5": top5,
                            "eval_images": len(eval_set), "history": [asdict(h) for h in history]}
            write_checkpoint(output, model, card)
            _save_resume_state(output, config, model, optimizer, epoch + 1, history)
            if on_epoch:
                on_epoch("epoch", asdict(metrics))
        if world.size > 1:
            torch.distributed.barrier()
    return TrainResult(output, card, history)


def _weights_channels(path: str) -> int:
    """Fine-tuning keeps the stem the weights were trained with (3 for torchvision/timm files)."""
    from edgeresnet.models import weights_shape

    return weights_shape(path)[1] or 3


def source_channels(source: DataSource) -> int:
    return 1 if source.native_channels == "L" else 3


def _limited(images: ImageSet, limit: int | None, seed: int) -> ImageSet:
    """A class-balanced subset for quick runs and tests; the whole split when no limit is given."""
    if limit is None or limit >= len(images):
        return images
    return images.balanced_sample(limit, seed=seed)


def _split_weight_decay(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Biases and BatchNorm parameters get no weight decay: decaying them only costs accuracy."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    return decay, no_decay


def _learning_rate(config: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    warmup = max(1, int(config.warmup_epochs * steps_per_epoch))
    if config.schedule == "onecycle":
        warmup = max(1, int(0.3 * total_steps))
    if step < warmup:
        return config.lr * (0.1 + 0.9 * step / warmup)
    progress = (step - warmup) / max(1, total_steps - warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _train_one_epoch(
    model: nn.Module,
    train_set: ImageSet,
    spec: PreprocessSpec,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    config: TrainConfig,
    world: _World,
    epoch: int,
    *,
    schedule: Callable[[int], float],
    steps_per_epoch: int,
) -> tuple[float, float, int]:
    model.train()
    # The same permutation on every rank (seeded by epoch), each rank taking its own shard.
    order = np.random.default_rng(config.seed + epoch).permutation(len(train_set))
    # Equal shards: DDP deadlocks if one rank runs a step more than another.
    order = order[: len(order) - len(order) % world.size]
    shard = train_set.subset(order[world.rank :: world.size])
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch * 10 + world.rank)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    fill = torch.tensor([-m / s for m, s in zip(spec.mean, spec.std)], dtype=torch.float32)
    total_loss = correct = seen = 0
    progress = _progress_bar(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", config, world)
    started = time.perf_counter()
    for step_in_epoch, (images, labels) in enumerate(shard.batches(spec, config.batch_size)):
        step = epoch * steps_per_epoch + step_in_epoch
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        batch = torch.from_numpy(images)
        if config.augment != "none":
            batch = augment_batch(batch, fill, generator, crop=config.augment == "crop-flip")
        batch = batch.to(world.device, memory_format=memory_format)
        target = torch.from_numpy(labels).to(world.device)
        logits = model(batch)
        loss = criterion(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(labels)
        correct += int((logits.argmax(1) == target).sum())
        seen += len(labels)
        if progress is not None:
            rate = seen / max(1e-9, time.perf_counter() - started)
            progress.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{100 * correct / seen:.1f}",
                                 img_s=f"{rate:.0f}", refresh=False)
            progress.update(1)
    if progress is not None:
        progress.close()
    if shard.skipped and world.is_main:
        log.warning("skipped %d undecodable training images this epoch", shard.skipped)
    return total_loss / max(1, seen), 100.0 * correct / max(1, seen), seen


def augment_batch(
    batch: torch.Tensor, fill: torch.Tensor, generator: torch.Generator, *, crop: bool = True
) -> torch.Tensor:
    """Random horizontal flip and, with ``crop``, a random crop after padding by 1/8 of the side.

    Works on a normalised NCHW batch; padding uses each channel's value for a black pixel, so the
    border looks like real background.
    """
    n, c, h, w = batch.shape
    if not crop:
        flips = (torch.rand(n, generator=generator) < 0.5).view(n, 1, 1, 1)
        return torch.where(flips, batch.flip(-1), batch)
    pad = max(2, h // 8)
    padded = fill.view(1, c, 1, 1).expand(n, c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, :, pad : pad + h, pad : pad + w] = batch
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(batch)
    for i in range(n):
        top, left = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, top : top + h, left : left + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: ImageSet,
    spec: PreprocessSpec,
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (percent) of a PyTorch model on a split."""
    was_training = model.training
    model.eval()
    counter = AccuracyCounter()
    for batch, labels in images.batches(spec, batch_size):
        counter.update(model(torch.from_numpy(batch).to(device)).float().cpu().numpy(), labels)
    model.train(was_training)
    if counter.images == 0:
        raise DatasetError("evaluation split is empty")
    accuracy = counter.result()
    return accuracy.top1, accuracy.top5


def _progress_bar(total: int, description: str, config: TrainConfig, world: _World) -> Any:
    if not (config.progress and world.is_main):
        return None
    from tqdm.auto import tqdm

    # Redraws are for terminals; a log file gets a line every 10 s instead of hundreds per epoch.
    interactive = sys.stderr.isatty()
    return tqdm(total=total, desc=description, unit="step", leave=False, dynamic_ncols=True,
                mininterval=0.1 if interactive else 10.0)


def _make_card(
    config: TrainConfig,
    source: DataSource,
    train_set: ImageSet,
    spec: PreprocessSpec,
    in_chans: int,
    model: nn.Module,
) -> ModelCard:
    return ModelCard(
        architecture=config.model,
        num_classes=source.num_classes,
        in_chans=in_chans,
        preprocessing=spec,
        class_names=list(source.class_names),
        data={"source": source.name, "train_images": len(train_set), "train_fingerprint": train_set.fingerprint()},
        training={k: v for k, v in asdict(config).items() if k not in ("output", "progress", "resume")},
        params=count_params(model),
        macs=count_macs(model, spec.input_size, in_chans),
        versions=tool_versions(),
    )


def _save_resume_state(
    output: Path, config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
    epochs_done: int, history: list[EpochMetrics],
) -> None:
    """One file holds model + optimizer + progress, so a resume never mixes two epochs' states."""
    state = {
        "epochs_done": epochs_done,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": [asdict(h) for h in history],
        "model_name": config.model,
    }
    atomic_write_with(output / RESUME_FILE, lambda tmp: torch.save(state, tmp))


def _load_resume_state(
    output: Path, config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, list[EpochMetrics]]:
    path = output / RESUME_FILE
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: {path} does not exist")
    try:
        # weights_only=True: the resume file is data, never code, even though we wrote it ourselves.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read resume state {path}: {error}") from error
    if state.get("model_name") != config.model:
        raise CheckpointError(
            f"{path} was written for {state.get('model_name')}, not {config.model}"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    history = [EpochMetrics(**h) for h in state["history"]]
    return int(state["epochs_done"]), history


def _init_distributed() -> _World:
    """Join the process group torchrun set up, or run as a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return _World(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    rank = torch.distributed.get_rank()
    device = torch.device("cpu")
    if backend == "nccl":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    # Each process gets its share of the cores; oversubscribing them makes DDP slower than one process.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", size))))
    return _World(rank=rank, size=size, device=device)
