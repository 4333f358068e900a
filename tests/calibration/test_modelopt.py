"""The TensorRT QDQ writer against NVIDIA ModelOpt, the tool whose placement it follows.

On every machine: ModelOpt's own output (committed, written by ``make_modelopt_reference.py``) passes
``check_tensorrt_rules``, and the writer's placement on the same FP32 model equals ModelOpt's, layer by
layer. Where ModelOpt is installed (``$EDGERESNET_MODELOPT_PYTHON`` or a probed interpreter, see
``modelopt_support``), ModelOpt runs live, on that model and on a freshly exported ResNet-20.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeresnet.calibration import calibrate, check_tensorrt_rules, quantize_qdq
from edgeresnet.calibration.qdq_rules import qdq_placement
from tests.calibration.conftest import data_hash, smooth_images
from tests.calibration.modelopt_support import modelopt_python, run_modelopt

REFERENCE = Path(__file__).parent / "data" / "modelopt"


def _ours(fp32: Path, images: np.ndarray, out: Path, method: str = "minmax") -> Path:
    batches = [images[:32], images[32:]]
    table = calibrate(fp32, batches, method=method, data_hash=data_hash(batches))
    quantize_qdq(fp32, table, out, flavour="tensorrt")
    return out


def _reference_images() -> np.ndarray:
    return smooth_images(64, seed=2)[0]  # what make_modelopt_reference.py calibrated ModelOpt on


def test_modelopts_own_model_follows_the_tensorrt_rules() -> None:
    assert check_tensorrt_rules(REFERENCE / "modelopt_int8.onnx") == []


def test_placement_equals_modelopts_committed_reference(tmp_path: Path) -> None:
    reference = json.loads((REFERENCE / "reference.json").read_text())
    ours = qdq_placement(_ours(REFERENCE / "fp32.onnx", _reference_images(), tmp_path / "ours.onnx"))
    assert ours == reference["placement"]
    assert qdq_placement(REFERENCE / "modelopt_int8.onnx") == reference["placement"]  # the reader reads it alike
    # The placement is NVIDIA's, not trivial: a shortcut-only Add, a float small-channel block, an FP16 classifier.
    assert {"op": "Add", "quantized": ["shortcut"], "float_type": "float16"} in ours
    assert {"op": "Conv", "quantized": [], "float_type": "float16"} in ours
    assert ours[-1] == {"op": "Gemm", "quantized": [], "float_type": "float16"}


def test_the_old_placement_differs_from_modelopts(tmp_path: Path) -> None:
    """The comparison can fail: Q/DQ on both inputs of the Add (the old writer) is told apart."""
    import onnx
    from onnx import helper

    path = _ours(REFERENCE / "fp32.onnx", _reference_images(), tmp_path / "ours.onnx")
    model = onnx.load(str(path))
    add = next(node for node in model.graph.node if node.op_type == "Add" and
               any(name.endswith("dequantized") for name in node.input))
    branch = next(name for name in add.input if not name.endswith("dequantized"))
    q = next(node for node in model.graph.node if node.op_type == "QuantizeLinear")
    index = list(model.graph.node).index(add)
    model.graph.node.insert(index, helper.make_node("DequantizeLinear", ["bq", q.input[1], q.input[2]], ["bdq"]))
    model.graph.node.insert(index, helper.make_node("QuantizeLinear", [branch, q.input[1], q.input[2]], ["bq"]))
    add.input[list(add.input).index(branch)] = "bdq"
    onnx.save(model, str(tmp_path / "both.onnx"))
    reference = json.loads((REFERENCE / "reference.json").read_text())["placement"]
    assert qdq_placement(tmp_path / "both.onnx") != reference


@pytest.fixture(scope="module")
def modelopt() -> str:
    python = modelopt_python()
    if python is None:
        pytest.skip("NVIDIA ModelOpt is not installed (set EDGERESNET_MODELOPT_PYTHON to its interpreter)")
    return python


@pytest.mark.slow
def test_placement_equals_live_modelopt_on_resnet20(modelopt: str, tmp_path: Path) -> None:
    import torch

    from edgeresnet.data.preprocessing import PreprocessSpec
    from edgeresnet.export.onnx import export_onnx
    from edgeresnet.models import create_model

    torch.manual_seed(0)
    spec = PreprocessSpec(input_size=(28, 28), channels="L", mean=(0.286,), std=(0.353,))
    fp32 = export_onnx(create_model("resnet20", num_classes=10, in_chans=1).eval(), spec, tmp_path / "r20.onnx")
    images = _reference_images()
    theirs = run_modelopt(modelopt, fp32, images, tmp_path / "modelopt.onnx")
    ours = _ours(fp32, images, tmp_path / "ours.onnx")
    assert check_tensorrt_rules(theirs) == [] and check_tensorrt_rules(ours) == []
    expected = qdq_placement(theirs)
    assert sum(record == {"op": "Add", "quantized": ["shortcut"], "float_type": "float16"} for record in expected) == 9
    assert qdq_placement(ours) == expected


@pytest.mark.slow
def test_committed_reference_is_what_modelopt_writes_today(modelopt: str, tmp_path: Path) -> None:
    theirs = run_modelopt(modelopt, REFERENCE / "fp32.onnx", _reference_images(), tmp_path / "modelopt.onnx")
    assert qdq_placement(theirs) == json.loads((REFERENCE / "reference.json").read_text())["placement"]
