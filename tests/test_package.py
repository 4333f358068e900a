"""Packaging: cheap imports, `python -m edgeresnet`, and every subpackage listed for wheels."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_and_help_do_not_import_torch() -> None:
    code = (
        "import sys, edgeresnet, edgeresnet.runtime, edgeresnet.calibration, edgeresnet.bench\n"
        "from click.testing import CliRunner\n"
        "from edgeresnet.cli import cli\n"
        "assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'openvino', 'tensorrt', 'nncf')))"
    )
    assert _run(code).strip() == "[]"


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "edgeresnet", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "edgeresnet" in result.stdout


def test_every_subpackage_is_listed_for_wheels() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = {"edgeresnet.export": "export", "edgeresnet.calibration": "calibration"}
    assert config["package-dir"] == mapping
    found = set()
    for init in ROOT.glob("**/__init__.py"):
        relative = init.parent.relative_to(ROOT)
        if relative.parts[0] == "edgeresnet":
            found.add(".".join(relative.parts))
        elif relative.parts[0] in ("export", "calibration"):
            found.add(".".join(("edgeresnet", *relative.parts)))
    assert found == listed
    assert not {"export", "calibration"} & listed, "stages must never install as top-level modules"
