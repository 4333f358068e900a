"""The import graph: no circle, function-local imports only for heavy dependencies, cheap entry points.

The graph is read from the source with ``ast`` (module-level and function-local imports alike, as static
tools see them), over ``edgeresnet/`` with ``export/`` and ``calibration/`` as ``edgeresnet.export`` and
``edgeresnet.calibration``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a function-local import may defer: these (and project modules that load them at import time).
HEAVY = frozenset({"numpy", "PIL", "torch", "torchvision", "onnx", "onnxruntime", "onnxslim", "openvino", "nncf",
                   "tensorrt", "cuda", "matplotlib", "safetensors", "modelopt", "tritonclient", "pytriton",
                   "kserve", "jsonschema", "rich", "hypothesis"})
# Local imports of light modules still waiting for their owners' refactors (each names its reason).
ALLOWED_LOCAL: dict[tuple[str, str], str] = {}


@cache
def _modules() -> dict[str, Path]:
    roots = {"edgeresnet": ROOT / "edgeresnet", "edgeresnet.export": ROOT / "export",
             "edgeresnet.calibration": ROOT / "calibration"}
    found = {}
    for package, directory in roots.items():
        for path in directory.rglob("*.py"):
            parts = [p for p in path.relative_to(directory).with_suffix("").parts if p != "__init__"]
            if package == "edgeresnet" and parts and parts[0] in ("export", "calibration"):
                continue  # the symlinks: the same files, counted under their stage roots
            found[".".join([package, *parts])] = path
    return found


@cache
def _imports(name: str) -> tuple[frozenset[str], list[tuple[str, int]]]:
    """(module-level imports, function-local imports with their line), resolved to module names."""
    modules, path = _modules(), _modules()[name]
    is_package = path.name == "__init__.py"
    top: set[str] = set()
    local: list[tuple[str, int]] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            parts = name.split(".")[: len(name.split(".")) - (0 if is_package else 1)]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else _lazy(base, a.name) for a in node.names]

    def walk(body: list[ast.stmt], in_function: bool) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in targets(node):
                    (local.append((target, node.lineno)) if in_function else top.add(target))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                walk(node.body, True)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    walk([s for s in getattr(node, field, []) if isinstance(s, ast.stmt | ast.ExceptHandler)],
                         in_function)

    walk(ast.parse(path.read_text()).body, False)
    return frozenset(top), local


def _lazy(package: str, attribute: str) -> str:
    """A name a lazily loading package (``__getattr__``) hands out counts as heavy: it is loaded on use."""
    path = _modules().get(package)
    if path is not None and path.name == "__init__.py" and "def __getattr__" in path.read_text():
        source = path.read_text()
        cheap = {n for n in ("layout", "vocabulary") if f"edgeresnet.bundle.{n} import" in source}
        return package if cheap and attribute.isupper() else "torch"
    return package


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _loads_heavy(name: str) -> bool:
    """Whether importing ``name`` loads a heavy dependency (its module-level imports, transitively)."""
    return any(other.split(".")[0] in HEAVY for other in _closure(name) | {name})


@cache
def _closure(name: str) -> frozenset[str]:
    """Every module importing ``name`` loads (its parents' and its own module-level imports, transitively)."""
    seen: set[str] = set()
    todo = [name, *_parents(name)]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in _modules():
            todo += [*_imports(current)[0], *_parents(current)]
    return frozenset(seen - {name})


def test_function_local_imports_only_defer_heavy_dependencies() -> None:
    wrong = []
    for name, path in _modules().items():
        _, local = _imports(name)
        for target, line in local:
            if target.split(".")[0] != "edgeresnet":
                continue
            if _loads_heavy(target) and target not in _closure(name):
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if (str(path.relative_to(ROOT)), target) not in ALLOWED_LOCAL:
                wrong.append(f"{where} imports {target} inside a function (light, or loaded already)")
    assert not wrong, "\n".join(wrong)


def test_the_import_graph_has_no_circle() -> None:
    modules = _modules()
    edges = {name: {t for t in _imports(name)[0] | {t for t, _ in _imports(name)[1]} if t in modules and t != name}
             for name in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in modules:
        if name not in index:
            visit(name)
    assert circles == []


def test_entry_points_and_the_backend_registry_load_nothing_heavy() -> None:
    code = (
        "import sys, edgeresnet, edgeresnet.backends, edgeresnet.bundle.vocabulary\n"
        "from click.testing import CliRunner\n"
        "from edgeresnet.cli import cli\n"
        "assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(cli, ['export', '--help']).exit_code == 0\n"
        "edgeresnet.backends.all_backends()\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY)!r}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
