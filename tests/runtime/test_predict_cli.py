"""`edgeresnet predict` through Click's CliRunner: tables, JSON, backends, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import edgeresnet.cli.deploy  # noqa: F401  (registers compile/predict/verify)
from edgeresnet.cli.core import cli
from edgeresnet.runtime.classifier import Classifier
from tests.runtime.tiny_bundle import LABELS, blob_images, make_bundle, tiny_model


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("predict") / "b", tiny_model().onnx)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("images")
    arrays = blob_images(3, seed=51)[0]
    paths = [root / "a.png", root / "b.jpg", root / "gray.png"]
    Image.fromarray(arrays[0]).save(paths[0])
    Image.fromarray(arrays[1]).save(paths[1], quality=95)
    Image.fromarray(arrays[2]).convert("L").resize((48, 40)).save(paths[2])  # grayscale, another size
    return paths


def test_json_output_matches_the_library(bundle: Path, image_files: list[Path]) -> None:
    result = CliRunner().invoke(
        cli, ["predict", str(bundle), *map(str, image_files), "--top-k", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    with Classifier.load(bundle) as classifier:
        expected = classifier.predict(image_files, top_k=2)
    assert [r["image"] for r in records] == [str(p) for p in image_files]
    assert [[p["index"] for p in r["predictions"]] for r in records] == [
        [p.index for p in e] for e in expected
    ]
    assert all(set(p) == {"index", "label", "probability"} for r in records for p in r["predictions"])


def test_table_output_lists_ranked_labels(bundle: Path, image_files: list[Path]) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            str(bundle),
            str(image_files[0]),
            "--top-k",
            "3",
            "--backend",
            "openvino",
            "--device",
            "cpu",
        ],
    )
    if "OpenVINO is not installed" in result.output:
        pytest.skip("openvino not installed")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == str(image_files[0]) and len(lines) == 4
    assert lines[1].lstrip().startswith("1. class-") and "%" in lines[1]
    assert all(any(label in line for label in LABELS) for line in lines[1:])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "error: image not found"),
        (
            lambda d: (d / "bad.png").write_bytes(b"not an image") and d / "bad.png",
            "error: cannot decode image",
        ),
    ],
    ids=["missing", "undecodable"],
)
def test_bad_images_are_one_line_errors(
    bundle: Path, image_files: list[Path], tmp_path: Path, make, message: str
) -> None:
    bad = make(tmp_path)
    result = CliRunner().invoke(cli, ["predict", str(bundle), str(image_files[0]), str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == "" and "Traceback" not in result.output  # no partial answers


def test_bad_bundles_and_options(bundle: Path, image_files: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["predict", str(tmp_path / "nope"), str(image_files[0])])
    assert missing.exit_code == 2 and "no bundle or model file" in missing.stderr
    backend = runner.invoke(cli, ["predict", str(bundle), str(image_files[0]), "--backend", "tflite"])
    assert backend.exit_code == 2 and "unknown backend 'tflite'" in backend.output
    device = runner.invoke(cli, ["predict", str(bundle), str(image_files[0]), "--device", "tpu"])
    assert device.exit_code == 2 and "runs on cpu, cuda, not 'tpu'" in device.stderr
    no_images = runner.invoke(cli, ["predict", str(bundle)])
    assert no_images.exit_code == 2 and "Missing argument" in no_images.output


def test_every_deploy_command_has_help() -> None:
    for command in ("compile", "predict", "verify"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output
