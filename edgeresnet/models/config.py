"""The one description of a ResNet architecture: a frozen, validated, serialisable record.

Every named model in the registry is a ``ResNetConfig``; checkpoints store the overrides applied to it,
so the config must reject nonsense at construction time instead of failing deep inside ``nn.Module``.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from dataclasses import dataclass
from typing import Any, Literal, get_args

from edgeresnet.errors import ModelConfigError

BlockType = Literal["basic", "bottleneck", "preact_basic", "preact_bottleneck"]
StemType = Literal["imagenet", "cifar", "deep"]
ShortcutType = Literal["A", "B", "C"]

BLOCK_TYPES: tuple[str, ...] = get_args(BlockType)
STEM_TYPES: tuple[str, ...] = get_args(StemType)
SHORTCUT_TYPES: tuple[str, ...] = get_args(ShortcutType)

_BOTTLENECK_BLOCKS = ("bottleneck", "preact_bottleneck")
_PREACT_BLOCKS = ("preact_basic", "preact_bottleneck")


@dataclass(frozen=True)
class ResNetConfig:
    """Architecture of one ``ResNet``.

    Attributes:
        block: residual block kind; bottleneck blocks expand their output channels by 4.
        depths: number of blocks per stage; the first stage keeps the resolution, each later one halves it.
        widths: per-stage "planes" (the block output before the bottleneck expansion).
        stem: "imagenet" (7×7/2 conv + 3×3/2 max pool), "cifar" (3×3/1 conv, no pool) or
            "deep" (three 3×3 convs of widths stem_width/2, stem_width/2, stem_width + max pool).
        stem_width: channels leaving the stem.
        shortcut: "A" parameter-free (strided identity, zero-padded channels), "B" projection only where
            the shape changes, "C" projection on every block.
        avg_down: ResNet-D shortcut: average-pool to the new resolution, then a stride-1 1×1 projection.
        groups: grouped 3×3 convolutions in bottlenecks (ResNeXt cardinality).
        width_per_group: bottleneck inner width per group at planes=64 (ResNeXt / Wide ResNet).
        se_ratio: squeeze-excitation reduction (1/16 for SE-ResNet); 0 disables it.
        zero_init_last_bn: start every residual branch at zero so each block begins as an identity.
        num_classes: classifier outputs.
        in_chans: input image channels.
    """

    block: BlockType
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    stem: StemType = "imagenet"
    stem_width: int = 64
    shortcut: ShortcutType = "B"
    avg_down: bool = False
    groups: int = 1
    width_per_group: int = 64
    se_ratio: float = 0.0
    zero_init_last_bn: bool = False
    num_classes: int = 1000
    in_chans: int = 3

    def __post_init__(self) -> None:
        # Checkpoint cards come back from JSON with lists; a frozen config still wants hashable tuples.
        object.__setattr__(self, "depths", _int_tuple("depths", self.depths))
        object.__setattr__(self, "widths", _int_tuple("widths", self.widths))
        _check_choice("block", self.block, BLOCK_TYPES)
        _check_choice("stem", self.stem, STEM_TYPES)
        _check_choice("shortcut", self.shortcut, SHORTCUT_TYPES)
        for field in ("stem_width", "groups", "width_per_group", "num_classes", "in_chans"):
            _check_positive_int(field, getattr(self, field))
        for field in ("avg_down", "zero_init_last_bn"):
            if not isinstance(getattr(self, field), bool):
                raise ModelConfigError(f"{field} must be true or false, got {getattr(self, field)!r}")
        self._check_structure()

    def _check_structure(self) -> None:
        if len(self.depths) != len(self.widths):
            raise ModelConfigError(
                f"depths {self.depths} and widths {self.widths} must have one entry per stage"
            )
        if isinstance(self.se_ratio, bool) or not isinstance(self.se_ratio, (int, float)):
            raise ModelConfigError(f"se_ratio must be a number, got {self.se_ratio!r}")
        if not 0.0 <= self.se_ratio < 1.0:
            raise ModelConfigError(f"se_ratio must be in [0, 1), got {self.se_ratio}")
        if not self.is_bottleneck and (self.groups != 1 or self.width_per_group != 64):
            raise ModelConfigError(
                f"{self.block} blocks have no grouped conv: groups must be 1 and width_per_group 64 "
                f"(got {self.groups} and {self.width_per_group}); widen a basic net through widths"
            )
        if self.stem == "deep" and self.stem_width % 2:
            raise ModelConfigError(
                f"the deep stem halves stem_width, so it must be even, got {self.stem_width}"
            )
        if self.shortcut == "A":
            if self.avg_down:
                raise ModelConfigError(
                    "avg_down shapes a projection shortcut; use shortcut 'B' or 'C', not 'A'"
                )
            # A zero-pads channels; it cannot drop any, so channels may never shrink along the net.
            channels = [self.stem_width, *self.stage_channels]
            for before, after in itertools.pairwise(channels):
                if after < before:
                    raise ModelConfigError(
                        f"shortcut 'A' cannot reduce channels ({before} → {after}); use 'B' or 'C'"
                    )

    @property
    def is_bottleneck(self) -> bool:
        return self.block in _BOTTLENECK_BLOCKS

    @property
    def is_preact(self) -> bool:
        return self.block in _PREACT_BLOCKS

    @property
    def expansion(self) -> int:
        return 4 if self.is_bottleneck else 1

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Channels leaving each stage."""
        return tuple(width * self.expansion for width in self.widths)

    @property
    def num_features(self) -> int:
        """Channels entering the classifier."""
        return self.stage_channels[-1]

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["depths"] = list(self.depths)
        record["widths"] = list(self.widths)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ResNetConfig:
        _check_field_names(record)
        return cls(**record)

    def replace(self, **changes: Any) -> ResNetConfig:
        """A copy with some fields changed; unknown field names are a ModelConfigError, not a TypeError."""
        _check_field_names(changes)
        return dataclasses.replace(self, **changes)


def config_field_names() -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(ResNetConfig))


def _check_field_names(record: dict[str, Any]) -> None:
    names = config_field_names()
    for key in record:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid fields: {', '.join(names)}"
            raise ModelConfigError(f"unknown ResNet config field {key!r}{hint}")


def _check_choice(field: str, value: object, choices: tuple[str, ...]) -> None:
    # Exact membership: a typo must fail loudly, never fall back to a default.
    if not isinstance(value, str) or value not in choices:
        raise ModelConfigError(f"{field} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_positive_int(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelConfigError(f"{field} must be a positive integer, got {value!r}")


def _int_tuple(field: str, values: object) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)):
        raise ModelConfigError(f"{field} must be a sequence of positive integers, got {values!r}")
    if not values:
        raise ModelConfigError(f"{field} needs at least one stage")
    for value in values:
        _check_positive_int(field, value)
    return tuple(values)
