"""A Triton model repository written from bundles: the layout Triton, OpenVINO Model Server and KServe read.

    REPO/
      <name>/
        config.pbtxt          backend, max_batch_size, inputs/outputs, dynamic batching, instance group
        labels.txt            one label per line (Triton's classification extension reads it)
        edgeresnet.json       the source bundle's manifest and the sha256 of every file here
        <version>/model.onnx | model.xml + model.bin | model.plan

Every bundle is checked (its manifest hash and every file hash) before anything is written, the copies
are hashed again against the manifest, and the whole repository is placed under the one placement
policy: staged, moved into place only when complete, never replacing what edgeresnet did not write.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeresnet.bundle import Manifest, check_files, read_manifest, sha256_file
from edgeresnet.bundle.layout import FP32_ONNX
from edgeresnet.bundle.reader import BundleReader
from edgeresnet.errors import BundleError, EdgeResNetError
from edgeresnet.placement import place_outputs
from edgeresnet.serve.modelconfig import ModelConfig, TensorConfig, triton_type
from edgeresnet.serve.modelio import ModelIO, onnx_io, openvino_io

MODEL_RECORD = "edgeresnet.json"  # in each model directory: what it serves, and the sha256 of its files

RECORD_FORMAT = "edgeresnet-serving-model"
RECORD_VERSION = 1
CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
# The file each Triton backend loads from a version directory by default (no default_model_filename).
BACKEND_OF_SUFFIX = {".onnx": "onnxruntime", ".xml": "openvino", ".engine": "tensorrt", ".plan": "tensorrt"}
TENSORRT_VERSION_COMPATIBLE_ARG = "--backend-config=tensorrt,version-compatible=true"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class RepositoryOptions:
    """How bundles become served models. Keyword-only knobs, validated here once."""

    version: int = 1
    max_batch: int = 32  # max_batch_size for a model whose batch axis is dynamic
    instances: int = 1  # model instances (Triton's instance_group count)
    max_queue_delay_us: int = 100  # how long dynamic batching may hold a request for others
    threads: int | None = None  # CPU threads per instance (ONNX Runtime intra-op, OpenVINO inference)

    def __post_init__(self) -> None:
        for label, value, low in (("--version", self.version, 1), ("--max-batch", self.max_batch, 1),
                                  ("--instances", self.instances, 1),
                                  ("--max-queue-delay-us", self.max_queue_delay_us, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise EdgeResNetError(f"{label} must be an integer of at least {low}, got {value!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise EdgeResNetError(f"--threads must be a positive integer, got {self.threads!r}")


@dataclass(frozen=True)
class ServedModel:
    """One bundle as a repository entry: its config and which bundle file lands where."""

    name: str
    bundle: Path
    manifest: Manifest
    config: ModelConfig
    sources: dict[str, str]  # path inside the model directory → file name inside the bundle
    server_args: tuple[str, ...] = ()  # tritonserver options this model needs

    def record(self, hashes: dict[str, str]) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "format_version": RECORD_VERSION, "name": self.name,
                "bundle": {"path": str(self.bundle), "manifest_sha256": self.manifest.manifest_sha256},
                "sources": dict(self.sources), "files": hashes, "tritonserver_args": list(self.server_args),
                "manifest": self.manifest.to_dict()}


def model_name(bundle: Path) -> str:
    """A model name from a bundle directory's name: letters, digits, ``_.-``, as Triton and KServe accept."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(bundle).absolute().name).strip("-.") or "model"
    return name if name[0].isalnum() else f"m{name}"


