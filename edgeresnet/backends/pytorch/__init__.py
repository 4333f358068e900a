"""PyTorch eager (CPU/CUDA): the baseline a user would otherwise deploy, run from a checkpoint directory.
Home of its runner (``runner.py``); no export or compile step."""

from __future__ import annotations

from edgeresnet.backends.record import Backend

BACKEND = Backend(
    name="pytorch", title="PyTorch eager", home=__name__, runner="runner:TorchRunner", devices=("cpu", "cuda"),
    default_device="cpu", packages=("torch",), runtime_module="torch", extra="build",
)
