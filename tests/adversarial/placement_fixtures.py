"""Shared pieces of the placement adversarial tests: a tiny model and data, CLI runs, snapshots, a small disk."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from edgeresnet.cli import cli

ONE_TARGET = ["--target", "onnxruntime"]
TRAIN_QUICK = ["--model", "resnet20", "--epochs", "1", "--batch-size", "32", "--threads", "1", "--no-progress"]


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def cli_process(*args: object, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The CLI in a process of its own (so it can be killed), with this checkout's code."""
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "edgeresnet", *map(str, args)], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_one_line_refusal(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    # Progress and log lines may come first; the failure is one line, the last.
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert sum(line.startswith("error") for line in lines) == 1, result.stderr
    lines = lines[-1:]
    assert "Traceback" not in result.output and "[Errno" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def snapshot(root: Path) -> dict[str, str]:
    """Every file and link under ``root`` (links not followed) with a digest of its bytes or target."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[key] = "link:" + os.readlink(path)
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            found[key + "/"] = "dir"
    return found


def tool_state(root: Path) -> dict[str, str]:
    """A snapshot without the tool's bookkeeping (ledgers), which a run may rewrite."""
    return {k: v for k, v in snapshot(root).items() if not k.endswith(".edgeresnet-written.json")}


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from edgeresnet.models import create_model, save_weights

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_chans=3)
    return save_weights(model, tmp_path_factory.mktemp("weights") / "r20.safetensors")


@pytest.fixture(scope="session")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny labelled .npz (synthetic colour blobs, 10 classes): trains and evaluates in a second."""
    from tests.runtime.tiny_bundle import blob_images

    images, labels = blob_images(120, seed=5)
    path = tmp_path_factory.mktemp("data") / "blobs.npz"
    np.savez(path, images=images, labels=labels)
    return path


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs (needs root; skipped where mounting is refused)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(disk: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of ``disk`` with a file (outside the directories under test)."""
    import shutil

    filler = disk / "filler.bin"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as handle:
        handle.truncate(0)
        handle.write(b"\0" * max(0, free - leave))
    return filler
