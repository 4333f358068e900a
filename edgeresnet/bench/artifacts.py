"""What the benchmark measures: bundles and checkpoint directories, and how each becomes a runner.

A bundle's manifest says which backend runs it (its target) and what it is (precision,
preprocessing, labels). A checkpoint directory is the PyTorch FP32 eager baseline. Every runner
comes out of :func:`open_runner`, the one place to change when the runtime's selection grows.

A bundle whose model file its target cannot read as is (the ``tensorrt-*`` bundles of ``export``
hold the ONNX an engine is built from, not an engine) runs on the backend that reads that file, and
its row says so: ``tensorrt-int8 (QDQ via onnxruntime)`` is how its accuracy is measured on a CPU.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from edgeresnet.bundle import MANIFEST_FILE
from edgeresnet.checkpoint import CARD_FILE, WEIGHTS_FILE, read_card
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError
from edgeresnet.runtime.base import Runner

if TYPE_CHECKING:
    from edgeresnet.data.preprocessing import PreprocessSpec

PYTORCH_BACKEND = "pytorch"
# The library each backend loads; imported before an artifact's memory baseline (see preload_backend).
_BACKEND_LIBRARIES = {PYTORCH_BACKEND: "torch", "onnxruntime": "onnxruntime", "openvino": "openvino",
                      "tensorrt": "tensorrt"}
ArtifactKind = Literal["bundle", "checkpoint"]


@dataclass(frozen=True)
class Artifact:
    """One thing to benchmark: a bundle's model file, or a checkpoint run in PyTorch eager mode."""

    name: str
    path: Path
    kind: ArtifactKind
    model_path: Path
    backend: str
    precision: str
    preprocessing: PreprocessSpec
    labels: list[str]
    file_size_bytes: int
    static_batch: int | None = None
    # A bundle's source checkpoint (manifest.provenance.checkpoint): its PyTorch baseline, and the
    # sha256 its weights file had when the bundle was made.
    source_checkpoint: Path | None = None
    source_checkpoint_sha256: str | None = None
    files: tuple[Path, ...] = field(default=())
    # The target this artifact stands in for when another backend runs its file (tensorrt-* ONNX).
    proxy_for: str | None = None


def load_artifact(path: str | Path) -> Artifact:
    """Read a bundle or checkpoint directory; anything else is a one-line user error."""
    path = Path(path)
    if (path / MANIFEST_FILE).is_file():
        return _bundle_artifact(path)
    if (path / CARD_FILE).is_file():
        return checkpoint_artifact(path)
    if not path.exists():
        raise EdgeResNetError(f"artifact not found: {path}")
    if not path.is_dir():
        raise EdgeResNetError(
            f"{path} is a file, not a bundle or checkpoint directory "
            f"(to pick every bundle of an export, glob directories only: {path.parent}/*/)"
        )
    raise EdgeResNetError(
        f"{path} is neither a bundle (no {MANIFEST_FILE}) nor a checkpoint directory (no {CARD_FILE})"
    )


def _bundle_artifact(path: Path) -> Artifact:
    from edgeresnet.bundle.reader import BundleReader

    reader = BundleReader.open(path)
    manifest = reader.manifest
    reader.resolve(manifest.model_file)  # a name leading out of the bundle is refused before anything is read
    model_path = path / manifest.model_file
    # An OpenVINO IR is two files; its size is both of them.
    files = (model_path, model_path.with_suffix(".bin")) if model_path.suffix == ".xml" else (model_path,)
    source = manifest.provenance.checkpoint
    static_batch = manifest.input.static_batch
    backend, name = _bundle_backend(path.name, manifest.target, model_path, manifest.precision)
    return Artifact(
        name=name,
        path=path,
        kind="bundle",
        model_path=model_path,
        backend=backend,
        precision=manifest.precision,
        preprocessing=manifest.preprocessing,
        labels=list(manifest.labels),
        file_size_bytes=sum(f.stat().st_size for f in files if f.is_file()),
        static_batch=static_batch,
        source_checkpoint=Path(source) if source else None,
        source_checkpoint_sha256=manifest.provenance.checkpoint_sha256,
        files=files,
        proxy_for=manifest.target if backend != manifest.target else None,
    )


