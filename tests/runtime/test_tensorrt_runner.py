"""TensorRTRunner's own logic (I/O discovery, profile range, slicing, errors) against a stand-in TensorRT.

The stand-in follows the documented 10.x/11.x Python API the runner uses and computes a known function,
so the runner's buffer handling is checked on CPU; real engines are tested where TensorRT and a GPU
exist (tests marked ``tensorrt``).
"""

from __future__ import annotations

import enum
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeresnet.environment import GpuInfo
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError
from edgeresnet.runtime import tensorrt as trt_runtime
from edgeresnet.runtime.tensorrt import TensorRTRunner

SHAPES = {"input": (-1, 3, 32, 32), "logits": (-1, 10)}
WEIGHTS = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)


class HostMemory:
    """Device memory simulated in host arrays, with the interface of the runner's CUDA memory."""

    stream = 7

    def __init__(self) -> None:
        self.buffers: dict[int, np.ndarray] = {}
        self.closed = False

    def alloc(self, nbytes: int) -> int:
        address = 4096 * (len(self.buffers) + 1)
        self.buffers[address] = np.zeros(nbytes, np.uint8)
        return address

    def upload(self, address: int, array: np.ndarray) -> None:
        self.buffers[address][: array.nbytes] = array.reshape(-1).view(np.uint8)

    def download(self, array: np.ndarray, address: int) -> None:
        array.reshape(-1).view(np.uint8)[:] = self.buffers[address][: array.nbytes]

    def synchronize(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def fake_tensorrt(
    memory: HostMemory, *, max_batch: int = 8, loadable: bool = True, host_code: bool = False
) -> Any:
    """``host_code``: the engine is version-compatible, so it loads only where host code is allowed."""
    trt = types.SimpleNamespace(__version__="10.8.0", deserialized=0)

    class Severity(enum.Enum):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    class ILogger:
        def __init__(self) -> None:
            pass

    ILogger.Severity = Severity  # type: ignore[attr-defined]
    trt.ILogger = ILogger
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.nptype = lambda dtype: np.float32

    class Context:
        def __init__(self) -> None:
            self.addresses: dict[str, int] = {}
            self.batch = 0

        def set_tensor_address(self, name: str, address: int) -> None:
            self.addresses[name] = address

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            self.batch = shape[0]
            return 1 <= shape[0] <= max_batch

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (self.batch, 10)

        def execute_async_v3(self, stream: int) -> bool:
            count = self.batch * 3 * 32 * 32
            pixels = memory.buffers[self.addresses["input"]][: count * 4].view(np.float32)
            logits = pixels.reshape(self.batch, 3, 32 * 32).mean(axis=2) @ WEIGHTS
            memory.buffers[self.addresses["logits"]][: logits.nbytes] = logits.reshape(-1).view(np.uint8)
            return stream == HostMemory.stream

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, index: int) -> str:
            return ["input", "logits"][index]

        def get_tensor_mode(self, name: str) -> str:
            return name

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return SHAPES[name]

        def get_tensor_dtype(self, name: str) -> str:
            return "float"

        def get_tensor_profile_shape(self, name: str, index: int) -> list[tuple[int, ...]]:
            return [(1, 3, 32, 32), (4, 3, 32, 32), (max_batch, 3, 32, 32)]

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            trt.deserialized += 1
            if host_code and not self.engine_host_code_allowed:
                self.logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                                "(the engine has host code; set engine_host_code_allowed to load it)")
                return None
            if loadable:
                return Engine()
            self.logger.log(
                Severity.ERROR, "The engine plan file is not compatible with this version of TensorRT"
            )
            return None

    trt.Runtime = Runtime
    return trt


@pytest.fixture()
def engine_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.engine"
    path.write_bytes(b"plan")
    return path


@pytest.fixture()
def memory(monkeypatch: pytest.MonkeyPatch) -> HostMemory:
    memory = HostMemory()
    monkeypatch.setattr(trt_runtime, "_open_device_memory", lambda index: memory)
    monkeypatch.setattr(trt_runtime, "gpu_info", lambda: [GpuInfo("Test GPU", "8.6", "test")])
    return memory


def test_batches_run_in_profile_sized_slices(
    engine_file: Path, memory: HostMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: fake_tensorrt(memory))
    batch = np.random.default_rng(1).normal(size=(19, 3, 32, 32)).astype(np.float32)
    expected = batch.reshape(19, 3, -1).mean(axis=2) @ WEIGHTS
    with TensorRTRunner(engine_file, device="cuda:0", precision="int8") as runner:
        assert runner.max_batch == 8
        np.testing.assert_allclose(runner.infer(batch), expected, rtol=1e-5, atol=1e-5)  # 8 + 8 + 3
        np.testing.assert_allclose(runner.infer(batch[:1]), expected[:1], rtol=1e-5, atol=1e-5)
        info = runner.describe()
    assert info.device == "cuda:0 (Test GPU, sm 8.6)" and info.versions == {"tensorrt": "10.8.0"}
    assert info.precision == "int8" and memory.closed


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
    outputs = inputs.reshape(len(inputs), 3, -1).mean(axis=2) @ WEIGHTS  # what the stand-in engine computes
    record = {"version": "10.8.0", "compute_capability": "8.6", "version_compatible": True}
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
    assert trt.deserialized == 0  # refused before TensorRT read a byte of it
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
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # verify asks whether it is installed
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
