"""How TensorRT gets installed and when its real tests run: extras pinned per CUDA major, and the gate
on TensorRT plus a CUDA device (not torch.cuda, which the CPU build of torch never has)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests import conftest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _extras() -> dict[str, list[str]]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]


def _bounds(requirement: str) -> tuple[int, int]:
    """The major versions ``>=A...,<B`` allow: (A, B)."""
    low = re.search(r">=\s*(\d+)", requirement)
    high = re.search(r"<\s*(\d+)", requirement)
    assert low and high, f"{requirement} must have a lower and an upper bound"
    return int(low.group(1)), int(high.group(1))


@pytest.mark.parametrize(("extra", "tensorrt_major", "cuda_major"), [("tensorrt", 11, 13), ("tensorrt10", 10, 12)])
def test_tensorrt_extras_pin_cuda_python_to_their_cuda_major(extra: str, tensorrt_major: int, cuda_major: int) -> None:
    requirements = {re.split(r"[<>=\[ ]", r, maxsplit=1)[0]: r for r in _extras()[extra]}
    tensorrt = next(name for name in requirements if name.startswith("tensorrt"))
    assert tensorrt == f"tensorrt-cu{cuda_major}"  # TensorRT built for that CUDA major
    assert _bounds(requirements[tensorrt]) == (tensorrt_major, tensorrt_major + 1)
    # cuda-python 13 needs an r580 driver: unpinned, it would break every CUDA 12 machine
    assert _bounds(requirements["cuda-python"]) == (cuda_major, cuda_major + 1)


def test_real_tensorrt_tests_are_gated_on_tensorrt_and_a_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeresnet.environment import GpuInfo

    present = {"tensorrt", "cuda"}
    monkeypatch.setattr(conftest, "_has_module", lambda name: name in present)
    monkeypatch.setattr("edgeresnet.environment.gpu_info", lambda: [GpuInfo("Test GPU", "9.0", "nvidia-smi")])
    monkeypatch.setattr(conftest, "_torch_cuda_skip_reason", lambda: "needs a CUDA GPU visible to torch")
    assert conftest.tensorrt_skip_reason() is None  # CPU torch does not matter: cuda-python gives the buffers
    present.discard("cuda")
    assert "cuda-python" in conftest.tensorrt_skip_reason()
    present.add("cuda")
    monkeypatch.setattr("edgeresnet.environment.gpu_info", list)
    assert "CUDA device" in conftest.tensorrt_skip_reason()
    present.discard("tensorrt")
    assert "needs TensorRT" in conftest.tensorrt_skip_reason()


def test_the_gpu_check_says_what_it_would_run_where_there_is_no_gpu(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        pytest.skip("an NVIDIA driver is here: the check would really run")
    script = PYPROJECT.parent / "benchmarks" / "gpu_check.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no NVIDIA GPU here:") and "gpu_latency.py" in lines[0]
    assert not (PYPROJECT.parent / "benchmarks" / "results" / "gpu_check").exists()
