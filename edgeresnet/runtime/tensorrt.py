"""TensorRT backend: run a serialized engine (``.engine``/``.plan``) on an NVIDIA GPU.

Written against the TensorRT 10.x/11.x Python API (name-based I/O tensors, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``). Device buffers come from cuda-python where installed,
since it is small and needs no torch on the device; torch's CUDA allocator is the fallback. TensorRT,
cuda-python and torch are all imported inside functions, so importing this module costs nothing.

An engine is an executable artifact tied to the TensorRT version and GPU it was built on; load only
engines you built or received from a trusted source (a bundle whose hashes verify).
"""

from __future__ import annotations

import importlib.util
import logging
import weakref
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edgeresnet.bundle.model_bytes import ModelBytes
from edgeresnet.bundle.vocabulary import Precision
from edgeresnet.environment import GpuInfo, cuda_runtime, gpu_info
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError
from edgeresnet.runtime.base import Runner, RunnerInfo

log = logging.getLogger(__name__)


INSTALL_HINT = ("pip install 'edgeresnet[tensorrt]' (TensorRT 11, CUDA 13) or 'edgeresnet[tensorrt10]' "
                "(TensorRT 10, CUDA 12: older drivers, Jetson) on the machine with the GPU")
HOST_CODE_HINT = (
    "it is a version-compatible engine, which embeds a lean TensorRT runtime that runs as host code when "
    "it loads: allow that only for an engine from a source you trust, with --allow-host-code "
    "(allow_host_code=True in Python)"
)


def require_tensorrt() -> ModuleType:
    """Import tensorrt, or explain how to get it."""
    try:
        import tensorrt
    except ImportError as error:
        raise BackendUnavailableError(f"TensorRT is not installed here: {INSTALL_HINT}") from error
    return tensorrt


def tensorrt_major(trt: ModuleType) -> int:
    return int(str(trt.__version__).split(".")[0])


# One logger per tensorrt module, for the life of the process (see make_logger).
_LOGGERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_KEPT_ERRORS = 200


def make_logger(trt: ModuleType) -> Any:
    """The process's TensorRT logger: it routes messages into logging and keeps the errors for one-line reports.

    TensorRT reports why a deserialization or build failed only through its logger (the call itself
    returns None). It also keeps the first logger any Builder or Runtime was given and reports every
    later error through that one, so a fresh logger per build would hear nothing and every later
    failure would read "unknown": there is one logger, and each caller takes a :meth:`mark` before the
    call and reads the errors that came after it.
    """
    if trt not in _LOGGERS:
        _LOGGERS[trt] = _recording_logger_class(trt)()
    return _LOGGERS[trt]


