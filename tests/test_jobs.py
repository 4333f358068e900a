"""Typed jobs: TrainJob and CompileJob declared once, built by the CLI, taken by the API whole or as keywords."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

import edgeresnet
import edgeresnet.compile as compile_stage
from edgeresnet import training
from edgeresnet.compile import CompileFields, CompileJob
from edgeresnet.errors import EdgeResNetError, ExportError
from edgeresnet.training import TrainFields, TrainJob


class _Caught(Exception):
    def __init__(self, job: Any) -> None:
        super().__init__("caught")
        self.job = job


def _field_names(job: type) -> set[str]:
    return {field.name for field in dataclasses.fields(job)}


@pytest.mark.parametrize(("job", "keywords", "essentials"), [
    (TrainJob, TrainFields, {"model", "data", "output"}),
    (CompileJob, CompileFields, {"bundle", "output"}),
])
def test_the_keyword_form_names_every_field_of_its_job(job: type, keywords: type, essentials: set[str]) -> None:
    assert set(keywords.__annotations__) == _field_names(job) - essentials


def test_train_takes_a_job_or_its_fields_as_keywords(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def capture(job: TrainJob, *, on_epoch: Any = None) -> None:
        raise _Caught(job)

    monkeypatch.setattr(training, "train", capture)
    with pytest.raises(_Caught) as keyword_form:
        edgeresnet.train("resnet20", "fashion-mnist", tmp_path / "r20", epochs=3, weights=tmp_path / "w.pt")
    expected = TrainJob(model="resnet20", data="fashion-mnist", output=str(tmp_path / "r20"), epochs=3,
                        weights=str(tmp_path / "w.pt"))
    assert keyword_form.value.job == expected
    with pytest.raises(_Caught) as job_form:
        edgeresnet.train(expected)
    assert job_form.value.job is expected
    with pytest.raises(TypeError, match="not both"):
        edgeresnet.train(expected, epochs=4)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="epoch"):
        edgeresnet.train("resnet20", "fashion-mnist", tmp_path, epoch=3)  # type: ignore[call-arg]


def test_compile_takes_a_job_or_its_fields_as_keywords(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def capture(job: CompileJob) -> None:
        raise _Caught(job)

    monkeypatch.setattr(compile_stage, "run_compile", capture)
    with pytest.raises(_Caught) as keyword_form:
        edgeresnet.compile_bundle(str(tmp_path / "b"), tmp_path / "out", target="openvino", precision="fp16")
    expected = CompileJob(bundle=tmp_path / "b", output=tmp_path / "out", target="openvino", precision="fp16")
    assert keyword_form.value.job == expected
    with pytest.raises(_Caught) as job_form:
        edgeresnet.compile_bundle(expected)
    assert job_form.value.job is expected
    with pytest.raises(TypeError, match="not both"):
        edgeresnet.compile_bundle(expected, tmp_path / "elsewhere")


@pytest.mark.parametrize(("changes", "message"), [
    ({"target": "onnxruntime"}, "compile targets are openvino, tensorrt"),
    ({"precision": "int4"}, "precision must be one of fp32, fp16, int8"),
    ({"tensorrt": object()}, "only for --target tensorrt"),
])
def test_a_compile_job_refuses_what_cannot_run_in_one_line(changes: dict[str, Any], message: str) -> None:
    values = {"bundle": "b", "output": "out", "target": "openvino", **changes}
    with pytest.raises(ExportError, match=message) as caught:
        CompileJob(**values)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("changes", "message"), [
    ({"lr": math.nan}, "lr must be a finite number"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"freeze_epochs": 1}, "needs --weights"),
])
def test_a_train_job_refuses_absurd_values_in_one_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(EdgeResNetError, match=message):
        TrainJob(**changes)


def test_the_compile_command_builds_the_job_the_api_takes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    import edgeresnet.cli.deploy  # noqa: F401  (registers compile)
    from edgeresnet.cli.core import cli

    def capture(job: CompileJob) -> None:
        raise _Caught(job)

    monkeypatch.setattr(compile_stage, "run_compile", capture)
    result = CliRunner().invoke(cli, ["compile", str(tmp_path), "--target", "tensorrt", "--precision", "int8",
                                      "--max-batch", "4", "--output", str(tmp_path / "engine")])
    job = result.exception.job  # type: ignore[union-attr]
    assert job.target == "tensorrt" and job.precision == "int8" and job.output == tmp_path / "engine"
    assert job.tensorrt.max_batch == 4 and job.tensorrt.opt_batch == 1
