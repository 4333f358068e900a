"""Classifier: bundles and bare files in, labelled predictions out; every kind of bad input is one line."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeresnet.errors import BackendUnavailableError, BundleError, DatasetError, EdgeResNetError
from edgeresnet.runtime.classifier import Classifier, Prediction
from edgeresnet.runtime.select import backend_for, get_backend, resolve_device
from tests.runtime.tiny_bundle import LABELS, SPEC, blob_images, make_bundle, tiny_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("b") / "fp32", tiny_model().onnx)


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    return blob_images(6, seed=11)


def test_predict_ranks_labelled_classes_the_same_for_every_input_kind(
    bundle: Path, images: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    arrays, labels = images
    paths = []
    for index, array in enumerate(arrays):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(array).save(paths[-1])
    with Classifier.load(bundle) as classifier:
        from_arrays = classifier.predict(list(arrays), top_k=3)
        from_paths = classifier.predict(paths, top_k=3)
        from_pil = classifier.predict([Image.fromarray(a) for a in arrays], top_k=3)
        from_batch = classifier.predict(arrays, top_k=3)  # a 4-D uint8 array is a batch
        single = classifier.predict(paths[0], top_k=20)
    assert from_arrays == from_paths == from_pil == from_batch
    assert len(from_arrays) == 6 and all(len(ranked) == 3 for ranked in from_arrays)
    first = from_arrays[0]
    assert all(isinstance(p, Prediction) and p.label == LABELS[p.index] for p in first)
    assert first[0].probability >= first[1].probability >= first[2].probability
    assert len(single[0]) == len(LABELS)  # top_k beyond the class count gives every class
    assert sum(p.probability for p in single[0]) == pytest.approx(1.0, abs=1e-6)
    assert [ranked[0].index for ranked in from_arrays] == list(labels)


def test_logits_match_the_spec_applied_by_hand(bundle: Path, images: tuple[np.ndarray, np.ndarray]) -> None:
    arrays, _ = images
    with Classifier.load(bundle) as classifier:
        batch = SPEC.apply_batch(arrays)
        logits = classifier.logits(batch)
        np.testing.assert_array_equal(classifier.preprocess(list(arrays)), batch)
        from_floats = classifier.predict(list(batch), top_k=1)  # preprocessed C×H×W float arrays pass through
    assert logits.shape == (6, 10) and logits.dtype == np.float32
    assert [ranked[0].index for ranked in from_floats] == list(logits.argmax(1))


def test_grayscale_images_are_converted_for_an_rgb_model(
    bundle: Path, images: tuple[np.ndarray, np.ndarray]
) -> None:
    gray = np.asarray(Image.fromarray(images[0][0]).convert("L"))
    with Classifier.load(bundle) as classifier:
        from_gray = classifier.logits(classifier.preprocess(gray))
        from_rgb = classifier.logits(classifier.preprocess(np.repeat(gray[..., None], 3, axis=-1)))
        from_pil = classifier.logits(classifier.preprocess(Image.fromarray(gray, mode="L")))
    np.testing.assert_array_equal(from_gray, from_rgb)
    np.testing.assert_array_equal(from_pil, from_rgb)


def test_wrong_size_images_are_resized_but_wrong_size_tensors_are_errors(bundle: Path) -> None:
    big = blob_images(1, seed=3, size=64)[0][0]
    with Classifier.load(bundle) as classifier:
        resized = classifier.preprocess(big)
        assert resized.shape == (1, 3, 32, 32)
        np.testing.assert_array_equal(resized[0], SPEC.apply(big))
        with pytest.raises(DatasetError, match=r"preprocessed input and must be 3×32×32, got 3×64×64"):
            classifier.predict(np.zeros((3, 64, 64), np.float32))
        with pytest.raises(DatasetError, match=r"N×3×32×32, got \(2, 1, 32, 32\)"):
            classifier.logits(np.zeros((2, 1, 32, 32), np.float32))
        with pytest.raises(DatasetError, match="must be float32"):
            classifier.logits(np.zeros((2, 3, 32, 32), np.uint8))
        with pytest.raises(DatasetError, match="uint8"):
            classifier.predict(np.zeros((32, 32, 3), np.int64))
        with pytest.raises(EdgeResNetError, match="top_k"):
            classifier.predict(big, top_k=0)


def test_undecodable_and_missing_images_are_one_line_errors(bundle: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    truncated = tmp_path / "truncated.png"
    Image.fromarray(blob_images(1, seed=1)[0][0]).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with Classifier.load(bundle) as classifier:
        for path in (broken, truncated):
            with pytest.raises(DatasetError, match=f"cannot decode image {path}") as caught:
                classifier.predict(path)
            assert "\n" not in str(caught.value)
        with pytest.raises(DatasetError, match="image not found"):
            classifier.predict(tmp_path / "nope.png")


def test_a_bare_onnx_with_metadata_loads_like_its_bundle(
    bundle: Path, images: tuple[np.ndarray, np.ndarray]
) -> None:
    with Classifier.load(bundle) as from_bundle, Classifier.load(tiny_model().onnx) as bare:
        assert bare.class_names == LABELS and bare.spec == SPEC and bare.manifest is None
        assert bare.predict(list(images[0])) == from_bundle.predict(list(images[0]))


def test_bare_files_without_metadata_ask_for_the_bundle(tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(tiny_model().onnx))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(BundleError, match="no preprocessing/labels metadata: load it from its bundle"):
        Classifier.load(plain)
    xml = tmp_path / "model.xml"
    xml.write_text("<net/>")
    with pytest.raises(BundleError, match="carries no preprocessing or labels"):
        Classifier.load(xml)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x01\x02not onnx")
    with pytest.raises(BundleError, match="not a readable ONNX model"):
        Classifier.load(garbage)
    with pytest.raises(BundleError, match="no bundle or model file"):
        Classifier.load(tmp_path / "missing")


def test_a_tampered_bundle_is_refused_naming_the_file(bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(bundle, tmp_path / "copy"))
    with open(copy / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="model.onnx was modified"):
        Classifier.load(copy)
    (copy / "golden.npz").unlink()
    with pytest.raises(BundleError, match="golden.npz is missing"):
        Classifier.load(copy)


def test_closed_classifier_refuses_work(bundle: Path, tmp_path: Path) -> None:
    classifier = Classifier.load(bundle, backend="onnxruntime", device="cpu", threads=1)
    assert classifier.describe().backend == "onnxruntime"
    classifier.close()
    with pytest.raises(EdgeResNetError, match="closed"):
        classifier.logits(np.zeros((1, 3, 32, 32), np.float32))
    photo = tmp_path / "photo.png"  # resized first: the closed resize thread must not be what fails
    Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).save(photo)
    with pytest.raises(EdgeResNetError, match="closed"):
        classifier.predict(photo)


def test_the_backend_table_picks_by_suffix_and_checks_choices() -> None:
    assert backend_for("m.onnx").name == "onnxruntime"
    assert backend_for("m.xml").name == "openvino"
    assert backend_for("m.ENGINE").name == backend_for("m.plan").name == "tensorrt"
    assert backend_for("m.onnx", "openvino").name == "openvino"
    with pytest.raises(EdgeResNetError, match="no backend runs m.pt"):
        backend_for("m.pt")
    with pytest.raises(EdgeResNetError, match="reads .engine/.plan files, not m.onnx"):
        backend_for("m.onnx", "tensorrt")
    with pytest.raises(EdgeResNetError, match="unknown backend 'tflite'"):
        get_backend("tflite")
    assert resolve_device(get_backend("tensorrt"), "auto") == "cuda"
    assert resolve_device(get_backend("openvino"), "gpu.1") == "gpu.1"
    with pytest.raises(EdgeResNetError, match="TensorRT runs on CUDA GPUs only"):
        resolve_device(get_backend("tensorrt"), "cpu")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_an_engine_bundle_without_tensorrt_says_what_is_missing(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not really an engine")
    bundle = make_bundle(tmp_path / "trt", engine, target="tensorrt", outputs=np.zeros((16, 10), np.float32))
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed here") as caught:
        Classifier.load(bundle)
    assert "\n" not in str(caught.value)


def test_the_runtime_works_where_torch_cannot_be_imported(bundle: Path, tmp_path: Path) -> None:
    image = tmp_path / "image.png"
    Image.fromarray(blob_images(1, seed=4)[0][0]).save(image)
    script = textwrap.dedent(f"""
        import sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockTorch())
        import edgeresnet.runtime
        from edgeresnet.runtime.classifier import Classifier

        with Classifier.load({str(bundle)!r}) as classifier:
            ranked = classifier.predict({str(image)!r}, top_k=2)[0]
        print(ranked[0].label, len(ranked))
        print(sorted(name for name in sys.modules if name.split(".")[0] == "torch"))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    first, loaded = result.stdout.strip().splitlines()
    label, count = first.split()
    assert label in LABELS and count == "2" and loaded == "[]"
