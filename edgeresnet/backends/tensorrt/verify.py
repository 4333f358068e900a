"""What ``verify`` checks for a TensorRT engine bundle before loading it: engines are tied to the TensorRT
version and GPU they were built on (the manifest records both)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeresnet.backends.tensorrt.runner import cuda_device, device_index, require_tensorrt

if TYPE_CHECKING:
    from edgeresnet.bundle.manifest import Manifest
    from edgeresnet.verify import VerifyReport


def check_engine(report: VerifyReport, manifest: Manifest, device: str) -> None:
    """``verify``'s TensorRT checks: the engine's TensorRT version and GPU against this machine's."""
    engine = manifest.engine
    record = engine.compatibility_record() if engine is not None and engine.runtime == "tensorrt" else None
    if record is None or record["version"] is None or record["compute_capability"] is None:
        report.failures.append("the manifest records no TensorRT version and GPU for its engine")
        return
    installed = str(require_tensorrt().__version__)
    gpu = cuda_device(device_index(device))
    problems = tensorrt_compatibility(record, installed, gpu.compute_capability if gpu else None)
    report.failures.extend(problems)
    if not problems and gpu is not None:
        report.checks.append(
            f"TensorRT {installed} and {gpu.name} (sm {gpu.compute_capability}) can run an engine "
            f"built with TensorRT {record['version']} for sm {record['compute_capability']}"
        )


def tensorrt_compatibility(
    record: dict[str, Any], installed_version: str, compute_capability: str | None
) -> list[str]:
    """Why an engine described by ``record`` (``manifest.engine.compatibility_record()``) cannot run here.

    Empty if it can.

    A default engine needs the exact TensorRT build and compute capability it was built with; a
    version-compatible engine runs on the same or a later TensorRT; an ``ampere+`` engine runs on any
    GPU of compute capability 8.0 or newer, a ``same-cc`` one on any GPU of its compute capability.
    """
    rebuild = "rebuild it here with `edgeresnet compile SOURCE_BUNDLE --target tensorrt`"
    problems = []
    built = str(record["version"])
    if record.get("version_compatible"):
        if _version_tuple(installed_version) < _version_tuple(built):
            problems.append(
                f"engine built with TensorRT {built} cannot run on the older TensorRT {installed_version}"
            )
    elif installed_version != built:
        problems.append(
            f"engine built with TensorRT {built}, this machine has TensorRT {installed_version}: {rebuild}"
        )
    if compute_capability is None:
        problems.append("no CUDA GPU is visible here, and a TensorRT engine needs one")
        return problems
    wanted = str(record["compute_capability"])
    level = record.get("hardware_compatibility", "none")
    if level == "ampere+":
        if _version_tuple(compute_capability) < (8, 0):
            problems.append(f"engine built for Ampere or newer GPUs, this GPU is sm {compute_capability}")
    elif compute_capability != wanted:
        gpu = f" ({record['gpu']})" if record.get("gpu") else ""
        problems.append(
            f"engine built for compute capability {wanted}{gpu}, this GPU is {compute_capability}: {rebuild}"
        )
    return problems


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
