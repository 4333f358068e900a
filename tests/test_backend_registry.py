"""The backend registry: one record per backend, read by the CLI, export, compile, the runtime, verify and
benchmark; a toy backend living only in tests/toy_backend/ runs export → verify → benchmark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import edgeresnet
from edgeresnet.backends import (
    Backend,
    all_backends,
    backend_names,
    compile_targets,
    export_targets,
    get_backend,
    register_backend,
    unregister_backend,
)
from edgeresnet.bundle import read_manifest
from edgeresnet.bundle.naming import ArtifactName
from edgeresnet.errors import EdgeResNetError
from edgeresnet.runtime.select import backend_for
from edgeresnet.verify import verify_bundle
from tests import toy_backend


def test_the_registry_lists_each_backend_once_with_its_facts() -> None:
    assert backend_names() == ("onnxruntime", "openvino", "tensorrt", "pytorch")
    assert export_targets() == ("onnxruntime", "openvino", "tensorrt")
    assert compile_targets() == ("openvino", "tensorrt")
    hints = {backend.name: backend.install_hint for backend in all_backends()}
    assert hints == {"onnxruntime": "pip install onnxruntime", "openvino": "pip install 'edgeresnet[openvino]'",
                     "tensorrt": "pip install 'edgeresnet[tensorrt]' (TensorRT 11, CUDA 13) or 'edgeresnet[tensorrt10]' "
                                 "(TensorRT 10, CUDA 12: older drivers, Jetson) on the machine with the GPU",
                     "pytorch": "pip install 'edgeresnet[build]'"}
    assert get_backend("tensorrt").model_files == ("model.engine", "model.onnx")
    assert get_backend("openvino").compiler().__name__ == "compile_openvino"
    assert get_backend("onnxruntime").runner_class().__name__ == "OnnxRuntimeRunner"


def test_the_cli_choices_are_the_registry() -> None:
    from click.testing import CliRunner

    from edgeresnet.cli import cli

    export_help = CliRunner().invoke(cli, ["export", "--help"]).output
    compile_help = CliRunner().invoke(cli, ["compile", "--help"]).output
    assert "onnxruntime|openvino|tensorrt|all" in export_help.replace(" ", "")
    assert "openvino|tensorrt" in compile_help.replace(" ", "")


def test_bundle_names_are_written_and_read_in_one_place() -> None:
    name = ArtifactName("tensorrt", "fp16", "engine")
    assert str(name) == "tensorrt-fp16-engine" and ArtifactName.parse(str(name)) == name
    assert ArtifactName.parse("onnxruntime-int8") == ArtifactName("onnxruntime", "int8")
    with pytest.raises(EdgeResNetError, match="not a bundle name"):
        ArtifactName.parse("onnxruntime")


def test_a_backend_name_that_would_break_bundle_names_is_refused() -> None:
    with pytest.raises(EdgeResNetError, match="without '-'"):
        Backend(name="onnx-runtime", title="x", home="tests.toy_backend", runner="runner:ToyRunner")
    with pytest.raises(EdgeResNetError, match="already registered"):
        register_backend(get_backend("openvino"))
    with pytest.raises(EdgeResNetError, match="built-in"):
        unregister_backend("openvino")


@pytest.fixture()
def toy() -> Iterator[Backend]:
    backend = register_backend(toy_backend.BACKEND)  # what the registry's one line does for a built-in
    try:
        yield backend
    finally:
        unregister_backend(backend.name)


def test_a_toy_backend_runs_export_verify_and_benchmark(toy: Backend, tiny_checkpoint: Path, fashion_mnist: str,
                                                        tmp_path: Path) -> None:
    exported = edgeresnet.export_model(tiny_checkpoint, tmp_path / "bundles", targets=[toy.name],
                                       data=fashion_mnist, eval_limit=100)
    bundle = tmp_path / "bundles" / str(ArtifactName(toy.name, "fp32"))
    assert set(exported.bundles) == {bundle.name}
    manifest = read_manifest(bundle)
    assert manifest.target == toy.name and manifest.model_file == toy_backend.MODEL_FILE
    assert backend_for(bundle / manifest.model_file).name == toy.name  # its suffix picks its runner

    report = verify_bundle(bundle)
    assert report.passed, report.failures
    assert any("golden" in check for check in report.checks)

    result = edgeresnet.benchmark([bundle], data=fashion_mnist, batch_sizes=(1,), warmup=1, min_runs=2,
                                  min_time_s=0.0, eval_limit=100)
    rows = [row for row in result.rows if row.path == str(bundle)]
    assert rows and all(row.error is None and row.backend == toy.name for row in rows)
    assert rows[0].top1 == pytest.approx(manifest.accuracy.fp32.top1, abs=1e-6)


def test_without_the_registry_line_the_toy_is_unknown(tiny_checkpoint: Path, tmp_path: Path) -> None:
    assert "toyort" not in backend_names()
    with pytest.raises(EdgeResNetError, match="unknown target 'toyort'"):
        edgeresnet.export_model(tiny_checkpoint, tmp_path / "out", targets=["toyort"])  # type: ignore[list-item]
