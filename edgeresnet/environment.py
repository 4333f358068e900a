"""The machine and tool versions a result was produced on: recorded in every bundle and report.

Versions are read from package metadata, so asking never imports torch, openvino or tensorrt.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

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


def environment() -> dict[str, Any]:
    """Everything a reader needs to know where a number came from."""
    return {
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "versions": tool_versions(),
    }
