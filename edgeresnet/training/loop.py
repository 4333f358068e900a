"""The training run: SGD with Nesterov momentum in optimizer steps, the best epoch kept, exact resume.

One function, :func:`train`, serves the CLI, the pipeline and Python users. The same code runs as a
single process or under ``torchrun`` (torch.distributed DDP: gloo on CPU, nccl on GPU). Every epoch
writes the checkpoint (the best epoch's weights so far) and a resume state atomically, so
``resume=True`` continues after the last finished epoch exactly as an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeresnet.checkpoint import ModelCard, write_checkpoint
from edgeresnet.data import DataSource, ImageSet, PreprocessSpec, open_source
from edgeresnet.environment import tool_versions
from edgeresnet.errors import DatasetError, EdgeResNetError
from edgeresnet.evaluation import AccuracyCounter, wilson_interval
from edgeresnet.models import count_macs, count_params, create_model, get_model_info, load_weights
from edgeresnet.training import dataprep, finetune, state
from edgeresnet.training.augment import augment_batch
from edgeresnet.training.config import Recipe, TrainConfig, resolve_recipe, short_run_hint
from edgeresnet.training.selection import BestEpoch, ValidationScore, choose, describe_choice
from edgeresnet.training.world import World, init_distributed, progress_bar

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, dict[str, Any]], None]


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_top1: float
    val_top1: float | None  # None without validation images
    val_loss: float | None
    lr: float  # the head's learning rate at the epoch's last step
    images_per_s: float
    seconds: float


@dataclass
class TrainResult:
    checkpoint: Path
    card: ModelCard
    history: list[EpochMetrics] = field(default_factory=list)

    @property
    def kept_epoch(self) -> int:
        return int(self.card.metrics.get("kept_epoch", len(self.history)))

    @property
    def top1(self) -> float:
        """Evaluation-split top-1 (percent) of the kept weights."""
        return float(self.card.metrics.get("top1", float("nan")))

    @property
    def top5(self) -> float:
        return float(self.card.metrics.get("top5", float("nan")))


@dataclass(frozen=True)
class _Run:
    """Everything prepared before the first step, checked before anything is written."""

    source: DataSource
    fit: ImageSet
    validation: ImageSet | None
    evaluation: ImageSet
    spec: PreprocessSpec
    in_chans: int
    recipe: Recipe
    identity: state.RunIdentity
    fine_tuning: bool
    normalisation: str
    # Fine-tuning weights whose checkpoint card names other classes (same count or not): a new head.
    new_classes: bool


def train(config: TrainConfig, *, on_epoch: ProgressCallback | None = None) -> TrainResult:
    """Train (or fine-tune) ``config.model`` on ``config.data`` and write a checkpoint directory."""
    world = init_distributed()
    try:
        output = Path(config.output)
        if config.resume:
            state.require_resume_state(output)
        # Every rank checks, so a refusal stops them all before any work; only the main rank writes,
        # so only it claims (and locks) the directory.
        state.check_output(output, overwrite=config.overwrite, resume=config.resume)
        if config.threads:
            torch.set_num_threads(config.threads)
        claim = (state.claim_output(output, overwrite=config.overwrite, resume=config.resume)
                 if world.is_main else contextlib.nullcontext(output))
        with claim:
            return _train(config, output, world, on_epoch)
    finally:
        if world.size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _prepare(config: TrainConfig, world: World) -> _Run:
    source = open_source(config.data)
    info = get_model_info(config.model)
    train_set = _limited(source.split("train"), config.train_limit, config.seed)
    dataprep.check_classes(source, train_set)
    fine_tuning = config.weights is not None
    if fine_tuning:
        pretrained = finetune.inspect_weights(config.weights)  # type: ignore[arg-type]
        in_chans, input_size = finetune.check_weights_fit(
            pretrained, model=config.model, in_chans=config.in_chans, input_size=config.input_size,
            design_size=info.input_size,
        )
    else:
        pretrained = None
        in_chans = config.in_chans or (1 if source.native_channels == "L" else 3)
        input_size = config.input_size or (source.native_size[0] if source.native_size else info.input_size)
    if input_size < 28:
        raise EdgeResNetError(f"input size must be at least 28, got {input_size}")
    spec = source.default_preprocess(input_size, channels="L" if in_chans == 1 else "RGB")
    fit, validation = dataprep.carve_validation(train_set, config.val_fraction, config.seed)
    if pretrained is not None and pretrained.preprocessing is not None \
            and pretrained.preprocessing.num_channels == spec.num_channels:
        # The pretrained layers learnt on inputs normalised this way; keep feeding them so.
        spec = dataclasses.replace(spec, mean=pretrained.preprocessing.mean, std=pretrained.preprocessing.std)
        normalisation = f"mean/std of the weights' checkpoint card ({pretrained.path})"
    elif pretrained is not None:
        normalisation = f"{source.name}'s default for pretrained weights (ImageNet statistics for natural images)"
    else:
        spec = dataprep.with_training_statistics(spec, fit, seed=config.seed)
        normalisation = f"measured on {min(dataprep.STATISTICS_IMAGES, len(fit))} training images"
    if len(fit) < world.size:
        raise DatasetError(f"training split of {source.name} has only {len(fit)} images")
    recipe = resolve_recipe(config, train_images=len(fit), world_size=world.size, fine_tuning=fine_tuning)
    identity = state.RunIdentity(config.model, tuple(source.class_names), in_chans, input_size,
                                 train_set.fingerprint(), len(train_set))
    evaluation = _limited(source.split("evaluation"), config.eval_limit, config.seed)
    new_classes = bool(pretrained and pretrained.class_names is not None
                       and list(pretrained.class_names) != list(source.class_names))
    return _Run(source, fit, validation, evaluation, spec, in_chans, recipe, identity, fine_tuning, normalisation,
                new_classes)


def _train(config: TrainConfig, output: Path, world: World, on_epoch: ProgressCallback | None) -> TrainResult:
    run = _prepare(config, world)
    recipe = run.recipe
    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=run.source.num_classes, in_chans=run.in_chans)
    _initialise(model, config, run)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(world.device, memory_format=memory_format)
    optimizer = _optimizer(model, config)

    start_epoch, history, best = 0, [], BestEpoch()
    if config.resume:
        saved = state.load_state(output, run.identity, config.epochs)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        history = [EpochMetrics(**h) for h in saved["history"]]
        best.restore(saved["best"])
        start_epoch = int(saved["epochs_done"])
        if world.is_main:
            log.info("resuming %s after epoch %d of %d", output, start_epoch, config.epochs)

    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    card = _make_card(config, run, model)
    val_labels = last = None
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        loss, top1_train, seen = _train_one_epoch(model, run, optimizer, criterion, config, world, epoch)
        elapsed = time.perf_counter() - started
        score = None
        if run.validation is not None:
            score, val_labels = _validate(model, run.validation, run.spec, config, world.device, epoch + 1)
            best.offer(score, model)
            last = score
        metrics = EpochMetrics(epoch + 1, loss, top1_train, score.top1 if score else None,
                               score.loss if score else None, recipe.head_lr((epoch + 1) * recipe.steps_per_epoch - 1),
                               seen * world.size / elapsed, elapsed)
        history.append(metrics)
        if world.is_main:
            kept_epoch = choose(best.best, last, val_labels) or epoch + 1
            kept = best.state if best.best and kept_epoch == best.best.epoch else model.state_dict()
            card.metrics = {"epoch": epoch + 1, "kept_epoch": kept_epoch, "history": [asdict(h) for h in history]}
            if epoch + 1 == config.epochs:
                card.metrics.update(_final_metrics(model, kept, run, config, world.device))
                card.metrics["selection"] = describe_choice(best.best, last, val_labels, epoch + 1)
            _write_checkpoint(output, model, kept, card)
            state.save_state(output, {
                "identity": run.identity.to_dict(), "epochs_done": epoch + 1, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "history": [asdict(h) for h in history],
                "best": best.to_record(),
            })
            if on_epoch:
                on_epoch("epoch", asdict(metrics))
        if world.size > 1:
            torch.distributed.barrier()
    if world.is_main and history:
        _hint_if_short(recipe, config, history[-1], run.source.num_classes)
    return TrainResult(output, card, history)


def _hint_if_short(recipe: Recipe, config: TrainConfig, final: EpochMetrics, classes: int) -> None:
    """After the run, on what it measured: a short run that reached a useful accuracy gets no hint."""
    validated = final.val_top1 is not None
    hint = short_run_hint(recipe.total_steps, config.epochs, final.val_top1 if validated else final.train_top1,
                          classes, measured_on="validation" if validated else "training")
    if hint:
        log.warning(hint)


def _initialise(model: nn.Module, config: TrainConfig, run: _Run) -> None:
    """A new head starts at zero, so the first loss is exactly ln(classes) and the first steps cannot
    blow up. (Zeroing the residual branches as well was tried: on 500 Fashion-MNIST images it cost
    35 points in 10 epochs, because so few steps never grow them back.)"""
    if config.resume:
        return  # the state file replaces every weight
    if config.weights:
        report = load_weights(model, config.weights)  # logs a re-initialised head itself
        if report.head_reinitialised or run.new_classes:
            if run.new_classes and not report.head_reinitialised:
                log.info("classifier head re-initialised: the weights were trained for other classes")
            finetune.reset_head_to_zero(model)
        return
    finetune.reset_head_to_zero(model)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Four groups: pretrained/head × decayed/not. Biases and BatchNorm parameters get no weight decay:
    decaying them only costs accuracy. ``role`` tells the schedule which learning rate a group follows."""
    backbone, head = finetune.split_head(model)
    groups = []
    for role, parameters in (("backbone", backbone), ("head", head)):
        decay = [p for p in parameters if p.ndim > 1]
        plain = [p for p in parameters if p.ndim <= 1]
        groups += [{"params": decay, "weight_decay": config.weight_decay, "role": role},
                   {"params": plain, "weight_decay": 0.0, "role": role}]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=0.0, momentum=config.momentum, nesterov=True)


