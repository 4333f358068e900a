"""The benchmark's default settings, shared by `benchmark`, `pipeline` and the Python API.

Kept in a module of plain constants so the CLI can show them in ``--help`` without importing the
benchmark engine (numpy, the runtimes): one value each, read by every command that times models.
"""

from __future__ import annotations

# Batch 1 is an app's latency; 8 is a small batch every edge target fits (32 ran out of memory on
# small devices and took most of the pipeline's benchmark time on 2 cores).
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 8)
# Seconds of timed calls per artifact and batch size, at least: enough calls for a stable p50 of a
# millisecond model on a noisy host.
DEFAULT_MIN_TIME_S = 2.0


def batch_sizes_text(batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES) -> str:
    """``"1,8"``: batch sizes as the command line writes them."""
    return ",".join(map(str, batch_sizes))
