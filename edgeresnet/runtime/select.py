"""Which backend runs which model file, and the one function that opens a runner.

The backends are the registry's records (:mod:`edgeresnet.backends`); this module only chooses among them.

A model file's suffix picks its backend (``.onnx`` → ONNX Runtime, ``.xml`` → OpenVINO,
``.engine``/``.plan`` → TensorRT); a caller may name another backend that reads the same file
(OpenVINO also runs ``.onnx``). Runner modules are imported only when chosen, so selecting costs
nothing and a missing runtime is an error only for the file that needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeresnet.backends import Backend, all_backends, get_backend
from edgeresnet.bundle.model_bytes import ModelBytes
from edgeresnet.errors import EdgeResNetError
from edgeresnet.runtime.base import Runner

__all__ = ["AUTO_DEVICE", "Backend", "backend_for", "get_backend", "open_runner",
           "resolve_device"]

AUTO_DEVICE = "auto"


def backend_for(model_path: str | Path, backend: str | None = None) -> Backend:
    """The backend that runs ``model_path``: ``backend`` if given (and able to read it), else by suffix."""
    suffix = Path(model_path).suffix.lower()
    if backend is not None:
        chosen = get_backend(backend)
        if suffix not in chosen.suffixes:
            reads = f"{'/'.join(chosen.suffixes)} files" if chosen.suffixes else "checkpoint directories"
            raise EdgeResNetError(f"the {chosen.name} backend reads {reads}, not {Path(model_path).name}")
        return chosen
    for candidate in all_backends():
        if suffix in candidate.suffixes:
            return candidate
    known = sorted({s for b in all_backends() for s in b.suffixes})
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
