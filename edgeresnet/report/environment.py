"""The environment a benchmark ran in, as text lines shared by every report format."""

from __future__ import annotations

from typing import Any

SHOWN_VERSIONS = ("python", "torch", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf", "tensorrt", "numpy",
                  "edgeresnet")
# Absent tools are named in the report too: "no TensorRT here" is a fact about the numbers.
REQUIRED_VERSIONS = ("python", "torch", "onnxruntime", "openvino", "tensorrt")


def environment_summary(environment: dict[str, Any]) -> list[tuple[str, str]]:
    """The environment as (label, text) lines, shared by every report format."""
    cpu = environment.get("cpu", {})
    flags = ", ".join(cpu.get("flags", [])) or "none of interest"
    versions = environment.get("versions", {})
    shown = {name: versions[name] for name in SHOWN_VERSIONS if name in versions}
    for name in REQUIRED_VERSIONS:
        shown.setdefault(name, "not installed")
    gpus = environment.get("gpu")
    gpu_text = "; ".join(gpu_text_of(g) for g in gpus) if gpus else "none detected"
    measurement = environment.get("measurement", {})
    lines = [
        ("CPU", f"{cpu.get('model', '?')} ({cpu.get('machine', '?')}; flags: {flags})"),
        ("Cores used", (f"{environment.get('threads', '?')} threads of {cpu.get('usable_cores', '?')} usable "
                       f"({cpu.get('logical_cores', '?')} logical)")),
        ("Device", str(environment.get("device", "cpu"))),
        ("GPU", gpu_text),
        ("Versions", ", ".join(f"{name} {version}" for name, version in shown.items())),
        ("Platform", str(environment.get("platform", "?"))),
    ]
    if environment.get("data"):
        lines.append(("Data", f"{environment['data']} (evaluation split, {environment.get('eval_images', '?')} images)"))
    elif "data" in environment:
        lines.append(("Data", "none: timed on each bundle's golden inputs (or generated ones); accuracy not measured"))
    if measurement:
        lines.append(("Timing", (f"warmup {measurement.get('warmup')}, then until ≥{measurement.get('min_runs')} runs "
                                f"and ≥{measurement.get('min_time_s')} s (cap {measurement.get('max_time_s')} s)"
                                f"; mode {measurement.get('mode', 'latency')}")))
        lines.append(("Peak memory", str(measurement.get("peak_memory", "?"))))
    return lines


def gpu_text_of(gpu: dict[str, Any]) -> str:
    """``NVIDIA H100 (sm 9.0, 81559 MiB, driver 550.54.15)``; reports of older versions named fewer facts."""
    facts = [f"sm {gpu['compute_capability']}" if gpu.get("compute_capability") else "",
             f"{gpu['memory_mib']} MiB" if gpu.get("memory_mib") else str(gpu.get("memory.total") or ""),
             f"driver {gpu['driver_version']}" if gpu.get("driver_version") else "",
             f"CUDA {gpu['cuda_driver']}" if gpu.get("cuda_driver") else ""]
    facts = [fact for fact in facts if fact]
    return f"{gpu.get('name', '?')}" + (f" ({', '.join(facts)})" if facts else "")


def environment_columns(environment: dict[str, Any]) -> dict[str, str]:
    """A few environment facts repeated on every CSV line, so a CSV alone still says where it ran."""
    cpu = environment.get("cpu", {})
    versions = environment.get("versions", {})
    gpus = environment.get("gpu") or []
    columns = {
        "env_cpu": str(cpu.get("model", "")),
        "env_cpu_flags": " ".join(cpu.get("flags", [])),
        "env_threads": str(environment.get("threads", "")),
        "env_gpu": "; ".join(gpu_text_of(g) for g in gpus),
    }
    for name in REQUIRED_VERSIONS:
        columns[f"env_{name}"] = versions.get(name, "")
    return columns
