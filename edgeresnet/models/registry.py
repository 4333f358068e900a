"""The model registry: every architecture name maps to a ``ResNetConfig`` factory and its facts.

It feeds the CLI's choices, the tests' parametrisation and the benchmark sweeps. A variant is added by
decorating a few-line factory in ``variants.py``.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch

from edgeresnet.errors import UnknownModelError
from edgeresnet.models.complexity import count_macs, count_params
from edgeresnet.models.config import ResNetConfig
from edgeresnet.models.resnet import ResNet
from edgeresnet.models.weights import load_weights

log = logging.getLogger(__name__)

Family = Literal["resnet", "resnet-cifar", "preact", "resnext", "wide_resnet", "resnet-d", "se-resnet"]
FAMILIES: tuple[str, ...] = get_args(Family)

ConfigFactory = Callable[[], ResNetConfig]


@dataclass(frozen=True)
class ModelInfo:
    """Facts about one registered architecture.

    ``params`` and ``macs`` are counted with 3 input channels at ``input_size`` and ``num_classes``
    outputs: 1000 for ImageNet-style nets, 10 for the CIFAR-style ones (their papers' settings).
    """

    name: str
    family: str
    params: int
    macs: int
    input_size: int
    description: str
    num_classes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Entry:
    name: str
    family: str
    input_size: int
    description: str
    factory: ConfigFactory


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str, *, family: Family, input_size: int, description: str
) -> Callable[[ConfigFactory], ConfigFactory]:
    """Register ``factory`` (returning the architecture's default ``ResNetConfig``) under ``name``."""
    # These are programming mistakes in a variant definition, so they stay plain ValueErrors.
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if not isinstance(input_size, int) or input_size < 28:
        raise ValueError(f"default input size must be an integer ≥ 28, got {input_size!r}")

    def decorate(factory: ConfigFactory) -> ConfigFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = _Entry(name, family, input_size, description, factory)
        return factory

    return decorate


def _entries() -> dict[str, _Entry]:
    # The built-in variants register themselves when the package edgeresnet.models is imported, which
    # Python does before this module however it is reached: the registry is complete by then.
    return _REGISTRY


def _entry(name: str) -> _Entry:
    entries = _entries()
    if not isinstance(name, str) or name not in entries:
        raise UnknownModelError(_unknown_message(str(name), list(entries)))
    return entries[name]


def _unknown_message(name: str, names: list[str]) -> str:
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(name.lower())
    scored = []
    for candidate in names:
        matcher.set_seq1(candidate.lower())
        if matcher.ratio() >= 0.6:
            scored.append((-matcher.ratio(), candidate))
    # Ties go to the alphabetically first name, so 'resnet5O' suggests resnet50 before resnet56.
    close = [candidate for _, candidate in sorted(scored)[:3]]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown model {name!r}{hint} (`edgeresnet models` lists all {len(names)})"


def model_names() -> list[str]:
    """Registered architecture names, in registration order."""
    return list(_entries())


def get_model_config(name: str) -> ResNetConfig:
    """The registered default configuration of ``name``."""
    return _entry(name).factory()


def get_model_info(name: str) -> ModelInfo:
    _entry(name)  # raise UnknownModelError before touching the cache
    return _model_info(name)


@functools.cache
def _model_info(name: str) -> ModelInfo:
    entry = _REGISTRY[name]
    config = entry.factory().replace(in_chans=3)
    # The meta device allocates no storage and computes nothing: counting all models takes well under 1 s.
    with torch.device("meta"):
        model = ResNet(config, name=name)
    return ModelInfo(
        name=name,
        family=entry.family,
        params=count_params(model),
        macs=count_macs(model, entry.input_size, in_chans=3),
        input_size=entry.input_size,
        description=entry.description,
        num_classes=config.num_classes,
    )


def list_models() -> list[ModelInfo]:
    """Every registered architecture with family, parameters, MACs and default input size."""
    return [_model_info(name) for name in _entries()]


def create_model(
    name: str,
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
    **overrides: Any,
) -> ResNet:
    """Build registered architecture ``name``.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels (1 for grayscale, 3 for RGB).
        weights: a .safetensors / PyTorch state-dict file or a state dict; a classifier head of another
            size is re-initialised for fine-tuning, any other mismatch is a ``WeightsError``.
        overrides: replace fields of the registered ``ResNetConfig``, e.g. ``shortcut="C"``.
    """
    config = get_model_config(name).replace(num_classes=num_classes, in_chans=in_chans, **overrides)
    model = ResNet(config, name=name)
    if weights is not None:
        load_weights(model, weights)  # logs a re-initialised classifier head itself
    return model
