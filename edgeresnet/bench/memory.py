"""Peak resident memory of the process while one artifact runs.

Linux keeps a per-process RSS high-water mark (``VmHWM`` in /proc/self/status) and lets a process
reset it to the current RSS by writing ``5`` to /proc/self/clear_refs (Linux 4.0+). Resetting before
an artifact loads and reading the mark afterwards gives that artifact's peak, relative to the RSS it
started from.

Limitations, stated in every report:

* It is the whole process: threads of the runtime, the allocator's caches and anything else the
  process does in that window all count.
* The runtime library itself (torch, onnxruntime, openvino) is imported before the baseline, so a
  row counts the model, its compiled form, the runtime's session and activations, not the library's
  code; a deployed app pays the library once on top.
* Memory an earlier artifact freed but the allocator kept may be reused, so the delta can
  under-report; memory a runtime maps lazily and never touches does not count at all.
* Without the reset (not Linux, or clear_refs not writable) the mark is the process lifetime's
  (``getrusage`` ``ru_maxrss``); the delta is then the growth of that mark, a lower bound that is 0
  for an artifact smaller than an earlier one.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")

METHOD_RESET = "VmHWM reset per artifact via /proc/self/clear_refs (process-wide RSS, delta from pre-load RSS)"
METHOD_LIFETIME = "growth of getrusage ru_maxrss (process lifetime high-water mark; a lower bound)"


def _status_bytes(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _ru_maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB elsewhere


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def measurement_method() -> str:
    """Which of the two methods this machine supports (recorded in the report's environment)."""
    return METHOD_RESET if _STATUS.is_file() and _reset_high_water_mark() else METHOD_LIFETIME


class PeakMemory:
    """Peak RSS above the RSS at construction, over windows started by :meth:`reset`."""

    def __init__(self) -> None:
        current = _status_bytes("VmRSS")
        self.resettable = current is not None and _reset_high_water_mark()
        self.baseline = current if self.resettable else _ru_maxrss_bytes()

    def reset(self) -> None:
        """Start a new window: the mark drops to the current RSS (no-op without the reset)."""
        if self.resettable:
            _reset_high_water_mark()

    def peak_delta(self) -> int:
        """Bytes the high-water mark of the current window rose above the baseline (never negative)."""
        mark = _status_bytes("VmHWM") if self.resettable else None
        if mark is None:
            mark = _ru_maxrss_bytes()
        return max(0, mark - self.baseline)
