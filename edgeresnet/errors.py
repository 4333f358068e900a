"""The one exception root of edgeresnet.

Every user mistake (a wrong path, an unknown model, unreadable data, mismatched weights, a runtime
that is not installed) raises a subclass of :class:`EdgeResNetError`. The CLI turns these into a
one-line message and exit code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeResNetError(Exception):
    """Root of every error edgeresnet raises on purpose."""


# OpenVINO prefixes its messages with source-location lines ("Exception from src/...", "Check '...'
# failed at ..."); what the user needs comes after them.
_TRACE_PREFIXES = ("Exception from ", "Check '", "FrontEnd API failed")


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """An error's message on one line: its non-empty lines past any source-location lines, joined.

    Third-party messages run to a page (OpenVINO, NNCF) or spread the useful part over several lines
    (onnxruntime's "Got: 32 Expected: 28"); the result keeps that part and stays under ``limit``.
    """
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TRACE_PREFIXES)] or lines
    text = " ".join(useful) or (error if isinstance(error, str) else type(error).__name__)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class UnknownModelError(EdgeResNetError, KeyError):
    """An architecture name that is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ModelConfigError(EdgeResNetError, ValueError):
    """A model configuration that cannot be built (bad stem, shortcut, channels, input size)."""


class WeightsError(EdgeResNetError):
    """A weights file that is missing, unreadable, unsafe or does not fit the model."""


class DatasetError(EdgeResNetError):
    """A data source that is missing, empty, corrupt or does not fit the request."""


class CheckpointError(EdgeResNetError):
    """A checkpoint directory that is missing, incomplete or inconsistent."""


class ExportError(EdgeResNetError):
    """An export or compile step that cannot produce a valid artifact."""


class CalibrationError(EdgeResNetError):
    """Calibration data or a calibration table that cannot be used."""


class AccuracyGateError(ExportError):
    """An INT8 artifact that misses the accuracy budget even after the fallback."""


class BackendUnavailableError(EdgeResNetError):
    """A runtime or compiler (OpenVINO, TensorRT, CUDA) that is not installed or has no device."""


class BundleError(EdgeResNetError):
    """A bundle whose files or manifest fail their checks."""


class PlacementError(EdgeResNetError):
    """An output that cannot be written without losing something (the user's files, another run's)."""


def describe_os_error(error: OSError) -> str:
    """An OSError in words, naming the path, without Python's ``[Errno N]`` prefix."""
    import os

    reason = os.strerror(error.errno) if error.errno else one_line(str(error))
    where = f": {error.filename}" if error.filename else ""
    return f"{reason.lower()}{where}"
