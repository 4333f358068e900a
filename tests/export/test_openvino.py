"""OpenVINO build steps: ONNX → FP32/FP16 IR, QDQ ONNX → INT8 IR, NNCF INT8 IR, and their failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ov = pytest.importorskip("openvino")

from edgeresnet.backends.openvino import convert as ov_export
from edgeresnet.errors import CalibrationError, ExportError

pytestmark = pytest.mark.openvino


def build_tiny_resnet_onnx(path: Path) -> Path:
    """A seeded ResNet-shaped model (conv-bn-relu stem, one residual block, pool, fc), 1×28×28 in."""
    torch = pytest.importorskip("torch")
    from torch import nn

    class Block(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.b1 = nn.BatchNorm2d(channels)
            self.c2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.b2 = nn.BatchNorm2d(channels)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))

    class TinyResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
            self.block = Block(8)
            self.fc = nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.block(self.stem(x)), 1), 1))

    torch.manual_seed(0)
    model = TinyResNet()
    with torch.no_grad():  # non-trivial BN statistics, so folding them is exercised
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    torch.onnx.export(
        model.eval(), torch.zeros(1, 1, 28, 28), str(path), opset_version=17, dynamo=False,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


def smooth_images(count: int, seed: int = 0) -> np.ndarray:
    """Low-frequency synthetic 1×28×28 images (waves plus a blob): image-like, unlike white noise."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:28, 0:28] / 27.0
    images = []
    for _ in range(count):
        a, b, amplitude, phase = rng.uniform(-3, 3, 4)
        cu, cv = rng.uniform(0.2, 0.8, 2)
        blob = amplitude * np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / 0.05)
        images.append(np.sin(np.pi * (a * u + b * v) + phase) + blob)
    return np.asarray(images, dtype=np.float32)[:, None]


