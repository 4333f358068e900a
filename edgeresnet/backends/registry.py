"""The registry: every backend edgeresnet knows, read by the CLI, export, compile, the runtime, verify
and benchmark. Adding a backend is a folder under ``edgeresnet/backends/`` and one line in :data:`HOMES`.

Cheap to import: the homes' ``__init__`` modules hold only their :class:`Backend` records.
"""

from __future__ import annotations

import importlib

from edgeresnet.backends.record import Backend
from edgeresnet.errors import EdgeResNetError

# One line per backend: the package whose ``BACKEND`` is its record. Order matters: for a model-file
# suffix two backends read, the first is the default.
HOMES: tuple[str, ...] = (
    "edgeresnet.backends.onnxruntime",
    "edgeresnet.backends.openvino",
    "edgeresnet.backends.tensorrt",
    "edgeresnet.backends.pytorch",
)

_REGISTERED: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add ``backend`` (a plug-in, or a test's toy); the name must be new."""
    _load()
    if backend.name in _REGISTERED:
        raise EdgeResNetError(f"a backend named {backend.name!r} is already registered")
    _REGISTERED[backend.name] = backend
    return backend


def unregister_backend(name: str) -> None:
    """Remove a backend added with :func:`register_backend` (built-in ones stay)."""
    if any(_home_name(home) == name for home in HOMES):
        raise EdgeResNetError(f"{name} is a built-in backend")
    _REGISTERED.pop(name, None)


def all_backends() -> tuple[Backend, ...]:
    return tuple(_load().values())


def get_backend(name: str) -> Backend:
    backends = _load()
    if name not in backends:
        raise EdgeResNetError(f"unknown backend {name!r}; choose one of {', '.join(backends)}")
    return backends[name]


def backend_names() -> tuple[str, ...]:
    return tuple(_load())


def export_targets() -> tuple[str, ...]:
    """What ``export --target`` accepts, in registry order."""
    return tuple(backend.name for backend in all_backends() if backend.export_precisions)


def compile_targets() -> tuple[str, ...]:
    """What ``compile --target`` accepts."""
    return tuple(backend.name for backend in all_backends() if backend.compile_precisions)


def bundle_targets() -> tuple[str, ...]:
    """What a manifest's ``target`` may name: every backend that writes bundles (export or compile)."""
    return tuple(b.name for b in all_backends() if b.export_precisions or b.compile_precisions)


def model_file_backends() -> tuple[str, ...]:
    """Backends whose runner reads a model file (``--backend`` of predict and verify)."""
    return tuple(b.name for b in all_backends() if b.suffixes)


def _load() -> dict[str, Backend]:
    if not _REGISTERED:
        for home in HOMES:
            backend = importlib.import_module(home).BACKEND
            _REGISTERED[backend.name] = backend
    return _REGISTERED


def _home_name(home: str) -> str:
    return home.rsplit(".", 1)[1]
