"""The Runner protocol: the one interface every inference backend implements.

Building artifacts (export/, calibration/) and running them (runtime/) are separate layers. A runner
loads one model file, runs ``infer(batch) -> logits`` on float32 NCHW numpy batches, describes
itself, and closes. Public methods validate; backends override the ``_impl`` hooks.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from edgeresnet.errors import EdgeResNetError

if TYPE_CHECKING:
    from edgeresnet.data.preprocessing import PreprocessSpec


@dataclass(frozen=True)
class RunnerInfo:
    """What a runner is: enough to label a benchmark row or a verify report."""

    backend: str
    device: str
    precision: str
    model_path: str
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runner(ABC):
    """Load a model file, run float32 NCHW batches through it, describe it, close it."""

    backend: str = "abstract"

    def __init__(self, model_path: str | Path, *, device: str = "cpu", threads: int | None = None) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise EdgeResNetError(f"model file not found: {self.model_path}")
        self.device = device
        self.threads = threads
        self._closed = False

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one float32 NCHW batch and return its logits as a float32 N×classes array."""
        if self._closed:
            raise EdgeResNetError(f"{self.backend} runner for {self.model_path.name} is closed")
        if not isinstance(batch, np.ndarray) or batch.ndim != 4:
            raise EdgeResNetError(f"expected a 4-D NCHW numpy batch, got {getattr(batch, 'shape', type(batch))}")
        logits = self._infer_impl(np.ascontiguousarray(batch, dtype=np.float32))
        return np.asarray(logits, dtype=np.float32)

    def infer_pixels(self, pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
        """Run uint8 ``N×H×W×C`` pixels at the model's input size; ``spec`` says how to normalise them.

        Backends that can run the normalisation inside the model (OpenVINO's PrePostProcessor)
        override ``_infer_pixels_impl``, so an app hands over pixels and no per-image numpy arithmetic
        runs; the others normalise here with exactly the arithmetic of ``PreprocessSpec.normalise``.
        """
        if self._closed:
            raise EdgeResNetError(f"{self.backend} runner for {self.model_path.name} is closed")
        expected = (*spec.input_size, spec.num_channels)
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or tuple(pixels.shape[1:]) != expected:
            shape = getattr(pixels, "shape", type(pixels).__name__)
            raise EdgeResNetError(f"expected uint8 pixels of shape N×{'×'.join(map(str, expected))}, got {shape}")
        logits = self._infer_pixels_impl(np.ascontiguousarray(pixels), spec)
        return np.asarray(logits, dtype=np.float32)

    def _infer_pixels_impl(self, pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
        return self._infer_impl(spec.normalise(pixels))

    @property
    def preprocesses_in_model(self) -> bool:
        """Whether ``infer_pixels`` normalises inside the model rather than in numpy."""
        return False

    def bind_for_timing(self, batch: np.ndarray) -> Callable[[], object]:
        """A zero-argument call that runs ``batch`` with no per-call input handling (for latency loops).

        Backends whose runtimes can bind an input once (OpenVINO requests, ONNX Runtime IO binding)
        override this, so that what a benchmark times is the model, as the runtimes' own tools do.
        """
        if self._closed:
            raise EdgeResNetError(f"{self.backend} runner for {self.model_path.name} is closed")
        return functools.partial(self.infer, np.ascontiguousarray(batch, dtype=np.float32))

    def describe(self) -> RunnerInfo:
        return self._describe_impl()

    def close(self) -> None:
        if not self._closed:
            self._close_impl()
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abstractmethod
    def _infer_impl(self, batch: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _describe_impl(self) -> RunnerInfo: ...

    def _close_impl(self) -> None:
        """Release backend resources; most backends need nothing beyond garbage collection."""