def plan_model(bundle: str | Path, options: RepositoryOptions = RepositoryOptions(), *,
               name: str | None = None) -> ServedModel:
    """Read and check one bundle; decide its backend, files and config. Writes nothing."""
    bundle = Path(bundle).absolute()
    manifest = read_manifest(bundle)
    problems = check_files(bundle, manifest)
    if problems:
        raise BundleError(f"bundle {bundle} fails its checks: {'; '.join(problems)}")
    name = name or model_name(bundle)
    if not _NAME.match(name):
        raise EdgeResNetError(f"model name {name!r} must be letters, digits, '_', '.', '-' (128 at most)")
    backend = BACKEND_OF_SUFFIX.get(Path(manifest.model_file).suffix.lower())
    if backend is None:
        raise BundleError(f"{bundle}: no Triton backend serves a {Path(manifest.model_file).suffix} model file")
    sources, io = _sources_and_io(BundleReader.of(bundle, manifest), backend, options.version)
    server_args: tuple[str, ...] = ()
    notes = [(f"written by edgeresnet from {bundle.name} ({manifest.architecture}, {manifest.precision}, "
              f"manifest sha256 {manifest.manifest_sha256[:16]})")]
    if backend == "tensorrt" and manifest.engine is not None and manifest.engine.version_compatible:
        server_args = (TENSORRT_VERSION_COMPATIBLE_ARG,)
        notes.append(f"a version-compatible engine: start tritonserver with {TENSORRT_VERSION_COMPATIBLE_ARG}")
    config = _config(name, backend, manifest, io, options, tuple(notes))
    return ServedModel(name, bundle, manifest, config, sources, server_args)


def _sources_and_io(reader: BundleReader, backend: str, version: int) -> tuple[dict[str, str], ModelIO]:
    """The bundle files each repository file copies, and the model's inputs and outputs, read from the bytes
    the bundle's door hashed (companions included: an unlisted one is refused there)."""
    bundle, manifest = reader.given, reader.manifest

    def listed(file: str | None) -> str:
        if not file or file not in manifest.files:
            raise BundleError(f"{bundle}: {file!r} is not among the bundle's hashed files")
        return file

    if backend == "onnxruntime":
        # Where the bundle has it, serve the copy that takes uint8 N×H×W×C pixels: clients send
        # camera frames as they are, a quarter of the bytes of float32, and normalisation runs in the model.
        source = listed(manifest.pixel_model) if manifest.pixel_model in manifest.files else listed(manifest.model_file)
        sources = {f"{version}/model.onnx": source}
        # Tensors kept outside the .onnx travel beside it under the name the model gives them (ONNX Runtime
        # resolves them next to model.onnx); the door keeps each name inside the folder.
        sources.update({f"{version}/{location}": listed(companion)
                        for location, companion in reader.companions(source).items()})
        return sources, onnx_io(reader.model(source))
    if backend == "openvino":
        xml = listed(manifest.model_file)
        weights = listed(str(Path(xml).with_suffix(".bin")))
        io = openvino_io(bundle / xml, bundle / FP32_ONNX if FP32_ONNX in manifest.files else None)
        return {f"{version}/model.xml": xml, f"{version}/model.bin": weights}, io
    engine = listed(manifest.model_file)
    network = manifest.engine.network_onnx if manifest.engine is not None else None
    return {f"{version}/model.plan": engine}, onnx_io(reader.model(listed(network)))


def _max_batch(backend: str, manifest: Manifest, batch_axis: int | None, options: RepositoryOptions) -> int:
    """The largest batch the model accepts: its static batch, the engine's profile, or the option."""
    if backend == "tensorrt" and manifest.engine is not None:
        profile = manifest.engine.details.get("profile")
        if isinstance(profile, dict) and isinstance(profile.get("max"), int):
            return int(profile["max"])
    return batch_axis if batch_axis is not None else options.max_batch


