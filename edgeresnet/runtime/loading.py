"""From a bundle (or a bare model file) to a runner: the one place the runtime loads what it runs.

``Classifier.load``, ``verify`` and ``benchmark`` all open a bundle's runner here, through the bundle's
door (:class:`edgeresnet.bundle.reader.BundleReader`): the model, its companions and the pixel model
reach the backend as the bytes that were hashed, so what ``verify`` checked is what ``predict`` runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeresnet.bundle import Manifest
from edgeresnet.bundle.manifest import MAX_INPUT_SIDE
from edgeresnet.bundle.reader import BundleReader
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import BundleError, DatasetError, EdgeResNetError, first_line
from edgeresnet.limits import parse_json, require_memory, tensor_bytes
from edgeresnet.runtime.base import Runner
from edgeresnet.runtime.select import AUTO_DEVICE, backend_for, open_runner

# Working memory of one image through a classifier, as a multiple of its float32 input: the decoded
# pixels, the normalised copy and the first layers' activations (a ResNet stem is 64 channels wide at
# half resolution, 5× its input). Only used to refuse absurd sizes before allocating.
INPUT_WORKING_SET = 8


def open_bundle_runner(
    reader: BundleReader,
    *,
    backend: str | None = None,
    device: str = AUTO_DEVICE,
    threads: int | None = None,
    check_hashes: bool = True,
    allow_host_code: bool = False,
    **runner_options: Any,
) -> Runner:
    """The runner for a bundle's model, built from the bytes the door read and hashed.

    Args:
        runner_options: backend options the caller chooses (OpenVINO's ``performance_hint``); never read
            from the manifest.
        check_hashes: refuse a bundle any of whose files differs from its manifest, or whose runtime opens
            a file the manifest does not list. Off, names are still confined to the bundle.
    """
    manifest = reader.manifest
    if check_hashes:
        problems = reader.problems()
        if problems:
            raise BundleError(f"bundle {reader.given} fails its checks: {'; '.join(problems)}")
    check_input_memory(manifest.preprocessing, what=f"bundle {reader.given}")
    options = {**runner_options, **bundle_runner_options(manifest, allow_host_code=allow_host_code)}
    chosen = backend_for(manifest.model_file, backend).name
    if chosen == "onnxruntime" and manifest.pixel_model:
        options["pixel_model"] = reader.model(manifest.pixel_model, check_hashes=check_hashes)
    model = reader.model(manifest.model_file, check_hashes=check_hashes)
    return open_runner(model, backend=backend, device=device, threads=threads, precision=manifest.precision,
                       **options)


def check_input_memory(spec: PreprocessSpec, *, what: str, batch: int = 1) -> None:
    """Refuse a preprocessing whose input alone cannot be held in memory, before any image is decoded."""
    height, width = spec.input_size
    if max(height, width) > MAX_INPUT_SIDE:
        raise BundleError(f"{what}: input size {height}×{width} is beyond any image classifier "
                          f"(at most {MAX_INPUT_SIDE} pixels a side)")
    need = INPUT_WORKING_SET * tensor_bytes((batch, spec.num_channels, height, width))
    require_memory(need, what=f"{what}: a {height}×{width} input", error=BundleError)


def bundle_runner_options(manifest: Manifest, *, allow_host_code: bool = False) -> dict[str, Any]:
    """Backend options for a bundle's model, given what the caller allows.

    A manifest is data anyone can edit and re-sign, so it only says what a model needs; permissions come
    from the caller. A version-compatible TensorRT engine needs host code, and without
    ``allow_host_code`` it is refused here, before TensorRT ever reads it.
    """
    try:
        engine = backend_for(manifest.model_file).name == "tensorrt"
    except EdgeResNetError:
        return {}  # no backend reads it: opening the runner says so
    if not engine:
        return {}
    if manifest.engine is not None and manifest.engine.version_compatible and not allow_host_code:
        from edgeresnet.runtime.tensorrt import HOST_CODE_HINT

        raise BundleError(f"refusing to load {manifest.model_file}: {HOST_CODE_HINT}")
    return {"allow_host_code": True} if allow_host_code else {}


def metadata_of_bare_model(path: Path) -> tuple[PreprocessSpec, list[str]]:
    """Preprocessing and labels from an ONNX file's metadata_props (written by edgeresnet's exporter)."""
    if path.suffix.lower() != ".onnx":
        raise BundleError(
            f"{path.name} carries no preprocessing or labels: load the bundle directory it came from"
        )
    import onnx  # torch-free; needed only for bare files

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf raises DecodeError and others for a corrupt file
        reason = first_line(error)
        raise BundleError(f"{path} is not a readable ONNX model: {reason}") from error
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    if "preprocessing" not in metadata or "labels" not in metadata:
        raise BundleError(
            f"{path.name} has no preprocessing/labels metadata: load it from its bundle directory instead"
        )
    try:
        spec = PreprocessSpec.from_dict(parse_json(metadata["preprocessing"], what=f"{path.name}'s preprocessing",
                                                   error=BundleError))
        labels = parse_json(metadata["labels"], what=f"{path.name}'s labels", error=BundleError)
    except BundleError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, DatasetError) as error:
        raise BundleError(f"{path.name} has malformed preprocessing/labels metadata: {first_line(error)}") from error
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        raise BundleError(f"{path.name}: the labels metadata must be a non-empty JSON list of strings")
    check_input_memory(spec, what=path.name)
    return spec, labels
