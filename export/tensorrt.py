"""TensorRT build steps, files in → files out: FP32 ONNX → FP16 ONNX, and ONNX → serialized engine.

Networks are always strongly typed: TensorRT 10.1 deprecated implicit INT8 calibration and TensorRT 11
removed it together with the FP16/INT8 builder flags, so the precision lives in the ONNX itself. INT8
comes from an explicit QDQ model, FP16 from :func:`convert_onnx_to_fp16` (:mod:`edgeresnet.export.fp16`:
plain onnx on any CPU, so it can be checked with ONNX Runtime where TensorRT cannot run), FP32 from the
model as exported.

Both the 10.x and the 11.x Python APIs are supported by feature detection. TensorRT is imported inside
the functions; the FP16 conversion needs only onnx.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from edgeresnet.atomic import atomic_write_bytes
from edgeresnet.environment import GpuInfo
from edgeresnet.errors import BackendUnavailableError, ExportError
from edgeresnet.export.fp16 import Fp16Conversion, convert_onnx_to_fp16  # noqa: F401  (the FP16 build step)
from edgeresnet.runtime.tensorrt import cuda_device, make_logger, require_tensorrt, tensorrt_major

# The engine inspector's reading is shared with the runtime (benchmark rows name an engine's layer precisions).
from edgeresnet.runtime.tensorrt_engine import inspect_layer_precisions, summarise_layer_precisions  # noqa: F401

log = logging.getLogger(__name__)

HardwareCompatibility = Literal["none", "ampere+", "same-cc"]
HARDWARE_COMPATIBILITY: dict[str, str] = {
    "none": "NONE", "ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY",
}


@dataclass(frozen=True)
class TensorRtBuildOptions:
    """How to build an engine. The batch range becomes the optimisation profile: min 1, ``opt_batch``
    (what the kernels are tuned for), ``max_batch`` (the largest batch the engine accepts).

    Args:
        timing_cache: a timing-cache file to start from (if present); kernel timings are reused across
            builds on the same GPU and TensorRT version, which makes rebuilds fast. It is only read: the
            updated cache goes where :func:`build_engine`'s ``timing_cache_out`` says, so a cache inside
            another bundle is never rewritten (its sha256 would no longer match).
        version_compatible: an engine later TensorRT versions can run (it embeds a lean runtime).
        hardware_compatibility: ``ampere+`` for one engine on every Ampere-or-newer GPU, ``same-cc`` for
            every GPU of this compute capability; both may cost speed.
    """

    max_batch: int = 32
    opt_batch: int = 1
    workspace_mib: int = 1024
    timing_cache: Path | None = None
    version_compatible: bool = False
    hardware_compatibility: HardwareCompatibility = "none"
    optimization_level: int = 3

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ExportError(f"--max-batch must be at least 1, got {self.max_batch}")
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ExportError(
                f"--opt-batch must lie between 1 and --max-batch ({self.max_batch}), got {self.opt_batch}"
            )
        if self.workspace_mib < 1:
            raise ExportError(f"the workspace must be at least 1 MiB, got {self.workspace_mib}")
        if self.hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise ExportError(f"hardware compatibility must be one of {', '.join(HARDWARE_COMPATIBILITY)}, "
                              f"got {self.hardware_compatibility!r}")
        if not 0 <= self.optimization_level <= 5:
            raise ExportError(f"the builder optimization level runs 0-5, got {self.optimization_level}")

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["timing_cache"] = str(self.timing_cache) if self.timing_cache else None
        return record


@dataclass(frozen=True)
class EngineBuild:
    """What a build produced and on what: the facts the bundle manifest records."""

    engine: Path
    tensorrt_version: str
    gpu: GpuInfo
    profile: dict[str, int]
    layer_precisions: dict[str, int]
    seconds: float
    tf32: bool = False  # FP32 layers ran in FP32, not TF32: see _configure

    def to_manifest(self) -> dict[str, Any]:
        return {"version": self.tensorrt_version, "gpu": self.gpu.name,
                "compute_capability": self.gpu.compute_capability, "gpu_source": self.gpu.source,
                "strongly_typed": True, "tf32": self.tf32, "profile": self.profile,
                "layer_precisions": self.layer_precisions, "build_seconds": round(self.seconds, 2)}


def require_tensorrt_gpu(carry: str) -> tuple[Any, GpuInfo]:
    """TensorRT and a GPU, or a one-line error saying which is missing and what to take to the device."""
    where = f"carry {carry} to the target device and run `edgeresnet compile BUNDLE --target tensorrt` there"
    try:
        trt = require_tensorrt()
    except BackendUnavailableError as error:
        raise BackendUnavailableError(f"TensorRT is not installed here: {where}") from error
    gpu = cuda_device(0)
    if gpu is None:
        raise BackendUnavailableError(f"TensorRT is installed but no CUDA GPU is visible here: {where}")
    return trt, gpu


def build_engine(
    onnx_path: str | Path, engine_path: str | Path, *, options: TensorRtBuildOptions = TensorRtBuildOptions(),
    carry: str = "the bundle", timing_cache_out: str | Path | None = None,
) -> EngineBuild:
    """Build a strongly typed engine from an ONNX model (FP32, FP16 or QDQ INT8) and write it atomically.

    Args:
        timing_cache_out: where to write the timing cache after the build (``options.timing_cache`` plus
            this build's timings); None writes none. It may be ``options.timing_cache`` itself only where
            that file is the caller's own scratch file.
    """
    trt, gpu = require_tensorrt_gpu(carry)
    started = time.perf_counter()
    logger = make_logger(trt)
    since = logger.mark()
    builder = trt.Builder(logger)
    network = _create_network(trt, builder)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).splitlines()[0] for i in range(parser.num_errors)]
        reason = errors[0] if errors else logger.reason("?", since=since)
        raise ExportError(f"TensorRT cannot parse {Path(onnx_path).name}: {reason}")
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise ExportError(
            f"{Path(onnx_path).name} must have one input and one output for an image classifier"
        )
    config = builder.create_builder_config()
    profile = _add_profile(builder, config, network.get_input(0), options)
    _configure(trt, config, options)
    _attach_timing_cache(config, options.timing_cache)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        reason = logger.reason("?", since=since)
        raise ExportError(f"TensorRT could not build an engine from {Path(onnx_path).name}: {reason}")
    engine_bytes = bytes(plan)
    atomic_write_bytes(engine_path, engine_bytes)
    if timing_cache_out is not None:
        atomic_write_bytes(timing_cache_out, bytes(config.get_timing_cache().serialize()))
    precisions = _inspect(trt, logger, engine_bytes, network.get_input(0).name, profile, options)
    return EngineBuild(engine=Path(engine_path), tensorrt_version=str(trt.__version__), gpu=gpu,
                       profile=profile, layer_precisions=precisions,
                       seconds=time.perf_counter() - started, tf32=False)


def _create_network(trt: Any, builder: Any) -> Any:
    # 10.x: strong typing is opt-in through STRONGLY_TYPED; 11.x: always on, and the flag is deprecated
    # (later 11.x releases may drop it), so it is passed only where it still means something.
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if tensorrt_major(trt) < 11:
        if flag is None:
            raise BackendUnavailableError(
                f"TensorRT {trt.__version__} has no strongly typed networks: use 10.1 or newer"
            )
        return builder.create_network(1 << int(flag))
    return builder.create_network(0)


def _add_profile(builder: Any, config: Any, tensor: Any, options: TensorRtBuildOptions) -> dict[str, int]:
    shape = tuple(tensor.shape)
    if any(dim < 0 for dim in shape[1:]):
        raise ExportError(f"input {tensor.name} has a dynamic C/H/W {shape}; only the batch may be dynamic")
    if shape[0] >= 0:  # a static-batch model: the profile is that batch, whatever was asked
        log.warning("%s has a static batch of %d; --max-batch/--opt-batch do not apply",
                    tensor.name, shape[0])
        return {"min": shape[0], "opt": shape[0], "max": shape[0]}
    chw = shape[1:]
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, (1, *chw), (options.opt_batch, *chw), (options.max_batch, *chw))
    config.add_optimization_profile(profile)
    return {"min": 1, "opt": options.opt_batch, "max": options.max_batch}


def _configure(trt: Any, config: Any, options: TensorRtBuildOptions) -> None:
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    # TensorRT runs FP32 layers in TF32 on Ampere and newer unless told not to; TF32 keeps 10 mantissa
    # bits, so an "FP32" engine would miss the FP32 golden-output tolerance. Strongly typed networks
    # mean what they say: FP32 is FP32 (FP16 and INT8 come from the ONNX types, not from flags).
    config.clear_flag(trt.BuilderFlag.TF32)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # per-layer precisions for the inspector
    config.builder_optimization_level = options.optimization_level
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if options.hardware_compatibility != "none":
        name = HARDWARE_COMPATIBILITY[options.hardware_compatibility]
        level = getattr(trt.HardwareCompatibilityLevel, name, None)
        if level is None:
            raise BackendUnavailableError(
                f"TensorRT {trt.__version__} has no {options.hardware_compatibility} "
                "hardware compatibility level"
            )
        config.hardware_compatibility_level = level


def _attach_timing_cache(config: Any, path: Path | None) -> None:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    try:
        cache = config.create_timing_cache(data)
    except (RuntimeError, TypeError, ValueError) as error:  # pybind11 raises these for bytes it cannot read
        cache, reason = None, str(error).splitlines()[0] if str(error) else type(error).__name__
    else:
        reason = "TensorRT cannot read it"
    if cache is None:  # TensorRT answers corrupt bytes with None, which set_timing_cache would raise TypeError on
        raise ExportError(f"timing cache {path} is not a usable TensorRT timing cache ({reason}): "
                          "delete it, or pass another --timing-cache")
    # A cache from another GPU or TensorRT version is refused rather than half-used (ignore_mismatch=False).
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise ExportError(f"timing cache {path} was written for another GPU or TensorRT version: delete it")


def _inspect(trt: Any, logger: Any, engine_bytes: bytes, input_name: str, profile: dict[str, int],
             options: TensorRtBuildOptions) -> dict[str, int]:
    """Per-layer precisions from the engine inspector, counted; with dynamic shapes the inspector
    reports formats only for a context whose input shape is set, so one is made at the opt batch."""
    since = logger.mark()
    runtime = trt.Runtime(logger)
    if options.version_compatible:
        runtime.engine_host_code_allowed = True  # the engine was built just now, by us
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    context = engine.create_execution_context() if engine is not None else None
    if context is None:
        log.warning("cannot inspect the built engine: %s", logger.reason("no execution context", since=since))
        return {}
    shape = (profile["opt"], *tuple(engine.get_tensor_shape(input_name))[1:])
    context.set_input_shape(input_name, shape)
    return inspect_layer_precisions(trt, engine, context)
