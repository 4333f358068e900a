"""The calibration table: JSON round trip, validation and the model check."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

from edgeresnet.calibration import CalibrationTable, sha256_file
from edgeresnet.errors import CalibrationError
from tests.calibration.conftest import default_mode


def test_save_load_round_trip_is_exact(tables: dict, tmp_path: Path) -> None:
    table = tables["entropy"]
    path = table.save(tmp_path / "calib" / "table.json")
    loaded = CalibrationTable.load(path)
    assert loaded == table
    assert loaded.ranges == table.ranges  # floats survive JSON bit for bit
    assert [p.name for p in path.parent.iterdir()] == ["table.json"]  # no temporary file left behind
    assert stat.S_IMODE(path.stat().st_mode) == default_mode()  # not the 0600 of a bare mkstemp
    assert json.loads(path.read_text())["format"] == "edgeresnet.calibration-table"


def test_table_records_its_provenance(tables: dict, fp32_onnx: Path, calib_batches: list) -> None:
    from tests.calibration.conftest import data_hash

    table = tables["percentile"]
    assert table.num_samples == sum(len(batch) for batch in calib_batches) == 256
    assert table.model_hash == sha256_file(fp32_onnx)
    assert table.data_hash == data_hash(calib_batches)
    assert table.params["percentile"] == 99.999 and table.params["symmetric"] == 1  # ORT's create_calibrator defaults
    assert {"onnxruntime", "onnx", "numpy", "edgeresnet"} <= set(table.created_by)


def test_shared_definitions_are_re_exported_not_copied() -> None:
    import edgeresnet.accuracy
    import edgeresnet.bundle
    import edgeresnet.calibration

    assert edgeresnet.calibration.sha256_file is edgeresnet.bundle.sha256_file
    assert edgeresnet.calibration.Accuracy is edgeresnet.accuracy.Accuracy
    assert edgeresnet.calibration.table.sha256_file is edgeresnet.bundle.sha256_file


def test_table_is_read_only(tables: dict) -> None:
    table = tables["minmax"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.method = "entropy"  # type: ignore[misc]
    with pytest.raises(TypeError):
        table.ranges["input"] = (0.0, 1.0)  # type: ignore[index]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not an edgeresnet calibration table"),
        ('{"format": "edgeresnet.calibration-table", "format_version": 99}', "format version 99"),
        ('{"format": "edgeresnet.calibration-table", "format_version": 1, "method": "minmax"}', "lacks"),
    ],
)
def test_corrupt_or_foreign_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "table.json"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=message) as caught:
        CalibrationTable.load(path)
    assert "\n" not in str(caught.value)


def test_missing_file_and_bad_values_are_refused(tables: dict, tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="not found"):
        CalibrationTable.load(tmp_path / "absent.json")
    data = tables["minmax"].to_dict()
    data["ranges"]["input"] = [2.0, 1.0]
    path = tmp_path / "inverted.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="low <= high"):
        CalibrationTable.load(path)
    data = tables["minmax"].to_dict()
    data["method"] = "magic"
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="method must be one of"):
        CalibrationTable.load(path)


def test_check_model_refuses_other_models_and_unknown_tensors(tables: dict, fp32_onnx: Path, tmp_path: Path) -> None:
    table = tables["minmax"]
    table.check_model(fp32_onnx)
    import onnx

    other = tmp_path / "other.onnx"

    model = onnx.load(str(fp32_onnx))
    model.doc_string = "re-exported"
    onnx.save(model, str(other))
    with pytest.raises(CalibrationError, match="another model"):
        table.check_model(other)
    table.check_model(other, require_same_file=False)  # same tensor names: fine when asked to
    stray = dataclasses.replace(table, ranges={**table.ranges, "/not/in/the/model": (0.0, 1.0)})
    with pytest.raises(CalibrationError, match="/not/in/the/model"):
        stray.check_model(fp32_onnx)
