"""How a TensorRT engine is built: the typed options ``compile --target tensorrt`` takes (no TensorRT needed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from edgeresnet.errors import ExportError

HardwareCompatibility = Literal["none", "ampere+", "same-cc"]
HARDWARE_COMPATIBILITY: dict[str, str] = {
    "none": "NONE", "ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY",
}


@dataclass(frozen=True)
class TensorRtBuildOptions:
    """How to build an engine. The batch range becomes the optimisation profile: min 1, ``opt_batch``
    (what the kernels are tuned for), ``max_batch`` (the largest batch the engine accepts).

    Args:
        timing_cache: a timing-cache file to start from (if present); kernel timings are reused across
            builds on the same GPU and TensorRT version, which makes rebuilds fast. It is only read: the
            updated cache goes where :func:`build_engine`'s ``timing_cache_out`` says, so a cache inside
            another bundle is never rewritten (its sha256 would no longer match).
        version_compatible: an engine later TensorRT versions can run (it embeds a lean runtime).
        hardware_compatibility: ``ampere+`` for one engine on every Ampere-or-newer GPU, ``same-cc`` for
            every GPU of this compute capability; both may cost speed.
    """

    max_batch: int = 32
    opt_batch: int = 1
    workspace_mib: int = 1024
    timing_cache: Path | None = None
    version_compatible: bool = False
    hardware_compatibility: HardwareCompatibility = "none"
    optimization_level: int = 3

    def __post_init__(self) -> None:
        cache = self.timing_cache
        object.__setattr__(self, "timing_cache", Path(cache) if cache else None)
        if cache and Path(cache).exists() and not Path(cache).is_file():
            raise ExportError(f"--timing-cache {cache} is not a file")
        if self.max_batch < 1:
            raise ExportError(f"--max-batch must be at least 1, got {self.max_batch}")
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ExportError(
                f"--opt-batch must lie between 1 and --max-batch ({self.max_batch}), got {self.opt_batch}"
            )
        if self.workspace_mib < 1:
            raise ExportError(f"the workspace must be at least 1 MiB, got {self.workspace_mib}")
        if self.hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise ExportError(f"hardware compatibility must be one of {', '.join(HARDWARE_COMPATIBILITY)}, "
                              f"got {self.hardware_compatibility!r}")
        if not 0 <= self.optimization_level <= 5:
            raise ExportError(f"the builder optimization level runs 0-5, got {self.optimization_level}")

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["timing_cache"] = str(self.timing_cache) if self.timing_cache else None
        return record


def tensorrt_options(options: dict[str, Any]) -> TensorRtBuildOptions:
    """TensorRT build options from flat keywords (the CLI's flags), unknown names refused in one line."""
    fields = set(TensorRtBuildOptions.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ExportError(
            f"unknown TensorRT option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    return TensorRtBuildOptions(**options)
