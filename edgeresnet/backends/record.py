"""The Backend record: everything edgeresnet knows about one backend, in one place.

Each backend's home (``edgeresnet/backends/<name>/``) defines its record in its ``__init__.py`` and keeps
its code beside it: the runner, the export build and the compile step, named here by ``"module:attribute"``
inside the home and imported only when used. The record itself imports nothing beyond the standard
library, so the CLI builds its choices from the registry without loading numpy or a runtime.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from typing import Any

from edgeresnet.environment import package_version
from edgeresnet.errors import BackendUnavailableError, EdgeResNetError

_NAME = re.compile(r"[a-z][a-z0-9_]*")  # no "-": bundle directories are named "<backend>-<precision>"


@dataclass(frozen=True)
class Backend:
    """One backend.

    Args:
        name: how the CLI, manifests and bundle directories name it (``--target``, ``--backend``).
        title: how messages name it ("ONNX Runtime").
        home: the package holding its code; ``runner``, ``build`` and ``compile`` are ``"module:attribute"``
            inside it.
        runner: its :class:`~edgeresnet.runtime.base.Runner` class.
        suffixes: model-file suffixes its runner reads; the first backend listing a suffix is its default.
        model_files: the bundle file names its model takes (from :mod:`edgeresnet.bundle.layout`).
        devices: device names it accepts, lower-case, without an index (``cuda:1`` counts as ``cuda``).
        default_device: what ``--device auto`` means for it.
        packages: distributions whose installed version describes it (first found wins).
        runtime_module: the Python module its runner needs (checked by ``verify`` before loading).
        extra: the ``pyproject.toml`` extra that installs it (``None``: part of the base install).
        install_note: said after the install command (where it must run).
        export_precisions: the bundles ``export`` writes for it; empty when ``export`` has no such target.
        export_requires: modules its export step needs (checked before any work).
        build: ``(context, precision) -> BuiltArtifact``, the export step.
        compile_precisions: what ``compile --target NAME`` builds; empty when it is no compile target.
        compile: ``(source, precision, work, device, options) -> Compiled``, the compile step.
        verify: ``(report, manifest, device) -> None``, checks ``verify`` runs for this backend before loading
            the model (TensorRT: the engine's TensorRT version and GPU); ``None``: the installed version.
    """

    name: str
    title: str
    home: str
    runner: str
    suffixes: tuple[str, ...] = ()
    model_files: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    default_device: str = "cpu"
    packages: tuple[str, ...] = ()
    runtime_module: str = ""
    extra: str | None = None
    install_note: str = ""
    export_precisions: tuple[str, ...] = ()
    export_requires: tuple[str, ...] = ()
    build: str | None = None
    compile_precisions: tuple[str, ...] = ()
    compile: str | None = None
    verify: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise EdgeResNetError(f"backend names are lower-case words without '-', not {self.name!r}")
        if self.export_precisions and self.build is None:
            raise EdgeResNetError(f"backend {self.name} lists export precisions but no build step")
        if self.compile_precisions and self.compile is None:
            raise EdgeResNetError(f"backend {self.name} lists compile precisions but no compile step")

    @property
    def install_hint(self) -> str:
        """The one way to install it, as messages say it."""
        command = f"pip install 'edgeresnet[{self.extra}]'" if self.extra else f"pip install {self.packages[0]}"
        return f"{command} {self.install_note}".strip()

    def missing(self) -> list[str]:
        """The modules its export step needs that are not installed here."""
        return [module for module in self.export_requires if importlib.util.find_spec(module) is None]

    def runner_class(self) -> Any:
        # Runner modules import their runtime lazily, so failing here means a broken install.
        try:
            return self.load(self.runner)
        except ImportError as error:
            raise BackendUnavailableError(f"the {self.name} backend cannot be imported: {error}") from error

    def builder(self) -> Any:
        if self.build is None:
            raise EdgeResNetError(f"{self.name} is not an export target")
        return self.load(self.build)

    def compiler(self) -> Any:
        if self.compile is None:
            raise EdgeResNetError(f"{self.name} is not a compile target")
        return self.load(self.compile)

    def installed(self) -> bool:
        """Whether its runner's runtime can be imported here."""
        return not self.runtime_module or importlib.util.find_spec(self.runtime_module) is not None

    def load(self, reference: str) -> Any:
        """``"module:attribute"``, the module inside the home (or a full dotted name), imported now."""
        module, _, attribute = reference.partition(":")
        return getattr(importlib.import_module(module if "." in module else f"{self.home}.{module}"), attribute)

    def describe(self) -> dict[str, Any]:
        """What it is and whether it is installed here: for ``edgeresnet backends``-style listings and reports."""
        version = next((v for v in map(package_version, self.packages) if v), None)
        return {"name": self.name, "title": self.title, "suffixes": list(self.suffixes),
                "model_files": list(self.model_files), "devices": list(self.devices),
                "export_precisions": list(self.export_precisions),
                "compile_precisions": list(self.compile_precisions), "installed": version,
                "install": self.install_hint}
