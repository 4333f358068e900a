"""The machine and tool versions a result was produced on: recorded in every bundle and report.

Versions are read from package metadata, and GPUs are asked through cuda-python or nvidia-smi, so
asking never imports torch, openvino or tensorrt.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRACKED_PACKAGES = ("edgeresnet", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxslim",
                    "openvino", "nncf", "tensorrt", "numpy")
# CPU features that decide which INT8/BF16 kernels the runtimes can use.
INTERESTING_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
                         "avx_vnni", "asimddp", "i8mm")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tool_versions() -> dict[str, str]:
    """Installed versions of the packages that shape an artifact or a measurement."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        version = package_version(name)
        if version:
            versions[name] = version
    return versions


@cache
def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and value.strip():
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {
        "model": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": [flag for flag in INTERESTING_CPU_FLAGS if flag in flags],
    }


# --- GPUs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuInfo:
    """One NVIDIA GPU: what an engine is tied to (name, compute capability) and what a report names.

    Args:
        index: the CUDA device index (``cuda:N``).
        source: which probe answered: ``cuda-python``, ``nvidia-smi`` or ``torch``.
        driver_version: the NVIDIA driver (``550.54.15``); None where nvidia-smi is absent.
        cuda_driver: the CUDA version the driver supports (``12.4``).
    """

    name: str
    compute_capability: str  # "8.6"
    source: str
    index: int = 0
    memory_mib: int | None = None
    driver_version: str | None = None
    cuda_driver: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gpu_info() -> list[GpuInfo]:
    """Every visible NVIDIA GPU in CUDA's device order; empty where there is none.

    cuda-python is asked first (torch-free and exact, CUDA's own numbering), then nvidia-smi (present
    with every driver; it numbers devices in PCI order, which matches CUDA's on one-GPU machines and
    whenever CUDA_DEVICE_ORDER=PCI_BUS_ID), then torch, but only if the process already imported it:
    asking must never cost a torch import. The driver version comes from nvidia-smi where it exists.
    """
    gpus: list[GpuInfo] = []
    for probe in (_gpus_from_cuda_python, _gpus_from_nvidia_smi, _gpus_from_torch):
        try:
            gpus = probe()
        except _PROBE_ERRORS as error:  # a broken driver install must not hide the other probes
            log.debug("GPU probe %s failed: %s", probe.__name__, error)
            continue
        if gpus:
            break
    if gpus and gpus[0].driver_version is None:
        driver = _nvidia_driver_version()
        if driver:
            gpus = [GpuInfo(**{**gpu.to_dict(), "driver_version": driver}) for gpu in gpus]
    return gpus


# What a GPU probe raises on a machine with a broken or partial CUDA install: missing libraries
# (ImportError, OSError), driver errors surfaced by the bindings (RuntimeError), garbled output.
_PROBE_ERRORS = (ImportError, OSError, RuntimeError, ValueError, AttributeError, IndexError,
                 subprocess.SubprocessError)
_SMI_FIELDS = ("index", "name", "compute_cap", "memory.total", "driver_version")


def cuda_runtime() -> Any:
    """cuda-python's runtime bindings (both the >= 12.6 and the older module layout)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python layout
    return cudart


def _gpus_from_cuda_python() -> list[GpuInfo]:
    if importlib.util.find_spec("cuda") is None:
        return []
    cudart = cuda_runtime()
    success = cudart.cudaError_t.cudaSuccess
    error, count = cudart.cudaGetDeviceCount()
    if error != success:
        return []
    error, version = cudart.cudaDriverGetVersion()
    cuda_driver = f"{version // 1000}.{version % 1000 // 10}" if error == success and version else None
    gpus = []
    for index in range(count):
        error, props = cudart.cudaGetDeviceProperties(index)
        if error != success:
            continue
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        gpus.append(GpuInfo(name.rstrip("\x00").strip(), f"{props.major}.{props.minor}", "cuda-python", index,
                            memory_mib=int(props.totalGlobalMem) >> 20, cuda_driver=cuda_driver))
    return gpus


def _nvidia_smi(fields: tuple[str, ...]) -> list[list[str]]:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return []
    result = subprocess.run(
        [executable, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, timeout=20, check=False,
    )
    if result.returncode != 0:
        return []
    return [[part.strip() for part in line.split(",")] for line in result.stdout.splitlines() if line.strip()]


def _gpus_from_nvidia_smi() -> list[GpuInfo]:
    gpus = []
    for values in _nvidia_smi(_SMI_FIELDS):
        if len(values) != len(_SMI_FIELDS):
            continue  # a GPU name with a comma, or an older nvidia-smi without compute_cap
        record = dict(zip(_SMI_FIELDS, values, strict=True))
        memory = record["memory.total"]
        gpus.append(GpuInfo(record["name"], record["compute_cap"], "nvidia-smi", int(record["index"]),
                            memory_mib=int(memory) if memory.isdigit() else None,
                            driver_version=record["driver_version"] or None))
    return gpus


def _nvidia_driver_version() -> str | None:
    try:
        rows = _nvidia_smi(("driver_version",))
    except _PROBE_ERRORS as error:
        log.debug("nvidia-smi failed: %s", error)
        return None
    return rows[0][0] if rows and rows[0] and rows[0][0] else None


def _gpus_from_torch() -> list[GpuInfo]:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(GpuInfo(props.name, f"{props.major}.{props.minor}", "torch", index,
                            memory_mib=int(props.total_memory) >> 20))
    return gpus


def environment() -> dict[str, Any]:
    """Everything a reader needs to know where a number came from."""
    return {
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "gpu": [gpu.to_dict() for gpu in gpu_info()],
        "versions": tool_versions(),
    }
