"""Resume continues exactly; the kept epoch is chosen on validation images and the card says why."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from edgeresnet.training import TrainJob, train
from edgeresnet.training.dataprep import carve_validation
from edgeresnet.training.selection import ValidationScore, choose, describe_choice

TINY = {"train_limit": 192, "eval_limit": 100, "batch_size": 32, "threads": 1, "progress": False}


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, fashion_mnist) -> None:
    straight = train(TrainJob(data=fashion_mnist, output=str(tmp_path / "straight"), epochs=2, **TINY))

    class Killed(Exception):
        pass

    def kill_after_first_epoch(_: str, metrics: dict) -> None:
        raise Killed  # what a kill leaves: epoch 1's checkpoint and state, written before the callback

    with pytest.raises(Killed):
        train(TrainJob(data=fashion_mnist, output=str(tmp_path / "split"), epochs=2, **TINY),
              on_epoch=kill_after_first_epoch)
    resumed = train(TrainJob(data=fashion_mnist, output=str(tmp_path / "split"), epochs=2, resume=True, **TINY))
    a = torch.load(tmp_path / "straight" / "train_state.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "train_state.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert [h.train_loss for h in straight.history] == [h.train_loss for h in resumed.history]
    kept_a = load_file(tmp_path / "straight" / "model.safetensors")
    kept_b = load_file(tmp_path / "split" / "model.safetensors")
    assert all(torch.equal(kept_a[key], kept_b[key]) for key in kept_a)


def test_card_records_the_kept_epoch_its_evidence_and_the_recipe(tmp_path, fashion_mnist) -> None:
    result = train(TrainJob(data=fashion_mnist, output=str(tmp_path / "run"), epochs=3, **TINY))
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    selection = card["metrics"]["selection"]
    val_scores = [h["val_top1"] for h in card["metrics"]["history"]]
    assert selection["kept_epoch"] == result.kept_epoch == card["metrics"]["kept_epoch"]
    assert val_scores[selection["best"]["epoch"] - 1] == max(val_scores)
    assert selection["best"]["images"] == card["data"]["validation_images"] > 0
    low, high = selection["best"]["top1_ci95"]
    assert low <= selection["best"]["top1"] <= high and "why" in selection
    assert card["training"]["recipe"]["batch_size"] == 32 and card["training"]["recipe"]["warmup_steps"] >= 1
    low, high = card["metrics"]["top1_ci95"]
    assert low <= card["metrics"]["top1"] <= high and card["metrics"]["eval_images"] == 100
    # The mean/std come from the training images, not a constant: Fashion-MNIST's are about 0.29/0.35.
    assert abs(card["preprocessing"]["mean"][0] - 0.286) < 0.03 and abs(card["preprocessing"]["std"][0] - 0.353) < 0.03
    assert card["preprocessing"]["mean"][0] != 0.2860 or card["preprocessing"]["std"][0] != 0.3530


def test_first_epoch_loss_starts_at_uniform_guessing(tmp_path, fashion_mnist) -> None:
    result = train(TrainJob(data=fashion_mnist, output=str(tmp_path / "run"), epochs=1, **TINY))
    assert result.history[0].train_loss <= math.log(10) + 0.05


def test_validation_images_come_from_the_training_split_only(fashion_mnist) -> None:
    from edgeresnet.data import open_source

    source = open_source(fashion_mnist)
    train_set = source.split("train").balanced_sample(500)
    fit, validation = carve_validation(train_set, 0.1)
    assert validation is not None and len(fit) + len(validation) == 500
    assert set(fit.item_ids.tolist()).isdisjoint(validation.item_ids.tolist())
    assert set(validation.item_ids.tolist()) <= set(train_set.item_ids.tolist())
    assert (validation.labels[:, None] == range(10)).sum(axis=0).min() >= 1  # every class is validated


def _score(epoch: int, correct: np.ndarray, loss: float = 1.0) -> ValidationScore:
    logits = np.zeros((len(correct), 2))
    logits[np.arange(len(correct)), np.where(correct, 0, 1)] = 1.0  # label 0 everywhere
    return ValidationScore(epoch, 100.0 * correct.mean(), loss, len(correct), logits)


def test_an_earlier_epoch_is_kept_only_when_the_validation_images_resolve_it() -> None:
    labels = np.zeros(100, dtype=np.int64)
    last = _score(5, np.arange(100) < 58)
    slightly_better = _score(3, np.arange(100) < 61)  # 3 discordant images: noise
    assert choose(slightly_better, last, labels) == 5
    assert "not resolved" in describe_choice(slightly_better, last, labels, 5)["why"]
    much_better = _score(3, np.arange(100) < 90)  # 32 images right only at epoch 3
    assert choose(much_better, last, labels) == 3
    assert describe_choice(much_better, last, labels, 5)["kept_epoch"] == 3
    assert choose(None, None, None) is None