def _train_one_epoch(
    model: nn.Module, run: _Run, optimizer: torch.optim.Optimizer, criterion: nn.Module,
    config: TrainConfig, world: World, epoch: int,
) -> tuple[float, float, int]:
    recipe = run.recipe
    frozen = epoch < recipe.freeze_epochs
    finetune.set_phase(model, backbone_frozen=frozen, frozen_batchnorm=recipe.frozen_batchnorm)
    step_model: nn.Module = model
    if world.size > 1:  # rebuilt per epoch: DDP fixes the set of trained parameters when it is built
        step_model = nn.parallel.DistributedDataParallel(model)
    # The same permutation on every rank (seeded by epoch), each rank taking its own shard; equal shards,
    # because DDP deadlocks if one rank runs a step more than another.
    order = np.random.default_rng(config.seed + epoch).permutation(len(run.fit))
    order = order[: len(order) - len(order) % world.size]
    shard = run.fit.subset(order[world.rank :: world.size])
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch * 10 + world.rank)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    total_loss = correct = seen = 0
    progress = progress_bar(recipe.steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", config.progress, world)
    started = time.perf_counter()
    # Full batches only: a last batch of one image would make BatchNorm's batch statistics meaningless.
    batches = shard.batches(run.spec, recipe.batch_size, drop_last=len(shard) >= recipe.batch_size)
    for step_in_epoch, (images, labels) in enumerate(batches):
        step = epoch * recipe.steps_per_epoch + min(step_in_epoch, recipe.steps_per_epoch - 1)
        for group in optimizer.param_groups:
            group["lr"] = recipe.backbone_lr(step) if group["role"] == "backbone" else recipe.head_lr(step)
        batch = augment_batch(torch.from_numpy(images), generator, mode=recipe.augment)
        batch = batch.to(world.device, memory_format=memory_format)
        target = torch.from_numpy(labels).to(world.device)
        logits = step_model(batch)
        loss = criterion(logits, target)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise EdgeResNetError(f"training diverged at epoch {epoch + 1}, step {step_in_epoch + 1}: the loss is "
                                  f"{value} (learning rate {recipe.head_lr(step):.3g}); lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += value * len(labels)
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


@torch.no_grad()
def _validate(
    model: nn.Module, images: ImageSet, spec: PreprocessSpec, config: TrainConfig, device: torch.device, epoch: int
) -> tuple[ValidationScore, np.ndarray]:
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for batch, batch_labels in images.batches(spec, config.eval_batch_size):
        logits.append(model(torch.from_numpy(batch).to(device)).float().cpu())
        labels.append(batch_labels)
    model.train(was_training)
    if not logits:
        raise DatasetError(f"no validation image of {images.name} could be decoded")
    all_logits, all_labels = torch.cat(logits), np.concatenate(labels)
    loss = float(nn.functional.cross_entropy(all_logits, torch.from_numpy(all_labels)))
    top1 = 100.0 * float((all_logits.argmax(1).numpy() == all_labels).mean())
    return ValidationScore(epoch, top1, loss, len(all_labels), all_logits.numpy()), all_labels


def _final_metrics(
    model: nn.Module, kept: dict[str, torch.Tensor], run: _Run, config: TrainConfig, device: torch.device
) -> dict[str, Any]:
    """Evaluation-split accuracy of the kept weights (the only time the evaluation split is used)."""
    current = {key: value.detach().clone() for key, value in model.state_dict().items()}
    model.load_state_dict(kept)
    top1, top5 = evaluate(model, run.evaluation, run.spec, batch_size=config.eval_batch_size, device=device)
    model.load_state_dict(current)
    images = len(run.evaluation) - run.evaluation.skipped
    low, high = wilson_interval(round(top1 * images / 100), images)
    return {"top1": top1, "top5": top5, "top1_ci95": [round(low, 2), round(high, 2)], "eval_images": images}


def _write_checkpoint(output: Path, model: nn.Module, kept: dict[str, torch.Tensor], card: ModelCard) -> None:
    current = {key: value.detach().clone() for key, value in model.state_dict().items()}
    model.load_state_dict(kept)
    try:
        write_checkpoint(output, model, card)
    finally:
        model.load_state_dict(current)


@torch.no_grad()
def evaluate(
    model: nn.Module, images: ImageSet, spec: PreprocessSpec, *, batch_size: int = 500,
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


def _limited(images: ImageSet, limit: int | None, seed: int) -> ImageSet:
    """A class-balanced subset for quick runs and tests; the whole split when no limit is given."""
    if limit is None or limit >= len(images):
        return images
    return images.balanced_sample(limit, seed=seed)


def _make_card(config: TrainConfig, run: _Run, model: nn.Module) -> ModelCard:
    skip = ("output", "progress", "resume", "overwrite")
    return ModelCard(
        architecture=config.model,
        num_classes=run.source.num_classes,
        in_chans=run.in_chans,
        preprocessing=run.spec,
        class_names=list(run.source.class_names),
        data={"source": run.source.name, "train_images": len(run.fit),
              "validation_images": len(run.validation) if run.validation is not None else 0,
              "evaluation_images": len(run.evaluation), "train_fingerprint": run.identity.train_fingerprint,
              "normalisation": run.normalisation},
        training={**{k: v for k, v in asdict(config).items() if k not in skip}, "recipe": run.recipe.to_dict(),
                  "fine_tuning": run.fine_tuning},
        params=count_params(model),
        macs=count_macs(model, run.spec.input_size, run.in_chans),
        versions=tool_versions(),
    )