def _recording_logger_class(trt: ModuleType) -> type:
    class RecordingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self._errors: list[str] = []
            self._dropped = 0  # errors forgotten to bound memory; marks stay absolute

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self._errors.append(msg.strip())
                if len(self._errors) > _KEPT_ERRORS:
                    self._dropped += len(self._errors) - _KEPT_ERRORS // 2
                    del self._errors[: len(self._errors) - _KEPT_ERRORS // 2]
                log.debug("TensorRT error: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

        def mark(self) -> int:
            return self._dropped + len(self._errors)

        def errors(self, since: int = 0) -> list[str]:
            return self._errors[max(since - self._dropped, 0):]

        def reason(self, default: str, *, since: int = 0) -> str:
            errors = self.errors(since)
            return errors[-1].splitlines()[0] if errors else default

    return RecordingLogger


# --- the GPU -----------------------------------------------------------------------------------------


def cuda_device(index: int = 0) -> GpuInfo | None:
    """Name and compute capability of CUDA device ``index`` (see :func:`edgeresnet.environment.gpu_info`),
    or None where it is not visible.

    Where neither cuda-python nor nvidia-smi answers (a Jetson without cuda-python), torch is imported
    to ask it: TensorRT's buffers then come from torch anyway (see ``_open_device_memory``).
    """
    gpus = gpu_info()
    if not gpus and importlib.util.find_spec("cuda") is None and importlib.util.find_spec("torch") is not None:
        import torch  # noqa: F401  (gpu_info asks torch once it is imported)

        gpus = gpu_info()
    return next((gpu for gpu in gpus if gpu.index == index), None)


def device_index(device: str) -> int:
    """``cuda`` → 0, ``cuda:1`` → 1."""
    base, _, index = device.lower().partition(":")
    if base != "cuda" or (index and not index.isdigit()):
        raise EdgeResNetError(f"TensorRT runs on CUDA devices ('cuda' or 'cuda:N'), not {device!r}")
    return int(index or 0)


def _mentions_host_code(errors: list[str]) -> bool:
    """Whether TensorRT's errors say the engine needs host code (its wording differs between releases)."""
    text = " ".join(errors).lower().replace("_", " ")
    return any(phrase in text for phrase in ("host code", "hostcode", "lean runtime"))


# --- device memory -----------------------------------------------------------------------------------


class _CudaPythonMemory:
    """Device buffers and a stream from cuda-python's runtime bindings."""

    def __init__(self, index: int) -> None:
        self._rt = cuda_runtime()
        self._check(self._rt.cudaSetDevice(index), "select the GPU")
        self._stream = self._check(self._rt.cudaStreamCreate(), "create a stream")
        self._pointers: list[Any] = []

    @property
    def stream(self) -> int:
        return int(self._stream)

    def alloc(self, nbytes: int) -> int:
        pointer = self._check(self._rt.cudaMalloc(max(nbytes, 1)), f"allocate {nbytes} bytes")
        self._pointers.append(pointer)
        return int(pointer)

    def upload(self, address: int, array: np.ndarray) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        copy = self._rt.cudaMemcpyAsync(address, array.ctypes.data, array.nbytes, kind, self._stream)
        self._check(copy, "copy in")

    def download(self, array: np.ndarray, address: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        copy = self._rt.cudaMemcpyAsync(array.ctypes.data, address, array.nbytes, kind, self._stream)
        self._check(copy, "copy out")

    def synchronize(self) -> None:
        self._check(self._rt.cudaStreamSynchronize(self._stream), "synchronize")

    def close(self) -> None:
        for pointer in self._pointers:
            self._rt.cudaFree(pointer)
        self._pointers.clear()
        self._rt.cudaStreamDestroy(self._stream)

    def _check(self, result: tuple[Any, ...], action: str) -> Any:
        error, *values = result
        if error != self._rt.cudaError_t.cudaSuccess:
            name = self._rt.cudaGetErrorName(error)[1]
            raise CudaError(f"CUDA cannot {action}: {name.decode() if isinstance(name, bytes) else name}")
        return values[0] if values else None


class _TorchMemory:
    """Device buffers and a stream from torch's CUDA allocator, for devices without cuda-python."""

    def __init__(self, index: int) -> None:
        import torch

        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise BackendUnavailableError(f"no CUDA device cuda:{index} is visible to torch here")
        self._torch = torch
        self._device = torch.device("cuda", index)
        torch.cuda.set_device(self._device)
        self._stream_object = torch.cuda.Stream(self._device)
        self._buffers: dict[int, Any] = {}

    @property
    def stream(self) -> int:
        return int(self._stream_object.cuda_stream)

    def alloc(self, nbytes: int) -> int:
        buffer = self._torch.empty(max(nbytes, 1), dtype=self._torch.uint8, device=self._device)
        self._buffers[buffer.data_ptr()] = buffer
        return int(buffer.data_ptr())

    def upload(self, address: int, array: np.ndarray) -> None:
        source = self._torch.from_numpy(array.reshape(-1).view(np.uint8))
        with self._torch.cuda.stream(self._stream_object):
            self._buffers[address][: array.nbytes].copy_(source, non_blocking=True)

    def download(self, array: np.ndarray, address: int) -> None:
        target = self._torch.from_numpy(array.reshape(-1).view(np.uint8))
        with self._torch.cuda.stream(self._stream_object):
            target.copy_(self._buffers[address][: array.nbytes], non_blocking=True)

    def synchronize(self) -> None:
        self._stream_object.synchronize()

    def close(self) -> None:
        self._buffers.clear()


class CudaError(EdgeResNetError):
    """A CUDA runtime call through cuda-python failed (an old driver, no device, out of memory)."""


def _open_device_memory(index: int) -> _CudaPythonMemory | _TorchMemory:
    """cuda-python's buffers, else torch's where cuda-python is missing or cannot talk to the driver.

    cuda-python 13 imports fine on an r5xx driver older than r580 and fails at its first call
    (cudaErrorInsufficientDriver), so a driver error falls back to torch as a missing module does.
    """
    try:
        return _CudaPythonMemory(index)
    except ImportError as error:  # no cuda-python (a "cuda" namespace from other wheels is not enough)
        problem = f"cuda-python is not installed ({error})"
    except (CudaError, OSError, RuntimeError) as error:  # a driver too old for these bindings, a missing libcuda
        problem = f"cuda-python cannot use the GPU ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
    if importlib.util.find_spec("torch") is not None:
        log.debug("%s; using torch's CUDA allocator", problem)
        try:
            return _TorchMemory(index)
        except BackendUnavailableError as error:
            raise BackendUnavailableError(f"{problem}, and torch has no CUDA here: {error}") from error
    raise BackendUnavailableError(
        f"TensorRT needs device buffers: {problem}, and torch is not installed. Install the cuda-python that "
        "matches the driver's CUDA major (pip install 'edgeresnet[tensorrt]' for CUDA 13, "
        "'edgeresnet[tensorrt10]' for CUDA 12 and Jetson)"
    )


# --- the runner --------------------------------------------------------------------------------------


class TensorRTRunner(Runner):
    """Run a serialized TensorRT engine with one float input (N×C×H×W) and one output (N×classes).

    Args:
        device: ``cuda`` or ``cuda:N``.
        allow_host_code: let a version-compatible engine run the lean runtime it embeds (host code
            that runs in this process). Off by default: turn it on only for engines you built or
            received from a source you trust; a bundle's manifest alone never turns it on.
    """

    backend = "tensorrt"

    def __init__(
        self,
        model_path: str | Path | ModelBytes,
        *,
        device: str = "cuda",
        threads: int | None = None,
        precision: Precision = "fp32",
        allow_host_code: bool = False,
    ) -> None:
        super().__init__(model_path, device=device, threads=threads)
        trt = require_tensorrt()
        self._trt = trt
        self._precision = precision
        self._index = device_index(device)
        self._gpu = cuda_device(self._index)
        if self._gpu is None:
            raise BackendUnavailableError(
                f"TensorRT is installed but no CUDA GPU cuda:{self._index} is visible"
            )
        self._memory = _open_device_memory(self._index)  # selects the GPU before the engine is loaded
        self._logger = make_logger(trt)
        self._since = self._logger.mark()
        try:
            self._load(allow_host_code)
        except BaseException:
            self._memory.close()
            raise

    def _load(self, allow_host_code: bool) -> None:
        self._engine = self._deserialize(allow_host_code)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EdgeResNetError(f"TensorRT cannot create an execution context for {self.model_path.name}: "
                                  f"{self._logger.reason('out of GPU memory?', since=self._since)}")
        self._input, self._output = self._io_names()
        self._min_batch, self._max_batch = self._batch_range()
        # The buffers below and every host copy take the largest batch: refuse an absurd one first.
        self._check_declared_input([self._max_batch if d < 0 else d for d in self._engine.get_tensor_shape(self._input)])
        nptype = self._trt.nptype
        self._input_dtype = np.dtype(nptype(self._engine.get_tensor_dtype(self._input)))
        self._output_dtype = np.dtype(nptype(self._engine.get_tensor_dtype(self._output)))
        self._addresses = self._allocate()

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def _deserialize(self, allow_host_code: bool) -> Any:
        runtime = self._trt.Runtime(self._logger)
        if allow_host_code:
            runtime.engine_host_code_allowed = True
        engine = runtime.deserialize_cuda_engine(self.model_data())  # a bundle's hashed bytes
        if engine is None and not allow_host_code and _mentions_host_code(self._logger.errors(self._since)):
            raise EdgeResNetError(f"TensorRT refused to load {self.model_path.name}: {HOST_CODE_HINT}")
        if engine is None:
            reason = self._logger.reason("not an engine for this TensorRT version and GPU", since=self._since)
            raise EdgeResNetError(f"TensorRT cannot load {self.model_path.name}: {reason}")
        return engine

    def _io_names(self) -> tuple[str, str]:
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == self._trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgeResNetError(
                f"{self.model_path.name} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "an image classifier has one of each"
            )
        return inputs[0], outputs[0]

    def _batch_range(self) -> tuple[int, int]:
        shape = tuple(self._engine.get_tensor_shape(self._input))
        if shape[0] >= 0:  # static batch
            return shape[0], shape[0]
        low, _, high = self._engine.get_tensor_profile_shape(self._input, 0)
        return int(low[0]), int(high[0])

    def _allocate(self) -> dict[str, int]:
        """Buffers for the largest batch, allocated once; their addresses never change."""
        addresses = {}
        for name, dtype in ((self._input, self._input_dtype), (self._output, self._output_dtype)):
            shape = [self._max_batch if dim < 0 else dim for dim in self._engine.get_tensor_shape(name)]
            addresses[name] = self._memory.alloc(int(np.prod(shape)) * dtype.itemsize)
            self._context.set_tensor_address(name, addresses[name])
        return addresses

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        # Batches beyond the optimisation profile run in slices: the caller need not know the profile.
        if batch.shape[0] > self._max_batch:
            slices = [batch[i : i + self._max_batch] for i in range(0, batch.shape[0], self._max_batch)]
            return np.concatenate([self._infer_impl(part) for part in slices])
        if batch.shape[0] < self._min_batch:
            # A static-batch engine (or a profile that starts above 1) gets zero images to fill the batch,
            # as the ONNX Runtime runner does; their logits are dropped.
            padding = np.zeros((self._min_batch - batch.shape[0], *batch.shape[1:]), dtype=batch.dtype)
            return self._infer_impl(np.concatenate([batch, padding]))[: batch.shape[0]]
        since = self._logger.mark()
        host_in = np.ascontiguousarray(batch, dtype=self._input_dtype)
        if not self._context.set_input_shape(self._input, host_in.shape):
            raise EdgeResNetError(f"{self.model_path.name} cannot take a batch of shape {batch.shape}: "
                                  f"{self._logger.reason('outside its optimisation profile', since=since)}")
        host_out = np.empty(tuple(self._context.get_tensor_shape(self._output)), dtype=self._output_dtype)
        self._memory.upload(self._addresses[self._input], host_in)
        if not self._context.execute_async_v3(self._memory.stream):
            reason = self._logger.reason("unknown", since=since)
            raise EdgeResNetError(f"TensorRT failed to run {self.model_path.name}: {reason}")
        self._memory.download(host_out, self._addresses[self._output])
        self._memory.synchronize()
        return host_out.astype(np.float32, copy=False)

    def _describe_impl(self) -> RunnerInfo:
        gpu = f" ({self._gpu.name}, sm {self._gpu.compute_capability})" if self._gpu else ""
        return RunnerInfo(
            backend=self.backend,
            device=f"cuda:{self._index}{gpu}",
            precision=self._precision,
            model_path=str(self.model_path),
            versions={"tensorrt": str(self._trt.__version__)},
        )

    def _close_impl(self) -> None:
        self._context = None
        self._engine = None
        self._memory.close()
