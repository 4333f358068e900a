"""The leanest call that runs one fixed batch through a runner: what the latency loop times.

``Runner.infer`` hands a new input to the runtime on every call (OpenVINO wraps and binds a tensor,
ONNX Runtime wraps an OrtValue and allocates the output). For a 5 ms INT8 model that per-call work
measured 2-4% of the latency on the project's Zen 4 machine, enough to miss benchmark_app by more
than the 5% fidelity target. So the timed call is the runner's ``bind_for_timing``: the input bound
once and only the model run, as benchmark_app does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeresnet.runtime.base import Runner

BoundCall = Callable[[], object]


def bound_call(runner: Runner, batch: np.ndarray) -> BoundCall:
    """A zero-argument call that runs ``batch`` through ``runner`` with no per-call input handling."""
    return runner.bind_for_timing(batch)
