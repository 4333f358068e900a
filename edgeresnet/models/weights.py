"""Reading, fitting and writing weights without ever unpickling an untrusted file.

``.safetensors`` is read as raw tensors; PyTorch files (``.pt .pth .bin .ckpt``) only through
``torch.load(weights_only=True)``, whose restricted unpickler refuses anything but tensors and plain
containers. Files are written as ``.safetensors``, atomically.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeresnet.atomic import atomic_write_with
from edgeresnet.errors import WeightsError, one_line

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
WeightsSource = str | os.PathLike[str] | Mapping[str, Any]

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Keys under which training scripts nest the model's tensors, most specific first.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
# Prefixes added by DataParallel/DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_CLASSIFIER = "fc"
_SHOWN_KEYS = 5


@dataclass(frozen=True)
class WeightsReport:
    """What ``load_weights`` did. ``message`` is empty unless something deserves the user's attention."""

    source: str
    loaded: int
    head_reinitialised: bool
    message: str


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """Tensors of a weights file, unwrapped from common checkpoint containers and prefixes."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist" if not path.exists() else f"{path} is not a file"
        )
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return normalise_state_dict(_read_safetensors(path), origin=str(path))
    if suffix in TORCH_SUFFIXES:
        return normalise_state_dict(_read_torch(path), origin=str(path))
    raise WeightsError(
        f"unsupported weights file {path.name!r}: expected .safetensors or {', '.join(TORCH_SUFFIXES)}"
    )


def _read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise WeightsError(f"cannot read {path}: corrupt or not a safetensors file ({error})") from error


def _read_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's restricted unpickler stopped before running anything it does not allow.
        reason = _unpickler_reason(error)
        if reason.startswith("Unsupported global"):
            raise WeightsError(
                f"refused to load {path}: it references Python code ({reason}) that loading would run, "
                "so it was refused and not executed; re-save its state_dict as .safetensors"
            ) from error
        raise WeightsError(
            f"cannot read {path}: corrupt or not a plain PyTorch state dict ({reason}); nothing in it was executed"
        ) from error
    except Exception as error:  # corrupt zip, truncated file: torch raises many kinds
        raise WeightsError(
            f"cannot read {path}: corrupt or not a PyTorch file ({type(error).__name__}: {one_line(error)})"
        ) from error


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """The first sentence after torch's 'WeightsUnpickler error:' marker (its message is a page long)."""
    text = str(error)
    # torch words this differently across versions: "Unsupported global: GLOBAL os.system" or
    # "Trying to load unsupported GLOBAL posix.system whose module posix is blocked".
    unsupported = re.search(r"unsupported global:? (?:GLOBAL )?([\w.]+)", text, re.IGNORECASE)
    if unsupported:
        return f"Unsupported global {unsupported.group(1)}"
    marker = "WeightsUnpickler error:"
    if marker not in text:
        return (text.strip().splitlines() or ["unpickling failed"])[0]
    lines = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
    return lines[0].split(". ")[0].rstrip(".") if lines else "unpickling failed"


def normalise_state_dict(record: Any, *, origin: str = "state dict") -> StateDict:
    """Unwrap ``{'state_dict': ...}``-style containers and ``module.`` prefixes; insist on tensors only."""
    for _ in range(3):  # Lightning/trainer checkpoints nest at most a couple of levels
        if not isinstance(record, Mapping):
            break
        inner = next((record[key] for key in _WRAPPER_KEYS if isinstance(record.get(key), Mapping)), None)
        if inner is None:
            break
        record = inner
    if not isinstance(record, Mapping):
        raise WeightsError(f"{origin} holds a {type(record).__name__}, not a state dict of tensors")
    if not record:
        raise WeightsError(f"{origin} holds no tensors")
    state: StateDict = {}
    for key, value in record.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{origin} is not a plain state dict: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        state[key] = value
    for prefix in _WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    return state


