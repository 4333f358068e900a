"""The ResNet class: every registered model runs; config options behave as documented."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeresnet.errors import ModelConfigError
from edgeresnet.models import ResNet, ResNetConfig, count_params, create_model, get_model_info, model_names

# Building (not running) the largest nets on CPU costs seconds of random init; their code paths are the
# same as the smaller nets of their block type, so they are checked for shapes on the meta device.
HEAVY = {
    name for name in model_names() if get_model_info(name).params > 30e6 or get_model_info(name).macs > 2.5e9
}


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_classifies(name: str) -> None:
    if name in HEAVY:
        with torch.device("meta"):
            model = create_model(name, num_classes=5)
        logits = model.eval()(torch.empty(1, 3, 32, 32, device="meta"))
    else:
        torch.manual_seed(0)
        model = create_model(name, num_classes=5).eval()
        with torch.no_grad():
            logits = model(torch.randn(2, 3, 32, 32))
        assert torch.isfinite(logits).all()
    assert logits.shape[-1] == 5
    assert model.name == name


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("resnet20", 28),
        ("resnet20", 33),
        ("resnet18", 28),
        ("resnet50d", 33),
        ("preact_resnet18", 33),
        ("resnet20", 64),
    ],
)
def test_grayscale_and_odd_input_sizes(name: str, size: int) -> None:
    model = create_model(name, num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 1, size, size))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


def test_shortcut_options_keep_shapes_and_order_parameters() -> None:
    x = torch.randn(2, 3, 32, 32)
    params = {}
    for option in ("A", "B", "C"):
        model = create_model("resnet20", num_classes=10, shortcut=option).eval()
        with torch.no_grad():
            assert model(x).shape == (2, 10)
        params[option] = count_params(model)
    assert params["A"] < params["B"] < params["C"]
    option_c = create_model("resnet20", shortcut="C")
    assert all(isinstance(block.downsample, nn.Sequential) for stage in (option_c.layer1,) for block in stage)
    option_a = create_model("resnet20", shortcut="A")
    assert not any("downsample" in name for name, _ in option_a.named_parameters())


def test_option_a_pads_zero_channels_and_subsamples() -> None:
    model = create_model("resnet20", num_classes=10)
    shortcut = model.layer2[0].downsample
    x = torch.randn(1, 16, 9, 9)
    out = shortcut(x)
    assert out.shape == (1, 32, 5, 5)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_zero_init_last_bn_starts_blocks_as_identity() -> None:
    for name in ("resnet18", "resnet50", "preact_resnet18"):
        model = create_model(name, num_classes=10, zero_init_last_bn=True).eval()
        block = model.layer2[1]  # identity shortcut
        x = torch.rand(1, block.conv1.in_channels, 8, 8)  # ≥ 0, so the closing ReLU is an identity too
        with torch.no_grad():
            assert torch.allclose(block(x), x), name


def test_se_and_groups_follow_the_config() -> None:
    model = create_model("resnet18", num_classes=10, se_ratio=0.25)
    assert model.layer1[0].se.fc1.out_channels == 16
    grouped = create_model("resnet50", num_classes=10, groups=2, width_per_group=32)
    assert grouped.layer1[0].conv2.groups == 2


def test_reset_classifier_updates_the_config() -> None:
    model = create_model("resnet20", num_classes=10)
    model.reset_classifier(4)
    assert model.fc.out_features == 4 and model.config.num_classes == 4
    with pytest.raises(ModelConfigError):
        model.reset_classifier(0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"block": "Basic"}, "block must be one of"),
        ({"stem": "deep_tiered"}, "stem must be one of"),
        ({"shortcut": "D"}, "shortcut must be one of"),
        ({"depths": ()}, "at least one stage"),
        ({"depths": (2, 2)}, "one entry per stage"),
        ({"depths": (2, 0, 2)}, "positive integer"),
        ({"groups": 4}, "no grouped conv"),
        ({"num_classes": True}, "positive integer"),
        ({"avg_down": "yes"}, "true or false"),
        ({"se_ratio": 1.5}, "se_ratio"),
        ({"shortcut": "A", "avg_down": True}, "avg_down"),
        ({"shortcut": "A", "widths": (16, 8, 64)}, "cannot reduce channels"),
        ({"stem": "deep", "stem_width": 15}, "even"),
    ],
)
def test_invalid_configs_are_rejected(changes: dict[str, object], message: str) -> None:
    base = ResNetConfig(block="basic", depths=(1, 1, 1), widths=(16, 32, 64), stem="cifar", stem_width=16)
    with pytest.raises(ModelConfigError, match=message):
        base.replace(**changes)


def test_config_round_trips_through_a_dict() -> None:
    config = create_model("resnet50d", num_classes=3).config
    record = config.to_dict()
    assert record["depths"] == [3, 4, 6, 3]
    assert ResNetConfig.from_dict(record) == config
    with pytest.raises(ModelConfigError, match="unknown ResNet config field"):
        ResNetConfig.from_dict({**record, "dropout": 0.1})


def test_custom_config_builds_without_the_registry() -> None:
    config = ResNetConfig(
        block="preact_bottleneck", depths=(1, 1), widths=(8, 16), stem="cifar", stem_width=16
    )
    model = ResNet(config, name="tiny").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 28, 28)).shape == (1, 1000)
