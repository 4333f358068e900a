"""Each benchmark artifact runs on its own device: one --device cannot serve a TensorRT engine and an
OpenVINO IR at once; and allow_host_code reaches a version-compatible engine only when asked for."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeresnet.bench.artifacts import Artifact, artifact_device, load_artifact, open_runner
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import BundleError
from tests.tensorrt_api.fakes import TRT10, Behaviour, HostMemory, expected_logits, fake_tensorrt

SPEC = PreprocessSpec(input_size=(32, 32), channels="RGB")


def _artifact(backend: str) -> Artifact:
    return Artifact(name=backend, path=Path("x"), kind="bundle", model_path=Path("m"), backend=backend,
                    precision="fp32", preprocessing=SPEC, labels=[], file_size_bytes=0)


@pytest.mark.parametrize(
    ("backend", "requested", "expected"),
    [
        ("tensorrt", "cpu", "cuda"),  # an engine runs on CUDA whatever --device says
        ("tensorrt", "cuda", "cuda"),
        ("openvino", "cuda", "CPU"),  # OpenVINO has no CUDA device: its own default
        ("openvino", "cpu", "cpu"),
        ("onnxruntime", "cuda", "cuda"),
        ("onnxruntime", "cpu", "cpu"),
        ("pytorch", "cuda", "cuda"),
    ],
)
def test_each_artifact_gets_a_device_its_backend_runs_on(backend: str, requested: str, expected: str) -> None:
    assert artifact_device(_artifact(backend), requested) == expected


@pytest.fixture()
def engine_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    from edgeresnet.environment import GpuInfo
    from edgeresnet.runtime import tensorrt as trt_runtime
    from tests.runtime.tiny_bundle import golden_inputs, make_bundle

    state = Behaviour(host_code=True)
    trt = fake_tensorrt(TRT10, state)
    memory = HostMemory(state)
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: trt)
    monkeypatch.setattr(trt_runtime, "_open_device_memory", lambda index: memory)
    monkeypatch.setattr(trt_runtime, "gpu_info", lambda: [GpuInfo("Test GPU", "8.6", "test")])
    monkeypatch.setattr(trt_runtime, "_LOGGERS", weakref.WeakKeyDictionary())
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"plan")
    inputs = golden_inputs()
    record = {"version": TRT10, "compute_capability": "8.6", "version_compatible": True}
    bundle = make_bundle(tmp_path / "trt", engine, target="tensorrt", extra={"tensorrt": record},
                         outputs=expected_logits(inputs).astype(np.float32))
    return bundle, trt


def test_an_engine_row_runs_on_cuda_and_needs_allow_host_code(engine_bundle: tuple[Path, Any]) -> None:
    bundle, trt = engine_bundle
    artifact = load_artifact(bundle)
    with pytest.raises(BundleError, match="--allow-host-code"):
        open_runner(artifact, device="cpu", threads=1)
    assert trt.state.deserialized == 0
    with open_runner(artifact, device="cpu", threads=1, allow_host_code=True) as runner:
        assert runner.device.startswith("cuda")
        assert runner.infer(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


def test_the_benchmark_command_takes_allow_host_code() -> None:
    from click.testing import CliRunner

    import edgeresnet.cli.benchmark  # noqa: F401  (registers the command)
    from edgeresnet.cli import cli

    result = CliRunner().invoke(cli, ["benchmark", "--help"])
    assert result.exit_code == 0 and "--allow-host-code" in result.output


def test_an_engine_row_names_the_gpu_tensorrt_and_its_layer_precisions_and_saturates_contexts(
    engine_bundle: tuple[Path, Any],
) -> None:
    from edgeresnet.bench import BenchmarkJob, run_benchmark
    from tests.tensorrt_api.fakes import TRT10

    bundle, _ = engine_bundle
    job = BenchmarkJob(artifacts=(bundle,), mode="both", streams=3, batch_sizes=(2,), threads=1, warmup=1,
                       min_runs=6, min_time_s=0.0, allow_host_code=True)
    result = run_benchmark(job, progress=False)
    rows = [row for row in result.rows if row.backend == "tensorrt"]
    assert [row.measure for row in rows] == ["model", "throughput"]
    for row in rows:
        assert row.ok, row.error  # the golden outputs were reproduced through the stand-in engine
        assert row.device.startswith("cuda") and row.top1 is None
        # The GPU, the TensorRT version and what the engine inspector reports (one INT8 convolution).
        assert "Test GPU" in row.runtime and f"tensorrt {TRT10}" in row.runtime and "layers INT8 1" in row.runtime
    throughput = rows[1]
    assert throughput.streams == 3 and throughput.runs >= 6 and throughput.throughput_ips > 0
    assert throughput.runs % 3 == 0  # every round enqueues all three contexts before waiting


def test_execution_workers_compute_what_the_runner_computes(engine_bundle: tuple[Path, Any]) -> None:
    from edgeresnet.runtime.tensorrt_engine import ExecutionWorker

    bundle, _ = engine_bundle
    batch = np.random.default_rng(3).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with open_runner(load_artifact(bundle), device="cuda", threads=1, allow_host_code=True) as runner:
        workers = [ExecutionWorker(runner, batch), ExecutionWorker(runner, batch[::-1].copy())]
        for worker in workers:
            worker.enqueue()
        first, second = (worker.wait().copy() for worker in workers)
        np.testing.assert_allclose(first, runner.infer(batch), rtol=1e-5)
        np.testing.assert_allclose(second, expected_logits(batch[::-1]), rtol=1e-5)
        with pytest.raises(Exception, match="takes batches of 1 to 8"):
            ExecutionWorker(runner, np.zeros((9, 3, 32, 32), np.float32))
        for worker in workers:
            worker.close()
