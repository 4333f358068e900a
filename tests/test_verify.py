"""verify: hashes, format, runtime and engine compatibility, golden outputs; library and CLI."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgeresnet.cli.deploy  # noqa: F401  (registers compile/predict/verify)
from edgeresnet.cli.core import cli
from edgeresnet.environment import GpuInfo
from edgeresnet.verify import tensorrt_compatibility, verify_bundle
from tests.runtime.tiny_bundle import make_bundle, rewrite_manifest, tiny_model

TRT_RECORD = {
    "version": "10.8.0",
    "compute_capability": "8.6",
    "gpu": "NVIDIA A10",
    "version_compatible": False,
    "hardware_compatibility": "none",
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("verify")
    model = tiny_model()
    return {
        "fp32": make_bundle(root / "fp32", model.onnx),
        "int8": make_bundle(
            root / "int8", model.qdq, precision="int8", extra_files={"model_fp32.onnx": model.onnx}
        ),
    }


@pytest.fixture()
def copy_of(bundles: dict[str, Path], tmp_path: Path):
    return lambda name: Path(shutil.copytree(bundles[name], tmp_path / name))


def _verify(path: Path, *args: str):
    return CliRunner().invoke(cli, ["verify", str(path), *args])


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_good_bundles_verify(bundles: dict[str, Path], name: str) -> None:
    result = _verify(bundles[name])
    assert result.exit_code == 0, result.output
    assert f"bundle {bundles[name]}: OK" in result.stdout
    assert "16 images" in result.stdout and "golden outputs reproduced on onnxruntime" in result.stdout
    report = verify_bundle(bundles[name])
    assert report.passed and report.golden is not None and report.golden.top1_agreement_pct == 100.0
    assert report.runner is not None and report.runner["precision"] == name


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda b: (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes() + b"\0"),
            "model.onnx was modified",
        ),
        (
            lambda b: (b / "golden.npz").write_bytes((b / "golden.npz").read_bytes()[:100]),
            "golden.npz was modified",
        ),
        (lambda b: (b / "model_fp32.onnx").unlink(), "model_fp32.onnx is missing"),
        (
            lambda b: rewrite_manifest(b, lambda r: r.update(format_version=99)),
            "bundle format 99 is newer than this edgeresnet reads",
        ),
        (
            lambda b: rewrite_manifest(b, lambda r: r.update(format="something-else")),
            "not an edgeresnet bundle",
        ),
        (lambda b: (b / "manifest.json").unlink(), "is not a bundle"),
    ],
    ids=[
        "edited-model",
        "truncated-golden",
        "missing-file",
        "newer-format",
        "foreign-manifest",
        "no-manifest",
    ],
)
def test_damaged_bundles_fail_with_the_reason(copy_of, damage, message: str) -> None:
    bundle = copy_of("int8")
    damage(bundle)
    result = _verify(bundle)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: verify failed: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_model_that_no_longer_gives_its_golden_outputs_fails(tmp_path: Path) -> None:
    model = tiny_model()
    inputs_outputs = make_bundle(tmp_path / "ok", model.onnx)
    from edgeresnet.bundle import read_golden, read_manifest

    _, outputs = read_golden(inputs_outputs, read_manifest(inputs_outputs))
    wrong = make_bundle(tmp_path / "wrong", model.onnx, outputs=outputs[:, ::-1].copy())
    result = _verify(wrong)
    assert result.exit_code == 2 and "golden outputs not reproduced on onnxruntime" in result.stderr


def test_a_different_runtime_version_is_a_warning(copy_of) -> None:
    bundle = copy_of("fp32")
    rewrite_manifest(bundle, lambda r: r["build"]["versions"].update(onnxruntime="0.0.1"))
    result = _verify(bundle)
    assert result.exit_code == 0, result.output
    assert "warning: onnxruntime" in result.stderr and "built with 0.0.1" in result.stderr


def test_json_report_and_unknown_backend(bundles: dict[str, Path]) -> None:
    result = _verify(bundles["fp32"], "--json")
    record = json.loads(result.stdout)
    assert record["passed"] is True and record["golden"]["images"] == 16 and record["failures"] == []
    bad = _verify(bundles["fp32"], "--backend", "tflite")
    assert bad.exit_code == 2 and "unknown backend 'tflite'" in bad.output


def test_verify_with_openvino_on_an_onnx_bundle(bundles: dict[str, Path]) -> None:
    pytest.importorskip("openvino")
    report = verify_bundle(bundles["fp32"], backend="openvino")
    assert report.passed, report.failures
    assert report.runner is not None and report.runner["backend"] == "openvino"


def _engine_bundle(tmp_path: Path, record: dict) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"an engine is never deserialized by these tests")
    return make_bundle(
        tmp_path / "trt",
        engine,
        target="tensorrt",
        extra={"tensorrt": record},
        outputs=np.zeros((16, 10), np.float32),
    )


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_an_engine_bundle_needs_tensorrt(tmp_path: Path) -> None:
    result = _verify(_engine_bundle(tmp_path, TRT_RECORD))
    assert result.exit_code == 2 and "tensorrt is not installed here" in result.stderr


def test_an_engine_for_another_gpu_and_tensorrt_fails_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.3.0"  # type: ignore[attr-defined]
    fake.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(
        "edgeresnet.runtime.tensorrt.gpu_info", lambda: [GpuInfo("NVIDIA T4", "7.5", "test")]
    )
    result = _verify(_engine_bundle(tmp_path, TRT_RECORD))
    assert result.exit_code == 2
    assert "engine built with TensorRT 10.8.0, this machine has TensorRT 10.3.0" in result.stderr
    assert "engine built for compute capability 8.6 (NVIDIA A10), this GPU is 7.5" in result.stderr
    missing = _verify(_engine_bundle(tmp_path / "bare", {"gpu": "?"}))
    assert missing.exit_code == 2 and "records no TensorRT version and GPU" in missing.stderr


def test_tensorrt_compatibility_rules() -> None:
    assert tensorrt_compatibility(TRT_RECORD, "10.8.0", "8.6") == []
    assert tensorrt_compatibility({**TRT_RECORD, "version_compatible": True}, "10.12.0", "8.6") == []
    assert (
        "older TensorRT 10.1.0"
        in tensorrt_compatibility({**TRT_RECORD, "version_compatible": True}, "10.1.0", "8.6")[0]
    )
    ampere = {**TRT_RECORD, "hardware_compatibility": "ampere+"}
    assert tensorrt_compatibility(ampere, "10.8.0", "9.0") == []
    assert "Ampere or newer" in tensorrt_compatibility(ampere, "10.8.0", "7.5")[0]
    no_gpu = tensorrt_compatibility(TRT_RECORD, "10.8.0", None)
    assert no_gpu == ["no CUDA GPU is visible here, and a TensorRT engine needs one"]


def test_an_edited_manifest_is_named(copy_of) -> None:
    bundle = copy_of("fp32")
    rewrite_manifest(bundle, lambda record: record["labels"].__setitem__(0, "Hacked"), rehash=False)
    result = _verify(bundle)
    assert result.exit_code == 2 and "manifest.json was modified" in result.output


@pytest.mark.parametrize("content", ["[]", "null", '"x"', '{"format": "edgeresnet-bundle", "format_version": "1"}'])
def test_malformed_manifests_are_one_line_errors(tmp_path: Path, content: str) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(content)
    result = CliRunner().invoke(cli, ["verify", str(bundle)])
    assert result.exit_code == 2 and "Traceback" not in result.output


# --- the one door: verify checks exactly what the runtime opens ------------------------------------------


V1_BUNDLE = Path(__file__).parent / "fixtures" / "bundle_v1"


def test_an_old_bundle_still_verifies_and_loads_from_its_hashed_bytes() -> None:
    from edgeresnet.runtime.classifier import Classifier

    report = verify_bundle(V1_BUNDLE)
    assert report.passed, report.failures
    assert any("every file the runtime opens (model.onnx, golden.npz)" in check for check in report.checks)
    with Classifier.load(V1_BUNDLE) as classifier:
        assert classifier.runner.model_bytes is not None  # built from bytes, not a path it reopens
        assert classifier.runner.model_bytes.data == (V1_BUNDLE / "model.onnx").read_bytes()


@pytest.mark.parametrize("name", ["../model.onnx", "/etc/hostname", "sub/../model.onnx", "model.onnx/"])
def test_a_resigned_manifest_cannot_name_a_file_outside_the_bundle(copy_of, name: str) -> None:
    bundle = copy_of("fp32")
    shutil.copyfile(bundle / "model.onnx", bundle.parent / "model.onnx")
    rewrite_manifest(bundle, lambda record: record.update(model_file=name))
    result = _verify(bundle)
    assert result.exit_code == 2, result.output
    assert "outside the bundle" in result.stderr or "not a normalised relative path" in result.stderr, result.stderr
    predicted = CliRunner().invoke(cli, ["predict", str(bundle), str(bundle / "golden.npz")])
    assert predicted.exit_code == 2 and len(predicted.stderr.strip().splitlines()) == 1


def test_a_directory_linked_out_of_the_bundle_is_refused(copy_of, tmp_path: Path) -> None:
    bundle = copy_of("fp32")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(bundle / "model.onnx", elsewhere / "model.onnx")
    (bundle / "sub").symlink_to(elsewhere, target_is_directory=True)

    def point_into_the_link(record: dict) -> None:
        record["model_file"] = "sub/model.onnx"
        record["files"]["sub/model.onnx"] = record["files"]["model.onnx"]

    rewrite_manifest(bundle, point_into_the_link)
    report = verify_bundle(bundle)
    assert not report.passed and any("sub/model.onnx leads outside the bundle" in f for f in report.failures)


def test_an_openvino_ir_whose_weights_are_not_listed_fails(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from edgeresnet.export.openvino import convert_to_ir
    from edgeresnet.runtime.onnxruntime import OnnxRuntimeRunner
    from tests.runtime.tiny_bundle import golden_inputs

    xml = convert_to_ir(tiny_model().onnx, tmp_path / "work" / "model.xml")
    with OnnxRuntimeRunner(tiny_model().onnx) as runner:
        golden = runner.infer(golden_inputs())
    listed = make_bundle(tmp_path / "listed", xml, target="openvino", extra_files={"model.bin": xml.with_suffix(".bin")},
                         outputs=golden)
    assert verify_bundle(listed).passed
    rewrite_manifest(listed, lambda record: record["files"].pop("model.bin"))
    (listed / "model.bin").write_bytes((listed / "model.bin").read_bytes()[::-1])  # edited after signing
    report = verify_bundle(listed)
    assert not report.passed
    assert any("model.bin is opened by the runtime but the manifest records no sha256" in f for f in report.failures)
