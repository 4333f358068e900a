"""The benchmark engine: latency statistics, the stopping rule, shared inputs, error rows, the CLI."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeresnet.bench import (
    BenchmarkResult,
    EvalData,
    latency_stats,
    load_artifact,
    measure_latency,
    run_benchmark,
    should_stop,
)
from edgeresnet.bench import latency as latency_module
from edgeresnet.errors import EdgeResNetError

# --- statistics on synthetic timings ---------------------------------------------------------------


def test_latency_stats_percentiles_and_throughput() -> None:
    samples = np.arange(1, 101, dtype=float)  # 1..100 ms, shuffled order must not matter
    np.random.default_rng(0).shuffle(samples)
    stats = latency_stats(samples, batch=8)
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)  # linear interpolation between order statistics
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.std_ms == pytest.approx(statistics.stdev(range(1, 101)))
    assert (stats.min_ms, stats.max_ms, stats.runs, stats.batch_size) == (1.0, 100.0, 100, 8)
    assert stats.throughput_ips == pytest.approx(8 * 1000 / 50.5)


def test_latency_stats_of_one_run_and_bad_input() -> None:
    stats = latency_stats([4.0], batch=1)
    assert (stats.p50_ms, stats.p99_ms, stats.std_ms, stats.throughput_ips) == (4.0, 4.0, 0.0, 250.0)
    for samples, batch in (([], 1), ([1.0, -2.0], 1), ([1.0, float("nan")], 1), ([1.0], 0)):
        with pytest.raises(EdgeResNetError):
            latency_stats(samples, batch)


@pytest.mark.parametrize(
    ("runs", "elapsed", "stop"),
    [
        (0, 100.0, False),  # never before the first run, whatever the clock says
        (10, 5.0, False),  # enough time, too few runs
        (60, 1.0, False),  # enough runs, too little time
        (50, 2.0, True),  # both minimums reached exactly
        (3, 30.0, True),  # the cap ends it with min_runs unmet
    ],
)
def test_stopping_rule_needs_both_minimums_or_the_cap(runs: int, elapsed: float, stop: bool) -> None:
    assert should_stop(runs, elapsed, min_runs=50, min_time_s=2.0, max_time_s=30.0) is stop


class _FakeClock:
    """A perf_counter that only moves when the fake model runs, by ``step`` seconds per call."""

    def __init__(self, step: float) -> None:
        self.now, self.step, self.calls, self.syncs = 0.0, step, 0, 0

    def __call__(self) -> float:
        return self.now

    def model(self, batch: np.ndarray) -> None:
        self.calls += 1
        self.now += self.step

    def synchronize(self) -> None:
        self.syncs += 1


def test_measure_latency_runs_until_both_minimums(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock(step=0.25)  # binary-exact steps: the comparison with min_time_s is exact
    monkeypatch.setattr(latency_module.time, "perf_counter", clock)
    stats = measure_latency(clock.model, np.zeros((4, 1, 2, 2), np.float32), warmup=3, min_runs=2, min_time_s=1.0,
                            max_time_s=10.0, synchronize=clock.synchronize)
    # 2 runs would satisfy min_runs, but 1 s of 0.25 s calls takes 4 of them.
    assert stats.runs == 4 and clock.calls == 7
    assert clock.syncs == 5  # once after warmup, then once inside every timed call
    assert stats.p50_ms == pytest.approx(250.0) and stats.throughput_ips == pytest.approx(16.0)


def test_measure_latency_stops_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock(step=1.0)
    monkeypatch.setattr(latency_module.time, "perf_counter", clock)
    stats = measure_latency(clock.model, [0], warmup=0, min_runs=50, min_time_s=0.0, max_time_s=3.0)
    assert stats.runs == 3 and stats.batch_size == 1


def test_measure_latency_rejects_bad_settings() -> None:
    with pytest.raises(EdgeResNetError, match="min_runs"):
        measure_latency(lambda b: None, [0], min_runs=0)
    with pytest.raises(EdgeResNetError, match="warmup"):
        measure_latency(lambda b: None, [0], warmup=-1)


# --- a tiny real pipeline: checkpoint → ONNX → bundles ---------------------------------------------


def build_artifacts(root: Path, *, source_checkpoint: bool = True) -> dict[str, Path]:
    """A random-init resnet20 checkpoint (1×28×28, Fashion-MNIST classes) and bundles made from it."""
    import torch

    from edgeresnet.bundle import Manifest, write_bundle
    from edgeresnet.checkpoint import ModelCard, write_checkpoint
    from edgeresnet.data import open_source
    from edgeresnet.export.onnx import export_onnx
    from edgeresnet.models import create_model

    source = open_source("fashion-mnist")
    spec = source.default_preprocess()
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_chans=1).eval()
    card = ModelCard(architecture="resnet20", num_classes=10, in_chans=1, preprocessing=spec,
                     class_names=source.class_names)
    checkpoint = write_checkpoint(root / "ckpt", model, card)
    onnx_path = export_onnx(model, spec, root / "work" / "model.onnx")
    broken = root / "work" / "broken.onnx"
    broken.write_bytes(b"this is not an onnx model")
    engine = root / "work" / "model.engine"
    engine.write_bytes(b"\0" * 16)
    extra = {"source_checkpoint": str(checkpoint.resolve())} if source_checkpoint else {}

    def bundle(name: str, target: str, files: dict[str, Path], model_file: str, precision: str = "fp32") -> Path:
        manifest = Manifest(architecture="resnet20", precision=precision, target=target, model_file=model_file,
                            preprocessing=spec, class_names=source.class_names,
                            input={"name": "input", "shape": [None, 1, 28, 28]}, extra=dict(extra))
        return write_bundle(root / name, manifest, files, golden_inputs=np.zeros((1, 1, 28, 28), np.float32),
                            golden_outputs=np.zeros((1, 10), np.float32))

    artifacts = {
        "checkpoint": checkpoint,
        "ort": bundle("ort-fp32", "onnxruntime", {"model.onnx": onnx_path}, "model.onnx"),
        "broken": bundle("broken-fp32", "onnxruntime", {"model.onnx": broken}, "model.onnx"),
        "tensorrt": bundle("trt-fp32", "tensorrt", {"model.engine": engine}, "model.engine"),
        # What `export --target tensorrt` writes: the ONNX an engine is built from, not an engine.
        "tensorrt-onnx": bundle("tensorrt-fp32", "tensorrt", {"model.onnx": onnx_path}, "model.onnx"),
        "tensorrt-qdq": bundle("tensorrt-int8", "tensorrt", {"model.onnx": onnx_path}, "model.onnx", "int8"),
    }
    try:
        from edgeresnet.backends.openvino.convert import convert_to_ir

        xml = convert_to_ir(onnx_path, root / "work" / "model.xml")
        artifacts["openvino"] = bundle("ov-fp32", "openvino", {"model.xml": xml, "model.bin": xml.with_suffix(".bin")},
                                       "model.xml")
    except ImportError:  # OpenVINO is optional; the rest of the engine is still tested
        pass
    return artifacts


FAST = {"batch_sizes": (1, 4), "threads": 1, "warmup": 1, "min_runs": 3, "min_time_s": 0.0, "eval_limit": 40,
        "progress": False}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, fashion_mnist: str) -> dict[str, Path]:
    return build_artifacts(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def result(artifacts: dict[str, Path], fashion_mnist: str) -> BenchmarkResult:
    paths = [artifacts[name] for name in ("ort", "openvino", "broken", "tensorrt", "tensorrt-onnx") if name in artifacts]
    return run_benchmark(paths, data=fashion_mnist, **FAST)


def _rows(result: BenchmarkResult, artifact: str) -> list:
    return [row for row in result.rows if row.artifact == artifact]


def test_failing_backends_become_error_rows_while_others_run(result: BenchmarkResult) -> None:
    broken, trt = _rows(result, "broken-fp32"), _rows(result, "trt-fp32")
    assert [row.batch_size for row in broken] == [1, 4]
    # The bundle's door reads the model before ONNX Runtime does (for its external-data files) and refuses it.
    assert all(row.error and "model.onnx is not a readable ONNX model" in row.error for row in broken)
    assert all(row.error and "tensorrt" in row.error.lower() for row in trt)
    assert all(row.latency_p50_ms is None and row.top1 is None for row in broken + trt)
    good = _rows(result, "ort-fp32") + _rows(result, "ov-fp32")
    assert good and all(row.ok and row.latency_p50_ms and row.runs >= 3 for row in good)


def test_tensorrt_onnx_bundles_run_through_onnxruntime_and_say_so(
    result: BenchmarkResult, artifacts: dict[str, Path]
) -> None:
    rows = _rows(result, "tensorrt-fp32 (ONNX via onnxruntime)")
    assert [row.batch_size for row in rows] == [1, 4]
    assert all(row.ok and row.backend == "onnxruntime" and row.latency_p50_ms for row in rows)
    assert all(row.agreement_pct == pytest.approx(100.0) for row in rows)  # the same network as ort-fp32
    qdq = load_artifact(artifacts["tensorrt-qdq"])
    assert (qdq.name, qdq.backend, qdq.precision) == ("tensorrt-int8 (QDQ via onnxruntime)", "onnxruntime", "int8")
    engine = load_artifact(artifacts["tensorrt"])  # a compiled engine still needs TensorRT
    assert (engine.name, engine.backend) == ("trt-fp32", "tensorrt")


def test_pytorch_baseline_comes_from_the_bundles_source_checkpoint(result: BenchmarkResult) -> None:
    reference = result.reference()
    assert reference is not None and reference.backend == "pytorch" and reference.artifact == "ckpt (pytorch)"
    assert result.rows[0].backend == "pytorch"  # measured first
    for row in result.rows:
        if row.ok:
            assert row.threads == 1 and row.eval_images == 40
            # The same cached inputs everywhere: FP32 backends agree with PyTorch on every image.
            assert row.agreement_pct == pytest.approx(100.0)
            assert row.top1 == pytest.approx(reference.top1) and 0.0 <= row.top1 <= 100.0
            assert row.top5 >= row.top1
            assert row.file_size_bytes > 10_000 and row.peak_memory_bytes is not None
            assert row.throughput_ips == pytest.approx(row.batch_size * 1000 / row.latency_mean_ms)


def test_environment_is_recorded(result: BenchmarkResult) -> None:
    environment = result.environment
    assert environment["threads"] == 1 and environment["device"] == "cpu" and environment["eval_images"] == 40
    assert {"python", "onnxruntime"} <= set(environment["versions"]) and "model" in environment["cpu"]
    assert environment["measurement"]["min_runs"] == 3 and environment["measurement"]["peak_memory"]


def test_missing_checkpoint_is_an_error_row(tmp_path: Path, fashion_mnist: str) -> None:
    built = build_artifacts(tmp_path, source_checkpoint=False)
    result = run_benchmark([built["ort"]], data=fashion_mnist, **{**FAST, "batch_sizes": (2,)})
    baseline = [row for row in result.rows if row.backend == "pytorch"]
    assert len(baseline) == 1 and "no PyTorch checkpoint" in (baseline[0].error or "")
    # Without PyTorch, the FP32 ONNX Runtime bundle is the reference.
    assert result.reference() is not None and result.reference().artifact == "ort-fp32"


def test_user_mistakes_stop_before_measuring(tmp_path: Path, artifacts: dict[str, Path], fashion_mnist: str) -> None:
    with pytest.raises(EdgeResNetError, match="neither a bundle"):
        run_benchmark([tmp_path], data=fashion_mnist, **FAST)
    with pytest.raises(EdgeResNetError, match="batch sizes"):
        run_benchmark([artifacts["ort"]], data=fashion_mnist, **{**FAST, "batch_sizes": (0,)})
    with pytest.raises(EdgeResNetError, match="device"):
        run_benchmark([artifacts["ort"]], data=fashion_mnist, **{**FAST, "device": "tpu"})


def test_artifacts_of_different_classifiers_are_refused(
    tmp_path: Path, artifacts: dict[str, Path], fashion_mnist: str
) -> None:
    import shutil

    from tests.runtime.tiny_bundle import rewrite_manifest

    other = Path(shutil.copytree(artifacts["ort"], tmp_path / "other"))
    rewrite_manifest(other, lambda record: record.update(labels=[f"animal{i}" for i in range(10)]))
    with pytest.raises(EdgeResNetError, match="other classes"):
        run_benchmark([artifacts["ort"], other], data=fashion_mnist, **FAST)


def test_eval_inputs_are_cached_once_and_spilling_gives_the_same_arrays(
    artifacts: dict[str, Path], fashion_mnist: str
) -> None:
    from edgeresnet.data import open_source

    spec = load_artifact(artifacts["ort"]).preprocessing
    images = open_source(fashion_mnist).split("evaluation").head(70)
    with EvalData(images) as in_memory, EvalData(images, memory_budget_bytes=0) as spilled:
        assert in_memory.inputs(spec) is in_memory.inputs(spec)
        memory_chunks = list(in_memory.inputs(spec).chunks(32))
        spilled_chunks = list(spilled.inputs(spec).chunks(32))
        assert [len(c) for c in spilled_chunks] == [32, 32, 6]
        np.testing.assert_array_equal(np.concatenate(memory_chunks), np.concatenate(spilled_chunks))
        # A latency batch larger than the set repeats its images rather than failing.
        assert in_memory.latency_batch(spec, 100).shape == (100, 1, 28, 28)


def test_timed_call_binds_the_input_once_and_falls_back_to_infer(artifacts: dict[str, Path]) -> None:
    from edgeresnet.bench import open_runner
    from edgeresnet.runtime.base import Runner, RunnerInfo

    batch = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    for name in ("ort", "openvino"):
        if name not in artifacts:
            continue
        with open_runner(load_artifact(artifacts[name]), device="cpu", threads=1) as runner:
            call = runner.bind_for_timing(batch)
            assert getattr(call, "func", None) != runner.infer  # the lean path, not infer()
            result = call()
            if name == "openvino":  # its bound call returns the outputs: they must be infer()'s
                np.testing.assert_allclose(next(iter(result.values())), runner.infer(batch), rtol=1e-5, atol=1e-5)

    class Plain(Runner):
        backend = "onnxruntime"  # a known backend whose internals this runner lacks

        def __init__(self) -> None:
            self.calls = 0
            self._init_state("cpu", None)  # no model file: the state every runner has

        def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
            self.calls += 1
            return np.zeros((len(batch), 10), np.float32)

        def _describe_impl(self) -> RunnerInfo:
            return RunnerInfo("onnxruntime", "cpu", "fp32", "")

    plain = Plain()
    plain.bind_for_timing(batch)()
    assert plain.calls == 1


# --- the CLI ---------------------------------------------------------------------------------------


def test_benchmark_command_writes_every_report(artifacts: dict[str, Path], tmp_path: Path, fashion_mnist: str) -> None:
    import edgeresnet.cli.benchmark  # noqa: F401  (registers the command until cli/__init__ imports it)
    from edgeresnet.cli import cli

    report = tmp_path / "report"
    args = ["benchmark", str(artifacts["ort"]), str(artifacts["broken"]), "--data", fashion_mnist,
            "--batch-sizes", "1,2", "--threads", "1", "--warmup", "1", "--min-runs", "3", "--min-time", "0",
            "--eval-limit", "20", "--checkpoint", str(artifacts["checkpoint"]), "--report", str(report)]
    outcome = CliRunner().invoke(cli, ["-q", *args])
    assert outcome.exit_code == 0, outcome.output
    assert "ort-fp32" in outcome.output and "★" in outcome.output and "not a readable ONNX model" in outcome.output
    record = json.loads((report / "benchmark.json").read_text())
    assert len(record["rows"]) == 6 and record["environment"]["threads"] == 1
    with open(report / "benchmark.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 6
    assert (report / "accuracy_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_command_user_errors(tmp_path: Path) -> None:
    import edgeresnet.cli.benchmark  # noqa: F401
    from edgeresnet.cli import cli

    outcome = CliRunner().invoke(cli, ["benchmark", str(tmp_path), "--data", "fashion-mnist", "--batch-sizes", "1,x"])
    assert outcome.exit_code == 2 and "comma-separated" in outcome.output
    outcome = CliRunner().invoke(cli, ["benchmark", str(tmp_path), "--data", "fashion-mnist"])
    assert outcome.exit_code == 2 and outcome.output.startswith("error:") and "neither a bundle" in outcome.output
    # What `runs/r20-export/*` also expands to: the export's report file.
    report = tmp_path / "export_report.json"
    report.write_text("{}")
    outcome = CliRunner().invoke(cli, ["benchmark", str(report), "--data", "fashion-mnist"])
    assert outcome.exit_code == 2 and len(outcome.output.strip().splitlines()) == 1
    assert outcome.output == (f"error: {report} is a file, not a bundle or checkpoint directory "
                              f"(to pick every bundle of an export, glob directories only: {tmp_path}/*/)\n")
    help_text = CliRunner().invoke(cli, ["benchmark", "--help"]).output
    assert "edgeresnet benchmark runs/r20-export/*/ --data" in help_text


def test_file_rows_sit_beside_model_rows_and_drops_carry_their_interval(
    artifacts: dict[str, Path], tmp_path: Path, fashion_mnist: str
) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), np.uint8)).save(folder / f"{k}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    paths = [artifacts["ort"], artifacts.get("openvino", artifacts["tensorrt-qdq"])]
    result = run_benchmark(paths, data=fashion_mnist, images=[folder], checkpoint=artifacts["checkpoint"],
                           **{**FAST, "batch_sizes": (2,)})
    files = [row for row in result.rows if row.measure == "file->label"]
    models = [row for row in result.rows if row.measure == "model"]
    assert {row.artifact for row in files} == {row.artifact for row in models}
    for row in files:
        assert row.ok, row.error
        assert row.input_images == 3 and row.batch_size == 2 and row.throughput_ips and row.throughput_ips > 0
        assert row.decode_ms > 0 and row.preprocess_ms > 0 and row.inference_ms > 0
        split = row.decode_ms + row.preprocess_ms + row.inference_ms
        assert split == pytest.approx(row.latency_mean_ms, rel=1e-6)
    reference = result.reference()
    assert reference is not None and reference.measure == "model" and reference.drop_points is not None
    for row in models:
        assert row.drop_points is not None and row.drop_ci95_points is not None
        low, high = row.drop_ci95_points
        assert low <= row.drop_points <= high and row.eval_images == 40
        assert row.drop_points == pytest.approx(reference.top1 - row.top1)
