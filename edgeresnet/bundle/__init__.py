"""Bundles: what every export and compile produces, and the one contract between stages and machines.

A bundle is a directory holding the model file(s), ``manifest.json`` and ``golden.npz`` (a few
preprocessed inputs with the outputs they must give). This package owns the whole format:

- :mod:`~edgeresnet.bundle.vocabulary` — targets, precisions, calibration methods (cheap to import);
- :mod:`~edgeresnet.bundle.layout` — the file names and the format version;
- :mod:`~edgeresnet.bundle.records` — the manifest's parts as typed records;
- :mod:`~edgeresnet.bundle.manifest` — the manifest, and the migration from version 1;
- :mod:`~edgeresnet.bundle.files` — assembling and placing bundle directories;
- :mod:`~edgeresnet.bundle.reader` — the one door in: names resolved inside the bundle, bytes hashed as read;
- :mod:`~edgeresnet.bundle.schema` — the JSON Schema shipped as ``schema.json`` and its validator.

``docs/bundle-format.md`` documents it for other tools. Importing this package is cheap: the records
(numpy, Pillow through the preprocessing spec) load on first use of one of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgeresnet.bundle.layout import (
    BUNDLE_FORMAT,
    CALIBRATION_FILE,
    FORMAT_VERSION,
    FP32_ONNX,
    GOLDEN_FILE,
    MANIFEST_FILE,
    TIMING_CACHE_FILE,
)
from edgeresnet.bundle.vocabulary import (
    CALIB_METHODS,
    COMPILE_TARGETS,
    PRECISIONS,
    TARGETS,
    CalibMethod,
    CompileTarget,
    Precision,
    Target,
)

if TYPE_CHECKING:
    from edgeresnet.bundle.files import (
        assemble_bundle,
        check_files,
        read_golden,
        read_manifest,
        read_manifest_record,
        sha256_file,
        write_bundle,
    )
    from edgeresnet.bundle.manifest import Manifest, migrate_v1
    from edgeresnet.bundle.model_bytes import ModelBytes
    from edgeresnet.bundle.reader import BundleReader
    from edgeresnet.bundle.records import (
        AccuracyRecord,
        CalibrationRecord,
        EngineRecord,
        InputSpec,
        ParityRecord,
        Provenance,
        QuantizationRecord,
        TopK,
    )
    from edgeresnet.bundle.schema import schema_problems

_LAZY = {
    **dict.fromkeys(("assemble_bundle", "check_files", "read_golden", "read_manifest", "read_manifest_record",
                     "sha256_file", "write_bundle"), "edgeresnet.bundle.files"),
    **dict.fromkeys(("AccuracyRecord", "CalibrationRecord", "EngineRecord", "InputSpec", "ParityRecord",
                     "Provenance", "QuantizationRecord", "TopK"), "edgeresnet.bundle.records"),
    **dict.fromkeys(("Manifest", "migrate_v1"), "edgeresnet.bundle.manifest"),
    "BundleReader": "edgeresnet.bundle.reader",
    "ModelBytes": "edgeresnet.bundle.model_bytes",
    "schema_problems": "edgeresnet.bundle.schema",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeresnet.bundle' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [  # noqa: RUF022 (grouped: cheap names, then the lazily loaded ones)
    "BUNDLE_FORMAT", "CALIBRATION_FILE", "CALIB_METHODS", "COMPILE_TARGETS", "FORMAT_VERSION", "FP32_ONNX",
    "GOLDEN_FILE", "MANIFEST_FILE", "PRECISIONS", "TARGETS", "TIMING_CACHE_FILE", "CalibMethod",
    "CompileTarget", "Precision", "Target",
    "assemble_bundle", "check_files", "read_golden", "read_manifest", "read_manifest_record", "sha256_file",
    "write_bundle", "AccuracyRecord", "CalibrationRecord", "EngineRecord", "InputSpec", "Manifest",
    "ParityRecord", "Provenance", "QuantizationRecord", "TopK", "migrate_v1", "schema_problems",
    "BundleReader", "ModelBytes",
]
