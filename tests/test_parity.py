"""The one parity judge: its verdicts, and that export and verify reach the same verdict on the same logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeresnet.errors import EdgeResNetError
from edgeresnet.parity import TOLERANCES, check_parity

CLASSES = 10
IMAGES = 1200  # enough that one flipped image is under 0.1%, the margin a looser judge once allowed
SIDE = 4  # 1×4×4 inputs: 16 values, the first 10 of which a pass-through model returns as logits


def test_check_parity_forgives_near_ties_only() -> None:
    reference = np.array([[5.0, 4.9995, 0.0], [0.0, 9.0, 1.0]], np.float32)
    flipped_tie = np.array([[4.9995, 5.0, 0.0], [0.0, 9.0, 1.0]], np.float32)
    tie = check_parity(reference, flipped_tie, "fp32")
    assert tie.passed and tie.top1_agreement_pct == 50.0 and tie.decisive_top1_agreement_pct == 100.0
    wrong = check_parity(reference, reference[:, ::-1].copy(), "int8")
    assert not wrong.passed and wrong.decisive_top1_agreement_pct < 100.0
    with pytest.raises(EdgeResNetError, match="cannot be compared"):
        check_parity(reference, reference[:1], "fp32")
    with pytest.raises(EdgeResNetError, match="no tolerance"):
        check_parity(reference, reference, "int4")


def test_agreement_at_the_boundary_of_a_tolerance_passes() -> None:
    """9 of 10 decisive agreements is exactly INT8's minimum of 90% and passes; 8 of 10 fails."""
    reference = np.tile(np.array([[10.0, 0.0]]), (10, 1))
    reference[:2] = [10.0, 8.0]  # a margin of 2, more than INT8's allowed 0.15 × range 10 = 1.5
    candidate = reference.copy()
    candidate[0] = [8.9, 9.1]  # flipped, yet every |Δlogit| (1.1) is within the bound
    one_flip = check_parity(reference, candidate, "int8")
    assert one_flip.allowed_abs_diff == pytest.approx(1.5) and one_flip.max_abs_diff == pytest.approx(1.1)
    assert one_flip.decisive_top1_agreement_pct == 90.0 and one_flip.passed
    candidate[1] = [8.9, 9.1]
    two_flips = check_parity(reference, candidate, "int8")
    assert two_flips.decisive_top1_agreement_pct == 80.0 and not two_flips.passed


# --- export and verify judge alike -----------------------------------------------------------------


def _pairs() -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    """name → (reference logits, candidate logits, the verdict the FP32 tolerance gives)."""
    rng = np.random.default_rng(7)
    base = rng.normal(0.0, 1.0, (IMAGES, CLASSES))
    base[np.arange(IMAGES), rng.integers(0, CLASSES, IMAGES)] += 6.0  # every image decisive
    base = base.astype(np.float32)
    bound = TOLERANCES["fp32"].relative * float(base.max() - base.min())
    noise = (base + rng.uniform(-0.1, 0.1, base.shape) * bound).astype(np.float32)
    pairs = {"same model": (base, noise, True)}

    def flipped(rows: list[int], margin: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
        # The reference prefers its top class by ``margin``; the candidate moves both logits by
        # ``shift`` towards each other, so it prefers the other class by 2 * shift - margin.
        reference, candidate = base.copy(), noise.copy()
        for row in rows:
            first, second = np.argsort(-base[row])[:2]
            reference[row, second] = base[row, first] - margin
            candidate[row] = reference[row]
            candidate[row, first] -= shift
            candidate[row, second] += shift
        return reference, candidate

    # Two near ties flip: below 99.9% raw agreement, but rounding flips them and says nothing.
    pairs["near ties flip"] = (*flipped([0, 1], 0.2 * bound, 0.15 * bound), True)
    # One decisive flip with every |Δlogit| inside the bound: above 99.9% raw agreement, but a wrong answer.
    pairs["a decisive flip"] = (*flipped([2], 1.5 * bound, 0.8 * bound), False)
    wrong = noise.copy()
    wrong[3] += np.float32(1.0)  # a logit off by a whole unit, top-1 unchanged
    pairs["a wrong graph"] = (base, wrong, False)
    return pairs


def _pass_through_onnx(path: Path) -> Path:
    """An FP32 ONNX model whose logits are the first ``CLASSES`` values of its 1×SIDE×SIDE input."""
    import onnx
    from onnx import TensorProto, helper

    starts, ends, axes = (helper.make_tensor(n, TensorProto.INT64, [1], [v])
                          for n, v in (("starts", 0), ("ends", CLASSES), ("axes", 1)))
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
         helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["logits"])],
        "pass_through",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, SIDE, SIDE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=[starts, ends, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _inputs_giving(logits: np.ndarray) -> np.ndarray:
    inputs = np.zeros((len(logits), 1, SIDE, SIDE), np.float32)
    inputs.reshape(len(logits), -1)[:, :CLASSES] = logits
    return inputs


def _export_verdict(reference: np.ndarray, candidate: np.ndarray, model: Path) -> bool:
    """What `export` decides: PyTorch (here a module replaying ``reference``) against the ONNX file."""
    import torch

    from edgeresnet.export.onnx import onnx_parity

    class Replay(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            assert len(images) == len(reference)
            return torch.from_numpy(reference)

    return onnx_parity(Replay(), model, [_inputs_giving(candidate)], threads=1).passed


def _verify_verdict(reference: np.ndarray, candidate: np.ndarray, model: Path, bundle: Path) -> bool:
    """What `verify` decides: a bundle whose golden outputs are ``reference`` and whose model gives ``candidate``."""
    from edgeresnet.bundle import Manifest, write_bundle
    from edgeresnet.data.preprocessing import PreprocessSpec
    from edgeresnet.verify import verify_bundle

    manifest = Manifest(
        architecture="pass-through", precision="fp32", target="onnxruntime", model_file="model.onnx",
        preprocessing=PreprocessSpec(input_size=(SIDE, SIDE), channels="L", mean=(0.0,), std=(1.0,)),
        class_names=[f"class-{k}" for k in range(CLASSES)],
        input={"name": "input", "shape": [None, 1, SIDE, SIDE], "dtype": "float32", "layout": "NCHW"},
    )
    write_bundle(bundle, manifest, {"model.onnx": model}, golden_inputs=_inputs_giving(candidate),
                 golden_outputs=reference)
    report = verify_bundle(bundle)
    assert report.golden is not None, report.summary()  # the golden outputs were judged, not skipped
    return report.passed


@pytest.mark.parametrize("name", list(_pairs()))
def test_export_and_verify_judge_the_same_logits_alike(name: str, tmp_path: Path) -> None:
    reference, candidate, expected = _pairs()[name]
    model = _pass_through_onnx(tmp_path / "model.onnx")
    assert check_parity(reference, candidate, "fp32").passed is expected  # the pair is the case it names
    assert _export_verdict(reference, candidate, model) is expected
    assert _verify_verdict(reference, candidate, model, tmp_path / "bundle") is expected
