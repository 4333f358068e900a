"""QDQ writers: ONNX Runtime and TensorRT flavours, determinism, exclusions and the TensorRT rule check."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeresnet.calibration import (
    CalibrationTable,
    QdqQuantizer,
    check_tensorrt_rules,
    inspect_qdq,
    quantize_qdq,
)
from edgeresnet.errors import CalibrationError, ExportError
from tests.calibration.conftest import default_mode

CONVS = 6
# layer1 is 8→8 channels: TensorRT has no INT8 kernel for it, so NVIDIA's rule (and ModelOpt) leave the
# block in float, its Add with it; the stem (1→8, on the graph input) and layer2 (8→16) are quantized.
SMALL_BLOCK = ("/layer1/conv1/Conv", "/layer1/conv2/Conv", "/layer1/Add")
TRT_CONVS = CONVS - 2


def _run(path: Path | str, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": images})[0]


def _optimized_ops(path: Path, tmp_path: Path) -> list[str]:
    """Op types after ORT's QDQ fusions (extended level: the same on every CPU)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]


@pytest.fixture(scope="module")
def eval_images(eval_batches: list) -> np.ndarray:
    return np.concatenate([images for images, _ in eval_batches])


@pytest.fixture(scope="module")
def ort_qdq(tables: dict, fp32_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ort") / "model.int8.onnx"
    report = quantize_qdq(fp32_onnx, tables["entropy"], path, flavour="onnxruntime")
    assert report.path == str(path) and report.num_excluded == 0 and not report.float_nodes
    assert len(report.fused_relus) == 5
    return path


@pytest.fixture(scope="module")
def trt_qdq(tables: dict, fp32_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trt") / "model.trt-qdq.onnx"
    quantize_qdq(fp32_onnx, tables["entropy"], path, flavour="tensorrt")
    return path


def _assert_close_to_fp32(path: Path, fp32_onnx: Path, images: np.ndarray) -> None:
    reference, quantized = _run(fp32_onnx, images), _run(path, images)
    agreement = np.mean(reference.argmax(1) == quantized.argmax(1))
    assert agreement >= 0.97
    assert np.mean(np.abs(reference - quantized)) < 0.1 * np.std(reference)


def test_onnxruntime_qdq_agrees_with_fp32(ort_qdq: Path, fp32_onnx: Path, eval_images: np.ndarray) -> None:
    _assert_close_to_fp32(ort_qdq, fp32_onnx, eval_images)


def test_onnxruntime_qdq_fuses_into_integer_kernels(ort_qdq: Path, tmp_path: Path) -> None:
    ops = _optimized_ops(ort_qdq, tmp_path)
    assert ops.count("QLinearConv") == CONVS and "Conv" not in ops
    assert ops.count("QLinearAdd") == 2 and "Add" not in ops
    assert "QLinearGlobalAveragePool" in ops and "QGemm" in ops and "Gemm" not in ops
    assert ops.count("QuantizeLinear") == 1 and "DequantizeLinear" not in ops  # only the input is quantized


def test_onnxruntime_qdq_types(ort_qdq: Path) -> None:
    summary = inspect_qdq(ort_qdq)
    assert summary["activation_dtypes"] == ["uint8"]
    assert summary["weight_dtypes"] == ["int8"] and summary["bias_dtypes"] == ["int32"]
    assert summary["per_channel_weights"] == CONVS + 1 and summary["per_tensor_weights"] == 0
    assert summary["float_nodes"] == [] and summary["opset"] >= 13
    assert any("uint8 quantization" in problem for problem in check_tensorrt_rules(ort_qdq))


def test_same_table_gives_byte_identical_models(tables: dict, fp32_onnx: Path, tmp_path: Path) -> None:
    import onnx

    reloaded = CalibrationTable.load(tables["percentile"].save(tmp_path / "table.json"))
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    quantize_qdq(fp32_onnx, tables["percentile"], first, flavour="onnxruntime")
    quantize_qdq(fp32_onnx, reloaded, second, flavour="onnxruntime")
    assert first.read_bytes() == second.read_bytes()
    assert stat.S_IMODE(first.stat().st_mode) == default_mode()  # written through edgeresnet.atomic
    scales = {
        tensor.name: tensor.SerializeToString()
        for tensor in onnx.load(str(first)).graph.initializer
        if tensor.name.endswith(("_scale", "_zero_point"))
    }
    assert len(scales) > 20
    other = quantize_qdq(fp32_onnx, tables["minmax"], tmp_path / "c.onnx", flavour="onnxruntime")
    different = {t.name: t.SerializeToString() for t in onnx.load(other.path).graph.initializer}
    assert different["input_scale"] != scales["input_scale"]  # and the table really drives the scales


def test_tensorrt_qdq_follows_the_rules_and_agrees(trt_qdq: Path, fp32_onnx: Path, eval_images: np.ndarray) -> None:
    assert check_tensorrt_rules(trt_qdq) == []
    summary = inspect_qdq(trt_qdq)
    assert summary["activation_dtypes"] == ["int8"] and summary["weight_dtypes"] == ["int8"]
    assert summary["bias_dtypes"] == [] and summary["per_channel_weights"] == TRT_CONVS  # the classifier stays float
    assert summary["scale_dtypes"] == ["float16"] and summary["opset"] == 19
    assert summary["float_nodes"] == [*SMALL_BLOCK, "/fc/Gemm"]
    _assert_close_to_fp32(trt_qdq, fp32_onnx, eval_images)


def test_tensorrt_qdq_structure(trt_qdq: Path) -> None:
    """NVIDIA's placement: Q/DQ on each Conv's data and weight, the GAP input, and only the shortcut of an Add."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(trt_qdq))
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    assert [value.type.tensor_type.elem_type for value in (*model.graph.input, *model.graph.output)] == [
        TensorProto.FLOAT, TensorProto.FLOAT]  # callers still feed and read float32
    adds = 0
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert constants[node.input[2]].dtype == np.int8 and not constants[node.input[2]].any()
            assert constants[node.input[1]].dtype == np.float16
        if node.name in SMALL_BLOCK:  # float: no input reads a DQ
            assert all(producers.get(name) is None or producers[name].op_type != "DequantizeLinear"
                       for name in node.input), node.name
            continue
        if node.op_type == "Add":
            adds += 1
            sources = [producers[name].op_type for name in node.input]
            assert sources.count("Conv") == 1 and sources.count("DequantizeLinear") == 1, sources
        if node.op_type == "Conv":
            weight_dq = producers[node.input[1]]
            axis = next(a.i for a in weight_dq.attribute if a.name == "axis")
            assert axis == 0 and constants[weight_dq.input[1]].shape == (constants[weight_dq.input[0]].shape[0],)
            assert producers[node.input[0]].op_type == "DequantizeLinear"
            assert node.input[2] in constants and constants[node.input[2]].dtype == np.float16  # float bias
        if node.op_type == "GlobalAveragePool":
            assert producers[node.input[0]].op_type == "DequantizeLinear"
        if node.op_type == "Gemm":  # left in high precision: FP16, unquantized
            assert all(producers.get(name) is None or producers[name].op_type != "DequantizeLinear"
                       for name in node.input)
            assert constants[node.input[1]].dtype == np.float16
    assert adds == 1
    # The projection shortcut's Conv output is the quantized input of layer2's Add; conv2 enters it directly.
    add = next(node for node in model.graph.node if node.name == "/layer2/Add")
    dq = next(producers[name] for name in add.input if producers[name].op_type == "DequantizeLinear")
    assert producers[producers[dq.input[0]].input[0]].name == "/layer2/shortcut/shortcut.0/Conv"


def test_tensorrt_high_precision_fp32_option(tables: dict, fp32_onnx: Path, trt_qdq: Path, tmp_path: Path,
                                             eval_images: np.ndarray) -> None:
    path = tmp_path / "fp32-rest.onnx"
    report = quantize_qdq(fp32_onnx, tables["entropy"], path, flavour="tensorrt", high_precision="fp32")
    assert report.high_precision == "fp32" and check_tensorrt_rules(path) == []
    summary = inspect_qdq(path)
    assert summary["scale_dtypes"] == ["float32"] and summary["opset"] == 17
    assert "Cast" not in summary["op_counts"]
    assert inspect_qdq(trt_qdq)["op_counts"]["Cast"] == 2  # the FP16 model casts its input and its logits
    # Only the float parts differ: FP16 rounding, far below the INT8 error.
    # Judged against the INT8 error itself (a fixed fraction of the logits' spread depended on the CPU's kernels).
    fp32_rest, fp16_rest = _run(path, eval_images), _run(trt_qdq, eval_images)
    int8_error = np.mean(np.abs(fp32_rest - _run(fp32_onnx, eval_images)))
    fp16_error = np.mean(np.abs(fp32_rest - fp16_rest))
    # (ONNX Runtime's CPU kernels stand in for TensorRT's here; on AVX-512 hosts their FP16 error is ~half INT8's.)
    assert 0 < fp16_error < int8_error, (fp16_error, int8_error)
    assert np.mean(fp32_rest.argmax(1) == fp16_rest.argmax(1)) >= 0.98
    assert np.mean(fp32_rest.argmax(1) == fp16_rest.argmax(1)) >= 0.99
    with pytest.raises(ExportError, match="fp32, not 'fp16'"):
        QdqQuantizer(fp32_onnx, tables["entropy"], flavour="onnxruntime", high_precision="fp16")


def _edit(source: Path, target: Path, change: Callable[[Any], None]) -> Path:
    import onnx

    model = onnx.load(str(source))
    change(model)
    onnx.save(model, str(target))
    return target


def _shortcut_pair(model: Any) -> tuple[Any, Any, Any]:
    """layer2's Add and the Q/DQ pair on its shortcut input."""
    add = next(node for node in model.graph.node if node.name == "/layer2/Add")
    dq = next(node for node in model.graph.node if node.op_type == "DequantizeLinear" and node.output[0] in add.input)
    q = next(node for node in model.graph.node if dq.input[0] in node.output)
    return add, q, dq


def test_broken_tensorrt_models_are_flagged(trt_qdq: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import helper, numpy_helper

    def nonzero_zero_point(model: onnx.ModelProto) -> None:
        q = next(node for node in model.graph.node if node.op_type == "QuantizeLinear")
        tensor = next(t for t in model.graph.initializer if t.name == q.input[2])
        tensor.CopyFrom(numpy_helper.from_array(np.array(3, dtype=np.int8), tensor.name))

    def uint8_pair(model: onnx.ModelProto) -> None:
        q = next(node for node in model.graph.node if node.op_type == "QuantizeLinear")
        tensor = next(t for t in model.graph.initializer if t.name == q.input[2])
        tensor.CopyFrom(numpy_helper.from_array(np.array(128, dtype=np.uint8), tensor.name))

    def weight_axis_one(model: onnx.ModelProto) -> None:
        conv = next(node for node in model.graph.node if node.op_type == "Conv")
        dq = next(node for node in model.graph.node if conv.input[1] in node.output)
        next(a for a in dq.attribute if a.name == "axis").i = 1

    def bare_shortcut(model: onnx.ModelProto) -> None:
        add, q, dq = _shortcut_pair(model)
        add.input[list(add.input).index(dq.output[0])] = q.input[0]  # the shortcut reaches the Add in float

    def quantized_branch(model: onnx.ModelProto) -> None:
        add, q, _ = _shortcut_pair(model)
        branch = next(name for name in add.input if not name.endswith("dequantized"))
        pair = [helper.make_node("QuantizeLinear", [branch, q.input[1], q.input[2]], ["bq"], name="bq"),
                helper.make_node("DequantizeLinear", ["bq", q.input[1], q.input[2]], ["bdq"], name="bdq")]
        index = list(model.graph.node).index(add)
        for offset, node in enumerate(pair):
            model.graph.node.insert(index + offset, node)
        add.input[list(add.input).index(branch)] = "bdq"

    def half_quantized_gemm(model: onnx.ModelProto) -> None:
        gemm = next(node for node in model.graph.node if node.op_type == "Gemm")
        _, q, _ = _shortcut_pair(model)
        pair = [helper.make_node("QuantizeLinear", [gemm.input[0], q.input[1], q.input[2]], ["gq"], name="gq"),
                helper.make_node("DequantizeLinear", ["gq", q.input[1], q.input[2]], ["gdq"], name="gdq")]
        index = list(model.graph.node).index(gemm)
        for offset, node in enumerate(pair):
            model.graph.node.insert(index + offset, node)
        gemm.input[0] = "gdq"

    cases = {
        "zero point [3] is not 0": nonzero_zero_point,
        "uint8 quantization; TensorRT needs symmetric int8": uint8_pair,
        "axis 1; the output-channel axis is 0": weight_axis_one,
        "shortcut input": bare_shortcut,
        "Q/DQ on the convolution branch": quantized_branch,
        "/fc/Gemm: Gemm weight is not quantized": half_quantized_gemm,
    }
    for index, (message, change) in enumerate(cases.items()):
        problems = check_tensorrt_rules(_edit(trt_qdq, tmp_path / f"broken{index}.onnx", change))
        # Flagged, and nothing else is (a shared zero point is flagged on the Q and on the DQ).
        assert problems and all(message in problem for problem in problems), (message, problems)


def test_the_forms_nvidias_tools_write_are_accepted(trt_qdq: Path, tmp_path: Path) -> None:
    """QAT-style weights (float → Q → DQ), opset 21 without zero points, and per-tensor weight scales."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def qat_weights(model: onnx.ModelProto) -> None:
        constants = {t.name: t for t in model.graph.initializer}
        for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants]:
            stored = constants[dq.input[0]]
            scale = numpy_helper.to_array(constants[dq.input[1]]).astype(np.float32)
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            shape = [1] * len(stored.dims)
            shape[axis] = -1
            weight = (numpy_helper.to_array(stored).astype(np.float32) * scale.reshape(shape)).astype(np.float16)
            stored.CopyFrom(numpy_helper.from_array(weight, stored.name))
            q_out = f"{stored.name}_q"
            q = helper.make_node("QuantizeLinear", [stored.name, dq.input[1], dq.input[2]], [q_out],
                                 name=f"{stored.name}_Q", axis=axis)
            model.graph.node.insert(list(model.graph.node).index(dq), q)
            dq.input[0] = q_out

    def opset21_no_zero_points(model: onnx.ModelProto) -> None:
        for node in model.graph.node:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                del node.input[2:]
            if node.op_type == "QuantizeLinear":
                node.attribute.append(helper.make_attribute("output_dtype", TensorProto.INT8))
        model.opset_import[0].version = 21

    def per_tensor_weights(model: onnx.ModelProto) -> None:
        constants = {t.name: t for t in model.graph.initializer}
        for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear" and constants[n.input[1]].dims]:
            scale = constants[dq.input[1]]
            scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale).max().reshape(()), scale.name))
            zero = constants[dq.input[2]]
            zero.CopyFrom(numpy_helper.from_array(np.array(0, np.int8), zero.name))
            del dq.attribute[:]

    for index, change in enumerate((qat_weights, opset21_no_zero_points, per_tensor_weights)):
        path = _edit(trt_qdq, tmp_path / f"form{index}.onnx", change)
        onnx.checker.check_model(onnx.load(str(path)))
        assert check_tensorrt_rules(path) == [], change.__name__
    assert inspect_qdq(tmp_path / "form0.onnx")["per_channel_weights"] == TRT_CONVS  # QAT weights read as weights
    assert inspect_qdq(tmp_path / "form2.onnx")["per_tensor_weights"] == TRT_CONVS

    def opset21_uint8(model: onnx.ModelProto) -> None:
        opset21_no_zero_points(model)
        q = next(node for node in model.graph.node if node.op_type == "QuantizeLinear")
        next(a for a in q.attribute if a.name == "output_dtype").i = TensorProto.UINT8

    problems = check_tensorrt_rules(_edit(trt_qdq, tmp_path / "uint8.onnx", opset21_uint8))
    assert len(problems) == 2 and all("uint8 quantization" in problem for problem in problems), problems
    assert "(no zero point and no int8 output_dtype)" in problems[0]  # the Q; its DQ reads the same uint8


def test_exclude_nodes_stay_float(tables: dict, fp32_onnx: Path, tmp_path: Path, eval_images: np.ndarray) -> None:
    excluded = {"/layer2/conv1/Conv", "/layer2/Add"}
    for flavour in ("onnxruntime", "tensorrt"):
        path = tmp_path / f"{flavour}.onnx"
        report = quantize_qdq(fp32_onnx, tables["entropy"], path, flavour=flavour, exclude_nodes=excluded)
        assert set(report.excluded_nodes) == excluded and excluded <= set(report.float_nodes)
        assert not excluded & set(report.quantized_nodes)
        nvidia_float = {*SMALL_BLOCK, "/fc/Gemm"} if flavour == "tensorrt" else set()  # TensorRT's own rules
        assert set(inspect_qdq(path)["float_nodes"]) == excluded | nvidia_float
        _assert_close_to_fp32(path, fp32_onnx, eval_images)
    assert check_tensorrt_rules(tmp_path / "tensorrt.onnx", float_nodes=excluded) == []
    # Unlisted, they are violations: the conv's data input and weight, and the float Add's shortcut.
    assert len(check_tensorrt_rules(tmp_path / "tensorrt.onnx")) == 3
    with pytest.raises(CalibrationError, match="not in the model"):
        QdqQuantizer(fp32_onnx, tables["entropy"], flavour="tensorrt").build({"/no/such/node"})


def test_table_from_another_model_is_refused(tables: dict, fp32_onnx: Path, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(fp32_onnx))
    model.producer_version = "other"
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    with pytest.raises(CalibrationError, match="recalibrate"):
        quantize_qdq(other, tables["entropy"], tmp_path / "out.onnx", flavour="onnxruntime")
    assert not (tmp_path / "out.onnx").exists()


def test_unfolded_batchnorm_is_folded_before_quantizing(tmp_path: Path) -> None:
    """A Conv→BatchNormalization→Relu graph calibrates and quantizes like its folded twin."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgeresnet.calibration import calibrate
    from tests.calibration.conftest import data_hash, smooth_images

    rng = np.random.default_rng(5)
    weights = {
        "w": rng.normal(0, 0.5, (8, 1, 3, 3)), "gamma": rng.uniform(0.5, 2, 8), "beta": rng.normal(0, 1, 8),
        "mean": rng.normal(0, 1, 8), "var": rng.uniform(0.5, 2, 8),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("BatchNormalization", ["conv", "gamma", "beta", "mean", "var"], ["bn"], name="bn"),
            helper.make_node("Relu", ["bn"], ["out"], name="relu"),
        ],
        "conv_bn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, 28, 28])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 8, 28, 28])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()],
    )
    path = tmp_path / "conv_bn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    images, _ = smooth_images(16, seed=6)
    table = calibrate(path, [images], method="minmax", data_hash=data_hash([images]))
    assert set(table.ranges) == {"input"}  # the output is a graph output and stays float
    out = tmp_path / "conv_bn.int8.onnx"
    report = quantize_qdq(path, table, out, flavour="tensorrt")
    assert report.quantized_nodes == ("conv",)
    assert "BatchNormalization" not in inspect_qdq(out)["op_counts"]
    reference, quantized = _run(path, images), _run(out, images)
    assert np.max(np.abs(reference - quantized)) < 0.05 * np.max(np.abs(reference))


def _int8_weight_extremes(path: Path) -> int:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = [numpy_helper.to_array(t) for t in model.graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and t.dims and len(t.dims) >= 2]
    return max(int(np.abs(w.astype(np.int32)).max()) for w in weights)


def test_onnxruntime_weights_are_7_bit_and_tensorrt_weights_use_the_full_grid(ort_qdq: Path, trt_qdq: Path) -> None:
    # ±127 weights overflow the saturating 16-bit sums of ORT's U8S8 kernels on CPUs without VNNI.
    assert _int8_weight_extremes(ort_qdq) == 63
    assert _int8_weight_extremes(trt_qdq) == 127
