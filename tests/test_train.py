"""Training: learning happens on real data, fine-tuning reports the head, DDP runs on two processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgeresnet.checkpoint import load_checkpoint, read_card
from edgeresnet.training import TrainJob, train


def test_tiny_training_learns(tiny_checkpoint: Path) -> None:
    card = read_card(tiny_checkpoint)
    # 56 steps on 1,800 images: far above the 10% of guessing (50% of 200 images is p < 1e-9 by chance),
    # far below a full run.
    assert card.metrics["top1"] > 50.0
    assert card.metrics["selection"]["kept_epoch"] in (1, 2) and card.data["validation_images"] == 200
    model, card = load_checkpoint(tiny_checkpoint)
    assert card.params == sum(p.numel() for p in model.parameters())
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_fine_tune_from_weights_reinitialises_the_head(tmp_path, fashion_mnist, caplog) -> None:
    from edgeresnet.models import create_model, save_weights

    weights = tmp_path / "r20_100.safetensors"
    save_weights(create_model("resnet20", num_classes=100, in_chans=1), weights)
    with caplog.at_level("INFO"):
        result = train(TrainJob(model="resnet20", data=fashion_mnist, output=str(tmp_path / "ft"),
                                   weights=str(weights), in_chans=1, epochs=1, train_limit=128,
                                   eval_limit=50, batch_size=64, progress=False))
    assert "re-initialised" in caplog.text
    assert result.card.num_classes == 10


@pytest.mark.slow
def test_two_process_ddp_step(tmp_path, fashion_mnist) -> None:
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not found beside the interpreter")
    output = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "edgeresnet", "train",
         "--model", "resnet20", "--data", fashion_mnist, "--output", str(output), "--epochs", "1",
         "--train-limit", "256", "--eval-limit", "50", "--batch-size", "32", "--no-progress"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((output / "card.json").read_text())
    assert card["metrics"]["epoch"] == 1


def test_weights_that_do_not_match_the_card_are_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from edgeresnet.errors import CheckpointError
    from edgeresnet.models import create_model, save_weights

    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, copy)
    # What a crash between the two writes leaves: the next epoch's weights beside the last card.
    save_weights(create_model("resnet20", num_classes=10, in_chans=1), copy / "model.safetensors")
    with pytest.raises(CheckpointError, match="does not match card.json"):
        load_checkpoint(copy)


def test_the_old_import_path_still_gives_the_training_package_and_the_api_function_survives_it() -> None:
    import edgeresnet
    import edgeresnet.training
    from edgeresnet.train import TrainJob as OldPath

    assert OldPath is edgeresnet.training.TrainJob
    assert callable(edgeresnet.train) and edgeresnet.train.__module__ == "edgeresnet.api"
