"""The names in NVIDIA's TensorRT bindings (committed lists, see ``make_name_lists.py``), the TensorRT
names the project's code uses, and the stand-ins the tests use for TensorRT, which refuse any name the
real bindings lack."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.tensorrt_api.make_name_lists import VERSIONS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The code that calls TensorRT.
# TensorRT's home holds all of it; its export and verify steps call no TensorRT (their "context" is the export's).
_HOME = REPO / "edgeresnet" / "backends" / "tensorrt"
TENSORRT_CODE = tuple(_HOME / f"{name}.py" for name in ("build", "runner", "engine", "compile"))
# Variables that hold the tensorrt module or TensorRT objects in that code.
_MODULE_NAMES = frozenset({"trt", "_trt"})
_OBJECT_NAMES = frozenset({"builder", "network", "parser", "config", "profile", "runtime", "engine", "context",
                           "inspector", "cache", "_engine", "_context", "tensor", "plan"})


@functools.cache
def api_names(version: str) -> frozenset[str]:
    """Every name ``version``'s bindings define, with the tails a linker may have merged names into."""
    lines = (HERE / f"tensorrt-{version}.txt").read_text().splitlines()
    names = [line for line in lines if line and not line.startswith("#")]
    return frozenset(name[start:] for name in names for start in range(len(name)))


def defined(name: str, version: str) -> bool:
    return name in api_names(version)


def versions_defining(name: str) -> list[str]:
    return [version for version in VERSIONS if defined(name, version)]


@dataclass(frozen=True)
class Use:
    """One TensorRT name the code uses; ``detected`` where it is looked up with getattr/hasattr."""

    name: str
    where: str
    detected: bool


def used_names(paths: Iterable[Path] = TENSORRT_CODE) -> list[Use]:
    """TensorRT names in ``paths``: ``trt.A.B`` chains, attributes of TensorRT objects, and the names given
    to getattr/hasattr/setattr on them (feature detection: one version defining them is enough)."""
    uses = []
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute):
                chain, root = _chain(node)
                if root in _MODULE_NAMES and chain:
                    uses += [Use(part, where, False) for part in chain]
                elif root in _OBJECT_NAMES and len(chain) >= 1:
                    uses.append(Use(chain[0], where, False))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                _, root = _chain(node.args[0]) if isinstance(node.args[0], ast.Attribute) else ([], _name(node.args[0]))
                if root in _MODULE_NAMES | _OBJECT_NAMES:
                    uses.append(Use(node.args[1].value, where, True))
    # An outer chain contains the inner ones (trt.A.B also walks trt.A): keep each name once per place.
    return sorted(set(uses), key=lambda use: (use.where, use.name))


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def _chain(node: ast.Attribute) -> tuple[list[str], str | None]:
    """``trt.A.B`` → (["A", "B"], "trt"); ``self._trt.A`` → (["A"], "_trt")."""
    parts: list[str] = []
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        parts.insert(0, current.attr)
        current = current.value
        if isinstance(current, ast.Attribute) and isinstance(current.value, ast.Name) and current.value.id == "self":
            return parts, current.attr
    return parts, _name(current)


# --- stand-ins -----------------------------------------------------------------------------------------


class StrictFake:
    """A stand-in for a TensorRT object that has only names the real bindings of ``VERSION`` define.

    A subclass's public methods and class attributes are checked when it is created, and setting an
    attribute the bindings do not define raises AttributeError, as the real pybind11 objects do
    (a SimpleNamespace would accept any misspelling).
    """

    VERSION = VERSIONS[-1]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = [name for name in vars(cls) if not name.startswith("_") and name != "VERSION"
                   and not defined(name, cls.VERSION)]
        if unknown:
            raise TypeError(f"fake {cls.__name__} defines {unknown}, which TensorRT {cls.VERSION} does not have")

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and not defined(name, type(self).VERSION):
            raise AttributeError(f"TensorRT {type(self).VERSION} objects have no attribute {name!r}")
        object.__setattr__(self, name, value)


def fake_module(version: str, **members: Any) -> Any:
    """A stand-in ``tensorrt`` module with ``members``, every one a name ``version`` defines."""
    unknown = [name for name in members if not defined(name, version)]
    if unknown:
        raise TypeError(f"TensorRT {version} has no {unknown}")

    class Module(StrictFake):
        VERSION = version

    module = Module()
    object.__setattr__(module, "__version__", version)
    for name, value in members.items():
        setattr(module, name, value)
    return module


def fake_namespace(version: str, **members: Any) -> Any:
    """A stand-in enum or plain object: attributes only of names ``version`` defines."""
    return fake_module(version, **members)
