"""Shared fixtures: a tiny real-data subset and a tiny trained checkpoint, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# Two cores: keep every test process from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip GPU and TensorRT tests cleanly where those are absent."""
    has_cuda = _has_cuda()
    has_tensorrt = _has_module("tensorrt") and has_cuda
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "tensorrt" in item.keywords and not has_tensorrt:
            item.add_marker(pytest.mark.skip(reason="needs TensorRT and a CUDA GPU"))


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.fixture(scope="session")
def fashion_mnist() -> str:
    if not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return "fashion-mnist"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, fashion_mnist: str) -> Path:
    """A resnet20 trained two short epochs on a Fashion-MNIST subset: real weights, real data."""
    from edgeresnet.train import TrainConfig, train

    output = tmp_path_factory.mktemp("ckpt") / "r20"
    train(TrainConfig(model="resnet20", data=fashion_mnist, output=str(output), epochs=2, batch_size=64,
                      train_limit=2000, eval_limit=200, progress=False, lr=0.1))
    return output
