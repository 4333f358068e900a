"""The PyTorch eager baseline: what a user would deploy without edgeresnet, measured the same way.

Imported only on demand (never from ``edgeresnet.runtime``), because it needs torch and the rest of
the runtime must work where torch is absent.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from edgeresnet.errors import BackendUnavailableError, EdgeResNetError
from edgeresnet.runtime.base import Runner, RunnerInfo

if TYPE_CHECKING:
    from edgeresnet.checkpoint import ModelCard

TorchPrecision = Literal["fp32", "fp16", "bf16"]

_AUTOCAST_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchRunner(Runner):
    """Run an ``nn.Module`` (or a checkpoint directory written by ``train``) in eager mode.

    Args:
        model: a checkpoint directory or an ``nn.Module``; modules are switched to eval mode.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        threads: torch's intra-op threads; note that torch's setting is process-wide.
        precision: fp32, or fp16/bf16 through autocast (weights stay fp32, as autocast users run them).
        channels_last: NHWC memory format, the layout fast CPU/GPU convolution kernels prefer.
    """

    backend = "pytorch"

    def __init__(
        self,
        model: str | Path | torch.nn.Module,
        *,
        device: str = "cpu",
        threads: int | None = None,
        precision: TorchPrecision = "fp32",
        channels_last: bool = False,
    ) -> None:
        # The base class insists on a model file; a module in memory has none, so the fields it
        # would set are set here instead.
        self.card: ModelCard | None = None
        if isinstance(model, torch.nn.Module):
            self.model_path = Path(f"<{type(model).__name__}>")
            module = model
        else:
            from edgeresnet.checkpoint import load_checkpoint

            self.model_path = Path(model)
            module, self.card = load_checkpoint(self.model_path)
        self._init_state(device, threads)
        if precision not in ("fp32", *_AUTOCAST_DTYPES):
            raise EdgeResNetError(f"PyTorch precision must be fp32, fp16 or bf16, got {precision!r}")
        self._torch_device = _device(device)
        if self.threads:
            torch.set_num_threads(self.threads)
        self._precision = precision
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self._module = module.eval().to(self._torch_device, memory_format=self._memory_format)

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    def _autocast(self) -> Any:
        if self._precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._torch_device.type, dtype=_AUTOCAST_DTYPES[self._precision])

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(batch).to(self._torch_device).contiguous(memory_format=self._memory_format)
        with torch.inference_mode(), self._autocast():
            logits = self._module(inputs)
        return logits.float().cpu().numpy()

    def _describe_impl(self) -> RunnerInfo:
        name = self._torch_device.type
        if name == "cuda":
            name = f"{self._torch_device} ({torch.cuda.get_device_name(self._torch_device)})"
        precision = self._precision + (" channels_last" if self._memory_format is torch.channels_last else "")
        return RunnerInfo(backend=self.backend, device=name, precision=precision,
                          model_path=str(self.model_path), versions={"torch": torch.__version__})

    def _close_impl(self) -> None:
        self._module = None  # type: ignore[assignment]


def _device(device: str) -> torch.device:
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise EdgeResNetError(f"not a PyTorch device: {device!r}") from error
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("PyTorch sees no CUDA device here")
    if parsed.type not in ("cpu", "cuda"):
        raise EdgeResNetError(f"TorchRunner runs on cpu or cuda, not {device!r}")
    return parsed
