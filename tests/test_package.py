"""Packaging: cheap imports, `python -m edgeresnet`, and every subpackage listed for wheels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

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
    result = subprocess.run([sys.executable, "-m", "edgeresnet", "--version"], check=False, capture_output=True, text=True)
    assert result.returncode == 0 and "edgeresnet" in result.stdout


def test_every_subpackage_is_listed_for_wheels() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert "package-dir" not in config, "the stages are reached through edgeresnet/export and edgeresnet/calibration"
    for stage in ("export", "calibration"):
        link = ROOT / "edgeresnet" / stage
        assert link.is_symlink() and link.resolve() == (ROOT / stage).resolve()
    found = set()
    for init in ROOT.glob("**/__init__.py"):
        relative = init.parent.relative_to(ROOT)
        if relative.parts[0] == "edgeresnet":
            found.add(".".join(relative.parts))
        elif relative.parts[0] in ("export", "calibration"):
            found.add(".".join(("edgeresnet", *relative.parts)))
    assert found == listed
    assert not {"export", "calibration"} & listed, "stages must never install as top-level modules"


BASE_DISTRIBUTIONS = ("numpy", "pillow", "click", "onnxruntime", "tqdm")


def test_the_base_install_is_the_runtime_and_the_build_side_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {requirement.split(">")[0].split("=")[0].split("[")[0].lower() for requirement in project["dependencies"]}
    assert base == set(BASE_DISTRIBUTIONS)
    extras = project["optional-dependencies"]
    build = {requirement.split(">")[0].lower() for requirement in extras["build"]}
    assert {"torch", "onnx", "onnxslim", "safetensors", "nncf", "matplotlib"} <= build
    assert "openvino" in extras and "tensorrt" in extras and "dev" in extras and "serve" in extras
    assert "-e '.[build,openvino,dev,serve]'" in (ROOT / "Makefile").read_text()


def test_a_build_command_without_torch_names_the_extra_in_one_line() -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"  # as if torch were not installed
        "from click.testing import CliRunner\n"
        "from edgeresnet.cli import cli\n"
        "r = CliRunner().invoke(cli, ['train', '--model', 'resnet20', '--data', 'fashion-mnist', '--output', 'x'])\n"
        "print(r.exit_code, r.output.strip())"
    )
    code_, message = _run(code).strip().split(" ", 1)
    assert code_ == "2" and len(message.splitlines()) == 1
    assert message.startswith("error: `edgeresnet train` needs the build tools") and "edgeresnet[build]" in message


def _installed_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


@pytest.mark.slow
def test_the_wheel_runs_verify_predict_and_benchmark_in_a_venv_without_torch(tmp_path: Path) -> None:
    from tests.runtime.tiny_bundle import LABELS, blob_images, make_bundle, tiny_model

    # Built from a copy, so setuptools' build/ and egg-info never land in the working tree.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "runs", "*.egg-info",
                                                                "__pycache__", ".pytest_cache", ".ruff_cache",
                                                                "results"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(source)], check=True, capture_output=True)
    wheel = next(wheels.glob("edgeresnet-*.whl"))
    venv = tmp_path / "runtime-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python, pip = venv / "bin" / "python", [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True)
    # The base dependencies at the versions of this environment (pip's cache, else PyPI); never torch.
    pins = [f"{name}=={_installed_version(name)}" for name in BASE_DISTRIBUTIONS]
    installed = subprocess.run([*pip, *pins], check=False, capture_output=True, text=True)
    if installed.returncode != 0:
        pytest.skip(f"cannot install the base dependencies here: {installed.stderr.strip().splitlines()[-1:]}")
    for absent in ("torch", "onnx", "nncf", "matplotlib"):
        probe = subprocess.run([str(python), "-c", f"import {absent}"], check=False, capture_output=True)
        assert probe.returncode != 0, f"{absent} must not be in the runtime-only venv"

    bundle = make_bundle(tmp_path / "bundle", tiny_model().onnx)
    int8 = make_bundle(tmp_path / "bundle-int8", tiny_model().qdq, precision="int8")
    images, labels = blob_images(40, seed=81)
    data = tmp_path / "data"
    for index, (image, label) in enumerate(zip(images, labels)):
        (data / LABELS[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(data / LABELS[label] / f"{index}.jpg", quality=95)
    (data / LABELS[0] / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    cli = str(venv / "bin" / "edgeresnet")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([cli, *args], check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)

    verify = run("verify", str(bundle))
    assert verify.returncode == 0 and "OK" in verify.stdout, verify.stderr
    predict = run("predict", str(bundle), str(data), "--output", str(tmp_path / "preds.csv"))
    assert predict.returncode == 0, predict.stderr
    rows = (tmp_path / "preds.csv").read_text().splitlines()
    assert len(rows) == 42 and sum("cannot decode image" in row for row in rows) == 1
    benchmark = run("-q", "benchmark", str(bundle), "--data", str(data), "--batch-sizes", "1", "--warmup", "1",
                    "--min-runs", "3", "--min-time", "0", "--images", str(data), "--report", str(tmp_path / "rep"))
    assert benchmark.returncode == 0, benchmark.stderr
    assert "onnxruntime" in benchmark.stdout and (tmp_path / "rep" / "benchmark.json").is_file()
    assert "Traceback" not in benchmark.stderr
    _benchmark_as_on_a_device(run, bundle, int8, data, tmp_path)


def _benchmark_as_on_a_device(run: Any, fp32: Path, int8: Path, data: Path, tmp_path: Path) -> None:
    """On the runtime-only install: no data → latency rows; with data → the FP32 bundle is the reference."""
    import json

    quick = ("--batch-sizes", "1,2", "--warmup", "1", "--min-runs", "3", "--min-time", "0")
    timed = run("benchmark", str(fp32), str(int8), *quick, "--mode", "both", "--report", str(tmp_path / "nodata"))
    assert timed.returncode == 0, timed.stderr
    assert "Traceback" not in timed.stderr and "recommended for latency at batch 2" in timed.stdout
    rows = json.loads((tmp_path / "nodata" / "benchmark.json").read_text())["rows"]
    assert {(row["artifact"], row["measure"]) for row in rows} == {
        (name, measure) for name in ("bundle", "bundle-int8") for measure in ("model", "throughput")}
    assert all(row["error"] is None and row["latency_p50_ms"] and row["top1"] is None for row in rows)
    measured = run("benchmark", str(fp32), str(int8), *quick, "--data", str(data), "--report", str(tmp_path / "data"))
    assert measured.returncode == 0, measured.stderr
    record = json.loads((tmp_path / "data" / "benchmark.json").read_text())
    assert all(row["error"] is None for row in record["rows"]) and {r["backend"] for r in record["rows"]} == {"onnxruntime"}
    reference = [row for row in record["rows"] if row["reference"]]
    assert reference and all(row["artifact"] == "bundle" for row in reference)
    assert all(row["drop_ci95_points"] is not None for row in record["rows"] if row["artifact"] == "bundle-int8")
    skipped = [line for line in measured.stdout.splitlines() if "PyTorch eager row skipped" in line]
    assert len(skipped) == 1 and "edgeresnet[build]" in skipped[0]


def test_a_plain_checkout_imports_the_stages_as_edgeresnet_modules(tmp_path: Path) -> None:
    # From the repository root on PYTHONPATH (no install), as a contributor or a static tool sees it.
    code = "import edgeresnet.export.workflow, edgeresnet.calibration.gate as g; print(g.__file__)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); {code}"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == (ROOT / "calibration" / "gate.py").resolve()
