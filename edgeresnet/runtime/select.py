"""Which backend runs which model file: the one table, and the one function that opens a runner.

A model file's suffix picks its backend (``.onnx`` → ONNX Runtime, ``.xml`` → OpenVINO,
``.engine``/``.plan`` → TensorRT); a caller may name another backend that reads the same file
(OpenVINO also runs ``.onnx``). Runner modules are imported only when chosen, so selecting costs
nothing and a missing runtime is an error only for the file that needs it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeresnet.bundle.model_bytes import ModelBytes
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError
from edgeresnet.runtime.base import Runner

AUTO_DEVICE = "auto"


@dataclass(frozen=True)
class Backend:
    """One inference backend: where its runner lives, what it reads, where it runs by default.

    Args:
        suffixes: model-file suffixes it reads; the first backend listing a suffix is its default.
        packages: distribution names whose installed version describes the backend (first found wins).
        devices: device names it accepts, lower-case, without an index (``cuda:1`` counts as ``cuda``).
    """

    name: str
    module: str
    runner: str
    suffixes: tuple[str, ...]
    default_device: str
    devices: tuple[str, ...]
    packages: tuple[str, ...]
    install_hint: str

    def runner_class(self) -> type[Runner]:
        # Runner modules import their runtime lazily, so failing here means a broken install.
        try:
            module = importlib.import_module(self.module)
        except ImportError as error:
            raise BackendUnavailableError(f"the {self.name} backend cannot be imported: {error}") from error
        return getattr(module, self.runner)


# Order matters: for a suffix two backends read, the first is the default.
BACKENDS: tuple[Backend, ...] = (
    Backend("onnxruntime", "edgeresnet.runtime.onnxruntime", "OnnxRuntimeRunner", (".onnx",), "cpu",
            ("cpu", "cuda"), ("onnxruntime", "onnxruntime-gpu"), "pip install onnxruntime"),
    Backend("openvino", "edgeresnet.runtime.openvino", "OpenVinoRunner", (".xml", ".onnx"), "CPU",
            ("cpu", "gpu", "npu", "auto"), ("openvino",), "pip install 'edgeresnet[openvino]'"),
    Backend("tensorrt", "edgeresnet.runtime.tensorrt", "TensorRTRunner", (".engine", ".plan"), "cuda",
            ("cuda",), ("tensorrt",), "pip install 'edgeresnet[tensorrt]' on a machine with an NVIDIA GPU"),
)
BACKEND_NAMES: tuple[str, ...] = tuple(backend.name for backend in BACKENDS)


def get_backend(name: str) -> Backend:
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise EdgeResNetError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


def backend_for(model_path: str | Path, backend: str | None = None) -> Backend:
    """The backend that runs ``model_path``: ``backend`` if given (and able to read it), else by suffix."""
    suffix = Path(model_path).suffix.lower()
    if backend is not None:
        chosen = get_backend(backend)
        if suffix not in chosen.suffixes:
            raise EdgeResNetError(
                f"the {chosen.name} backend reads {'/'.join(chosen.suffixes)} files, "
                f"not {Path(model_path).name}"
            )
        return chosen
    for candidate in BACKENDS:
        if suffix in candidate.suffixes:
            return candidate
    known = sorted({s for b in BACKENDS for s in b.suffixes})
    raise EdgeResNetError(f"no backend runs {Path(model_path).name}: model files end in {', '.join(known)}")


def resolve_device(backend: Backend, device: str) -> str:
    """``auto`` becomes the backend's default device; anything else must be a device it knows."""
    if device == AUTO_DEVICE:
        return backend.default_device
    base = device.split(":")[0].split(".")[0].lower()
    if base not in backend.devices:
        hint = " (TensorRT runs on CUDA GPUs only)" if backend.name == "tensorrt" else ""
        raise EdgeResNetError(
            f"the {backend.name} backend runs on {', '.join(backend.devices)}, not {device!r}{hint}"
        )
    return device


def open_runner(
    model_path: str | Path | ModelBytes,
    *,
    backend: str | None = None,
    device: str = AUTO_DEVICE,
    threads: int | None = None,
    precision: str = "fp32",
    **options: Any,
) -> Runner:
    """Open the runner for a model file (or a bundle's hashed :class:`ModelBytes`); ``options`` go to that
    backend's runner unchanged."""
    chosen = backend_for(model_path.path if isinstance(model_path, ModelBytes) else model_path, backend)
    runner_class = chosen.runner_class()
    return runner_class(model_path, device=resolve_device(chosen, device), threads=threads,
                        precision=precision, **options)
