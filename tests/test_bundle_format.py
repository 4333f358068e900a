"""The bundle format: vocabulary, typed records, version 2, the migration from 1, the shipped schema."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeresnet.bundle import FORMAT_VERSION, Manifest, read_manifest, schema_problems
from edgeresnet.bundle.schema import builtin_schema_problems, manifest_schema
from edgeresnet.errors import BundleError
from edgeresnet.verify import verify_bundle

V1_BUNDLE = Path(__file__).parent / "fixtures" / "bundle_v1"  # written by the version-1 writer


def test_a_version_1_bundle_still_loads_verifies_and_runs(tmp_path: Path) -> None:
    from edgeresnet.runtime.classifier import Classifier

    bundle = Path(shutil.copytree(V1_BUNDLE, tmp_path / "v1"))
    raw = json.loads((bundle / "manifest.json").read_text())
    assert raw["format_version"] == 1 and "extra" in raw and isinstance(raw["parity"], dict)
    manifest = read_manifest(bundle)
    assert manifest.format_version == 1  # as read; written again it would be version 2
    assert manifest.to_dict()["format_version"] == FORMAT_VERSION == 2
    assert manifest.provenance.checkpoint == "/home/user/runs/tiny"
    assert manifest.extra == {}  # the facts moved to typed fields
    assert manifest.parity[0].reference == "pytorch_vs_onnx_fp32" and manifest.parity[0].top1_agreement_pct == 100.0
    assert manifest.accuracy is not None and manifest.accuracy.fp32 is not None
    assert manifest.accuracy.fp32.top1 == 75.0 and manifest.accuracy.model == manifest.accuracy.fp32
    report = verify_bundle(bundle)
    assert report.passed, report.failures
    assert any("after migration from format 1" in check for check in report.checks)
    with Classifier.load(bundle) as classifier:
        assert len(classifier.predict(_image(tmp_path), top_k=2)[0]) == 2


def _image(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "x.png"
    Image.new("RGB", (20, 10), (10, 200, 30)).save(path)
    return path


def test_an_edit_to_a_version_1_manifest_is_still_caught(tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(V1_BUNDLE, tmp_path / "v1"))
    record = json.loads((bundle / "manifest.json").read_text())
    record["labels"][0] = "tiger"
    (bundle / "manifest.json").write_text(json.dumps(record))
    assert any("manifest.json was modified" in failure for failure in verify_bundle(bundle).failures)


def test_version_2_round_trips_through_json(tmp_path: Path) -> None:
    manifest = read_manifest(V1_BUNDLE)
    record = json.loads(json.dumps(manifest.to_dict()))
    again = Manifest.from_dict(record)
    assert again.to_dict() == record
    assert schema_problems(record) == []


def test_a_newer_format_is_refused_with_the_fix() -> None:
    record = json.loads((V1_BUNDLE / "manifest.json").read_text())
    record["format_version"] = 3
    with pytest.raises(BundleError, match="newer than this edgeresnet reads .* upgrade edgeresnet"):
        Manifest.from_dict(record)


def test_the_schema_ships_as_package_data() -> None:
    from importlib import resources

    assert resources.files("edgeresnet.bundle").joinpath("schema.json").is_file()
    assert manifest_schema()["properties"]["format_version"] == {"const": 2}


def _v2_record() -> dict:
    return json.loads(json.dumps(read_manifest(V1_BUNDLE).to_dict()))


BREAKAGES = [
    ("precision", lambda r: r.update(precision="int4")),
    ("target", lambda r: r.update(target="coreml")),
    ("labels", lambda r: r.update(labels=[])),
    ("labels", lambda r: r.update(labels=[1, 2])),
    ("input", lambda r: r["input"].update(shape=[None, 3, 8])),
    ("files", lambda r: r["files"].update({"model.onnx": "not-a-hash"})),
    ("agreement_pct", lambda r: r["accuracy"].update(agreement_pct=140.0)),
    ("format_version", lambda r: r.update(format_version=True)),
    ("parity", lambda r: r.update(parity=[{"reference": "x"}])),
    ("golden", lambda r: r.pop("golden")),
]


@pytest.mark.parametrize(("where", "breakage"), BREAKAGES, ids=[f"{w}-{i}" for i, (w, _) in enumerate(BREAKAGES)])
def test_the_schema_catches_each_breakage(where: str, breakage: object) -> None:
    record = _v2_record()
    breakage(record)  # type: ignore[operator]
    problems = schema_problems(record)
    assert problems and any(where in problem for problem in problems), problems


@pytest.mark.parametrize(("where", "breakage"), BREAKAGES, ids=[f"{w}-{i}" for i, (w, _) in enumerate(BREAKAGES)])
def test_the_builtin_validator_agrees_with_jsonschema(where: str, breakage: object) -> None:
    pytest.importorskip("jsonschema")
    import jsonschema

    record = _v2_record()
    assert builtin_schema_problems(record) == [] and jsonschema.Draft202012Validator(manifest_schema()).is_valid(record)
    broken = copy.deepcopy(record)
    breakage(broken)  # type: ignore[operator]
    assert bool(builtin_schema_problems(broken)) == (not jsonschema.Draft202012Validator(manifest_schema()).is_valid(broken))


def test_verify_reports_a_schema_breakage_that_the_reader_tolerates(tmp_path: Path) -> None:
    from tests.runtime.tiny_bundle import rewrite_manifest

    bundle = Path(shutil.copytree(V1_BUNDLE, tmp_path / "b"))
    record = _v2_record()
    record["golden"]["count"] = 0  # readable, but not a bundle any tool should trust
    (bundle / "manifest.json").write_text(json.dumps(record))
    rewrite_manifest(bundle, lambda r: None)
    report = verify_bundle(bundle)
    assert any("breaks the bundle schema" in failure and "golden.count" in failure for failure in report.failures)


def test_the_vocabulary_is_one_definition_and_cheap_to_import() -> None:
    code = ("import sys; from edgeresnet.bundle import TARGETS, PRECISIONS, CALIB_METHODS; "
            "import edgeresnet.cli.export, edgeresnet.compile as c, edgeresnet.export.job as w; "
            "from edgeresnet.bundle import vocabulary as v; "
            "assert c.PRECISIONS is v.PRECISIONS and w.CALIB_METHODS is v.CALIB_METHODS; "
            "print(TARGETS, PRECISIONS, CALIB_METHODS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "('onnxruntime', 'openvino', 'tensorrt')" in out
    cheap = subprocess.run(
        [sys.executable, "-c", ("import sys, edgeresnet.bundle.vocabulary, edgeresnet.bundle; "
                               "print(sorted(m for m in ('numpy', 'PIL', 'onnx', 'torch') if m in sys.modules))")],
        capture_output=True, text=True, check=True).stdout.strip()
    assert cheap == "[]"
