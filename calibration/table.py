"""The calibration table: activation ranges per tensor, the one input every INT8 target is built from.

A table is computed once, on real images, by a named method, and saved as JSON next to the FP32 model
it was computed on (identified by the file's sha256). ONNX Runtime QDQ, TensorRT QDQ and OpenVINO INT8
are all generated from it, so a device can rebuild its INT8 artifact without recalibrating. JSON, never
pickle: a table is a file that travels between machines and must be safe to read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from edgeresnet.atomic import atomic_write_text
from edgeresnet.bundle import sha256_file
from edgeresnet.errors import CalibrationError

Method = Literal["minmax", "entropy", "percentile"]
METHODS: tuple[Method, ...] = ("minmax", "entropy", "percentile")

FORMAT = "edgeresnet.calibration-table"
FORMAT_VERSION = 1

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CalibrationTable:
    """Activation ranges ``(low, high)`` per tensor name, and what they were computed from.

    ``ranges`` holds the observed (or clipped, for entropy/percentile) range of each activation; the
    quantizers widen it to include 0 and derive scales and zero points from it, so two builds from the
    same table are identical. ``params`` records the method's knobs (percentile, histogram bins).
    """

    method: Method
    num_samples: int
    data_hash: str
    ranges: Mapping[str, tuple[float, float]]
    model_hash: str
    created_by: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CalibrationError(f"calibration method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples < 1:
            raise CalibrationError(f"calibration table needs a positive sample count, got {self.num_samples!r}")
        require_sha256("data_hash", self.data_hash)
        require_sha256("model_hash", self.model_hash)
        if not self.ranges:
            raise CalibrationError("calibration table has no activation ranges")
        ranges: dict[str, tuple[float, float]] = {}
        for name, pair in self.ranges.items():
            ranges[str(name)] = _checked_range(name, pair)
        # Read-only views: a frozen table whose dicts could be mutated would not be frozen.
        object.__setattr__(self, "ranges", MappingProxyType(dict(sorted(ranges.items()))))
        object.__setattr__(self, "created_by", MappingProxyType({str(k): str(v) for k, v in self.created_by.items()}))
        object.__setattr__(self, "params", MappingProxyType({str(k): float(v) for k, v in self.params.items()}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "params": dict(self.params),
            "num_samples": self.num_samples,
            "data_hash": self.data_hash,
            "model_hash": self.model_hash,
            "created_by": dict(self.created_by),
            "ranges": {name: [low, high] for name, (low, high) in self.ranges.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> CalibrationTable:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError("not an edgeresnet calibration table (missing format marker)")
        if data.get("format_version") != FORMAT_VERSION:
            raise CalibrationError(
                f"calibration table format version {data.get('format_version')!r} is not supported "
                f"(expected {FORMAT_VERSION})"
            )
        missing = [key for key in ("method", "num_samples", "data_hash", "model_hash", "ranges") if key not in data]
        if missing:
            raise CalibrationError(f"calibration table lacks {', '.join(missing)}")
        if not isinstance(data["ranges"], dict):
            raise CalibrationError("calibration table 'ranges' must map tensor names to [low, high]")
        created_by = data.get("created_by", {})
        params = data.get("params", {})
        if not isinstance(created_by, dict) or not isinstance(params, dict):
            raise CalibrationError("calibration table 'created_by' and 'params' must be objects")
        try:
            params = {key: float(value) for key, value in params.items()}
        except (TypeError, ValueError) as error:
            raise CalibrationError(f"calibration table has a non-numeric parameter: {error}") from None
        return cls(
            method=data["method"],
            num_samples=data["num_samples"],
            data_hash=data["data_hash"],
            ranges=data["ranges"],
            model_hash=data["model_hash"],
            created_by=created_by,
            params=params,
        )

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON atomically (temporary file in the same folder, then rename)."""
        # allow_nan=False: ranges are checked finite, and a table must stay strict JSON if that changes.
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CalibrationTable:
        """Read and validate a table written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise CalibrationError(f"calibration table not found: {path}")
        from edgeresnet.limits import read_json

        data = read_json(path, what="calibration table", error=CalibrationError)  # bounded in size and depth
        try:
            return cls.from_dict(data)
        except CalibrationError as error:
            raise CalibrationError(f"{path}: {error}") from None

    def check_model(self, onnx_path: str | Path, *, require_same_file: bool = True) -> None:
        """Refuse a model this table does not describe.

        Every tensor in the table must exist in the model. With ``require_same_file`` the model file
        must also be byte-identical (same sha256) to the one the table was computed on: ranges of a
        re-exported or retrained model with the same tensor names would be silently wrong.
        """
        import onnx

        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise CalibrationError(f"ONNX model not found: {onnx_path}")
        if require_same_file and sha256_file(onnx_path) != self.model_hash:
            raise CalibrationError(
                f"calibration table was computed on another model (sha256 {self.model_hash[:12]}…), "
                f"not {onnx_path.name}: recalibrate"
            )
        try:
            model = onnx.load(str(onnx_path), load_external_data=False)
        except Exception as error:  # onnx raises DecodeError/OSError variants for corrupt files
            raise CalibrationError(f"cannot read ONNX model {onnx_path}: {error}") from error
        names = {value for node in model.graph.node for value in (*node.input, *node.output)}
        names.update(value.name for value in model.graph.input)
        missing = sorted(set(self.ranges) - names)
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise CalibrationError(f"calibration table names tensors missing from {onnx_path.name}: {shown}")


def require_sha256(label: str, value: object) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise CalibrationError(f"{label} must be a lowercase sha256 hex digest, got {value!r}")
    return value


def _checked_range(name: object, pair: object) -> tuple[float, float]:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise CalibrationError(f"range of tensor {name!r} must be [low, high], got {pair!r}")
    try:
        low, high = float(pair[0]), float(pair[1])
    except (TypeError, ValueError):
        raise CalibrationError(f"range of tensor {name!r} is not numeric: {pair!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise CalibrationError(f"range of tensor {name!r} is not a finite low <= high pair: {pair!r}")
    return (low, high)
