"""A stand-in ``tensorrt`` module for CPU tests, built only from names NVIDIA's bindings define.

Every member, method and property of the stand-in is checked against the committed name list of the
TensorRT version it imitates (:class:`tests.tensorrt_api.names.StrictFake`), and setting a property the
bindings lack raises AttributeError, so a test passing here cannot hide a misspelt or removed API.

It imitates what the project relies on: strongly typed network creation, the builder config, the
timing cache (corrupt bytes give None), the engine inspector's JSON (10.x ``"Format/Datatype"``, 11.x
``"Format"`` and ``"Datatype"``), name-based engine I/O, and TensorRT's one logger per process (the
first logger a Builder or Runtime receives hears every later message). The engine computes a known
function of its input: the mean of each channel times :data:`WEIGHTS`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.tensorrt_api.names import StrictFake, fake_module, fake_namespace

TRT10, TRT11 = "10.16.1.11", "11.4.0.106"
SHAPE = (3, 32, 32)
WEIGHTS = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)
PLAN = b"fake-plan:"
CACHE = b"fake-timing-cache:"


def expected_logits(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(len(batch), 3, -1).mean(axis=2) @ WEIGHTS


@dataclass
class Behaviour:
    """What the stand-in does and what it saw."""

    max_batch: int = 8
    static_batch: int | None = None  # an engine built from a static-batch model
    loadable: bool = True
    host_code: bool = False  # a version-compatible engine: loads only with host code allowed
    load_error: str = "The engine plan file is not compatible with this version of TensorRT"
    deserialized: int = 0
    cleared_flags: list[Any] = field(default_factory=list)
    set_flags: list[Any] = field(default_factory=list)
    caches_read: list[bytes] = field(default_factory=list)
    loggers: list[Any] = field(default_factory=list)  # every logger handed to a Builder or Runtime
    buffers: dict[int, np.ndarray] = field(default_factory=dict)


def fake_tensorrt(version: str = TRT10, behaviour: Behaviour | None = None) -> Any:
    """A stand-in tensorrt module imitating ``version`` (TRT10 or TRT11)."""
    state = behaviour or Behaviour()
    eleven = version.startswith("11.")

    class Severity(enum.Enum):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    class ILogger:  # pybind11 lets Python subclasses add their own attributes: not strict
        def __init__(self) -> None:
            pass

    ILogger.Severity = Severity  # type: ignore[attr-defined]

    def first_logger() -> Any:
        return state.loggers[0]

    def hand(logger: Any) -> None:
        state.loggers.append(logger)

    class Tensor(StrictFake):
        VERSION = version
        name = "input"
        shape = (state.static_batch or -1, *SHAPE)

    class Network(StrictFake):
        VERSION = version
        num_inputs = 1
        num_outputs = 1

        def get_input(self, index: int) -> Tensor:
            return Tensor()

    class Parser(StrictFake):
        VERSION = version

        def __init__(self, network: Network, logger: Any) -> None:
            object.__setattr__(self, "_errors", [])

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> str:
            return self._errors[index]

        def parse_from_file(self, path: str) -> bool:
            return True

    class TimingCache(StrictFake):
        VERSION = version

        def __init__(self, data: bytes) -> None:
            object.__setattr__(self, "_data", data)

        def serialize(self) -> bytes:
            return CACHE + self._data[len(CACHE):] + b"+build"

    class Profile(StrictFake):
        VERSION = version

        def set_shape(self, name: str, low: tuple, opt: tuple, high: tuple) -> None:
            object.__setattr__(self, "_shapes", (low, opt, high))

    class Config(StrictFake):
        VERSION = version

        def __init__(self) -> None:
            object.__setattr__(self, "_cache", None)
            self.profiling_verbosity = None
            self.builder_optimization_level = 3
            self.hardware_compatibility_level = None

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            pass

        def set_flag(self, flag: Any) -> None:
            state.set_flags.append(flag)

        def clear_flag(self, flag: Any) -> None:
            state.cleared_flags.append(flag)

        def add_optimization_profile(self, profile: Profile) -> int:
            return 0

        def create_timing_cache(self, data: bytes) -> TimingCache | None:
            state.caches_read.append(bytes(data))
            if data and not bytes(data).startswith(CACHE):
                first_logger().log(Severity.ERROR, "Error Code 1: Internal Error (Timing cache is corrupt)")
                return None
            return TimingCache(bytes(data) or CACHE)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            if not isinstance(cache, TimingCache):
                raise TypeError("set_timing_cache(): incompatible function arguments")
            object.__setattr__(self, "_cache", cache)
            return True

        def get_timing_cache(self) -> TimingCache:
            return self._cache

    class Builder(StrictFake):
        VERSION = version

        def __init__(self, logger: Any) -> None:
            hand(logger)

        def create_network(self, flags: int) -> Network:
            return Network()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes:
            return PLAN + b"built"

    class Context(StrictFake):
        VERSION = version

        def __init__(self) -> None:
            object.__setattr__(self, "_addresses", {})
            object.__setattr__(self, "_batch", 0)

        def set_tensor_address(self, name: str, address: int) -> bool:
            self._addresses[name] = address
            return True

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            object.__setattr__(self, "_batch", shape[0])
            if state.static_batch:
                return shape[0] == state.static_batch
            return 1 <= shape[0] <= state.max_batch

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (self._batch, 10) if name == "logits" else (self._batch, *SHAPE)

        def execute_async_v3(self, stream_handle: int) -> bool:
            count = self._batch * int(np.prod(SHAPE))
            pixels = state.buffers[self._addresses["input"]][: count * 4].view(np.float32)
            logits = expected_logits(pixels.reshape(self._batch, *SHAPE)).astype(np.float32)
            state.buffers[self._addresses["logits"]][: logits.nbytes] = logits.reshape(-1).view(np.uint8)
            return True

    def layer_tensor(datatype: str, layout: str) -> dict[str, str]:
        if eleven:
            return {"Name": "t", "Format": layout, "Datatype": datatype}
        return {"Name": "t", "Format/Datatype": f"{layout} {datatype}"}

    class Inspector(StrictFake):
        VERSION = version
        if eleven:  # the property that selects the context to inspect was renamed in 11.x
            execution_context = None
        else:
            context = None

        def get_engine_information(self, format: Any) -> str:
            layer = {"Name": "conv", "LayerType": "CaskConvolution",
                     "Inputs": [layer_tensor("Int8", "Channel major")], "Outputs": [layer_tensor("Int8", "Channel major")]}
            return json.dumps({"Layers": [layer]})

    class Engine(StrictFake):
        VERSION = version
        num_io_tensors = 2

        def get_tensor_name(self, index: int) -> str:
            return ["input", "logits"][index]

        def get_tensor_mode(self, name: str) -> Any:
            return trt.TensorIOMode.INPUT if name == "input" else trt.TensorIOMode.OUTPUT

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            batch = state.static_batch or -1
            return (batch, 10) if name == "logits" else (batch, *SHAPE)

        def get_tensor_dtype(self, name: str) -> str:
            return "FLOAT"

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
            return [(1, *SHAPE), (4, *SHAPE), (state.max_batch, *SHAPE)]

        def create_execution_context(self) -> Context:
            return Context()

        def create_engine_inspector(self) -> Inspector:
            return Inspector()

    class Runtime(StrictFake):
        VERSION = version

        def __init__(self, logger: Any) -> None:
            hand(logger)
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, serialized_engine: bytes) -> Engine | None:
            state.deserialized += 1
            if state.host_code and not self.engine_host_code_allowed:
                first_logger().log(Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                                   "(the engine has host code; set engine_host_code_allowed to load it)")
                return None
            if state.loadable:
                return Engine()
            first_logger().log(Severity.ERROR, state.load_error)
            return None

    flags = {"TF32": "TF32", "VERSION_COMPATIBLE": "VERSION_COMPATIBLE"}
    if not eleven:
        flags.update(FP16="FP16", INT8="INT8")  # removed in 11.x with the weakly typed networks
    trt = fake_module(
        version,
        ILogger=ILogger,
        Builder=Builder,
        OnnxParser=Parser,
        Runtime=Runtime,
        NetworkDefinitionCreationFlag=fake_namespace(version, STRONGLY_TYPED=1),
        BuilderFlag=fake_namespace(version, **flags),
        MemoryPoolType=fake_namespace(version, WORKSPACE="WORKSPACE"),
        ProfilingVerbosity=fake_namespace(version, DETAILED="DETAILED"),
        HardwareCompatibilityLevel=fake_namespace(version, NONE="NONE", AMPERE_PLUS="AMPERE_PLUS",
                                                  SAME_COMPUTE_CAPABILITY="SAME_COMPUTE_CAPABILITY"),
        LayerInformationFormat=fake_namespace(version, JSON="JSON", ONELINE="ONELINE"),
        TensorIOMode=fake_namespace(version, INPUT="INPUT", OUTPUT="OUTPUT"),
        nptype=lambda dtype: np.float32,
    )
    object.__setattr__(trt, "state", state)
    return trt


class HostMemory:
    """Device memory simulated in host arrays, with the interface of the runner's CUDA memory."""

    stream = 7

    def __init__(self, behaviour: Behaviour) -> None:
        self.buffers = behaviour.buffers
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
