"""TensorRTRunner's own logic (I/O discovery, profile range, slicing, padding, errors, the one logger,
the buffer fallback) against a stand-in TensorRT.

The stand-in (``tests/tensorrt_api/fakes.py``) has only names NVIDIA's 10.x and 11.x bindings define and
computes a known function, so the runner's buffer handling is checked on CPU for both versions; real
engines are tested where TensorRT and a GPU exist (tests marked ``tensorrt``).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeresnet.backends.tensorrt import runner as trt_runtime
from edgeresnet.backends.tensorrt.runner import TensorRTRunner
from edgeresnet.environment import GpuInfo
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError
from tests.tensorrt_api.fakes import TRT10, TRT11, Behaviour, HostMemory, expected_logits
from tests.tensorrt_api.fakes import fake_tensorrt as strict_fake_tensorrt

WEIGHTS_SHAPE = (3, 32, 32)


def fake_tensorrt(memory: HostMemory, *, version: str = TRT10, **behaviour: Any) -> Any:
    """The strict stand-in sharing ``memory``'s simulated device buffers."""
    state = Behaviour(buffers=memory.buffers, **behaviour)
    return strict_fake_tensorrt(version, state)

@pytest.fixture()
def engine_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.engine"
    path.write_bytes(b"plan")
    return path


@pytest.fixture()
def memory(monkeypatch: pytest.MonkeyPatch) -> HostMemory:
    memory = HostMemory(Behaviour())
    monkeypatch.setattr(trt_runtime, "_open_device_memory", lambda index: memory)
    monkeypatch.setattr(trt_runtime, "_LOGGERS", weakref.WeakKeyDictionary())  # each test its own process logger
    monkeypatch.setattr(trt_runtime, "gpu_info", lambda: [GpuInfo("Test GPU", "8.6", "test")])
    return memory


@pytest.mark.parametrize("version", [TRT10, TRT11])
def test_batches_run_in_profile_sized_slices(
    engine_file: Path, memory: HostMemory, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: fake_tensorrt(memory, version=version))
    batch = np.random.default_rng(1).normal(size=(19, *WEIGHTS_SHAPE)).astype(np.float32)
    expected = expected_logits(batch)
    with TensorRTRunner(engine_file, device="cuda:0", precision="int8") as runner:
        assert runner.max_batch == 8
        np.testing.assert_allclose(runner.infer(batch), expected, rtol=1e-5, atol=1e-5)  # 8 + 8 + 3
        np.testing.assert_allclose(runner.infer(batch[:1]), expected[:1], rtol=1e-5, atol=1e-5)
        info = runner.describe()
    assert info.device == "cuda:0 (Test GPU, sm 8.6)" and info.versions == {"tensorrt": version}
    assert info.precision == "int8" and memory.closed


def test_a_static_batch_engine_pads_partial_batches(
    engine_file: Path, memory: HostMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: fake_tensorrt(memory, static_batch=4))
    batch = np.random.default_rng(2).normal(size=(6, *WEIGHTS_SHAPE)).astype(np.float32)
    with TensorRTRunner(engine_file) as runner:
        assert runner.max_batch == 4
        logits = runner.infer(batch)  # 4, then 2 padded to 4 with zero images
        single = runner.infer(batch[:1])
    np.testing.assert_allclose(logits, expected_logits(batch), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(single, expected_logits(batch[:1]), rtol=1e-5, atol=1e-5)
    assert logits.shape == (6, 10) and single.shape == (1, 10)


def test_later_runners_still_hear_tensorrts_errors(
    engine_file: Path, memory: HostMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TensorRT reports through the first logger it was given: the second runner's reason must not be lost."""
    trt = fake_tensorrt(memory)
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: trt)
    with TensorRTRunner(engine_file) as first:
        assert first.infer(np.zeros((1, *WEIGHTS_SHAPE), np.float32)).shape == (1, 10)
    trt.state.loadable, trt.state.load_error = False, "Serialization assertion plan.magic failed"
    with pytest.raises(EdgeResNetError, match="cannot load model.engine: Serialization assertion plan.magic"):
        TensorRTRunner(engine_file)
    trt.state.load_error = "Version tag does not match"
    with pytest.raises(EdgeResNetError, match="cannot load model.engine: Version tag does not match"):
        TensorRTRunner(engine_file)  # this failure's reason, not the one before
    assert len({id(logger) for logger in trt.state.loggers}) == 1  # one logger for the process


def test_cuda_python_driver_errors_fall_back_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    class TooOldDriver:
        def __init__(self, index: int) -> None:
            raise trt_runtime.CudaError("CUDA cannot select the GPU: cudaErrorInsufficientDriver")

    class TorchBuffers:
        def __init__(self, index: int) -> None:
            self.index = index

    monkeypatch.setattr(trt_runtime, "_CudaPythonMemory", TooOldDriver)
    monkeypatch.setattr(trt_runtime, "_TorchMemory", TorchBuffers)
    monkeypatch.setattr(trt_runtime.importlib.util, "find_spec", lambda name: object() if name == "torch" else None)
    assert isinstance(trt_runtime._open_device_memory(1), TorchBuffers)
    monkeypatch.setattr(trt_runtime.importlib.util, "find_spec", lambda name: None)  # and without torch
    with pytest.raises(BackendUnavailableError) as caught:
        trt_runtime._open_device_memory(0)
    message = str(caught.value)
    assert "cudaErrorInsufficientDriver" in message and "edgeresnet[tensorrt10]" in message and "\n" not in message


def test_load_failures_give_tensorrts_reason_in_one_line(
    engine_file: Path, memory: HostMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: fake_tensorrt(memory, loadable=False))
    with pytest.raises(
        EdgeResNetError, match="cannot load model.engine: The engine plan file is not compatible"
    ):
        TensorRTRunner(engine_file)
    assert memory.closed  # the buffers of a failed load are released
    monkeypatch.setattr(trt_runtime, "gpu_info", list)
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: fake_tensorrt(memory))
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU cuda:0 is visible"):
        TensorRTRunner(engine_file)
    with pytest.raises(EdgeResNetError, match="CUDA devices"):
        TensorRTRunner(engine_file, device="cpu")


