"""OpenVinoRunner: parity with ONNX Runtime, precisions, changing batch sizes, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ov = pytest.importorskip("openvino")

from edgeresnet.backends.onnxruntime.runner import OnnxRuntimeRunner
from edgeresnet.backends.openvino import convert as ov_export
from edgeresnet.backends.openvino.runner import OpenVinoRunner, require_openvino
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError
from tests.export.test_openvino import build_tiny_resnet_onnx, make_qdq_onnx, smooth_images

pytestmark = pytest.mark.openvino

IMAGES = smooth_images(32, seed=7)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ov")
    onnx = build_tiny_resnet_onnx(root / "tiny.onnx")
    calibration = smooth_images(64, seed=8)
    return {
        "onnx": onnx,
        "fp32": ov_export.convert_to_ir(onnx, root / "fp32.xml"),
        "fp16": ov_export.convert_to_ir(onnx, root / "fp16.xml", precision="fp16"),
        "static1": ov_export.convert_to_ir(onnx, root / "static1.xml", batch=1),
        "int8": ov_export.quantize_with_nncf(onnx, root / "int8.xml", [calibration], subset_size=64),
        "qdq_onnx": make_qdq_onnx(onnx, root / "qdq.onnx", calibration[:32]),
    }


@pytest.fixture(scope="module")
def reference(artifacts: dict[str, Path]) -> np.ndarray:
    with OnnxRuntimeRunner(artifacts["onnx"], threads=1) as runner:
        return runner.infer(IMAGES)


def test_fp32_ir_matches_onnxruntime_and_runs_in_f32(artifacts: dict[str, Path], reference: np.ndarray) -> None:
    with OpenVinoRunner(artifacts["fp32"], threads=1) as runner:
        logits = runner.infer(IMAGES)
        # Without the hint this Zen 4 CPU would run in bf16 and miss the tolerance below by ~10×.
        assert runner.inference_precision == "f32"
    assert logits.dtype == np.float32 and logits.shape == (32, 10)
    np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=0)


def test_onnx_file_runs_directly(artifacts: dict[str, Path], reference: np.ndarray) -> None:
    with OpenVinoRunner(artifacts["onnx"], device="cpu") as runner:
        np.testing.assert_allclose(runner.infer(IMAGES), reference, atol=1e-4, rtol=0)


def test_fp16_ir_is_close_with_the_same_top1(artifacts: dict[str, Path], reference: np.ndarray) -> None:
    with OpenVinoRunner(artifacts["fp16"], precision="fp16") as runner:
        logits = runner.infer(IMAGES)
    np.testing.assert_allclose(logits, reference, atol=5e-3, rtol=0)
    assert np.array_equal(logits.argmax(1), reference.argmax(1))


def test_nncf_int8_ir_agrees_on_top1(artifacts: dict[str, Path], reference: np.ndarray) -> None:
    with OpenVinoRunner(artifacts["int8"], precision="int8") as runner:
        logits = runner.infer(IMAGES)
    assert np.isfinite(logits).all()
    # This random-weights model's top-1 margins are tiny (median ~0.03 against a logit spread of ~0.25),
    # so top-1 agreement mostly measures coin flips; the logits' SQNR is what INT8 must keep. A wrong
    # scale or zero point gives a few dB; a sound 8-bit model ~15-25 dB.
    assert logit_sqnr_db(reference, logits) >= 14.0


def logit_sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(10 * np.log10((reference**2).sum() / ((reference - candidate) ** 2).sum()))


def test_qdq_ir_runs_like_the_qdq_onnx(artifacts: dict[str, Path], tmp_path: Path) -> None:
    xml = ov_export.convert_qdq_to_ir(artifacts["qdq_onnx"], tmp_path / "qdq.xml")
    with OnnxRuntimeRunner(artifacts["qdq_onnx"]) as ort_runner, OpenVinoRunner(xml, precision="int8") as runner:
        expected, logits = ort_runner.infer(IMAGES), runner.infer(IMAGES)
    assert (logits.argmax(1) == expected.argmax(1)).mean() >= 0.8


@pytest.mark.parametrize("name", ["fp32", "static1"], ids=["dynamic-batch", "static-batch"])
def test_batch_sizes_change_on_one_runner(artifacts: dict[str, Path], name: str) -> None:
    with OpenVinoRunner(artifacts[name]) as runner:
        one_by_one = np.concatenate([runner.infer(IMAGES[i : i + 1]) for i in range(4)])
        four = runner.infer(IMAGES[:4])
        again = runner.infer(IMAGES[:1])
    np.testing.assert_allclose(four, one_by_one, atol=1e-5, rtol=0)
    np.testing.assert_allclose(again, one_by_one[:1], atol=1e-5, rtol=0)


def test_results_are_not_overwritten_by_the_next_call(artifacts: dict[str, Path]) -> None:
    with OpenVinoRunner(artifacts["fp32"]) as runner:
        first = runner.infer(IMAGES[:2])
        kept = first.copy()
        runner.infer(IMAGES[2:4])
    np.testing.assert_array_equal(first, kept)


def test_describe_names_version_and_device(artifacts: dict[str, Path]) -> None:
    with OpenVinoRunner(artifacts["fp32"], device="cpu", threads=1, performance_hint="THROUGHPUT") as runner:
        info = runner.describe()
    assert info.backend == "openvino" and info.precision == "fp32"
    assert info.versions == {"openvino": ov.get_version()}
    assert info.device == f"CPU ({ov.Core().get_property('CPU', 'FULL_DEVICE_NAME')})"


def _corrupt(tmp_path: Path, fp32: Path, case: str) -> Path:
    xml, bin_ = tmp_path / "m.xml", tmp_path / "m.bin"
    if case == "missing-bin":
        xml.write_bytes(fp32.read_bytes())
    elif case == "not-xml":
        xml.write_text("<net>garbage")
        bin_.write_bytes(b"x")
    elif case == "truncated-xml":
        xml.write_bytes(fp32.read_bytes()[:2000])
        bin_.write_bytes(fp32.with_suffix(".bin").read_bytes())
    elif case == "short-bin":
        xml.write_bytes(fp32.read_bytes())
        bin_.write_bytes(fp32.with_suffix(".bin").read_bytes()[:100])
    elif case == "garbage-onnx":
        xml = tmp_path / "m.onnx"
        xml.write_bytes(b"not onnx")
    elif case == "wrong-suffix":
        xml = tmp_path / "m.pt"
        xml.write_bytes(b"x")
    return xml


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-bin", "no weights file m.bin"),
        ("not-xml", "is not an OpenVINO IR"),
        ("truncated-xml", "cannot read"),
        ("short-bin", "Incorrect weights"),
        ("garbage-onnx", "is not an ONNX model"),
        ("wrong-suffix", "reads .xml"),
    ],
)
def test_bad_model_files_are_one_line_errors(
    artifacts: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    path = _corrupt(tmp_path, artifacts["fp32"], case)
    with pytest.raises(EdgeResNetError, match=message) as caught:
        OpenVinoRunner(path)
    assert "\n" not in str(caught.value)


def test_missing_file_wrong_input_and_closed_runner(artifacts: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EdgeResNetError, match="not found"):
        OpenVinoRunner(tmp_path / "missing.xml")
    runner = OpenVinoRunner(artifacts["fp32"])
    with pytest.raises(EdgeResNetError, match=r"shape \(1, 3, 28, 28\)"):
        runner.infer(np.zeros((1, 3, 28, 28), np.float32))
    runner.close()
    with pytest.raises(EdgeResNetError, match="closed"):
        runner.infer(IMAGES[:1])


def test_bad_device_and_precision(artifacts: dict[str, Path]) -> None:
    missing = next(name for name in ("NPU", "GPU", "FPGA") if name not in ov.Core().available_devices)
    with pytest.raises(BackendUnavailableError, match=f"no {missing} device"):
        OpenVinoRunner(artifacts["fp32"], device=missing.lower())
    with pytest.raises(EdgeResNetError, match="precision must be"):
        OpenVinoRunner(artifacts["fp32"], precision="int4")  # type: ignore[arg-type]


def test_missing_openvino_explains_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'edgeresnet\[openvino\]'"):
        require_openvino()


def test_importing_the_runner_loads_neither_torch_nor_openvino() -> None:
    code = (
        "import sys, edgeresnet.backends.openvino.runner; "
        "print(sorted({'torch', 'openvino', 'nncf'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
