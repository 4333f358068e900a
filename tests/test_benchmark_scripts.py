"""The benchmark scripts stay in step with the library: every name they import from edgeresnet exists.

They run by hand, not in the suite, so an API change (a renamed record, a moved function) would otherwise
be found only when someone reruns a benchmark; the imports inside their functions count too.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _imports(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "edgeresnet":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda path: path.name)
def test_every_name_a_benchmark_imports_exists(script: Path) -> None:
    missing = []
    for line, module_name, name in _imports(script):
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ImportError:
                missing.append(f"{script.name}:{line} from {module_name} import {name}")
    assert not missing
