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
    needs_gpu = [item for item in items if "gpu" in item.keywords]
    needs_tensorrt = [item for item in items if "tensorrt" in item.keywords]
    gpu_reason = _torch_cuda_skip_reason() if needs_gpu else None
    tensorrt_reason = tensorrt_skip_reason() if needs_tensorrt else None
    for item in needs_gpu:
        if gpu_reason:
            item.add_marker(pytest.mark.skip(reason=gpu_reason))
    for item in needs_tensorrt:
        if tensorrt_reason:
            item.add_marker(pytest.mark.skip(reason=tensorrt_reason))


def tensorrt_skip_reason() -> str | None:
    """Why the real-TensorRT tests cannot run here, or None: they need TensorRT, a CUDA device and buffers.

    The device is asked through cuda-python or nvidia-smi (``edgeresnet.environment.gpu_info``), not
    ``torch.cuda``: the test environment installs the CPU build of torch, so a torch gate would keep
    these tests from ever running, even beside TensorRT and a GPU. Device buffers come from cuda-python,
    or from torch where it has CUDA.
    """
    from edgeresnet.environment import gpu_info

    if not _has_module("tensorrt"):
        return "needs TensorRT (pip install 'edgeresnet[tensorrt]')"
    if not gpu_info():
        return "needs a CUDA device (none visible to cuda-python or nvidia-smi)"
    if not _has_module("cuda") and _torch_cuda_skip_reason():
        return "needs cuda-python (or torch with CUDA) for TensorRT's device buffers"
    return None


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _torch_cuda_skip_reason() -> str | None:
    """The ``gpu`` tests run PyTorch on CUDA: they need torch's CUDA build."""
    try:
        import torch
    except ImportError:
        return "needs torch with CUDA"
    return None if torch.cuda.is_available() else "needs a CUDA GPU visible to torch"


@pytest.fixture(scope="session")
def fashion_mnist() -> str:
    if not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return "fashion-mnist"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, fashion_mnist: str) -> Path:
    """A resnet20 trained two short epochs on a Fashion-MNIST subset: real weights, real data."""
    from edgeresnet.training import TrainJob, train

    output = tmp_path_factory.mktemp("ckpt") / "r20"
    train(TrainJob(model="resnet20", data=fashion_mnist, output=str(output), epochs=2, batch_size=64,
                      train_limit=2000, eval_limit=200, progress=False, lr=0.1))
    return output
