"""TensorRT build steps: the FP16 ONNX conversion (checked on CPU with ONNX Runtime), option checks,
the inspector summary, API feature detection, and real engine builds where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeresnet.backends.onnxruntime.runner import OnnxRuntimeRunner
from edgeresnet.backends.tensorrt import build as trt_export
from edgeresnet.errors import BackendUnavailableError, ExportError
from edgeresnet.parity import check_parity
from tests.runtime.tiny_bundle import SPEC, blob_images, tiny_model
from tests.tensorrt_api.fakes import CACHE, PLAN, TRT10, TRT11, fake_tensorrt
from tests.tensorrt_api.names import StrictFake, fake_module, fake_namespace

IMAGES = SPEC.apply_batch(blob_images(32, seed=31)[0])
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def fp16_onnx(tmp_path_factory: pytest.TempPathFactory) -> trt_export.Fp16Conversion:
    return trt_export.convert_onnx_to_fp16(
        tiny_model().onnx, tmp_path_factory.mktemp("fp16") / "model_fp16.onnx"
    )


def test_fp16_onnx_keeps_float32_io_and_stores_half_weights(fp16_onnx: trt_export.Fp16Conversion) -> None:
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(fp16_onnx.path))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert {init.data_type for init in model.graph.initializer} == {TensorProto.FLOAT16}
    assert fp16_onnx.converted_tensors == len(model.graph.initializer) and fp16_onnx.clipped_values == 0
    casts = [node for node in model.graph.node if node.op_type == "Cast"]
    assert [node.name for node in casts] == ["input__to_fp16", "logits__to_fp32"]
    inferred = onnx.shape_inference.infer_shapes(model)
    conv_outputs = {n.output[0] for n in model.graph.node if n.op_type == "Conv"}
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    assert {types[name] for name in conv_outputs} == {TensorProto.FLOAT16}  # the network computes in FP16
    assert fp16_onnx.path.stat().st_size < 0.6 * tiny_model().onnx.stat().st_size


def test_fp16_onnx_runs_on_cpu_within_the_fp16_tolerance(fp16_onnx: trt_export.Fp16Conversion) -> None:
    with (
        OnnxRuntimeRunner(tiny_model().onnx) as fp32,
        OnnxRuntimeRunner(fp16_onnx.path, precision="fp16") as fp16,
    ):
        reference, logits = fp32.infer(IMAGES), fp16.infer(IMAGES)
        single = fp16.infer(IMAGES[:1])  # the batch stays dynamic
    comparison = check_parity(reference, logits, "fp16")
    assert comparison.passed, comparison.describe()
    assert 0 < comparison.max_abs_diff  # it really ran in FP16
    assert comparison.top1_agreement_pct >= 95.0  # a flip only where the FP32 logits nearly tie
    np.testing.assert_allclose(single, logits[:1], atol=1e-2)


def test_fp16_conversion_clips_values_beyond_the_fp16_range(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(tiny_model().onnx))
    weight = next(init for init in model.graph.initializer if numpy_helper.to_array(init).ndim == 4)
    values = numpy_helper.to_array(weight).copy()
    values.flat[0], values.flat[1] = 1e6, 1e-9
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(tmp_path / "big.onnx"))
    report = trt_export.convert_onnx_to_fp16(tmp_path / "big.onnx", tmp_path / "big16.onnx")
    assert report.clipped_values == 1 and report.flushed_values >= 1
    half = onnx.load(str(tmp_path / "big16.onnx"))
    converted = next(init for init in half.graph.initializer if init.name == weight.name)
    assert numpy_helper.to_array(converted).flat[0] == np.float16(65504)


def test_fp16_conversion_rejects_a_corrupt_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ExportError, match="not a readable ONNX model|not a valid model"):
        trt_export.convert_onnx_to_fp16(bad, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_batch": 0}, "at least 1"),
        ({"max_batch": 4, "opt_batch": 8}, "between 1 and --max-batch"),
        ({"workspace_mib": 0}, "1 MiB"),
        ({"hardware_compatibility": "turing+"}, "one of none, ampere"),
        ({"optimization_level": 9}, "0-5"),
    ],
)
def test_build_options_are_checked_without_tensorrt(options: dict, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        trt_export.TensorRtBuildOptions(**options)


def test_inspector_layers_of_tensorrt_11_are_counted_by_their_datatype() -> None:
    """11.x splits "Format/Datatype" into "Format" and "Datatype"; without reading them every layer was unknown."""

    def layer(datatype: str, layout: str) -> dict:
        tensor = {"Name": "x", "Format": layout, "Datatype": datatype}
        return {"Name": "l", "LayerType": "CaskConvolution", "Inputs": [tensor], "Outputs": [tensor]}

    information = {"Layers": [layer("Int8", "Thirty-two wide channel vectorized row major"),
                              layer("Half", "Channel major"), layer("Float", "Row major linear"),
                              layer("BFloat16", "Row major linear"), layer("FP8", "Row major linear")]}
    assert trt_export.summarise_layer_precisions(information) == {"INT8": 1, "FP16": 1, "FP32": 1, "other": 2}


def test_inspector_layers_are_counted_by_precision() -> None:
    def layer(kind: str, dtype: str) -> dict:
        return {
            "Name": kind,
            "LayerType": kind,
            "Inputs": [{"Name": "x", "Format/Datatype": dtype}],
            "Outputs": [{"Name": "y", "Format/Datatype": dtype}],
        }

    information = {
        "Layers": [
            layer("Reformat", "Row major linear FP32 format"),
            layer("CaskConvolution", "Thirty-two wide channel vectorized row major Int8 format"),
            layer("CaskConvolution", "Int8"),
            layer("CaskConvolution", "Channel major FP16 format where channel % 8 == 0"),
            layer("CaskPooling", "Half"),
            layer("CaskGemm", "Row major linear FP32"),
            layer("Shape", "Int32"),
            "a layer described by name only",
        ],
        "I/O Tensors": [{"Name": "input", "IOMode": "Input", "DataType": "Float"}],  # 11.x; ignored
    }
    assert trt_export.summarise_layer_precisions(information) == {
        "INT8": 2,
        "FP16": 2,
        "FP32": 1,
        "other": 1,
        "reformat": 1,
        "unknown": 1,
    }


@pytest.mark.parametrize("version", [TRT10, TRT11])
def test_network_creation_follows_the_installed_api(version: str) -> None:
    created: list[int] = []

    class Builder(StrictFake):
        VERSION = version

        def create_network(self, flags: int) -> str:
            created.append(flags)
            return "network"

    trt = fake_module(version, NetworkDefinitionCreationFlag=fake_namespace(version, STRONGLY_TYPED=1))
    assert trt_export._create_network(trt, Builder()) == "network"
    # 10.x opts in to strong typing; 11.x is always strongly typed (the flag is deprecated there)
    assert created == ([1 << 1] if version == TRT10 else [0])


def test_tensorrt_9_is_refused() -> None:
    trt9 = fake_module(TRT10, NetworkDefinitionCreationFlag=fake_namespace(TRT10))
    object.__setattr__(trt9, "__version__", "9.3.0")
    with pytest.raises(BackendUnavailableError, match="no strongly typed networks"):
        trt_export._create_network(trt9, None)


@pytest.fixture()
def fake_build(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """build_engine against the strict stand-in TensorRT of a version, on a pretend GPU."""
    from edgeresnet.backends.tensorrt import runner as trt_runtime
    from edgeresnet.environment import GpuInfo

    monkeypatch.setattr(trt_runtime, "_LOGGERS", weakref.WeakKeyDictionary())

    def install(version: str) -> Any:
        trt = fake_tensorrt(version)
        monkeypatch.setattr(trt_export, "require_tensorrt_gpu", lambda carry: (trt, GpuInfo("Test GPU", "8.6", "test")))
        return trt

    return install


@pytest.mark.parametrize("version", [TRT10, TRT11])
def test_engines_are_built_without_tf32_and_report_layer_precisions(
    fake_build: Callable[[str], Any], tmp_path: Path, version: str
) -> None:
    trt = fake_build(version)
    options = trt_export.TensorRtBuildOptions(version_compatible=True, hardware_compatibility="ampere+")
    build = trt_export.build_engine(tiny_model().onnx, tmp_path / "m.engine", options=options)
    assert trt.state.cleared_flags == [trt.BuilderFlag.TF32]  # FP32 layers run in FP32, not TF32
    assert trt.state.set_flags == [trt.BuilderFlag.VERSION_COMPATIBLE]
    assert build.to_manifest()["tf32"] is False
    # 10.x says "Format/Datatype", 11.x "Format" and "Datatype": both read as INT8, never "unknown"
    assert build.layer_precisions == {"INT8": 1}
    assert (tmp_path / "m.engine").read_bytes().startswith(PLAN)


def test_a_timing_cache_is_read_but_never_rewritten(fake_build: Callable[[str], Any], tmp_path: Path) -> None:
    trt = fake_build(TRT11)
    source = tmp_path / "older-bundle" / "timing.cache"
    source.parent.mkdir()
    source.write_bytes(CACHE + b"older")
    options = trt_export.TensorRtBuildOptions(timing_cache=source)
    trt_export.build_engine(tiny_model().onnx, tmp_path / "a.engine", options=options,
                            timing_cache_out=tmp_path / "new.cache")
    assert trt.state.caches_read == [CACHE + b"older"]
    assert source.read_bytes() == CACHE + b"older"  # the older bundle's file (and its sha256) untouched
    assert (tmp_path / "new.cache").read_bytes() == CACHE + b"older+build"
    trt_export.build_engine(tiny_model().onnx, tmp_path / "b.engine", options=options)
    assert source.read_bytes() == CACHE + b"older"


def test_a_corrupt_timing_cache_is_a_one_line_error(fake_build: Callable[[str], Any], tmp_path: Path) -> None:
    fake_build(TRT10)
    corrupt = tmp_path / "timing.cache"
    corrupt.write_bytes(b"\x00garbage")
    options = trt_export.TensorRtBuildOptions(timing_cache=corrupt)
    with pytest.raises(ExportError) as caught:
        trt_export.build_engine(tiny_model().onnx, tmp_path / "m.engine", options=options)
    message = str(caught.value)
    assert message.startswith(f"timing cache {corrupt} is not a usable TensorRT timing cache") and "\n" not in message
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.parametrize("version", [TRT10, TRT11])
def test_hardware_compatibility_is_feature_detected(version: str) -> None:
    trt = fake_tensorrt(version)
    config = trt.Builder(None).create_builder_config()
    options = trt_export.TensorRtBuildOptions(version_compatible=True, hardware_compatibility="ampere+")
    trt_export._configure(trt, config, options)
    assert trt.state.set_flags == ["VERSION_COMPATIBLE"] and config.hardware_compatibility_level == "AMPERE_PLUS"
    assert config.profiling_verbosity == "DETAILED"
    older = fake_module(version, MemoryPoolType=trt.MemoryPoolType, ProfilingVerbosity=trt.ProfilingVerbosity,
                        BuilderFlag=trt.BuilderFlag, HardwareCompatibilityLevel=fake_namespace(version, NONE="NONE"))
    with pytest.raises(BackendUnavailableError, match="no same-cc hardware compatibility"):
        trt_export._configure(older, config, trt_export.TensorRtBuildOptions(hardware_compatibility="same-cc"))


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed")
def test_building_without_tensorrt_says_what_to_carry_where(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError) as caught:
        trt_export.build_engine(tiny_model().onnx, tmp_path / "m.engine", carry="the bundle's FP32 ONNX")
    message = str(caught.value)
    assert message.startswith(
        "TensorRT is not installed here: carry the bundle's FP32 ONNX to the target device"
    )
    assert "`edgeresnet compile BUNDLE --target tensorrt`" in message and "\n" not in message
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engines_build_run_and_report_their_layers(tmp_path: Path, precision: str) -> None:
    from edgeresnet.backends.tensorrt.runner import TensorRTRunner

    onnx_model = tiny_model().onnx
    if precision == "fp16":
        onnx_model = trt_export.convert_onnx_to_fp16(onnx_model, tmp_path / "fp16.onnx").path
    options = trt_export.TensorRtBuildOptions(
        max_batch=8, opt_batch=4, timing_cache=tmp_path / "timing.cache"
    )
    build = trt_export.build_engine(onnx_model, tmp_path / "m.engine", options=options)
    assert build.profile == {"min": 1, "opt": 4, "max": 8} and (tmp_path / "timing.cache").stat().st_size > 0
    assert build.layer_precisions.get(precision.upper(), 0) > 0
    with (
        OnnxRuntimeRunner(tiny_model().onnx) as reference,
        TensorRTRunner(build.engine, precision=precision) as runner,
    ):
        expected, logits = reference.infer(IMAGES), runner.infer(IMAGES)  # 32 images run as slices of 8
        assert runner.max_batch == 8
    assert check_parity(expected, logits, precision).passed


@pytest.mark.tensorrt
def test_an_int8_engine_from_the_tensorrt_qdq_runs_its_convolutions_in_int8(tmp_path: Path) -> None:
    """NVIDIA's placement on a real TensorRT: the engine computes in INT8 and reproduces the QDQ model."""
    import hashlib

    from edgeresnet.backends.tensorrt.runner import TensorRTRunner
    from edgeresnet.calibration import calibrate, quantize_qdq

    table = calibrate(tiny_model().onnx, [IMAGES], method="minmax",
                      data_hash=hashlib.sha256(IMAGES.tobytes()).hexdigest())
    qdq = tmp_path / "model.trt-qdq.onnx"
    quantize_qdq(tiny_model().onnx, table, qdq, flavour="tensorrt")
    build = trt_export.build_engine(qdq, tmp_path / "int8.engine",
                                    options=trt_export.TensorRtBuildOptions(max_batch=8, opt_batch=8))
    assert build.layer_precisions.get("INT8", 0) > 0 and build.layer_precisions.get("unknown", 0) == 0
    with OnnxRuntimeRunner(qdq, precision="int8") as reference, TensorRTRunner(build.engine, precision="int8") as runner:
        expected, logits = reference.infer(IMAGES), runner.infer(IMAGES)
    assert check_parity(expected, logits, "int8").passed
