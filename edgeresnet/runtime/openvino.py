"""OpenVINO backend: IR (.xml + .bin) or ONNX files on CPU, and on Intel GPU/NPU where present.

OpenVINO is imported inside functions, so this module costs nothing to import where it is absent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from edgeresnet.bundle.model_bytes import IR_WEIGHTS, ModelBytes
from edgeresnet.bundle.vocabulary import RuntimePrecision
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError, first_line
from edgeresnet.runtime.base import Runner, RunnerInfo

if TYPE_CHECKING:
    from edgeresnet.data.preprocessing import PreprocessSpec

log = logging.getLogger(__name__)

Precision = RuntimePrecision  # the one vocabulary: edgeresnet.bundle.vocabulary
PerformanceHint = Literal["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"]

# The execution precision asked of OpenVINO for each artifact precision. Without a hint the CPU
# plugin silently runs float layers in bf16 wherever the CPU has AVX512-BF16 or AMX (Zen 4 does),
# which moves FP32 logits by ~1e-3 and makes parity checks against ONNX Runtime fail. An INT8 IR
# asks for f32 too: its quantized layers run in int8 regardless, the rest should run as in FP32.
_EXECUTION_PRECISION: dict[str, str] = {"fp32": "f32", "int8": "f32", "fp16": "f16", "bf16": "bf16"}
# The optimisation capability a device must report before OpenVINO honours the hint; asking the
# Zen 4 CPU for f16 without it silently gives bf16, so fp16 falls back to f32 there instead.
_REQUIRED_CAPABILITY: dict[str, str] = {"f16": "FP16", "bf16": "BF16"}
_VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")


def require_openvino() -> ModuleType:
    """Import openvino, or explain how to install it."""
    try:
        import openvino
    except ImportError as error:
        raise BackendUnavailableError("OpenVINO is not installed: pip install 'edgeresnet[openvino]'") from error
    return openvino


def openvino_version() -> str | None:
    """The installed OpenVINO build (e.g. ``2026.4.1-22982-...``), or None where it is absent."""
    try:
        import openvino
    except ImportError:
        return None
    return openvino.get_version()


class OpenVinoRunner(Runner):
    """Run an OpenVINO IR (``model.xml`` with ``model.bin`` beside it) or an ONNX file.

    Args:
        device: an OpenVINO device name, case-insensitive: ``CPU``, ``GPU``, ``GPU.1``, ``NPU``, ``AUTO``.
        precision: the artifact's precision; it also picks the execution precision (see
            ``_EXECUTION_PRECISION``), which ``inference_precision`` reports after compiling.
        performance_hint: OpenVINO's ``PERFORMANCE_HINT``; LATENCY suits one request at a time.
    """

    backend = "openvino"

    def __init__(
        self,
        model_path: str | Path | ModelBytes,
        *,
        device: str = "CPU",
        threads: int | None = None,
        precision: Precision = "fp32",
        performance_hint: PerformanceHint = "LATENCY",
    ) -> None:
        super().__init__(model_path, device=device, threads=threads)
        ov = require_openvino()
        if precision not in _EXECUTION_PRECISION:
            raise EdgeResNetError(f"precision must be one of {sorted(_EXECUTION_PRECISION)}, got {precision!r}")
        self._precision = precision
        self._ov_device = device.upper()
        self._core = ov.Core()
        self._check_device()
        self._model = self._read_model()
        self._config = self._compile_config(threads, performance_hint)
        self._input_shape = self._model.input(0).get_partial_shape()
        self._dynamic_batch = self._input_shape.rank.is_dynamic or self._input_shape[0].is_dynamic
        self._compiled = self._compile(self._model)
        self._request = self._compiled.create_infer_request()
        self._batch: int | None = None if self._dynamic_batch else self._input_shape[0].get_length()
        self._static_requests: dict[int, tuple[Any, Any]] = {}
        if self._batch is not None:
            self._static_requests[self._batch] = (self._compiled, self._request)
        # In-model preprocessing (uint8 NHWC in): compiled on the first infer_pixels, per spec and batch.
        self._pixel_models: dict[PreprocessSpec, Any] = {}
        self._pixel_requests: dict[tuple[PreprocessSpec, int | None], tuple[Any, Any]] = {}
        self._version = ov.get_version()
        self._device_name = str(self._core.get_property(self._ov_device, "FULL_DEVICE_NAME"))

    @property
    def inference_precision(self) -> str:
        """The precision OpenVINO actually runs float layers in after compiling (f32, bf16, f16)."""
        try:
            return self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except RuntimeError:  # devices without the property (NPU) decide per layer
            return "device default"

    def _check_device(self) -> None:
        base = self._ov_device.split(".")[0].split(":")[0]
        if base in _VIRTUAL_DEVICES:
            return
        available = self._core.available_devices
        if not any(name == self._ov_device or name.split(".")[0] == base for name in available):
            raise BackendUnavailableError(
                f"OpenVINO has no {self._ov_device} device here (available: {', '.join(available) or 'none'})"
            )

    def _read_model(self) -> Any:
        suffix = self.model_path.suffix.lower()
        if suffix not in (".xml", ".onnx"):
            raise EdgeResNetError(f"OpenVINO reads .xml (IR) or .onnx files, got {self.model_path}")
        try:
            model = (self._read_from_bytes(self.model_bytes, suffix) if self.model_bytes is not None
                     else self._read_from_path(suffix))
        except EdgeResNetError:
            raise
        except Exception as error:  # openvino raises RuntimeError with multi-line C++ traces
            raise EdgeResNetError(f"OpenVINO cannot read {self.model_path}: {first_error_line(error)}") from error
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise EdgeResNetError(
                f"{self.model_path} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                "an image classifier has one of each"
            )
        partial = model.input(0).get_partial_shape()
        if partial.rank.is_static:
            self._check_declared_input([d.get_length() if d.is_static else None for d in partial])
        return model

    def _read_from_path(self, suffix: str) -> Any:
        if suffix == ".xml" and not self.model_path.with_suffix(".bin").is_file():
            raise EdgeResNetError(
                f"OpenVINO IR {self.model_path} has no weights file {self.model_path.with_suffix('.bin').name} beside it"
            )
        # Ask only the matching frontend first: on a file no frontend claims, read_model probes them
        # all and the TensorFlow one floods stderr with parse errors.
        framework = "ir" if suffix == ".xml" else "onnx"
        if not _frontend(framework).supported(str(self.model_path)):
            kind = "an OpenVINO IR (.xml)" if framework == "ir" else "an ONNX model"
            raise EdgeResNetError(f"{self.model_path} is not {kind}")
        return self._core.read_model(str(self.model_path))

    def _read_from_bytes(self, source: ModelBytes, suffix: str) -> Any:
        """The model from the bytes a bundle's door hashed: OpenVINO opens no file (see ``ModelBytes``)."""
        ov = require_openvino()
        if suffix == ".xml":
            weights = source.companions.get(IR_WEIGHTS)
            if weights is None:
                raise EdgeResNetError(f"OpenVINO IR {self.model_path} came without its weights (.bin)")
            return self._core.read_model(source.data, ov.Tensor(np.frombuffer(weights, np.uint8)))
        if source.companions:
            raise EdgeResNetError(
                f"{self.model_path.name} keeps its weights in external data files, which OpenVINO cannot take "
                "from checked bytes: run it with onnxruntime, or compile it to an OpenVINO IR"
            )
        return self._core.read_model(source.data)

    def _compile_config(self, threads: int | None, performance_hint: str) -> dict[str, Any]:
        supported = set(self._core.get_property(self._ov_device, "SUPPORTED_PROPERTIES"))
        config: dict[str, Any] = {}
        if "PERFORMANCE_HINT" in supported:
            config["PERFORMANCE_HINT"] = performance_hint
        if threads and "INFERENCE_NUM_THREADS" in supported:
            config["INFERENCE_NUM_THREADS"] = threads
        if "INFERENCE_PRECISION_HINT" in supported:
            config["INFERENCE_PRECISION_HINT"] = self._execution_precision()
        return config

    def _execution_precision(self) -> str:
        wanted = _EXECUTION_PRECISION[self._precision]
        capability = _REQUIRED_CAPABILITY.get(wanted)
        if capability is None:
            return wanted
        capabilities = set(self._core.get_property(self._ov_device, "OPTIMIZATION_CAPABILITIES"))
        if capability in capabilities:
            return wanted
        if self._precision == "bf16":
            raise EdgeResNetError(f"OpenVINO {self._ov_device} has no bf16 support here")
        # An FP16 IR is a storage format on such a device: its weights are widened at compile time.
        return "f32"

    def _compile(self, model: Any) -> Any:
        try:
            return self._core.compile_model(model, self._ov_device, self._config)
        except Exception as error:
            raise EdgeResNetError(
                f"OpenVINO cannot compile {self.model_path} for {self._ov_device}: {first_error_line(error)}"
            ) from error

    def _prepare_for_batch(self, size: int) -> None:
        """Switch a static-batch model to ``size``, compiling it once per batch size seen.

        A dynamic-batch model needs nothing: its one request takes any batch size.
        """
        if self._dynamic_batch or size == self._batch:
            return
        if size not in self._static_requests:
            ov = require_openvino()
            log.info("compiling %s for batch %d (its batch dimension is static)", self.model_path.name, size)
            model = self._model.clone()
            shape = ov.PartialShape(self._input_shape)
            shape[0] = ov.Dimension(size)
            model.reshape({model.input(0): shape})
            compiled = self._compile(model)
            self._static_requests[size] = (compiled, compiled.create_infer_request())
        self._compiled, self._request = self._static_requests[size]
        self._batch = size

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        self._prepare_for_batch(batch.shape[0])
        try:
            # share_inputs: the call is synchronous and the base class hands us a contiguous array;
            # outputs are copied (the default) because the reused request overwrites its buffers.
            result = self._request.infer({0: batch}, share_inputs=True)
        except Exception as error:
            raise EdgeResNetError(
                f"OpenVINO cannot run {self.model_path.name} on a batch of shape {batch.shape}: {first_error_line(error)}"
            ) from error
        return result[self._compiled.output(0)]

    @property
    def preprocesses_in_model(self) -> bool:
        return True

    def _infer_pixels_impl(self, pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
        compiled, request = self._pixel_request(spec, pixels.shape[0])
        try:
            result = request.infer({0: pixels}, share_inputs=True)
        except Exception as error:
            raise EdgeResNetError(
                f"OpenVINO cannot run {self.model_path.name} on pixels of shape {pixels.shape}: {first_error_line(error)}"
            ) from error
        return result[compiled.output(0)]

    def _pixel_request(self, spec: PreprocessSpec, size: int) -> tuple[Any, Any]:
        """The compiled model that takes uint8 NHWC pixels and normalises them in its graph."""
        key = (spec, None if self._dynamic_batch else size)
        if key not in self._pixel_requests:
            model = self._pixel_models.get(spec)
            if model is None:
                model = self._pixel_models[spec] = _with_pixel_preprocessing(self._model, spec)
            if not self._dynamic_batch:
                ov = require_openvino()
                model = model.clone()
                shape = ov.PartialShape(model.input(0).get_partial_shape())
                shape[0] = ov.Dimension(size)
                model.reshape({model.input(0): shape})
            compiled = self._compile(model)
            self._pixel_requests[key] = (compiled, compiled.create_infer_request())
        return self._pixel_requests[key]

    def bind_pixels_for_timing(self, pixels: np.ndarray, spec: PreprocessSpec) -> Callable[[], object]:
        """Like :meth:`bind_for_timing`, for the uint8 pixel model (in-model preprocessing)."""
        ov = require_openvino()
        compiled, _ = self._pixel_request(spec, pixels.shape[0])
        request = compiled.create_infer_request()
        request.set_input_tensor(0, ov.Tensor(np.ascontiguousarray(pixels), shared_memory=False))
        return functools.partial(request.infer, share_outputs=True)

    def bind_for_timing(self, batch: np.ndarray) -> Callable[[], object]:
        ov = require_openvino()
        self._prepare_for_batch(batch.shape[0])
        # A dedicated request, so the runner's own keeps its state; the input is copied once into a
        # tensor OpenVINO allocated (aligned as its kernels like), as benchmark_app's inputs are.
        request = self._compiled.create_infer_request()
        request.set_input_tensor(0, ov.Tensor(np.ascontiguousarray(batch, dtype=np.float32), shared_memory=False))
        return functools.partial(request.infer, share_outputs=True)  # the timed result is discarded

    def infer_requests(self, batch_size: int, count: int = 0) -> list[Any]:
        """``count`` infer requests (0: the compiled model's optimal number) on the model compiled for
        ``batch_size``: what throughput timing keeps busy (compile with the THROUGHPUT hint for streams)."""
        self._prepare_for_batch(batch_size)
        count = count or int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        return [self._compiled.create_infer_request() for _ in range(max(count, 1))]

    def _describe_impl(self) -> RunnerInfo:
        return RunnerInfo(
            backend=self.backend,
            device=f"{self._ov_device} ({self._device_name})",
            precision=self._precision,
            model_path=str(self.model_path),
            versions={"openvino": self._version},
        )

    def _close_impl(self) -> None:
        self._request = None
        self._compiled = None
        self._static_requests.clear()
        self._pixel_requests.clear()
        self._pixel_models.clear()


def _with_pixel_preprocessing(model: Any, spec: PreprocessSpec) -> Any:
    """A copy of ``model`` whose input is uint8 NHWC pixels, normalised inside the graph.

    OpenVINO's PrePostProcessor adds the conversion, mean/std and the NHWC→NCHW transpose as graph
    operations, which the CPU plugin fuses into the first convolution's input; the arithmetic is that
    of ``PreprocessSpec.normalise`` (x - 255·mean) / (255·std).
    """
    ov = require_openvino()
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model.clone())
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean(
        [255.0 * m for m in spec.mean]
    ).scale([255.0 * s for s in spec.std])
    return ppp.build()


def _frontend(framework: Literal["ir", "onnx"]) -> Any:
    ov = require_openvino()
    return ov.frontend.FrontEndManager().load_by_framework(framework)


# OpenVINO prefixes its messages with source locations ("Exception from src/...", "Check '...' failed
# at ..."); the user needs the first line after them.
_TRACE_PREFIXES = ("Exception from ", "Check '", "FrontEnd API failed")


def first_error_line(error: BaseException) -> str:
    """The first line of an OpenVINO/NNCF error message that says what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TRACE_PREFIXES)]
    # OpenVINO prefixes its messages with source-location lines; past those it is a plain first line.
    return useful[0] if useful else first_line(error)
