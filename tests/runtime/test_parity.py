"""Runtime parity: the same images give the same answers through every backend, within stated tolerances.

Reference: the PyTorch module in FP32. Tolerances are the one parity judge's (edgeresnet.parity.TOLERANCES): FP32 |Δlogit| ≤ 1e-3 of
the logit range, FP16 ≤ 2%, INT8 ≤ 15%, and top-1 agreement on every image whose reference margin
exceeds that bound (all images for FP32/FP16, 90% for INT8 and bf16 autocast).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from edgeresnet.backends.onnxruntime.runner import OnnxRuntimeRunner
from edgeresnet.backends.pytorch.runner import TorchRunner
from edgeresnet.parity import check_parity
from tests.runtime.tiny_bundle import SPEC, blob_images, tiny_model

IMAGES = SPEC.apply_batch(blob_images(64, seed=21)[0])


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    with TorchRunner(tiny_model().module, threads=2) as runner:
        return runner.infer(IMAGES)


def _assert_parity(logits: np.ndarray, reference: np.ndarray, precision: str) -> None:
    comparison = check_parity(reference, logits, precision)
    assert comparison.passed, comparison.describe()


def test_onnxruntime_fp32_matches_pytorch(reference: np.ndarray) -> None:
    with OnnxRuntimeRunner(tiny_model().onnx, threads=1) as runner:
        logits = runner.infer(IMAGES)
    _assert_parity(logits, reference, "fp32")
    assert np.array_equal(logits.argmax(1), reference.argmax(1))


def test_onnxruntime_int8_qdq_agrees_with_pytorch(reference: np.ndarray) -> None:
    with OnnxRuntimeRunner(tiny_model().qdq, precision="int8") as runner:
        logits = runner.infer(IMAGES)
    _assert_parity(logits, reference, "int8")
    assert (logits.argmax(1) == reference.argmax(1)).mean() >= 0.9


def test_openvino_fp32_fp16_int8_agree_with_pytorch(reference: np.ndarray, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from edgeresnet.backends.openvino.convert import convert_qdq_to_ir, convert_to_ir
    from edgeresnet.backends.openvino.runner import OpenVinoRunner

    model = tiny_model()
    irs = {
        "fp32": convert_to_ir(model.onnx, tmp_path / "fp32.xml"),
        "fp16": convert_to_ir(model.onnx, tmp_path / "fp16.xml", precision="fp16"),
        "int8": convert_qdq_to_ir(model.qdq, tmp_path / "int8.xml"),
    }
    for precision, xml in irs.items():
        with OpenVinoRunner(xml, precision=precision) as runner:  # type: ignore[arg-type]
            _assert_parity(runner.infer(IMAGES), reference, precision)


def test_torch_runner_options_keep_the_answers(reference: np.ndarray) -> None:
    module = copy.deepcopy(tiny_model().module)  # the runner converts the module it is given in place
    with TorchRunner(module, channels_last=True) as runner:
        _assert_parity(runner.infer(IMAGES), reference, "fp32")
        assert runner.describe().precision == "fp32 channels_last"
    with TorchRunner(module, precision="bf16") as runner:
        _assert_parity(runner.infer(IMAGES), reference, "bf16")


def test_torch_runner_loads_a_checkpoint_directory(tmp_path: Path) -> None:
    from edgeresnet import create_model
    from edgeresnet.checkpoint import ModelCard, write_checkpoint

    model = create_model("resnet20", num_classes=10, in_chans=3)
    card = ModelCard(
        architecture="resnet20",
        num_classes=10,
        in_chans=3,
        preprocessing=SPEC,
        class_names=[str(k) for k in range(10)],
    )
    write_checkpoint(tmp_path / "ckpt", model, card)
    with TorchRunner(model) as direct, TorchRunner(tmp_path / "ckpt") as loaded:
        np.testing.assert_allclose(loaded.infer(IMAGES[:4]), direct.infer(IMAGES[:4]), atol=1e-5)
        assert loaded.card is not None and loaded.card.architecture == "resnet20"
        assert loaded.describe().versions.keys() == {"torch"}


def test_torch_runner_rejects_bad_options() -> None:
    from edgeresnet.errors import EdgeResNetError

    with pytest.raises(EdgeResNetError, match="fp32, fp16 or bf16"):
        TorchRunner(tiny_model().module, precision="int8")  # type: ignore[arg-type]
    with pytest.raises(EdgeResNetError, match="not a PyTorch device"):
        TorchRunner(tiny_model().module, device="tpu:x")


@pytest.mark.gpu
def test_torch_runner_on_cuda_in_fp16(reference: np.ndarray) -> None:
    with TorchRunner(tiny_model().module, device="cuda", precision="fp16", channels_last=True) as runner:
        _assert_parity(runner.infer(IMAGES), reference, "fp16")
