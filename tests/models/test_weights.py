"""Weights I/O: round trips, wrappers, refusal of pickled code, head re-initialisation, mismatch errors."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from edgeresnet.errors import WeightsError
from edgeresnet.models import ResNet, create_model, load_weights, read_state_dict, save_weights


def trained_like(name: str = "resnet20", **kwargs: object) -> ResNet:
    """A model whose BN statistics differ from a fresh one, so a round trip must really carry them."""
    torch.manual_seed(1)
    model = create_model(name, **kwargs)
    with torch.no_grad():
        model.train()(torch.randn(4, model.config.in_chans, 32, 32))
    return model.eval()


def logits(model: ResNet) -> torch.Tensor:
    torch.manual_seed(2)
    with torch.no_grad():
        return model.eval()(torch.randn(2, model.config.in_chans, 32, 32))


class _TouchOnUnpickle:
    """Unpickling this calls open(marker, 'w'): proof that the loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_safetensors_round_trip_is_exact(tmp_path: Path) -> None:
    source = trained_like(num_classes=10)
    path = save_weights(source, tmp_path / "w.safetensors", metadata={"note": "test"})
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary file left behind
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == {"format": "pt", "architecture": "resnet20", "note": "test"}
    target = create_model("resnet20", num_classes=10)
    assert not torch.equal(logits(target), logits(source))
    report = load_weights(target, path)
    assert torch.equal(logits(target), logits(source))
    assert (
        report.loaded == len(source.state_dict()) and not report.head_reinitialised and report.message == ""
    )


def test_torch_file_with_wrapper_and_module_prefix(tmp_path: Path) -> None:
    source = trained_like(num_classes=10)
    wrapped = {f"module.{key}": value for key, value in source.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": wrapped, "epoch": 3}, path)
    assert set(read_state_dict(path)) == set(source.state_dict())
    target = create_model("resnet20", num_classes=10, weights=str(path))
    assert torch.equal(logits(target), logits(source))


def test_missing_num_batches_tracked_is_tolerated() -> None:
    source = trained_like(num_classes=10)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    target = create_model("resnet20", num_classes=10)
    load_weights(target, state)
    assert torch.equal(logits(target), logits(source))


def test_pickled_code_is_refused_without_running_it(tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_TouchOnUnpickle(proof)))
    assert proof.exists()  # the payload is live: plain unpickling executes it
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _TouchOnUnpickle(marker)}, path)
    with pytest.raises(WeightsError) as caught:
        read_state_dict(path)
    assert not marker.exists()
    message = str(caught.value)
    assert "refused" in message and "not executed" in message and "\n" not in message


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("garbage.pth", b"not a checkpoint at all", "cannot read"),
        ("garbage.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}", "cannot read"),
        ("weights.onnx", b"", "unsupported weights file"),
    ],
)
def test_unreadable_files(tmp_path: Path, filename: str, content: bytes, message: str) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        read_state_dict(path)


def test_missing_file_and_non_tensor_entries(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        read_state_dict(tmp_path / "absent.safetensors")
    path = tmp_path / "mixed.pt"
    torch.save({"conv1.weight": torch.zeros(1), "epoch": 3}, path)
    with pytest.raises(WeightsError, match="'epoch' is a int, not a tensor"):
        read_state_dict(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(WeightsError, match="not a state dict"):
        read_state_dict(path)


def test_classifier_head_of_another_size_is_reinitialised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = trained_like(num_classes=1000)
    path = save_weights(source, tmp_path / "imagenet.safetensors")
    target = create_model("resnet20", num_classes=10)
    with caplog.at_level(logging.INFO, logger="edgeresnet.models"):
        report = load_weights(target, path)
    expected = "classifier head fc: 1000 → 10 classes, re-initialised for fine-tuning"
    assert report.head_reinitialised and report.message == expected
    assert expected in caplog.text
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert torch.equal(target.layer3[2].bn2.running_var, source.layer3[2].bn2.running_var)
    assert target.fc.weight.shape == (10, 64)


def test_other_architecture_is_rejected_with_the_keys(tmp_path: Path) -> None:
    path = save_weights(trained_like(num_classes=10), tmp_path / "r20.safetensors")
    deeper = create_model("resnet32", num_classes=10)
    with pytest.raises(WeightsError) as caught:
        load_weights(deeper, path)
    message = str(caught.value)
    assert "do not fit resnet32" in message
    assert "60 missing (layer1.3.conv1.weight, layer1.3.bn1.weight" in message and "… 55 more" in message
    projected = create_model("resnet20", num_classes=10, shortcut="C")
    with pytest.raises(WeightsError, match=r"missing \(layer1\.0\.downsample\.0\.weight"):
        load_weights(projected, path)
    with pytest.raises(WeightsError, match=r"unexpected \(layer1\.0\.downsample\.0\.weight"):
        load_weights(create_model("resnet20", num_classes=10), projected.state_dict())
    gray = create_model("resnet20", num_classes=10, in_chans=1)
    with pytest.raises(
        WeightsError, match=r"1 mis-shaped \(conv1\.weight \(16, 3, 3, 3\) vs \(16, 1, 3, 3\)\)"
    ):
        load_weights(gray, path)


def test_save_weights_refuses_other_formats_and_bad_metadata(tmp_path: Path) -> None:
    model = create_model("resnet20", num_classes=10)
    with pytest.raises(WeightsError, match="safetensors"):
        save_weights(model, tmp_path / "w.pth")
    with pytest.raises(WeightsError, match="metadata"):
        save_weights(model, tmp_path / "w.safetensors", metadata={"epochs": 3})  # type: ignore[dict-item]
    assert os.listdir(tmp_path) == []
    path = save_weights(model.state_dict(), tmp_path / "sub" / "w.safetensors")
    assert path.is_file() and len(read_state_dict(path)) == len(model.state_dict())
