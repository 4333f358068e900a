"""Write the TensorRT API name lists the CPU tests check the project's TensorRT code against.

    .venv/bin/python tests/tensorrt_api/make_name_lists.py                 # the versions in VERSIONS
    .venv/bin/python tests/tensorrt_api/make_name_lists.py 10.16.1.11      # or the ones given

TensorRT's Python bindings wheels (``tensorrt-cu12-bindings``, ~1.3 MB, from the package registry) hold
the pybind11 module ``tensorrt_bindings/tensorrt.so`` and a small ``__init__.py``. They cannot be
imported without NVIDIA's libraries, but the binary carries the name of every class, method, property
and enum member as a C string, and the docstrings name the properties (``:ivar name:``). Each list is:

- every NUL-terminated string in the binary that is exactly an identifier (pybind11's registered names);
- every ``:ivar NAME:`` in its docstrings (a linker may merge a name into the tail of a longer one, e.g.
  ``execution_context`` into ``create_execution_context``: the test also accepts such tails);
- the top-level names ``__init__.py`` defines (``nptype``, ``__version__``, ...).

One name per line, sorted, with a header naming the wheel and its sha256.
"""

from __future__ import annotations

import ast
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "tensorrt-cu12-bindings"
# The oldest release the project supports, the newest 10.x and the newest 11.x.
VERSIONS = ("10.1.0", "10.16.1.11", "11.4.0.106")
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{1,80}")
_IVAR = re.compile(rb":ivar ([A-Za-z_][A-Za-z0-9_]*):")


def binary_names(data: bytes) -> set[str]:
    # Mangled C++ symbols (_Z...) are identifiers too, but never Python names.
    names = {chunk.decode() for chunk in data.split(b"\0") if _IDENTIFIER.fullmatch(chunk) and not chunk.startswith(b"_Z")}
    names.update(match.group(1).decode() for match in _IVAR.finditer(data))
    return names


def python_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return names


def download(version: str, into: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
                    "3.12", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "-d", str(into), f"{PACKAGE}=={version}"], check=True, capture_output=True)
    return next(into.glob(f"{PACKAGE.replace('-', '_')}-{version}-*.whl"))


def name_list(wheel: Path) -> tuple[set[str], str]:
    with zipfile.ZipFile(wheel) as archive:
        binary = next(name for name in archive.namelist() if re.fullmatch(r"tensorrt_bindings/tensorrt[^/]*\.so", name))
        names = binary_names(archive.read(binary)) | python_names(archive.read("tensorrt_bindings/__init__.py").decode())
    return names, hashlib.sha256(wheel.read_bytes()).hexdigest()


def main(versions: list[str]) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        for version in versions:
            wheel = download(version, Path(scratch))
            names, digest = name_list(wheel)
            header = [f"# {PACKAGE}=={version}: {wheel.name}", f"# sha256 {digest}",
                      "# written by tests/tensorrt_api/make_name_lists.py; one name per line"]
            (HERE / f"tensorrt-{version}.txt").write_text("\n".join(header + sorted(names)) + "\n")
            print(f"tensorrt-{version}.txt: {len(names)} names")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(VERSIONS)))
