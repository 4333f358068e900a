"""ONNX Runtime backend (CPU; CUDA where onnxruntime-gpu is installed)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.bundle.model_bytes import ModelBytes
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError, first_line
from edgeresnet.runtime.base import Runner, RunnerInfo

if TYPE_CHECKING:
    from edgeresnet.data.preprocessing import PreprocessSpec

_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path | ModelBytes,
        *,
        device: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
        pixel_model: str | Path | ModelBytes | None = None,
    ) -> None:
        """``pixel_model``: the same model taking uint8 NHWC pixels (``export.onnx.add_pixel_input``), run by
        ``infer_pixels`` so normalisation happens inside ONNX Runtime. Either may be a path or the hashed
        bytes of a bundle's door."""
        super().__init__(model_path, device=device, threads=threads)
        import onnxruntime as ort

        if device not in _PROVIDERS:
            raise EdgeResNetError(f"onnxruntime device must be one of {sorted(_PROVIDERS)}, got {device!r}")
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendUnavailableError("onnxruntime has no CUDA provider here: install onnxruntime-gpu")
        source = self.model_bytes if self.model_bytes is not None else self.model_path
        self._session = open_session(source, threads=self.threads, providers=_PROVIDERS[device])
        self._pixel_session = None
        # The hashed bytes of the pixel model, kept so a caller can check what runs (as ``model_bytes``).
        self.pixel_model_bytes = pixel_model if isinstance(pixel_model, ModelBytes) else None
        if pixel_model is not None:
            pixels = pixel_model if isinstance(pixel_model, ModelBytes) else Path(pixel_model)
            self._pixel_session = open_session(pixels, threads=self.threads, providers=_PROVIDERS[device])
        model_input = self._session.get_inputs()[0]
        self._check_declared_input(model_input.shape)
        self._input_name = model_input.name
        first_dim = model_input.shape[0] if model_input.shape else None
        self._static_batch = first_dim if isinstance(first_dim, int) and first_dim > 0 else None
        self._precision = precision
        self._version = ort.__version__

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        static = self._static_batch
        if static is None or len(batch) == static:
            return self._run(batch)
        # A static-batch model (export --batch N) takes exactly N images: run full chunks of N and pad
        # the last one with copies of its final image, dropping the padded rows from the result.
        outputs = []
        for start in range(0, len(batch), static):
            chunk = batch[start : start + static]
            real = len(chunk)
            if real < static:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], static - real, axis=0)])
            outputs.append(self._run(chunk)[:real])
        return np.concatenate(outputs)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self._session.run(None, {self._input_name: batch})[0]
        except Exception as error:  # onnxruntime's own error types (InvalidArgument, Fail) share no root
            raise EdgeResNetError(
                f"onnxruntime cannot run {self.model_path.name} on a batch of shape {batch.shape}: {first_line(error)}"
            ) from error

    @property
    def preprocesses_in_model(self) -> bool:
        return self._pixel_session is not None

    def _infer_pixels_impl(self, pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
        if self._pixel_session is None:
            return super()._infer_pixels_impl(pixels, spec)
        session = self._pixel_session
        try:
            return session.run(None, {session.get_inputs()[0].name: pixels})[0]
        except Exception as error:  # onnxruntime's own error types share no root
            raise EdgeResNetError(
                f"onnxruntime cannot run the pixel model of {self.model_path.name} on {pixels.shape}: {first_line(error)}"
            ) from error

    def bind_for_timing(self, batch: np.ndarray) -> Callable[[], object]:
        import onnxruntime as ort

        binding = self._session.io_binding()
        # The input stays in host memory on every device, so a CUDA run still pays its upload each
        # call, as an application feeding host images does.
        value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        binding.bind_ortvalue_input(self._input_name, value)
        binding.bind_output(self._session.get_outputs()[0].name, "cpu")
        return functools.partial(self._session.run_with_iobinding, binding)

    def _describe_impl(self) -> RunnerInfo:
        return RunnerInfo(
            backend=self.backend,
            device=self.device,
            precision=self._precision,
            model_path=str(self.model_path),
            versions={"onnxruntime": self._version},
        )


def open_session(
    source: Path | ModelBytes, *, threads: int | None = None, providers: list[str] | None = None,
    optimize: bool = True,
) -> Any:
    """An ONNX Runtime session for a model file, or for a bundle's hashed bytes and their external data.

    From :class:`ModelBytes` the session is built from memory, external data included: ONNX Runtime
    opens no file, so it runs the bytes the door hashed.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    model: str | bytes = str(source)
    if isinstance(source, ModelBytes):
        model = source.data
        if source.companions:
            names = list(source.companions)
            buffers = [source.companions[name] for name in names]
            options.add_external_initializers_from_files_in_memory(names, buffers, [len(b) for b in buffers])
    name = source.path if isinstance(source, ModelBytes) else source
    try:
        return ort.InferenceSession(model, options, providers=providers or ["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors for corrupt files
        raise EdgeResNetError(f"onnxruntime cannot load {name}: {first_line(error)}") from error
