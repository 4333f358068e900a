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

from edgeresnet.errors import BackendUnavailableError, EdgeResNetError
from edgeresnet.runtime import tensorrt as trt_runtime
from edgeresnet.runtime.tensorrt import GpuInfo, TensorRTRunner

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


def fake_tensorrt(memory: HostMemory, *, max_batch: int = 8, loadable: bool = True) -> Any:
    trt = types.SimpleNamespace(__version__="10.8.0")

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

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
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
    monkeypatch.setattr(trt_runtime, "gpu_info", lambda index=0: GpuInfo("Test GPU", "8.6", "test"))
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
    monkeypatch.setattr(trt_runtime, "gpu_info", lambda index=0: None)
    monkeypatch.setattr(trt_runtime, "require_tensorrt", lambda: fake_tensorrt(memory))
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU cuda:0 is visible"):
        TensorRTRunner(engine_file)
    with pytest.raises(EdgeResNetError, match="CUDA devices"):
        TensorRTRunner(engine_file, device="cpu")
