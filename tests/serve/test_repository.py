"""A Triton model repository from one bundle per backend, parsed with Triton's own schema, and its verification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeresnet.errors import BundleError, EdgeResNetError, PlacementError
from edgeresnet.serve.check import verify_repository
from edgeresnet.serve.modelconfig import ModelConfig, TensorConfig
from edgeresnet.serve.repository import RepositoryOptions, model_name, write_repository
from tests.runtime.tiny_bundle import LABELS, SIZE
from tests.serve.bundles import onnx_bundle, openvino_bundle, tensorrt_bundle

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse(path: Path) -> object:
    """config.pbtxt through Triton's ModelConfig message: a misspelt field or enum fails here."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("openvino")
    root = tmp_path_factory.mktemp("repo") / "models"
    write_repository([onnx_bundle(), openvino_bundle(), openvino_bundle(4), tensorrt_bundle()], root,
                     RepositoryOptions(max_batch=24, instances=2, max_queue_delay_us=500, threads=3))
    return root


def test_one_bundle_per_backend_gives_configs_triton_parses(repository: Path) -> None:
    onnx, ov, ov4, trt = (parse(repository / name / "config.pbtxt") for name in
                          ("tiny-onnx", "tiny-openvino", "tiny-openvino-b4", "tiny-tensorrt"))
    types = model_config_pb2.DataType
    # ONNX Runtime: the bundle's pixel model, uint8 N×H×W×C, dynamic batch → the --max-batch option
    assert (onnx.name, onnx.backend, onnx.max_batch_size) == ("tiny-onnx", "onnxruntime", 24)
    assert [(i.name, i.data_type, list(i.dims)) for i in onnx.input] == [("pixels", types.TYPE_UINT8, [SIZE, SIZE, 3])]
    assert [(o.name, o.data_type, list(o.dims), o.label_filename) for o in onnx.output] == [
        ("logits", types.TYPE_FP32, [len(LABELS)], "labels.txt")]
    assert onnx.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.count, g.kind) for g in onnx.instance_group] == [(2, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
    assert onnx.parameters["intra_op_thread_count"].string_value == "3"
    # OpenVINO: float32 N×C×H×W; threads; a static batch of 4 caps the batch and pads partial ones
    assert (ov.backend, ov.max_batch_size, list(ov.input[0].dims)) == ("openvino", 24, [3, SIZE, SIZE])
    assert ov.input[0].data_type == types.TYPE_FP32
    assert ov.parameters["INFERENCE_NUM_THREADS"].string_value == "3"
    assert "ENABLE_BATCH_PADDING" not in ov.parameters
    assert ov4.max_batch_size == 4 and ov4.parameters["ENABLE_BATCH_PADDING"].string_value == "YES"
    # TensorRT: the engine's profile max, GPU instances, the version-compatible flag written down
    assert (trt.backend, trt.max_batch_size) == ("tensorrt", 16)
    assert trt.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert "--backend-config=tensorrt,version-compatible=true" in (repository / "tiny-tensorrt" / "config.pbtxt").read_text()
    record = json.loads((repository / "tiny-tensorrt" / "edgeresnet.json").read_text())
    assert record["tritonserver_args"] == ["--backend-config=tensorrt,version-compatible=true"]


def test_the_model_files_are_the_bundles_bytes_in_the_default_file_names(repository: Path) -> None:
    assert (repository / "tiny-onnx/1/model.onnx").read_bytes() == (onnx_bundle() / "model.pixels.onnx").read_bytes()
    assert (repository / "tiny-openvino/1/model.xml").read_bytes() == (openvino_bundle() / "model.xml").read_bytes()
    assert (repository / "tiny-openvino/1/model.bin").read_bytes() == (openvino_bundle() / "model.bin").read_bytes()
    assert (repository / "tiny-tensorrt/1/model.plan").read_bytes() == (tensorrt_bundle() / "model.engine").read_bytes()
    assert (repository / "tiny-onnx/labels.txt").read_text().splitlines() == LABELS
    record = json.loads((repository / "tiny-onnx/edgeresnet.json").read_text())
    manifest = json.loads((onnx_bundle() / "manifest.json").read_text())
    assert record["bundle"]["manifest_sha256"] == manifest["manifest_sha256"]
    assert record["files"]["1/model.onnx"] == manifest["files"]["model.pixels.onnx"]


def test_a_plain_onnx_bundle_serves_its_float_input(tmp_path: Path) -> None:
    from tests.runtime.tiny_bundle import make_bundle, tiny_model

    bundle = make_bundle(tmp_path / "plain", tiny_model().onnx)
    write_repository([bundle], tmp_path / "repo", names=["plain-model"])
    config = parse(tmp_path / "repo/plain-model/config.pbtxt")
    assert [(i.name, list(i.dims)) for i in config.input] == [("input", [3, SIZE, SIZE])]


def test_an_onnx_bundle_with_external_data_serves_its_tensors_too(tmp_path: Path) -> None:
    # Without its external-data file beside model.onnx, Triton's ONNX Runtime backend could not load the model.
    import onnx

    from tests.runtime.tiny_bundle import make_bundle, tiny_model

    model = tmp_path / "src" / "model.onnx"
    model.parent.mkdir()
    onnx.save(onnx.load(str(tiny_model().onnx)), str(model), save_as_external_data=True,
              all_tensors_to_one_file=True, location="weights.data", size_threshold=0)
    bundle = make_bundle(tmp_path / "external", model, extra_files={"weights.data": model.parent / "weights.data"})
    write_repository([bundle], tmp_path / "repo", names=["ext"])
    assert (tmp_path / "repo/ext/1/weights.data").read_bytes() == (bundle / "weights.data").read_bytes()
    assert verify_repository(tmp_path / "repo").ok
    import onnxruntime as ort

    ort.InferenceSession(str(tmp_path / "repo/ext/1/model.onnx"))  # loads with its tensors from the copy


def test_verify_passes_then_finds_each_kind_of_tampering(repository: Path, tmp_path: Path) -> None:
    assert verify_repository(repository).ok
    copy = tmp_path / "deployed"
    shutil.copytree(repository, copy)
    (copy / "tiny-onnx/1/model.onnx").write_bytes(b"another model")
    (copy / "tiny-openvino/2").mkdir()
    (copy / "tiny-openvino/2/model.xml").write_text("<net/>")
    config = copy / "tiny-tensorrt/config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 16", "max_batch_size: 64"))
    record_path = copy / "tiny-openvino-b4/edgeresnet.json"
    record = json.loads(record_path.read_text())
    record["manifest"]["labels"][0] = "relabelled"
    record_path.write_text(json.dumps(record))
    report = verify_repository(copy)
    problems = {model.name: " | ".join(model.problems) for model in report.models}
    assert not report.ok
    assert "1/model.onnx was modified" in problems["tiny-onnx"]
    assert "2/model.xml is not part of the model" in problems["tiny-openvino"]
    assert "config.pbtxt was modified" in problems["tiny-tensorrt"]
    assert "manifest was modified" in problems["tiny-openvino-b4"]


