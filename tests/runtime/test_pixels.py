"""uint8 pixels in: in-model preprocessing (OpenVINO), camera frames, and predict_iter over many files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeresnet.errors import EdgeResNetError
from edgeresnet.runtime.classifier import Classifier
from edgeresnet.runtime.onnxruntime import OnnxRuntimeRunner
from tests.runtime.tiny_bundle import SPEC, blob_images, golden_inputs, make_bundle, tiny_model


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("pixels") / "fp32", tiny_model().onnx)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return blob_images(8, seed=71)[0]  # uint8 N×32×32×3: camera frames at the input size


@pytest.fixture(scope="module")
def ir_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("openvino")
    from edgeresnet.export.openvino import convert_to_ir

    root = tmp_path_factory.mktemp("ir")
    xml = convert_to_ir(tiny_model().onnx, root / "model.xml")
    with OnnxRuntimeRunner(tiny_model().onnx) as runner:
        golden = runner.infer(golden_inputs())
    return make_bundle(root / "bundle", xml, target="openvino", outputs=golden,
                       extra_files={"model.bin": xml.with_suffix(".bin")})


@pytest.mark.openvino
def test_openvino_normalises_inside_the_model_like_the_spec(ir_bundle: Path, frames: np.ndarray) -> None:
    with Classifier.load(ir_bundle) as classifier:
        assert classifier.runner.preprocesses_in_model
        in_model = classifier.runner.infer_pixels(frames, SPEC)
        in_numpy = classifier.runner.infer(SPEC.normalise(frames))
        single = classifier.runner.infer_pixels(frames[:1], SPEC)  # another batch size
    np.testing.assert_allclose(in_model, in_numpy, atol=1e-4, rtol=0)
    np.testing.assert_allclose(single, in_numpy[:1], atol=1e-4, rtol=0)


@pytest.mark.openvino
def test_camera_frames_give_the_same_answers_on_every_backend(
    bundle: Path, ir_bundle: Path, frames: np.ndarray
) -> None:
    with Classifier.load(bundle) as onnx_classifier, Classifier.load(ir_bundle) as ir_classifier:
        assert not onnx_classifier.runner.preprocesses_in_model
        from_onnx = onnx_classifier.predict(frames, top_k=1)
        from_ir = ir_classifier.predict_frames(frames, top_k=1)
    assert [r[0].index for r in from_onnx] == [r[0].index for r in from_ir]
    with OnnxRuntimeRunner(tiny_model().onnx) as runner:
        expected = runner.infer(SPEC.apply_batch(frames)).argmax(1)
    assert [r[0].index for r in from_ir] == list(expected)


@pytest.mark.parametrize("kind", ["fp32", "qdq"])
def test_onnxruntime_runs_the_bundles_pixel_model_like_the_numpy_path(
    tmp_path: Path, frames: np.ndarray, kind: str
) -> None:
    from edgeresnet.export.onnx import add_pixel_input

    model = tiny_model().onnx if kind == "fp32" else tiny_model().qdq
    pixel_model = add_pixel_input(model, tmp_path / "model.pixels.onnx", SPEC)
    with OnnxRuntimeRunner(model) as runner:
        golden = runner.infer(golden_inputs())
    bundle = make_bundle(tmp_path / "bundle", model, outputs=golden, pixel_model="model.pixels.onnx",
                         extra_files={"model.pixels.onnx": pixel_model})
    with Classifier.load(bundle) as classifier:
        assert classifier.runner.preprocesses_in_model
        in_model = classifier.logits_from_pixels(frames)
        in_numpy = classifier.logits(SPEC.normalise(frames))
    np.testing.assert_allclose(in_model, in_numpy, atol=1e-4, rtol=0)
    # A bundle naming a pixel model outside itself is refused (the bundle's door); one without falls back
    # to numpy normalisation.
    outside = make_bundle(tmp_path / "outside", model, outputs=golden, pixel_model="../model.pixels.onnx")
    with pytest.raises(EdgeResNetError, match="outside the bundle"):
        Classifier.load(outside)
    plain = make_bundle(tmp_path / "plain", model, outputs=golden)
    with Classifier.load(plain) as classifier:
        assert not classifier.runner.preprocesses_in_model
        np.testing.assert_allclose(classifier.logits_from_pixels(frames), in_numpy, atol=1e-4, rtol=0)


def test_pixels_of_the_wrong_shape_or_type_are_refused(bundle: Path, frames: np.ndarray) -> None:
    with Classifier.load(bundle) as classifier:
        with pytest.raises(EdgeResNetError, match="expected uint8 pixels of shape N×32×32×3"):
            classifier.logits_from_pixels(frames.astype(np.float32))
        with pytest.raises(EdgeResNetError, match="expected uint8 pixels"):
            classifier.runner.infer_pixels(frames[:, :16], SPEC)


def test_predict_iter_keeps_order_batches_and_turns_bad_files_into_rows(bundle: Path, tmp_path: Path) -> None:
    arrays = blob_images(7, seed=72)[0]
    paths: list[Path] = []
    for index, array in enumerate(arrays):
        paths.append(tmp_path / f"{index}.jpg")
        Image.fromarray(array).resize((48, 40)).save(paths[-1], quality=95)  # resized by the spec
    paths.insert(3, tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG truncated")
    paths.insert(5, tmp_path / "broken.png")
    with Classifier.load(bundle) as classifier:
        results = list(classifier.predict_iter(iter(paths), batch_size=3, top_k=2, workers=2))
        expected = {str(p): classifier.predict(p, top_k=2)[0] for p in paths if "missing" not in p.name
                    and "broken" not in p.name}
    assert [r.path for r in results] == [str(p) for p in paths]
    errors = {r.path: r.error for r in results if not r.ok}
    assert set(errors) == {str(tmp_path / "missing.png"), str(tmp_path / "broken.png")}
    assert errors[str(tmp_path / "missing.png")].startswith("image not found")
    assert errors[str(tmp_path / "broken.png")].startswith("cannot decode image")
    assert {r.path: list(r.predictions) for r in results if r.ok} == expected
    with Classifier.load(bundle) as classifier, pytest.raises(EdgeResNetError, match="batch size"):
        next(classifier.predict_iter(paths, batch_size=0))


@pytest.mark.parametrize("channels", ["RGB", "L"])
def test_normalise_is_the_documented_arithmetic_bit_for_bit(channels: str) -> None:
    """(x - 255·mean) / (255·std) in float32, NCHW: what the in-model preprocessing compiles too."""
    spec = SPEC.with_channels(channels)  # type: ignore[arg-type]
    pixels = np.random.default_rng(5).integers(0, 256, (3, 32, 32, spec.num_channels), dtype=np.uint8)
    mean = np.asarray(spec.mean, np.float32) * 255.0
    scale = 1.0 / (np.asarray(spec.std, np.float32) * 255.0)
    expected = ((pixels.astype(np.float32) - mean) * scale).transpose(0, 3, 1, 2)
    got = spec.normalise(pixels)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, expected)
    assert np.array_equal(spec.normalise(pixels[..., 0] if channels == "L" else pixels[:1])[0], expected[0])


@pytest.mark.parametrize("channels", ["RGB", "L"])
def test_the_pixel_models_preprocessing_is_the_spec_bit_for_bit(tmp_path: Path, channels: str) -> None:
    """On an identity model the prepended nodes must give ``normalise`` exactly, planes transposed first."""
    import onnx
    from onnx import TensorProto, helper

    from edgeresnet.export.onnx import add_pixel_input

    spec = SPEC.with_channels(channels)  # type: ignore[arg-type]
    shape = ["N", spec.num_channels, *spec.input_size]
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(tmp_path / "identity.onnx"))
    pixel_model = add_pixel_input(tmp_path / "identity.onnx", tmp_path / "pixels.onnx", spec)
    # uint8 transposed first and per-channel constants as C×1×W blocks: broadcasting 3 values innermost
    # (NHWC) is ~10x slower in ONNX Runtime.
    built = onnx.load(str(pixel_model)).graph
    assert [node.op_type for node in built.node][:2] == ["Transpose", "Cast"]
    assert all(init.dims[-1] == spec.input_size[1] for init in built.initializer if init.name.startswith("pixels"))
    import onnxruntime as ort

    session = ort.InferenceSession(str(pixel_model), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(9).integers(0, 256, (2, *spec.input_size, spec.num_channels), dtype=np.uint8)
    assert np.array_equal(session.run(None, {"pixels": pixels})[0], spec.normalise(pixels))
