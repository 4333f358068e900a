"""`edgeresnet predict` through Click's CliRunner: tables, JSON, backends, and one-line errors."""

from __future__ import annotations

import csv
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


def test_a_missing_path_stops_the_run_before_it_starts(bundle: Path, image_files: list[Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["predict", str(bundle), str(image_files[0]), str(tmp_path / "missing.png")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: image not found") and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == "" and "Traceback" not in result.output


def test_an_undecodable_file_is_an_error_row_and_the_others_are_classified(
    bundle: Path, image_files: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = CliRunner().invoke(cli, ["predict", str(bundle), str(image_files[0]), str(bad), "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["image"] for r in records] == [str(image_files[0]), str(bad)]
    assert records[0]["error"] is None and len(records[0]["predictions"]) == 5
    assert records[1]["predictions"] == [] and records[1]["error"].startswith("cannot decode image")
    assert "1 of 2 images could not be classified" in result.stderr
    only_bad = CliRunner().invoke(cli, ["predict", str(bundle), str(bad)])
    assert only_bad.exit_code == 2 and "none of the 1 images could be classified" in only_bad.stderr


def _folder(root: Path) -> list[Path]:
    arrays = blob_images(5, seed=61)[0]
    paths = [root / "a" / "x.png", root / "a" / "deep" / "y.jpg", root / "b" / "z.png", root / "c.png"]
    for array, path in zip(arrays, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)
    (root / "notes.txt").write_text("not an image")
    (root / "a" / ".hidden.png").write_bytes(b"")
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    return sorted([*paths, root / "b" / "broken.jpg"])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_folder_is_searched_recursively_into_one_row_per_image(
    bundle: Path, tmp_path: Path, suffix: str
) -> None:
    expected = _folder(tmp_path / "photos")
    output = tmp_path / f"preds{suffix}"
    result = CliRunner().invoke(
        cli, ["predict", str(bundle), str(tmp_path / "photos"), "--output", str(output), "--batch-size", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "4 of 5 images classified" in result.stderr
    if suffix == ".csv":
        with output.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        images, errors, labels = [r["image"] for r in rows], [r["error"] for r in rows], [r["label"] for r in rows]
    else:
        rows = [json.loads(line) for line in output.read_text().splitlines()]
        images, errors = [r["image"] for r in rows], [r["error"] or "" for r in rows]
        labels = [r["predictions"][0]["label"] if r["predictions"] else "" for r in rows]
    assert sorted(images) == [str(p) for p in expected]
    broken = images.index(str(tmp_path / "photos" / "b" / "broken.jpg"))
    assert errors[broken].startswith("cannot decode image") and labels[broken] == ""
    with Classifier.load(bundle) as classifier:
        direct = {str(p): classifier.predict(p, top_k=1)[0][0].label for p in expected if p.name != "broken.jpg"}
    assert {image: label for image, label in zip(images, labels) if label} == direct


def test_an_existing_output_is_kept_without_overwrite(bundle: Path, image_files: list[Path], tmp_path: Path) -> None:
    output = tmp_path / "preds.csv"
    output.write_text("mine\n")
    refused = CliRunner().invoke(cli, ["predict", str(bundle), str(image_files[0]), "-o", str(output)])
    assert refused.exit_code == 2 and "pass --overwrite" in refused.stderr and output.read_text() == "mine\n"
    replaced = CliRunner().invoke(cli, ["predict", str(bundle), str(image_files[0]), "-o", str(output), "--overwrite"])
    assert replaced.exit_code == 0 and output.read_text().startswith("image,label,index")
    wrong = CliRunner().invoke(cli, ["predict", str(bundle), str(image_files[0]), "-o", str(tmp_path / "p.xlsx")])
    assert wrong.exit_code == 2 and "must end in .csv or .jsonl" in wrong.stderr


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