def test_verify_reports_a_model_without_a_record_and_an_empty_repository(tmp_path: Path) -> None:
    (tmp_path / "repo/foreign/1").mkdir(parents=True)
    report = verify_repository(tmp_path / "repo")
    assert not report.ok and "no edgeresnet.json" in report.models[0].problems[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgeResNetError, match="holds no model directories"):
        verify_repository(tmp_path / "empty")


def test_existing_models_need_overwrite_and_foreign_ones_are_never_replaced(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_repository([onnx_bundle()], repo)
    before = (repo / "tiny-onnx/config.pbtxt").read_text()
    with pytest.raises(PlacementError, match="already exists"):
        write_repository([onnx_bundle()], repo, RepositoryOptions(max_batch=8))
    write_repository([onnx_bundle()], repo, RepositoryOptions(max_batch=8), overwrite=True)
    assert (repo / "tiny-onnx/config.pbtxt").read_text() != before
    (repo / "tiny-onnx/notes.txt").write_text("mine")  # the user's file: never removed
    with pytest.raises(PlacementError, match="did not write"):
        write_repository([onnx_bundle()], repo, overwrite=True)
    assert (repo / "tiny-onnx/notes.txt").read_text() == "mine"


def test_a_tampered_bundle_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bundle = shutil.copytree(onnx_bundle(), tmp_path / "tampered")
    (bundle / "model.pixels.onnx").write_bytes(b"not the model")
    with pytest.raises(BundleError, match="fails its checks"):
        write_repository([onnx_bundle(), bundle], tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_names_must_be_unique_and_well_formed(tmp_path: Path) -> None:
    with pytest.raises(EdgeResNetError, match="would both be served"):
        write_repository([onnx_bundle(), onnx_bundle()], tmp_path / "repo")
    with pytest.raises(EdgeResNetError, match="model name"):
        write_repository([onnx_bundle()], tmp_path / "repo", names=["../escape"])
    assert model_name(Path("/x/r20 int8 (v2)")) == "r20-int8-v2"
    with pytest.raises(EdgeResNetError, match="--max-batch"):
        RepositoryOptions(max_batch=0)


def test_modelconfig_text_escapes_and_round_trips_through_tritons_schema() -> None:
    config = ModelConfig(name='odd "name"\\', backend="onnxruntime", max_batch_size=0,
                         inputs=(TensorConfig("in", "TYPE_FP32", (1, 3, 8, 8)),),
                         outputs=(TensorConfig("out", "TYPE_FP16", (1, 5)),), max_queue_delay_us=None,
                         parameters=(("key", "a\nb"),), notes=("a note",))
    parsed = text_format.Parse(config.to_pbtxt(), model_config_pb2.ModelConfig())
    assert parsed.name == 'odd "name"\\' and parsed.max_batch_size == 0
    assert not parsed.HasField("dynamic_batching")
    assert parsed.parameters["key"].string_value == "a\nb"
    assert list(parsed.output[0].dims) == [1, 5]
    with pytest.raises(ValueError, match="dynamic batching needs"):
        ModelConfig(name="m", backend="onnxruntime", max_batch_size=0, inputs=(), outputs=(), max_queue_delay_us=1)


def test_a_tensorrt_network_reading_unlisted_tensors_is_refused(tmp_path: Path) -> None:
    # serve-repo reads an engine bundle's I/O from its ONNX network: through the door's hashed bytes, so a
    # network keeping its weights in a file the manifest does not list is refused, not read.
    import onnx

    from edgeresnet.bundle import Manifest, write_bundle
    from edgeresnet.serve.repository import plan_model
    from tests.runtime.tiny_bundle import INPUT_RECORD, SPEC, golden_inputs, tiny_model
    from tests.serve.bundles import golden_outputs

    source = tmp_path / "src"
    source.mkdir()
    onnx.save(onnx.load(str(tiny_model().onnx)), str(source / "model.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="weights.data", size_threshold=0)
    (source / "model.engine").write_bytes(b"an engine")
    manifest = Manifest(
        architecture="tinynet", precision="fp16", target="tensorrt", model_file="model.engine", preprocessing=SPEC,
        class_names=list(LABELS), input=dict(INPUT_RECORD),
        engine={"runtime": "tensorrt", "version": "10.16.1", "gpu": "NVIDIA H100", "compute_capability": "9.0",
                "version_compatible": False, "network_onnx": "model.onnx",
                "details": {"profile": {"min": 1, "opt": 8, "max": 16}}})
    bundle = write_bundle(tmp_path / "trt", manifest, {"model.engine": source / "model.engine",
                                                       "model.onnx": source / "model.onnx"},
                          golden_inputs=golden_inputs(), golden_outputs=golden_outputs())
    shutil.copy(source / "weights.data", bundle / "weights.data")
    with pytest.raises(BundleError, match="weights.data is opened by the runtime but the manifest records no sha256"):
        plan_model(bundle)