# --- host code: never on a manifest's word ------------------------------------------------------------


def test_a_version_compatible_engine_loads_only_with_host_code_allowed(
    engine_file: Path, memory: HostMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: fake_tensorrt(memory, host_code=True))
    with pytest.raises(EdgeResNetError) as caught:
        TensorRTRunner(engine_file)
    message = str(caught.value)
    assert message.startswith("TensorRT refused to load model.engine: it is a version-compatible engine")
    assert "--allow-host-code" in message and "\n" not in message
    with TensorRTRunner(engine_file, allow_host_code=True) as runner:
        assert runner.infer(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


@pytest.fixture()
def version_compatible_bundle(tmp_path: Path, engine_file: Path) -> Path:
    from tests.runtime.tiny_bundle import golden_inputs, make_bundle

    inputs = golden_inputs()
    outputs = expected_logits(inputs)  # what the stand-in engine computes
    record = {"version": TRT10, "compute_capability": "8.6", "version_compatible": True}
    return make_bundle(tmp_path / "trt", engine_file, target="tensorrt", extra={"tensorrt": record},
                       outputs=outputs.astype(np.float32))


def test_a_manifest_cannot_turn_host_code_on(
    version_compatible_bundle: Path, memory: HostMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeresnet.errors import BundleError
    from edgeresnet.runtime.classifier import Classifier

    trt = fake_tensorrt(memory, host_code=True)
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: trt)
    with pytest.raises(BundleError, match=r"refusing to load model\.engine: .*--allow-host-code"):
        Classifier.load(version_compatible_bundle)
    assert trt.state.deserialized == 0  # refused before TensorRT read a byte of it
    with Classifier.load(version_compatible_bundle, allow_host_code=True) as classifier:
        assert classifier.logits(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 10)


def test_predict_and_verify_take_allow_host_code(
    version_compatible_bundle: Path, memory: HostMemory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.machinery
    import sys

    from click.testing import CliRunner
    from PIL import Image

    import edgeresnet.cli.deploy  # noqa: F401  (registers predict/verify)
    from edgeresnet.cli.core import cli
    from tests.runtime.tiny_bundle import blob_images

    trt = fake_tensorrt(memory, host_code=True)
    object.__setattr__(trt, "__spec__", importlib.machinery.ModuleSpec("tensorrt", None))  # verify asks for it
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: trt)
    image = tmp_path / "blob.png"
    Image.fromarray(blob_images(1, seed=3)[0][0]).save(image)
    for command in (["predict", str(version_compatible_bundle), str(image)], ["verify", str(version_compatible_bundle)]):
        refused = CliRunner().invoke(cli, command)
        assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.output
        assert "version-compatible engine" in refused.stderr and "--allow-host-code" in refused.stderr
        allowed = CliRunner().invoke(cli, [*command, "--allow-host-code"])
        assert allowed.exit_code == 0, allowed.output
    assert "golden outputs reproduced on tensorrt" in allowed.stdout
