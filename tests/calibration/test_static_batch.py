"""Static-batch models: calibration, evaluation, the gate and the peer re-chunk whatever batches they get."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeresnet.calibration import apply_accuracy_gate, calibrate, evaluate_onnx, peer_quantize_static_default
from edgeresnet.calibration.collect import collect_ranges
from edgeresnet.calibration.session import BatchSession
from edgeresnet.errors import CalibrationError
from tests.calibration.conftest import data_hash, with_static_batch

SIZES = (63, 1, 65, 127)  # none a multiple of 4 past the first image: the last piece of each is padded


def regroup(images: np.ndarray, sizes: tuple[int, ...] = SIZES) -> list[np.ndarray]:
    cuts = np.cumsum(sizes)[:-1]
    return np.split(images, cuts)


@pytest.fixture(scope="module", params=[1, 4], ids=["N=1", "N=4"])
def static_onnx(request: pytest.FixtureRequest, fp32_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("static") / f"tiny_resnet_b{request.param}.onnx"
    return with_static_batch(fp32_onnx, request.param, path)


def test_static_batch_is_detected(static_onnx: Path, fp32_onnx: Path) -> None:
    expected = int(static_onnx.stem.rsplit("_b", 1)[1])
    assert BatchSession(static_onnx).static_batch == expected
    assert BatchSession(fp32_onnx).static_batch is None


def test_static_batch_logits_and_accuracy_match_dynamic(static_onnx: Path, fp32_onnx: Path,
                                                        eval_batches: list) -> None:
    images = np.concatenate([batch for batch, _ in eval_batches])
    labels = np.concatenate([batch for _, batch in eval_batches])
    static, dynamic = BatchSession(static_onnx), BatchSession(fp32_onnx)
    for odd in (images[:7], images[:1], images[:130]):
        logits = static.logits(odd)
        assert logits.shape == (len(odd), 10)  # padded rows dropped
        np.testing.assert_allclose(logits, dynamic.logits(odd), rtol=1e-5, atol=1e-5)
    odd_batches = list(zip(regroup(images, (63, 1, 65, 383)), regroup(labels, (63, 1, 65, 383)), strict=True))
    assert evaluate_onnx(static_onnx, odd_batches) == evaluate_onnx(fp32_onnx, eval_batches)


def test_static_batch_calibration_leaves_padding_out(static_onnx: Path, fp32_onnx: Path,
                                                     calib_batches: list) -> None:
    batches = regroup(np.concatenate(calib_batches))
    static, samples = collect_ranges(static_onnx, batches)
    dynamic, dynamic_samples = collect_ranges(fp32_onnx, batches, micro_batch=64)
    assert samples == dynamic_samples == 256 and static.keys() == dynamic.keys()
    for method, ranges in static.items():
        assert ranges.keys() == dynamic[method].keys()
        for name, (low, high) in ranges.items():  # padded copies would shift the percentile ranges
            assert low == pytest.approx(dynamic[method][name][0], abs=1e-4), (method, name)
            assert high == pytest.approx(dynamic[method][name][1], abs=1e-4), (method, name)


def test_static_batch_gate_and_peer(static_onnx: Path, calib_batches: list, eval_batches: list,
                                    tmp_path: Path) -> None:
    batches = regroup(np.concatenate(calib_batches))
    table = calibrate(static_onnx, batches, method="entropy", data_hash=data_hash(batches))
    result = apply_accuracy_gate(static_onnx, table, tmp_path / "int8.onnx", flavour="onnxruntime",
                                 eval_batches=eval_batches, max_drop_points=3.0)
    assert result.fp32.images == 512 and result.fp32.top1 > 80.0 and result.drop_points <= 3.0
    assert BatchSession(tmp_path / "int8.onnx").static_batch == BatchSession(static_onnx).static_batch
    peer = peer_quantize_static_default(static_onnx, tmp_path / "peer.onnx", batches)
    assert evaluate_onnx(peer, eval_batches).top1 > 50.0


def test_images_the_model_cannot_take_are_one_line_errors(static_onnx: Path, calib_batches: list,
                                                          tmp_path: Path) -> None:
    wide = np.pad(calib_batches[0][:6], ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")  # 32×32, model takes 28×28
    batch = BatchSession(static_onnx).static_batch
    for run in (
        lambda: collect_ranges(static_onnx, [wide]),
        lambda: evaluate_onnx(static_onnx, [(wide, np.zeros(len(wide), dtype=np.int64))]),
        lambda: peer_quantize_static_default(static_onnx, tmp_path / "peer.onnx", [wide]),
    ):
        with pytest.raises(CalibrationError) as caught:
            run()
        message = str(caught.value)
        assert "\n" not in message and static_onnx.name in message and f"({batch}, 1, 32, 32)" in message, message
    assert not (tmp_path / "peer.onnx").exists()
