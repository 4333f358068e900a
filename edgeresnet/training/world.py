"""Where a training process runs: single process or one rank of a torchrun data-parallel job."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class World:
    """Where this process sits in a (possibly single-process) data-parallel run."""

    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> World:
    """Join the process group torchrun set up, or run as a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    rank = torch.distributed.get_rank()
    device = torch.device("cpu")
    if backend == "nccl":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    # Each process gets its share of the cores; oversubscribing them makes DDP slower than one process.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", size))))
    return World(rank=rank, size=size, device=device)


def progress_bar(total: int, description: str, enabled: bool, world: World) -> Any:
    if not (enabled and world.is_main):
        return None
    from tqdm.auto import tqdm

    # Redraws are for terminals; a log file gets a line every 10 s instead of hundreds per epoch.
    interactive = sys.stderr.isatty()
    return tqdm(total=total, desc=description, unit="step", leave=False, dynamic_ncols=True,
                mininterval=0.1 if interactive else 10.0)
