"""The default recipe: resolved from the data in optimizer steps, and refusing non-finite numbers."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from edgeresnet.cli import cli
from edgeresnet.errors import EdgeResNetError
from edgeresnet.training.config import TrainJob, auto_batch_size, resolve_recipe


@pytest.mark.parametrize(("images", "batch"), [(300, 32), (1_100, 32), (5_000, 64), (1_281_167, 128)])
def test_batch_size_follows_the_data(images: int, batch: int) -> None:
    assert auto_batch_size(images) == batch


@pytest.mark.parametrize("images", [300, 1_100, 55_000, 1_281_167])
def test_learning_rate_scales_with_the_batch_and_warm_up_is_counted_in_steps(images: int) -> None:
    recipe = resolve_recipe(TrainJob(epochs=15), train_images=images)
    assert recipe.lr == pytest.approx(0.4 * recipe.batch_size / 256)
    assert recipe.steps_per_epoch == images // recipe.batch_size
    assert recipe.warmup_steps == min(recipe.total_steps, max(10, round(0.1 * recipe.total_steps)))
    # The first step is a small fraction of the peak whatever the data size: the start cannot jump.
    assert recipe.head_lr(0) <= 0.1 * recipe.lr
    assert recipe.head_lr(recipe.warmup_steps - 1) == pytest.approx(recipe.lr)
    assert recipe.head_lr(recipe.total_steps) == pytest.approx(0.0, abs=1e-12)


def test_an_explicit_batch_larger_than_the_data_is_clamped() -> None:
    recipe = resolve_recipe(TrainJob(batch_size=128), train_images=50)
    assert recipe.batch_size == 50 and recipe.steps_per_epoch == 1


def test_fine_tuning_freezes_the_backbone_first_then_rewarms_it_at_a_lower_rate() -> None:
    recipe = resolve_recipe(TrainJob(epochs=10, weights="w.safetensors"), train_images=1_000, fine_tuning=True)
    assert recipe.freeze_epochs == 1 and recipe.backbone_lr_scale == pytest.approx(0.75)
    first_free = recipe.freeze_steps
    assert recipe.backbone_lr(first_free - 1) == 0.0
    assert 0.0 < recipe.backbone_lr(first_free) < 0.75 * recipe.head_lr(first_free)
    later = first_free + recipe.warmup_steps
    assert recipe.backbone_lr(later) == pytest.approx(0.75 * recipe.head_lr(later))
    small = resolve_recipe(TrainJob(epochs=10, batch_size=8, weights="w"), train_images=1_000, fine_tuning=True)
    assert small.frozen_batchnorm and not recipe.frozen_batchnorm


@pytest.mark.parametrize("field", ["lr", "weight_decay", "label_smoothing"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(field: str, value: float) -> None:
    with pytest.raises(EdgeResNetError, match=field):
        TrainJob(**{field: value})


@pytest.mark.parametrize(("option", "value"), [("--lr", "nan"), ("--weight-decay", "inf"),
                                               ("--label-smoothing", "nan"), ("--lr", "-inf")])
def test_non_finite_numbers_are_one_line_errors(tmp_path, option: str, value: str) -> None:
    output = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--output", str(output), option, value])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1
    assert "finite" in result.output and not output.exists()


def test_freeze_epochs_need_weights_and_a_later_epoch() -> None:
    with pytest.raises(EdgeResNetError, match="needs --weights"):
        TrainJob(freeze_epochs=1, epochs=3)
    with pytest.raises(EdgeResNetError, match="leaves no epoch"):
        TrainJob(freeze_epochs=2, epochs=2, weights="w.safetensors")


def test_augmentation_is_shifts_once_images_are_seen_repeatedly_and_never_flips_by_default() -> None:
    assert resolve_recipe(TrainJob(epochs=15), train_images=500).augment == "shift"
    assert resolve_recipe(TrainJob(epochs=2), train_images=55_000).augment == "none"
    assert resolve_recipe(TrainJob(epochs=2, augment="shift"), train_images=55_000).augment == "shift"
    assert resolve_recipe(TrainJob(epochs=90, augment="flip"), train_images=10**6).augment == "flip"