def make_qdq_onnx(onnx_path: Path, out_path: Path, images: np.ndarray) -> Path:
    """A QDQ model from onnxruntime's quantize_static: a stand-in for the project's own QDQ quantizer."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{"input": images[i : i + 1]} for i in range(len(images))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    quantize_static(str(onnx_path), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out_path


def op_types(xml: Path) -> set[str]:
    return {op.get_type_name() for op in ov.Core().read_model(str(xml)).get_ops()}


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_resnet_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def nncf_build(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """An NNCF INT8 IR from a one-shot generator of batches of 8, and the sizes it pulled from it."""
    pulled: list[int] = []
    images = smooth_images(48, seed=1)

    def batches() -> Iterator[np.ndarray]:
        for start in range(0, len(images), 8):
            pulled.append(start)
            yield images[start : start + 8]

    out = ov_export.quantize_with_nncf(tiny_onnx, tmp_path_factory.mktemp("nncf") / "int8.xml", batches(),
                                       subset_size=20)
    return out, pulled


def test_fp32_ir_keeps_dynamic_batch_and_records_nchw_layout(tiny_onnx: Path, tmp_path: Path) -> None:
    out = ov_export.convert_to_ir(tiny_onnx, tmp_path / "ir" / "model.xml")

    assert out == tmp_path / "ir" / "model.xml"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.bin", "model.xml"]  # no staging left
    model = ov.Core().read_model(str(out))
    assert model.input(0).get_partial_shape().to_string() == "[?,1,28,28]"
    assert model.get_parameters()[0].get_layout().to_string() == "[N,C,H,W]"


def test_fixed_batch_gives_a_static_input(tiny_onnx: Path, tmp_path: Path) -> None:
    out = ov_export.convert_to_ir(tiny_onnx, tmp_path / "b2.xml", batch=2)
    assert ov.Core().read_model(str(out)).input(0).get_partial_shape().to_string() == "[2,1,28,28]"


def test_fp16_ir_stores_half_size_weights(tiny_onnx: Path, tmp_path: Path) -> None:
    fp32 = ov_export.convert_to_ir(tiny_onnx, tmp_path / "fp32.xml")
    fp16 = ov_export.convert_to_ir(tiny_onnx, tmp_path / "fp16.xml", precision="fp16")
    ratio = fp16.with_suffix(".bin").stat().st_size / fp32.with_suffix(".bin").stat().st_size
    assert 0.4 < ratio < 0.6


def test_rewriting_an_ir_replaces_both_files(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.xml"
    ov_export.convert_to_ir(tiny_onnx, out, precision="fp16")
    ov_export.convert_to_ir(tiny_onnx, out)
    fresh = ov_export.convert_to_ir(tiny_onnx, tmp_path / "fresh.xml")
    assert out.with_suffix(".bin").read_bytes() == fresh.with_suffix(".bin").read_bytes()


def test_a_failed_save_leaves_nothing(tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_written(model: object, path: str, compress_to_fp16: bool = True) -> None:
        Path(path).write_text("<net")
        raise RuntimeError("disk full")

    monkeypatch.setattr(ov, "save_model", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        ov_export.convert_to_ir(tiny_onnx, tmp_path / "model.xml")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a model at all", "is not an ONNX model"), (None, "cannot convert")],
    ids=["garbage", "truncated"],
)
def test_corrupt_onnx_is_a_one_line_export_error(
    tiny_onnx: Path, tmp_path: Path, content: bytes | None, message: str
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content if content is not None else tiny_onnx.read_bytes()[:3000])
    with pytest.raises(ExportError, match=message) as caught:
        ov_export.convert_to_ir(bad, tmp_path / "out" / "model.xml")
    assert "bad.onnx" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_missing_onnx_and_bad_arguments_are_export_errors(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not found"):
        ov_export.convert_to_ir(tmp_path / "missing.onnx", tmp_path / "m.xml")
    with pytest.raises(ExportError, match="must end in .xml"):
        ov_export.convert_to_ir(tiny_onnx, tmp_path / "m.bin")
    with pytest.raises(ExportError, match="fp32 or fp16"):
        ov_export.convert_to_ir(tiny_onnx, tmp_path / "m.xml", precision="int8")  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="at least 1"):
        ov_export.convert_to_ir(tiny_onnx, tmp_path / "m.xml", batch=0)


def test_qdq_onnx_becomes_an_int8_ir(tiny_onnx: Path, tmp_path: Path) -> None:
    qdq = make_qdq_onnx(tiny_onnx, tmp_path / "qdq.onnx", smooth_images(16, seed=2))
    out = ov_export.convert_qdq_to_ir(qdq, tmp_path / "qdq.xml")
    assert "FakeQuantize" in op_types(out)


def test_qdq_conversion_rejects_a_float_model(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no QuantizeLinear"):
        ov_export.convert_qdq_to_ir(tiny_onnx, tmp_path / "qdq.xml")
    assert list(tmp_path.iterdir()) == []


def test_nncf_quantizes_and_counts_subset_size_in_images(nncf_build: tuple[Path, list[int]]) -> None:
    out, pulled = nncf_build
    assert "FakeQuantize" in op_types(out)
    # subset_size=20 images from batches of 8: three batches are read, not twenty.
    assert len(pulled) == 3


def test_nncf_ignored_nodes_stay_float(tiny_onnx: Path, tmp_path: Path) -> None:
    images = [smooth_images(8, seed=3)]
    out = ov_export.quantize_with_nncf(tiny_onnx, tmp_path / "int8.xml", images, subset_size=8,
                                       ignored_nodes=["/fc/Gemm/WithoutBiases"], fast_bias_correction=False)
    model = ov.Core().read_model(str(out))
    matmul = next(op for op in model.get_ops() if op.get_type_name() == "MatMul")
    feeding = {value.get_node().get_type_name() for value in matmul.input_values()}
    assert "FakeQuantize" not in feeding
    assert "FakeQuantize" in op_types(out)


def test_nncf_rejects_unknown_ignored_nodes_and_empty_data(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="nope"):
        ov_export.quantize_with_nncf(tiny_onnx, tmp_path / "a.xml", [smooth_images(4)], ignored_nodes=["nope"])
    with pytest.raises(CalibrationError, match="empty"):
        ov_export.quantize_with_nncf(tiny_onnx, tmp_path / "b.xml", [])
    with pytest.raises(CalibrationError, match="4-D"):
        ov_export.quantize_with_nncf(tiny_onnx, tmp_path / "c.xml", [np.zeros((28, 28), np.float32)])
    assert list(tmp_path.iterdir()) == []


def test_nncf_keeps_its_output_off_stdout(tiny_onnx: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    ov_export.peer_nncf_default(tiny_onnx, tmp_path / "peer.xml", [smooth_images(4, seed=4)])
    assert "FakeQuantize" in op_types(tmp_path / "peer.xml")
    captured = capfd.readouterr()
    assert "Statistics collection" not in captured.out
    assert captured.out.strip() == ""


def test_openvino_version_names_the_installed_build() -> None:
    assert ov_export.openvino_version() == ov.get_version()
