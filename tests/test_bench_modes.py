"""The benchmark job, and benchmarking as on a device: no data, no torch, throughput mode."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeresnet.bench import BenchmarkJob, run_benchmark
from edgeresnet.bench import baseline as baseline_module
from edgeresnet.errors import EdgeResNetError
from tests.runtime.tiny_bundle import LABELS, blob_images, golden_inputs, make_bundle, tiny_model

QUICK = {"batch_sizes": (1, 3), "threads": 2, "warmup": 1, "min_runs": 4, "min_time_s": 0.0}

# --- the job -----------------------------------------------------------------------------------------


def test_the_job_holds_the_defaults_and_normalises_its_fields() -> None:
    job = BenchmarkJob(artifacts=["a", Path("b")], batch_sizes=[1, 8, 1], images="photos")  # type: ignore[arg-type]
    assert job.artifacts == (Path("a"), Path("b")) and job.batch_sizes == (1, 8) and job.images == (Path("photos"),)
    assert (job.data, job.mode, job.max_accuracy_drop, job.latency, job.throughput) == (None, "latency", 1.0, True, False)
    assert BenchmarkJob(artifacts=("a",), mode="both").throughput


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"artifacts": ()}, "nothing to benchmark"),
        ({"batch_sizes": (0,)}, "batch sizes"),
        ({"batch_sizes": (True,)}, "batch sizes"),
        ({"batch_sizes": (100_000,)}, "batch sizes"),
        ({"device": "tpu"}, "device"),
        ({"mode": "fast"}, "mode"),
        ({"threads": 0}, "threads"),
        ({"streams": 10_000}, "streams"),
        ({"min_time_s": math.nan}, "min_time_s"),
        ({"max_time_s": 0.0}, "max_time_s"),
        ({"max_time_s": math.inf}, "max_time_s"),
        ({"max_accuracy_drop": math.nan}, "max_accuracy_drop"),
        ({"max_accuracy_drop": -1.0}, "max_accuracy_drop"),
        ({"min_runs": 0}, "min_runs"),
        ({"data": "  "}, "--data is empty"),
    ],
)
def test_the_job_refuses_absurd_values_in_one_line(change: dict, message: str) -> None:
    with pytest.raises(EdgeResNetError, match=message) as caught:
        BenchmarkJob(**{"artifacts": ("a",), **change})
    assert "\n" not in str(caught.value)


def test_the_api_takes_a_job_or_its_keyword_form_but_not_both(tmp_path: Path) -> None:
    import edgeresnet

    with pytest.raises(TypeError, match="not both"):
        edgeresnet.benchmark(BenchmarkJob(artifacts=("a",)), threads=2)
    with pytest.raises(TypeError, match="unknown benchmark option"):
        edgeresnet.benchmark(["a"], thread=2)
    with pytest.raises(EdgeResNetError, match="artifact not found"):
        edgeresnet.benchmark([tmp_path / "missing"], batch_sizes=(1,))


def test_cli_options_become_the_job_and_bad_numbers_are_one_line(tmp_path: Path) -> None:
    from edgeresnet.cli import cli

    outcome = CliRunner().invoke(cli, ["benchmark", str(tmp_path), "--min-time", "nan"])
    # The option's own type refuses it now, naming the flag (the job would name its field).
    assert outcome.exit_code == 2 and outcome.output.count("\n") == 1 and "--min-time" in outcome.output
    outcome = CliRunner().invoke(cli, ["benchmark", str(tmp_path), "--max-accuracy-drop", "-2"])
    assert outcome.exit_code == 2 and outcome.output.count("\n") == 1 and "--max-accuracy-drop" in outcome.output


def test_benchmark_and_pipeline_share_their_defaults() -> None:
    from edgeresnet.bench import job as job_module
    from edgeresnet.cli import cli

    pipeline = {p.name: p.default for p in cli.commands["pipeline"].params}
    benchmark = {p.name: p.default for p in cli.commands["benchmark"].params}
    expected = ",".join(map(str, job_module.DEFAULT_BATCH_SIZES))
    assert pipeline["batch_sizes"] == benchmark["batch_sizes"] == expected
    assert pipeline["min_time"] == benchmark["min_time"] == job_module.DEFAULT_MIN_TIME_S


# --- on a device -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("device")
    model = tiny_model()
    built = {"fp32": make_bundle(root / "onnxruntime-fp32", model.onnx),
             "int8": make_bundle(root / "onnxruntime-int8", model.qdq, precision="int8"),
             # Golden outputs that the model does not give: an edited or broken bundle.
             "wrong": make_bundle(root / "wrong-fp32", model.onnx, outputs=np.zeros((16, 10), np.float32))}
    try:
        from edgeresnet.export.openvino import convert_to_ir

        xml = convert_to_ir(model.onnx, root / "work" / "model.xml")
        expected = make_bundle(root / "probe", model.onnx)
        from edgeresnet.bundle import read_golden, read_manifest

        _, outputs = read_golden(expected, read_manifest(expected))
        built["openvino"] = make_bundle(root / "openvino-fp32", xml, target="openvino", outputs=outputs,
                                        extra_files={"model.bin": xml.with_suffix(".bin")})
    except ImportError:
        pass
    return built


def test_without_data_bundles_are_timed_on_their_golden_inputs(bundles: dict[str, Path]) -> None:
    job = BenchmarkJob(artifacts=(bundles["fp32"], bundles["int8"], bundles["wrong"]), **QUICK)
    result = run_benchmark(job, progress=False)
    rows = {(row.artifact, row.batch_size): row for row in result.rows}
    for name in ("onnxruntime-fp32", "onnxruntime-int8"):
        for batch in (1, 3):
            row = rows[(name, batch)]
            assert row.ok and row.latency_p50_ms > 0 and row.runs >= 4, row.error
            assert row.top1 is None and row.eval_images is None and row.runtime.startswith("cpu; onnxruntime")
    wrong = rows[("wrong-fp32", 1)]
    assert wrong.error and wrong.error.startswith("golden outputs not reproduced")
    assert result.environment["data"] is None and result.environment["eval_images"] is None
    from edgeresnet.report import render_markdown

    text = render_markdown(result)
    assert "accuracy not measured (no --data)" in text and "## Recommendation" in text
    assert "wrong-fp32" not in text.split("## Recommendation")[1]  # an artifact failing its golden check is no choice


def test_throughput_mode_saturates_each_backend(bundles: dict[str, Path]) -> None:
    paths = [bundles["int8"], *([bundles["openvino"]] if "openvino" in bundles else [])]
    result = run_benchmark(BenchmarkJob(artifacts=tuple(paths), mode="both", **{**QUICK, "batch_sizes": (2,)}),
                           progress=False)
    throughput = [row for row in result.rows if row.measure == "throughput"]
    assert {row.artifact for row in throughput} == {Path(p).name for p in paths}
    for row in throughput:
        assert row.ok, row.error
        assert row.streams >= 1 and row.throughput_ips > 0 and row.runs >= 4 and row.latency_p50_ms > 0
    ort = next(row for row in throughput if row.backend == "onnxruntime")
    assert ort.streams == 2  # two sessions of one thread each on two threads
    from edgeresnet.report import recommendation_lines

    assert any(line.startswith("recommended for throughput at batch 2") for line in recommendation_lines(result))


def _labelled_folder(root: Path) -> Path:
    images, labels = blob_images(60, seed=81)
    assert len(set(labels.tolist())) == len(LABELS)  # every class, or accuracy is refused
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / LABELS[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / LABELS[label] / f"{index}.png")
    return root


def test_without_torch_the_pytorch_row_is_skipped_and_the_fp32_bundle_is_the_reference(
    bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(baseline_module, "torch_installed", lambda: False)
    data = _labelled_folder(tmp_path / "data")
    result = run_benchmark(BenchmarkJob(artifacts=(bundles["int8"], bundles["fp32"]), data=str(data), **QUICK),
                           progress=False)
    assert all(row.error is None for row in result.rows)
    assert {row.backend for row in result.rows} == {"onnxruntime"}
    assert result.notes == [baseline_module.NO_TORCH] and "edgeresnet[build]" in result.notes[0]
    reference = result.reference()
    assert reference is not None and reference.artifact == "onnxruntime-fp32"
    int8 = next(row for row in result.rows if row.artifact == "onnxruntime-int8")
    assert int8.drop_ci95_points is not None and int8.eval_images == reference.eval_images > 0


def test_a_checkpoint_changed_since_the_export_is_named_and_never_the_reference(tmp_path: Path) -> None:
    from edgeresnet.bench.artifacts import Artifact
    from edgeresnet.bench.baseline import _changed_since_export
    from edgeresnet.bundle import sha256_file
    from tests.runtime.tiny_bundle import SPEC

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights after --overwrite")
    ckpt = Artifact(name="ckpt (pytorch)", path=checkpoint, kind="checkpoint", model_path=checkpoint / "model.safetensors",
                    backend="pytorch", precision="fp32", preprocessing=SPEC, labels=[], file_size_bytes=1)

    def bundle(sha: str) -> Artifact:
        return Artifact(name="b", path=tmp_path / "b", kind="bundle", model_path=tmp_path / "m", backend="onnxruntime",
                        precision="fp32", preprocessing=SPEC, labels=[], file_size_bytes=1,
                        source_checkpoint=checkpoint, source_checkpoint_sha256=sha)

    note = _changed_since_export(ckpt, [bundle("0" * 64)])
    assert note is not None and "changed since the bundles were exported" in note and "\n" not in note
    assert _changed_since_export(ckpt, [bundle(sha256_file(checkpoint / "model.safetensors"))]) is None


def test_the_command_runs_without_data_and_ends_with_the_recommendations(bundles: dict[str, Path]) -> None:
    from edgeresnet.cli import cli

    outcome = CliRunner().invoke(cli, ["-q", "benchmark", str(bundles["fp32"]), str(bundles["int8"]),
                                       "--batch-sizes", "1,2", "--threads", "1", "--warmup", "1", "--min-runs", "3",
                                       "--min-time", "0"])
    assert outcome.exit_code == 0, outcome.output
    tail = outcome.stdout.strip().splitlines()[-2:]
    assert tail[0].startswith("recommended for latency at batch 1: onnxruntime-")
    assert tail[1].startswith("recommended for latency at batch 2: onnxruntime-")


def test_golden_inputs_fill_any_batch(bundles: dict[str, Path]) -> None:
    from edgeresnet.bench import load_artifact
    from edgeresnet.bench.inputs import timing_inputs

    inputs = timing_inputs(load_artifact(bundles["fp32"]))
    assert inputs.source == "golden samples"
    np.testing.assert_array_equal(inputs.batch(20)[16:], golden_inputs()[:4])