def load_weights(model: nn.Module, source: WeightsSource) -> WeightsReport:
    """Load ``source`` (a weights file or a state dict) into ``model`` strictly.

    ``num_batches_tracked`` may be absent. A classifier head ``fc`` of another shape is re-initialised
    for fine-tuning and reported; any other missing, unexpected or mis-shaped key is a ``WeightsError``.
    """
    if isinstance(source, Mapping):
        origin = "state dict"
        state = normalise_state_dict(source)
    else:
        origin = str(source)
        state = read_state_dict(source)
    name = getattr(model, "name", type(model).__name__)
    expected = model.state_dict()

    def optional(key: str) -> bool:
        return key.endswith("num_batches_tracked")

    missing = [key for key in expected if key not in state and not optional(key)]
    unexpected = [key for key in state if key not in expected and not optional(key)]
    mis_shaped = [key for key in state if key in expected and state[key].shape != expected[key].shape]
    head_keys = [key for key in mis_shaped if key.startswith(f"{_CLASSIFIER}.")]
    other_mis_shaped = [key for key in mis_shaped if key not in head_keys]
    if missing or unexpected or other_mis_shaped:
        raise WeightsError(
            _mismatch_message(name, origin, missing, unexpected, other_mis_shaped, state, expected)
        )

    loadable = {key: value for key, value in state.items() if key in expected and key not in head_keys}
    model.load_state_dict(loadable, strict=False)
    message = ""
    if head_keys:
        head = model.get_submodule(_CLASSIFIER)
        head.reset_parameters()  # a fresh head, whatever the model held before
        file_classes = state[f"{_CLASSIFIER}.weight"].shape[0] if f"{_CLASSIFIER}.weight" in state else "?"
        message = (
            f"classifier head {_CLASSIFIER}: {file_classes} → {head.out_features} classes, "
            "re-initialised for fine-tuning"
        )
        log.info("%s (weights %s)", message, origin)
    return WeightsReport(
        source=origin, loaded=len(loadable), head_reinitialised=bool(head_keys), message=message
    )


def _mismatch_message(
    name: str,
    origin: str,
    missing: list[str],
    unexpected: list[str],
    mis_shaped: list[str],
    state: StateDict,
    expected: dict[str, torch.Tensor],
) -> str:
    def shown(keys: list[str]) -> str:
        more = f", … {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
        return ", ".join(keys[:_SHOWN_KEYS]) + more

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({shown(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({shown(unexpected)})")
    if mis_shaped:
        shapes = [f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}" for key in mis_shaped]
        parts.append(f"{len(mis_shaped)} mis-shaped ({shown(shapes)})")
    return f"weights {origin} do not fit {name}: " + "; ".join(parts)


def save_weights(
    model_or_state: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a ``.safetensors`` file atomically (temporary file beside it, then ``os.replace``)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise WeightsError(f"weights are written as .safetensors, got {path.name!r}")
    if isinstance(model_or_state, nn.Module):
        state = model_or_state.state_dict()
    else:
        state = normalise_state_dict(model_or_state)
    tensors: StateDict = {}
    for key, value in state.items():
        if value.is_meta:
            raise WeightsError(f"cannot save {key}: it is on the meta device and holds no data")
        # clone(): safetensors refuses tensors that share storage (tied or sliced views).
        tensors[key] = value.detach().to("cpu").contiguous().clone()
    header = {"format": "pt"}  # what other safetensors readers (transformers, timm) expect
    name = getattr(model_or_state, "name", None)
    if isinstance(name, str):
        header["architecture"] = name
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise WeightsError(f"safetensors metadata must map str to str, got {key!r}: {value!r}")
        header[key] = value
    return atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def weights_shape(path: str | os.PathLike[str]) -> tuple[int | None, int | None]:
    """Classes and input channels a weights file was trained with, read from its head and stem."""
    state = read_state_dict(path)
    head = state.get("fc.weight")
    stem = state.get("conv1.weight", state.get("conv1.0.weight"))
    return (int(head.shape[0]) if head is not None and head.ndim == 2 else None,
            int(stem.shape[1]) if stem is not None and stem.ndim == 4 else None)

