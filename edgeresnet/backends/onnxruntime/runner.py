"""ONNX Runtime backend (CPU; CUDA where onnxruntime-gpu is installed): the one session wrapper and the runner.

:class:`OrtSession` is the only place edgeresnet opens an ``onnxruntime.InferenceSession``: the runner,
calibration, the accuracy gate and the layer report all use it. A model exported with a static batch N
takes exactly N images per call, while data comes in whatever batches the caller has: the session cuts
each batch into pieces the model takes (N for a static batch; ``max_batch`` or the whole batch
otherwise), pads a short last piece with copies of its last image and drops the padded rows from every
output, so results do not depend on the model's batch dimension. onnxruntime's failures (its error
types share no root) become one-line errors naming the model and the shape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.bundle.model_bytes import ModelBytes
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError, one_line
from edgeresnet.runtime.base import Runner, RunnerInfo

if TYPE_CHECKING:
    import onnx

    from edgeresnet.data.preprocessing import PreprocessSpec

_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


class OrtSession:
    """An onnxruntime session over a model with one image input, fed batches of any size.

    Args:
        label: how errors name the model (default :func:`describe_model`), e.g. "the model x.onnx".
        level: graph optimisation, ``"basic"`` where no fusion may swallow a fetched tensor, ``"none"`` to
            read a model as written.
        providers: onnxruntime execution providers, CPU by default.
        threads: intra-op threads (``None``: onnxruntime's default).
        load_error, run_error: the error types a failure to load, or to run a batch, raises (the caller's
            layer: calibration reports ExportError/CalibrationError, the runtime EdgeResNetError).
    """

    def __init__(
        self,
        model: str | Path | ModelBytes | onnx.ModelProto,
        *,
        label: str = "",
        level: str = "all",
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
        load_error: type[EdgeResNetError] = EdgeResNetError,
        run_error: type[EdgeResNetError] = EdgeResNetError,
    ) -> None:
        self.label = label or describe_model(model)
        self._run_error = run_error
        try:
            self.session = open_session(model, level=level, threads=threads, providers=providers)
        except Exception as error:  # onnxruntime raises untyped errors for unreadable models
            raise load_error(f"onnxruntime cannot load {self.label}: {one_line(error)}") from error
        image_input = self.session.get_inputs()[0]
        self.input_name: str = image_input.name
        self.input_shape: tuple[int | str | None, ...] = tuple(image_input.shape)
        self.static_batch = static_batch_size(self.input_shape)
        self.first_output: str = self.session.get_outputs()[0].name

    def pieces(
        self, images: np.ndarray, fetch: Sequence[str] | None = None, *, max_batch: int | None = None
    ) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """Run ``images`` piece by piece; yield each piece (unpadded) with its outputs (padding dropped).

        Args:
            fetch: output names; ``None`` for the model's first output. An empty list still runs the
                model (so data it cannot take is refused) and yields no outputs.
            max_batch: images per call for a dynamic-batch model; a static batch overrides it.
        """
        names = list(fetch) if fetch else [self.first_output]
        size = self.static_batch or max_batch or len(images)
        for start in range(0, len(images), size):
            piece = images[start : start + size]
            outputs = self._run(piece, names)
            yield piece, outputs if fetch is None or fetch else []

    def logits(self, images: np.ndarray) -> np.ndarray:
        """The first output for the whole of ``images``."""
        return np.concatenate([outputs[0] for _, outputs in self.pieces(images)])

    def _run(self, piece: np.ndarray, names: list[str]) -> list[np.ndarray]:
        real = len(piece)
        fed = pad_batch(piece, self.static_batch) if self.static_batch else piece
        try:
            outputs = self.session.run(names, {self.input_name: fed})
        except Exception as error:  # onnxruntime's errors share no base class; only its call is inside
            raise self._run_error(
                f"a batch of shape {tuple(fed.shape)} does not fit {self.label} (input "
                f"{self.input_name!r} is {_shape_text(self.input_shape)}): {one_line(error)}"
            ) from error
        if len(fed) == real:
            return list(outputs)
        return [out[:real] if out.ndim and out.shape[0] == len(fed) else out for out in outputs]


def open_session(model: onnx.ModelProto | str | Path | ModelBytes, *, level: str = "all", threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> Any:
    """A bare ``onnxruntime.InferenceSession`` from a file, an in-memory model, or a bundle's hashed bytes
    (errors untouched).

    From :class:`ModelBytes` the session is built from memory, external data included: ONNX Runtime opens
    no file, so it runs the bytes the bundle's door hashed.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source: str | bytes
    if isinstance(model, ModelBytes):
        source = model.data
        if model.companions:
            names = list(model.companions)
            buffers = [model.companions[name] for name in names]
            options.add_external_initializers_from_files_in_memory(names, buffers, [len(b) for b in buffers])
    elif hasattr(model, "SerializeToString"):
        source = model.SerializeToString()
    else:
        source = str(model)
    return ort.InferenceSession(source, options, providers=list(providers))


def pad_batch(piece: np.ndarray, size: int) -> np.ndarray:
    """``piece`` grown to ``size`` images with copies of its last image (unchanged if already that long)."""
    if len(piece) >= size:
        return piece
    return np.concatenate([piece, np.repeat(piece[-1:], size - len(piece), axis=0)])


def static_batch_size(shape: Sequence[int | str | None]) -> int | None:
    """N when the leading (batch) dimension is a fixed N, ``None`` when it is symbolic or unknown."""
    first = shape[0] if len(shape) else None
    return first if isinstance(first, int) and first > 0 else None


def describe_model(model: str | Path | ModelBytes | onnx.ModelProto) -> str:
    """How messages name a model: "the model resnet18.onnx", or the graph name of an in-memory one."""
    if isinstance(model, ModelBytes):
        return f"the model {model.name}"
    if isinstance(model, (str, Path)):
        return f"the model {Path(model).name}"
    return f"the in-memory model {model.graph.name or '(unnamed)'}"


def _shape_text(shape: Sequence[int | str | None]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in shape) + "]"


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
        self._session = OrtSession(source, label=str(self.model_path), providers=_PROVIDERS[device],
                                   threads=self.threads)
        self._pixel_session = None
        # The hashed bytes of the pixel model, kept so a caller can check what runs (as ``model_bytes``).
        self.pixel_model_bytes = pixel_model if isinstance(pixel_model, ModelBytes) else None
        if pixel_model is not None:
            pixels = pixel_model if isinstance(pixel_model, ModelBytes) else Path(pixel_model)
            where = pixels.path if isinstance(pixels, ModelBytes) else pixels
            self._pixel_session = OrtSession(pixels, label=f"the pixel model {where}", providers=_PROVIDERS[device],
                                             threads=self.threads)
        self._check_declared_input(self._session.input_shape)
        self._precision = precision
        self._version = ort.__version__

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return self._session.logits(batch)

    @property
    def preprocesses_in_model(self) -> bool:
        return self._pixel_session is not None

    def _infer_pixels_impl(self, pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
        if self._pixel_session is None:
            return super()._infer_pixels_impl(pixels, spec)
        return self._pixel_session.logits(pixels)

    def bind_for_timing(self, batch: np.ndarray) -> Callable[[], object]:
        import onnxruntime as ort

        session = self._session.session
        binding = session.io_binding()
        # The input stays in host memory on every device, so a CUDA run still pays its upload each
        # call, as an application feeding host images does.
        value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        binding.bind_ortvalue_input(self._session.input_name, value)
        binding.bind_output(self._session.first_output, "cpu")
        return functools.partial(session.run_with_iobinding, binding)

    def _describe_impl(self) -> RunnerInfo:
        return RunnerInfo(
            backend=self.backend,
            device=self.device,
            precision=self._precision,
            model_path=str(self.model_path),
            versions={"onnxruntime": self._version},
        )
