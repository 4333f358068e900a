"""The peer baseline: ONNX Runtime's own quantize_static with its defaults."""

from __future__ import annotations

import stat
from pathlib import Path

from edgeresnet.calibration import evaluate_onnx, inspect_qdq, peer_quantize_static_default
from tests.calibration.conftest import default_mode


def test_peer_quantize_static_default(fp32_onnx: Path, calib_batches: list, eval_batches: list,
                                      tmp_path: Path) -> None:
    out = peer_quantize_static_default(fp32_onnx, tmp_path / "peer.onnx", calib_batches)
    summary = inspect_qdq(out)
    assert summary["per_tensor_weights"] > 0 and summary["per_channel_weights"] == 0  # ORT's default
    assert evaluate_onnx(out, eval_batches).top1 > 50.0
    assert [path.name for path in tmp_path.iterdir()] == ["peer.onnx"]
    assert stat.S_IMODE(out.stat().st_mode) == default_mode()
