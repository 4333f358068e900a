"""A tiny trained ResNet-like ONNX model and real-looking images, built once per test session."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

NUM_CLASSES = 10
IMAGE_SIZE = 28


def smooth_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs on gentle gradients: spatially smooth like real scans, with class structure.

    Class k puts its blob at one of ten fixed places; size, brightness, jitter, background and a little
    sensor noise vary per image. Normalised like a preprocessed Fashion-MNIST image.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, count)
    angles = np.arange(NUM_CLASSES - 1) * (2 * np.pi / (NUM_CLASSES - 1))
    centers = np.concatenate([np.stack([14 + 8 * np.cos(angles), 14 + 8 * np.sin(angles)], 1), [[14.0, 14.0]]])
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    images = np.empty((count, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for index, label in enumerate(labels):
        cy, cx = centers[label] + rng.normal(0, 1.2, 2)
        sigma = rng.uniform(2.5, 4.5)
        blob = rng.uniform(0.6, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        gx, gy = rng.normal(0, 0.01, 2)
        background = rng.uniform(0.0, 0.2) + gx * (xx - 14) + gy * (yy - 14)
        image = blob + background + rng.normal(0, 0.02, (IMAGE_SIZE, IMAGE_SIZE))
        images[index, 0] = (image - 0.3) / 0.35
    return images, labels.astype(np.int64)


def batched(array: np.ndarray, size: int) -> list[np.ndarray]:
    return [array[start : start + size] for start in range(0, len(array), size)]


def data_hash(batches: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for batch in batches:
        digest.update(np.ascontiguousarray(batch).tobytes())
    return digest.hexdigest()


def default_mode() -> int:
    """The permissions a plain ``open(path, "w")`` gives a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def with_static_batch(source: Path, batch: int, destination: Path) -> Path:
    """``source`` with its batch dimension fixed to ``batch``, as ``export --static-batch`` writes it."""
    import onnx

    model = onnx.load(str(source))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = batch  # replaces the symbolic "batch"
    del model.graph.value_info[:]
    onnx.save(model, str(destination))
    return destination


def _tiny_resnet():  # torch is imported here only, never at module import
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class TinyResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
            self.pool = nn.MaxPool2d(2)
            self.layer1 = Block(8, 8, 1)
            self.layer2 = Block(8, 16, 2)
            self.fc = nn.Linear(16, NUM_CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.layer2(self.layer1(self.pool(self.stem(x))))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return TinyResNet()


@pytest.fixture(scope="session")
def fp32_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ResNet trained for a few seconds on smooth-blob images, exported with BN folded."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = _tiny_resnet()
    images, labels = smooth_images(2048, seed=1)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(2):
        for start in range(0, len(x), 64):
            loss = torch.nn.functional.cross_entropy(model(x[start : start + 64]), y[start : start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    path = tmp_path_factory.mktemp("fp32") / "tiny_resnet.onnx"
    torch.onnx.export(
        model, torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE), str(path), dynamo=False, opset_version=17,
        do_constant_folding=True, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


@pytest.fixture(scope="session")
def calib_batches() -> list[np.ndarray]:
    images, _ = smooth_images(256, seed=2)
    return batched(images, 64)


@pytest.fixture(scope="session")
def eval_batches() -> list[tuple[np.ndarray, np.ndarray]]:
    images, labels = smooth_images(512, seed=3)
    return list(zip(batched(images, 128), batched(labels, 128), strict=True))


@pytest.fixture(scope="session")
def tables(fp32_onnx: Path, calib_batches: list[np.ndarray]) -> dict:
    from edgeresnet.calibration import calibrate_all

    return calibrate_all(fp32_onnx, calib_batches, data_hash=data_hash(calib_batches))
