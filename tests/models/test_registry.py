"""The registry's facts: names, golden parameter counts, MACs, key layouts, lookups and overrides."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import edgeresnet
from edgeresnet.errors import EdgeResNetError, ModelConfigError, UnknownModelError
from edgeresnet.models import (
    FAMILIES,
    ResNet,
    count_macs,
    count_params,
    create_model,
    get_model_config,
    get_model_info,
    list_models,
    model_names,
)

# torchvision's and timm's published parameter counts (1000 classes) and the CIFAR paper nets (10 classes).
GOLDEN_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnet18d": 11_708_744,
    "resnet50d": 25_576_264,
    "seresnet50": 28_088_024,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
}


def meta_model(name: str, **overrides: object) -> ResNet:
    config = get_model_config(name).replace(**overrides)
    with torch.device("meta"):
        return ResNet(config, name=name)


@pytest.mark.parametrize("name", sorted(GOLDEN_PARAMS))
def test_golden_parameter_counts(name: str) -> None:
    assert get_model_info(name).params == GOLDEN_PARAMS[name]


def test_cifar_paper_counts_match_the_paper_rounding() -> None:
    paper_millions = {
        "resnet20": 0.27,
        "resnet32": 0.46,
        "resnet44": 0.66,
        "resnet56": 0.85,
        "resnet110": 1.7,
    }
    for name, millions in paper_millions.items():
        assert round(get_model_info(name).params / 1e6, 2 if millions < 1 else 1) == millions


def test_macs_match_the_published_figures() -> None:
    assert get_model_info("resnet50").macs / 1e9 == pytest.approx(4.09, abs=0.01)
    assert get_model_info("resnet18").macs / 1e9 == pytest.approx(1.82, abs=0.01)
    assert get_model_info("resnet20").macs / 1e6 == pytest.approx(40.55, abs=0.1)


def test_meta_count_equals_real_count() -> None:
    # The meta path replaces slow ops by shape formulas; a real forward must agree exactly.
    for name, size in (("resnet20", 33), ("seresnet50", 64), ("resnet18d", 45)):
        real = create_model(name, num_classes=10)
        assert count_macs(real, size) == count_macs(meta_model(name, num_classes=10), size)
        assert count_params(real) == count_params(meta_model(name, num_classes=10))


def test_count_macs_accepts_height_width_and_channels() -> None:
    model = meta_model("resnet20")
    assert count_macs(model, (32, 32), in_chans=3) == count_macs(model, 32)
    gray = meta_model("resnet20", in_chans=1)
    assert count_macs(gray, 32, in_chans=1) < count_macs(model, 32)
    with pytest.raises(ModelConfigError, match="does not fit"):
        count_macs(model, 32, in_chans=1)


def test_list_models_is_complete_cached_and_serialisable() -> None:
    infos = list_models()
    assert [info.name for info in infos] == model_names()
    assert len(infos) == 21
    assert {info.family for info in infos} == set(FAMILIES)
    assert list_models()[0] is infos[0]
    record = infos[0].to_dict()
    assert set(record) == {"name", "family", "params", "macs", "input_size", "description", "num_classes"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        infos[0].params = 1  # type: ignore[misc]
    cifar = {info.name: info for info in infos if info.input_size == 32}
    assert set(cifar) >= {"resnet20", "resnet1202", "preact_resnet110"}
    assert {"preact_resnet18", "preact_resnet50"}.isdisjoint(cifar)  # ResNet v2 at ImageNet scale
    assert all(info.num_classes == 10 for info in cifar.values())
    assert edgeresnet.list_models() == infos


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownModelError) as caught:
        create_model("resnet5O")
    message = str(caught.value)
    assert message.startswith("unknown model 'resnet5O'; did you mean resnet50,")
    assert isinstance(caught.value, EdgeResNetError) and isinstance(caught.value, KeyError)
    with pytest.raises(UnknownModelError, match="unknown model 'vgg16'"):
        get_model_info("vgg16")


def test_torchvision_key_layout() -> None:
    state = meta_model("resnet50").state_dict()
    assert len(state) == 320  # torchvision resnet50().state_dict() has 320 entries
    for key in (
        "conv1.weight",
        "bn1.running_mean",
        "bn1.num_batches_tracked",
        "layer1.0.conv1.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_var",
        "layer2.0.downsample.0.weight",
        "layer4.2.bn3.weight",
        "fc.weight",
        "fc.bias",
    ):
        assert key in state, key
    assert tuple(state["layer2.0.conv2.weight"].shape) == (128, 128, 3, 3)  # stride on the 3×3 (v1.5)
    resnet18 = meta_model("resnet18").state_dict()
    assert len(resnet18) == 122
    assert "layer1.0.downsample.0.weight" not in resnet18
    assert tuple(meta_model("resnext50_32x4d").state_dict()["layer1.0.conv2.weight"].shape) == (128, 4, 3, 3)
    assert tuple(meta_model("wide_resnet50_2").state_dict()["layer1.0.conv2.weight"].shape) == (
        128,
        128,
        3,
        3,
    )


def test_timm_key_layout() -> None:
    state = meta_model("resnet50d").state_dict()
    for key in (
        "conv1.0.weight",
        "conv1.1.weight",
        "conv1.3.weight",
        "conv1.4.running_var",
        "conv1.6.weight",
    ):
        assert key in state, key
    assert tuple(state["conv1.0.weight"].shape) == (32, 3, 3, 3)
    assert tuple(state["bn1.weight"].shape) == (64,)
    # avg_down: pool at index 0 (Identity in the stride-1 first stage), conv at 1, BN at 2.
    assert tuple(state["layer1.0.downsample.1.weight"].shape) == (256, 64, 1, 1)
    assert tuple(state["layer2.0.downsample.1.weight"].shape) == (512, 256, 1, 1)
    assert "layer2.0.downsample.2.running_mean" in state
    assert not any(key.startswith("layer2.0.downsample.0.") for key in state)
    se = meta_model("seresnet50").state_dict()
    assert tuple(se["layer1.0.se.fc1.weight"].shape) == (16, 256, 1, 1)
    assert tuple(se["layer1.0.se.fc1.bias"].shape) == (16,)
    assert tuple(se["layer4.2.se.fc2.weight"].shape) == (2048, 128, 1, 1)


def test_cifar_nets_use_parameter_free_shortcuts() -> None:
    state = meta_model("resnet20").state_dict()
    assert not any("downsample" in key for key in state)
    assert tuple(state["conv1.weight"].shape) == (16, 3, 3, 3)
    assert tuple(state["fc.weight"].shape) == (10, 64)


def test_create_model_applies_arguments_and_overrides() -> None:
    model = create_model("resnet20", num_classes=7, in_chans=1, shortcut="B", zero_init_last_bn=True)
    assert model.name == "resnet20"
    assert model.config.num_classes == 7 and model.config.in_chans == 1 and model.config.shortcut == "B"
    assert model.fc.out_features == 7 and model.conv1.in_channels == 1
    assert isinstance(edgeresnet.create_model("resnet20", num_classes=3), ResNet)


def test_unknown_override_is_a_config_error() -> None:
    with pytest.raises(ModelConfigError, match="did you mean 'shortcut'"):
        create_model("resnet20", shortcuts="C")