def _bundle_backend(name: str, target: str, model_path: Path, precision: str) -> tuple[str, str]:
    """The backend that runs a bundle's model file, and the row name that says how it ran."""
    from edgeresnet.runtime.select import BACKEND_NAMES, backend_for, get_backend

    if target not in BACKEND_NAMES or model_path.suffix.lower() in get_backend(target).suffixes:
        return target, name  # an unknown target is reported when the runner opens
    try:
        reader = backend_for(model_path).name
    except EdgeResNetError:
        return target, name
    kind = "QDQ" if precision == "int8" else "ONNX" if model_path.suffix.lower() == ".onnx" else "model"
    return reader, f"{name} ({kind} via {reader})"


def checkpoint_artifact(path: str | Path) -> Artifact:
    path = Path(path)
    card = read_card(path)
    weights = path / WEIGHTS_FILE
    return Artifact(
        name=f"{path.name} (pytorch)",
        path=path,
        kind="checkpoint",
        model_path=weights,
        backend=PYTORCH_BACKEND,
        precision="fp32",
        preprocessing=card.preprocessing,
        labels=list(card.class_names),
        file_size_bytes=weights.stat().st_size if weights.is_file() else 0,
        files=(weights,),
    )


def artifact_device(artifact: Artifact, requested: str) -> str:
    """Where ``artifact`` runs: the requested device where its backend runs there, else the backend's own.

    One ``--device`` cannot serve every row: a TensorRT engine runs on CUDA only, OpenVINO on its own
    devices, so those take their backend's default device and the others the requested one.
    """
    from edgeresnet.runtime.select import BACKEND_NAMES, get_backend

    if artifact.backend == PYTORCH_BACKEND or artifact.backend not in BACKEND_NAMES:
        return requested
    backend = get_backend(artifact.backend)
    return requested if requested.split(":")[0].lower() in backend.devices else backend.default_device


def open_runner(artifact: Artifact, *, device: str, threads: int | None, allow_host_code: bool = False,
                performance_hint: str | None = None) -> Runner:
    """The one adapter from an artifact to a runner, on the artifact's device (see :func:`artifact_device`).

    Bundles go through the runtime's backend table (``edgeresnet.runtime.select``), keyed by the
    manifest's target and the model file's suffix; a checkpoint gets the PyTorch eager runner
    (``edgeresnet.runtime.torch_runner``). ``allow_host_code`` lets a version-compatible TensorRT engine
    load (see :func:`edgeresnet.runtime.loading.bundle_runner_options`); ``performance_hint`` is
    OpenVINO's (``THROUGHPUT`` for the throughput mode).
    """
    device = artifact_device(artifact, device)
    if artifact.backend == PYTORCH_BACKEND:
        from edgeresnet.runtime.torch_runner import (
            TorchRunner,  # imports torch: only when a checkpoint is benchmarked
        )

        return TorchRunner(artifact.path, device=device, threads=threads)
    from edgeresnet.bundle.reader import BundleReader
    from edgeresnet.runtime.loading import open_bundle_runner
    from edgeresnet.runtime.select import BACKEND_NAMES

    if artifact.backend not in BACKEND_NAMES:
        raise BackendUnavailableError(
            f"{artifact.name}: no runner for target {artifact.backend!r} (known: {', '.join(BACKEND_NAMES)})"
        )
    options: dict[str, object] = {}
    if performance_hint is not None and artifact.backend == "openvino":
        options["performance_hint"] = performance_hint
    # Through the bundle's door, as the app's Classifier loads it: the bytes measured are the bytes hashed.
    return open_bundle_runner(BundleReader.open(artifact.path), backend=artifact.backend, device=device,
                              threads=threads, allow_host_code=allow_host_code, **options)


def preload_backend(artifact: Artifact) -> None:
    """Import the artifact's runtime library now, so its code pages never count as the artifact's memory.

    Otherwise the first artifact of each backend would carry the library's RSS (~200 MB for torch)
    and the rows would depend on the order of the artifacts. A missing library is left for
    :func:`open_runner` to report.
    """
    library = _BACKEND_LIBRARIES.get(artifact.backend)
    if library is not None:
        with contextlib.suppress(ImportError):
            importlib.import_module(library)


def synchronizer(runner: Runner) -> Callable[[], object] | None:
    """What must run inside each timed call so queued GPU work is counted; None for synchronous backends.

    TorchRunner copies logits back to the host (which waits for the GPU) but queued kernels of the
    next call would otherwise overlap; ONNX Runtime and OpenVINO return only when the work is done.
    """
    if runner.backend == PYTORCH_BACKEND and str(runner.device).startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return None
