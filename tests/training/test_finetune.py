"""Fine-tuning: the head trains alone first, BatchNorm statistics survive, the weights must fit the data."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from edgeresnet.errors import WeightsError
from edgeresnet.training import TrainJob, train
from edgeresnet.training.finetune import HEAD, check_weights_fit, inspect_weights, set_phase

TINY = {"train_limit": 128, "eval_limit": 50, "batch_size": 32, "threads": 1, "progress": False}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, fashion_mnist) -> str:
    output = tmp_path_factory.mktemp("pre") / "r20"
    train(TrainJob(data=fashion_mnist, output=str(output), epochs=1, **TINY))
    return str(output / "model.safetensors")


def test_freeze_epoch_trains_only_the_head_and_keeps_batchnorm_statistics(tmp_path, fashion_mnist, pretrained):
    output = tmp_path / "ft"
    # 3 epochs, 1 frozen; the state after the frozen epoch is what a kill after epoch 1 leaves.
    config = TrainJob(data=fashion_mnist, output=str(output), epochs=3, weights=pretrained, freeze_epochs=1,
                         val_fraction=0.0, seed=1, **TINY)

    def stop(_: str, metrics: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, on_epoch=stop)
    before = load_file(pretrained)
    after = torch.load(output / "train_state.pt", weights_only=True)["model"]
    changed = {key for key in before if not torch.equal(before[key], after[key]) and "num_batches" not in key}
    assert changed == {f"{HEAD}.weight", f"{HEAD}.bias"}  # running means/vars included: BN stayed frozen
    result = train(TrainJob(**{**config.__dict__, "resume": True}))
    final = torch.load(output / "train_state.pt", weights_only=True)["model"]
    assert not torch.equal(final["conv1.weight"], before["conv1.weight"])  # unfrozen afterwards
    assert result.card.training["recipe"]["freeze_epochs"] == 1 and result.card.training["fine_tuning"]
    # The weights' own normalisation is kept (read from their checkpoint card).
    assert result.card.preprocessing.mean == inspect_weights(pretrained).preprocessing.mean


def test_frozen_batchnorm_mode_keeps_running_statistics_while_training() -> None:
    from edgeresnet.models import create_model

    model = create_model("resnet20", num_classes=10, in_chans=1)
    set_phase(model, backbone_frozen=False, frozen_batchnorm=True)
    mean = model.bn1.running_mean.clone()
    model(torch.randn(4, 1, 28, 28) * 3 + 2).sum().backward()
    assert torch.equal(model.bn1.running_mean, mean) and model.conv1.weight.grad is not None


def test_weights_that_do_not_fit_the_data_are_refused(pretrained) -> None:
    weights = inspect_weights(pretrained)
    assert weights.in_chans == 1 and weights.input_size == 28
    with pytest.raises(WeightsError, match="1-channel input"):
        check_weights_fit(weights, model="resnet20", in_chans=3, input_size=None, design_size=32)
    with pytest.raises(WeightsError, match="trained at 28×28"):
        check_weights_fit(weights, model="resnet20", in_chans=None, input_size=224, design_size=32)
    with pytest.raises(WeightsError, match="resnet20 checkpoint"):
        check_weights_fit(weights, model="resnet32", in_chans=None, input_size=None, design_size=32)
    assert check_weights_fit(weights, model="resnet20", in_chans=None, input_size=None, design_size=32) == (1, 28)
