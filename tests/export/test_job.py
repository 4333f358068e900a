"""`ExportJob`: declared once with its defaults and checks; the CLI builds it and the API takes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edgeresnet.bundle.vocabulary import DEFAULT_MAX_ACCURACY_DROP
from edgeresnet.cli import cli
from edgeresnet.errors import ExportError
from edgeresnet.export.job import ExportJob


def test_defaults_and_normalised_types() -> None:
    job = ExportJob(model=Path("runs/r20"), output="out", targets=["onnxruntime"],  # type: ignore[arg-type]
                    calib_table="t.json", int8=True)  # type: ignore[arg-type]
    assert job.model == "runs/r20" and job.output == Path("out") and job.calib_table == Path("t.json")
    assert job.targets == ("onnxruntime",) and job.max_accuracy_drop == DEFAULT_MAX_ACCURACY_DROP
    assert job.calib_method == "auto" and job.opset == 17 and not job.strict_gate


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_accuracy_drop": -1.0}, "max_accuracy_drop= must be a finite number of points >= 0"),
        ({"max_accuracy_drop": float("nan")}, "max_accuracy_drop= must be a finite number"),
        ({"calib_size": 0, "int8": True}, "calib_size= must be an integer >= 1, got 0"),
        ({"opset": 13}, "opset= must be an integer >= 17"),
        ({"in_chans": 2}, "in_chans= must be 1 or 3"),
        ({"calib_method": "magic", "int8": True}, "unknown calib_method= 'magic'"),
        ({"targets": ("tflite",)}, "unknown target 'tflite'"),
        ({"strict_gate": True}, "strict_gate= need int8=True"),
        ({"calib_table": "t.json", "calib_size": 8}, "calib_size=, calib_table= need int8=True"),
    ],
)
def test_bad_values_are_refused_in_keyword_terms(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError) as caught:
        ExportJob(model="runs/r20", output=Path("out"), **options)
    assert message in str(caught.value) and "--" not in str(caught.value)


def test_keyword_form_refuses_an_unknown_option_with_a_hint(tmp_path: Path) -> None:
    import edgeresnet

    with pytest.raises(ExportError, match=r"unknown option max_acuracy_drop= \(did you mean max_accuracy_drop=\?\)"):
        edgeresnet.export_model("runs/r20", tmp_path / "out", max_acuracy_drop=2.0)
    with pytest.raises(ExportError, match="an ExportJob alone"):
        edgeresnet.export_model(ExportJob(model="runs/r20", output=tmp_path / "out"), tmp_path / "other")
    assert not (tmp_path / "out").exists()


def test_the_cli_builds_one_job_from_its_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import edgeresnet.api

    seen: list[ExportJob] = []

    def fake_export(job: ExportJob, **_: Any) -> Any:
        seen.append(job)
        raise ExportError("stop here")  # the job is what this test is about

    monkeypatch.setattr(edgeresnet.api, "export_model", fake_export)
    result = CliRunner().invoke(cli, ["export", "runs/r20", "--output", str(tmp_path / "o"), "--int8",
                                      "--target", "onnxruntime", "--in-chans", "1", "--strict-gate",
                                      "--calib-method", "minmax"])
    assert result.exit_code == 2 and "stop here" in result.output
    assert seen == [ExportJob(model="runs/r20", output=tmp_path / "o", int8=True, targets=("onnxruntime",),
                              in_chans=1, strict_gate=True, calib_method="minmax")]
    help_text = CliRunner().invoke(cli, ["export", "--help"]).output
    assert f"default: {DEFAULT_MAX_ACCURACY_DROP}" in help_text and "Exit status" in help_text
    assert "3 published, but the" in " ".join(help_text.split())