def _config(name: str, backend: str, manifest: Manifest, io: ModelIO, options: RepositoryOptions,
            notes: tuple[str, ...]) -> ModelConfig:
    if len(io.inputs) != 1 or not io.outputs:
        raise BundleError(f"{name}: a classifier has one input and a logits output, the model declares "
                          f"{len(io.inputs)} inputs and {len(io.outputs)} outputs")
    model_input, logits = io.inputs[0], io.outputs[0]
    static_batch = model_input.shape[0] if model_input.shape else None
    max_batch = _max_batch(backend, manifest, static_batch, options)
    # ONNX Runtime cannot pad a partial batch: a model fixed at a batch above 1 takes whole batches only.
    whole_batches = backend == "onnxruntime" and static_batch is not None and static_batch > 1
    skip = 0 if whole_batches else 1
    dims_in = tuple(d if d is not None else -1 for d in model_input.shape[skip:])
    classes = logits.shape[-1] if logits.shape and logits.shape[-1] is not None else manifest.num_classes
    dims_out = (static_batch, classes) if whole_batches else (classes,)
    parameters: list[tuple[str, str]] = []
    if backend == "openvino":
        if static_batch is not None and static_batch > 1:
            parameters.append(("ENABLE_BATCH_PADDING", "YES"))  # partial batches padded to the static size
        if options.threads:
            parameters.append(("INFERENCE_NUM_THREADS", str(options.threads)))
    elif backend == "onnxruntime" and options.threads:
        parameters.append(("intra_op_thread_count", str(options.threads)))
    return ModelConfig(
        name=name, backend=backend, max_batch_size=0 if whole_batches else max_batch,
        inputs=(TensorConfig(model_input.name, triton_type(model_input.dtype), dims_in),),
        outputs=(TensorConfig(logits.name, triton_type(logits.dtype), dims_out, label_filename=LABELS_FILE),),
        instance_count=options.instances, instance_kind="KIND_GPU" if backend == "tensorrt" else "KIND_CPU",
        max_queue_delay_us=None if whole_batches else options.max_queue_delay_us,
        parameters=tuple(parameters), notes=notes,
    )


def write_repository(bundles: Sequence[str | Path], output: str | Path,
                     options: RepositoryOptions = RepositoryOptions(), *, names: Sequence[str] | None = None,
                     overwrite: bool = False) -> list[ServedModel]:
    """Write one model per bundle into the repository ``output`` (created if absent; other models kept).

    Every bundle is planned and checked before the first byte is written; an existing model directory
    is replaced only with ``overwrite`` and only if edgeresnet wrote it.
    """
    if not bundles:
        raise EdgeResNetError("no bundles given")
    if names is not None and len(names) != len(bundles):
        raise EdgeResNetError(f"{len(names)} names given for {len(bundles)} bundles")
    models = [plan_model(bundle, options, name=names[i] if names else None) for i, bundle in enumerate(bundles)]
    seen: dict[str, Path] = {}
    for model in models:
        if model.name in seen:
            raise EdgeResNetError(f"{seen[model.name]} and {model.bundle} would both be served as "
                                  f"{model.name!r}: give --name for each bundle")
        seen[model.name] = model.bundle
    with place_outputs(output, overwrite=overwrite, expect=list(seen)) as staging:
        for model in models:
            _write_model(model, staging.path / model.name)
    return models


def _write_model(model: ServedModel, directory: Path) -> None:
    directory.mkdir()
    hashes: dict[str, str] = {}
    for target, source in model.sources.items():
        destination = directory / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.bundle / source, destination)
        hashes[target] = sha256_file(destination)
        if hashes[target] != model.manifest.files[source]:  # changed between the check and the copy
            raise BundleError(f"{model.bundle / source} changed while it was copied: rerun")
    (directory / CONFIG_FILE).write_text(model.config.to_pbtxt(), encoding="utf-8")
    (directory / LABELS_FILE).write_text("".join(f"{_one_line(label)}\n" for label in model.manifest.class_names),
                                         encoding="utf-8")
    for name in (CONFIG_FILE, LABELS_FILE):
        hashes[name] = sha256_file(directory / name)
    (directory / MODEL_RECORD).write_text(json.dumps(model.record(hashes), indent=2) + "\n", encoding="utf-8")


def _one_line(label: str) -> str:
    # One label per line is the format: a newline inside a label would shift every later class.
    return label.replace("\r", " ").replace("\n", " ")
