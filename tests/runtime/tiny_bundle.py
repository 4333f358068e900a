"""A tiny trained RGB classifier, its ONNX/QDQ files and bundles built from them.

Shared by the runtime, verify and compile tests; built once per test process (torch is needed to
build it, never to run it). The images are coloured blobs whose place and colour give the class, so a
few seconds of training give decisive logits and parity checks test the backends, not near ties.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeresnet.bundle import Manifest, write_bundle
from edgeresnet.data.preprocessing import PreprocessSpec

SIZE = 32
NUM_CLASSES = 10
SPEC = PreprocessSpec(input_size=(SIZE, SIZE), channels="RGB")
LABELS = [f"class-{k}" for k in range(NUM_CLASSES)]
INPUT_RECORD = {"name": "input", "shape": [None, 3, SIZE, SIZE], "dtype": "float32", "layout": "NCHW"}

_PALETTE = np.array(
    [
        [230, 40, 40],
        [40, 200, 40],
        [40, 60, 230],
        [230, 210, 40],
        [200, 40, 200],
        [40, 210, 210],
        [250, 140, 30],
        [140, 80, 30],
        [245, 245, 245],
        [120, 120, 120],
    ],
    np.float64,
)


def blob_images(count: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N×size×size×3 images: class k is a blob of colour k at place k on a dim, smooth background."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, count)
    places = [(0.25 + 0.5 * (k % 2), 0.15 + 0.175 * (k // 2)) for k in range(NUM_CLASSES)]
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    images = np.empty((count, size, size, 3), np.uint8)
    for index, label in enumerate(labels):
        cx, cy = np.array(places[label]) + rng.normal(0, 0.03, 2)
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rng.uniform(0.1, 0.16) ** 2))[..., None]
        background = rng.uniform(10, 60) + 20 * (xx * rng.normal() + yy * rng.normal())[..., None]
        image = background * (1 - weight) + _PALETTE[label] * rng.uniform(0.8, 1.0) * weight
        images[index] = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    return images, labels


@dataclass(frozen=True)
class TinyModel:
    root: Path
    module: Any  # torch.nn.Module
    onnx: Path  # FP32, with preprocessing/labels in its metadata_props
    qdq: Path  # onnxruntime-style INT8 QDQ (quantize_static), a stand-in for the project's quantizer


def _network() -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
            )
            self.c2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.short = (
                nn.Identity()
                if stride == 1 and cin == cout
                else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.c2(self.c1(x)) + self.short(x))

    class TinyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)
            )
            self.blocks = nn.Sequential(Block(8, 16, 1), Block(16, 32, 2))
            self.fc = nn.Linear(32, NUM_CLASSES)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.features(x))

    return TinyNet()


@functools.cache
def tiny_model() -> TinyModel:
    import onnx
    import torch

    root = Path(tempfile.mkdtemp(prefix="edgeresnet-tiny-"))
    atexit.register(shutil.rmtree, root, True)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    module = _network()
    images, labels = blob_images(512, seed=1)
    x = torch.from_numpy(SPEC.apply_batch(images))
    _fit(module, x, labels)
    module.eval()
    path = root / "model.onnx"
    torch.onnx.export(
        module,
        torch.zeros(1, 3, SIZE, SIZE),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    proto = onnx.load(str(path))
    proto.metadata_props.add(key="preprocessing", value=json.dumps(SPEC.to_dict()))
    proto.metadata_props.add(key="labels", value=json.dumps(LABELS))
    onnx.save(proto, str(path))
    return TinyModel(root, module, path, make_qdq(path, root / "model_int8.onnx"))


def _fit(module: Any, x: Any, labels: np.ndarray) -> None:
    """Real BatchNorm statistics and a least-squares classifier head on random conv features.

    Backpropagation would take tens of seconds on two shared cores; this takes a fraction of one and
    still gives a model whose logits separate the classes by whole units.
    """
    import torch

    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.momentum = None  # a cumulative average over the batches below
                layer.reset_running_stats()
        module.train()
        module.features(x)
        module.eval()
        features = module.features(x).double().numpy()
        design = np.concatenate([features, np.ones((len(features), 1))], axis=1)
        targets = 8.0 * np.eye(NUM_CLASSES)[labels] - 4.0
        solution = np.linalg.solve(design.T @ design + 1e-3 * np.eye(design.shape[1]), design.T @ targets)
        module.fc.weight.copy_(torch.from_numpy(solution[:-1].T).float())
        module.fc.bias.copy_(torch.from_numpy(solution[-1]).float())


def make_qdq(onnx_path: Path, out_path: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batch = SPEC.apply_batch(blob_images(64, seed=2)[0])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{"input": batch[i : i + 8]} for i in range(0, len(batch), 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    quantize_static(
        str(onnx_path),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out_path


def golden_inputs(count: int = 16) -> np.ndarray:
    return SPEC.apply_batch(blob_images(count, seed=99)[0])


def make_bundle(
    destination: Path,
    model: Path,
    *,
    precision: str = "fp32",
    target: str = "onnxruntime",
    extra_files: dict[str, Path] | None = None,
    extra: dict[str, Any] | None = None,
    outputs: np.ndarray | None = None,
    pixel_model: str | None = None,
) -> Path:
    """A bundle around ``model``, its golden outputs measured with ONNX Runtime unless given."""
    inputs = golden_inputs()
    if outputs is None:
        from edgeresnet.backends.onnxruntime.runner import OnnxRuntimeRunner

        with OnnxRuntimeRunner(model) as runner:
            outputs = runner.infer(inputs)
    name = "model" + model.suffix
    manifest = Manifest(
        architecture="tinynet",
        precision=precision,
        target=target,
        model_file=name,
        preprocessing=SPEC,
        class_names=list(LABELS),
        input=dict(INPUT_RECORD),
        extra=extra or {},
        pixel_model=pixel_model,
    )
    files = {name: model, **(extra_files or {})}
    return write_bundle(destination, manifest, files, golden_inputs=inputs, golden_outputs=outputs)


def rewrite_manifest(bundle: Path, change: Any, *, rehash: bool = True) -> None:
    """Edit manifest.json in place, as a newer writer would (``rehash``) or a tamperer would (not)."""
    path = bundle / "manifest.json"
    record = json.loads(path.read_text())
    change(record)
    if rehash and isinstance(record, dict) and record.get("manifest_sha256"):
        from edgeresnet.bundle import Manifest

        # An edit that makes the manifest unreadable has nothing to rehash.
        with contextlib.suppress(Exception):
            record["manifest_sha256"] = Manifest.from_dict(record).content_sha256()
    path.write_text(json.dumps(record))
