"""One vocabulary across commands: defaults, choices, interval format, plurals, and messages that name the fix."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from rich.console import Console

from edgeresnet.accuracy import PairedComparison, count_of, format_difference, format_interval
from edgeresnet.cli import cli
from edgeresnet.data.decoding import decode_image, find_images

COMMANDS = sorted(cli.commands)


def _options(command: str) -> dict[str, click.Option]:
    return {param.name: param for param in cli.commands[command].params if isinstance(param, click.Option)}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_described(command: str) -> None:
    undescribed = [option.opts[0] for option in _options(command).values() if not (option.help or "").strip()]
    assert undescribed == [], f"{command}: options without help text"


def test_pipeline_times_like_benchmark() -> None:
    pipeline, benchmark = _options("pipeline"), _options("benchmark")
    for name in ("batch_sizes", "min_time", "max_accuracy_drop"):
        assert pipeline[name].default == benchmark[name].default, name
    assert benchmark["batch_sizes"].default == "1,8" and benchmark["min_time"].default == 2.0
    from edgeresnet.pipeline import PipelineOptions

    assert PipelineOptions().batch_sizes == (1, 8) and PipelineOptions().min_time_s == 2.0


@pytest.mark.parametrize("command", COMMANDS)
def test_choices_in_help_are_lower_case(command: str) -> None:
    text = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).output
    choices = [word for line in text.splitlines() for word in line.split() if word.startswith("[") and "|" in word]
    assert choices == [choice.lower() for choice in choices]
    if command in ("predict", "verify"):
        assert "--backend [onnxruntime|openvino|tensorrt]" in text


def _comparison(reference_only: int, candidate_only: int, images: int = 30) -> PairedComparison:
    drop = 100.0 * (reference_only - candidate_only) / images
    return PairedComparison(images=images, reference_top1=90.0, candidate_top1=90.0 - drop, drop_points=drop,
                            drop_ci95_points=(-8.4, 16.67), agreement_pct=100.0 - 100.0 * (reference_only +
                                                                                          candidate_only) / images,
                            reference_only=reference_only, candidate_only=candidate_only)


def test_one_interval_format_and_plurals() -> None:
    assert format_interval(-16.666, 8.4) == "-16.67 to +8.40"
    assert format_difference(0.45, (-0.12, 0.89)) == "+0.45 (-0.12 to +0.89)"
    assert count_of(1, "discordant image") == "1 discordant image"
    assert count_of(9, "discordant image") == "9 discordant images"
    assert count_of(1200, "image") == "1,200 images"
    from edgeresnet.calibration.gate import resolution_warning

    warning = resolution_warning(_comparison(1, 0), 1.0)
    assert warning is not None
    assert "interval is -8.40 to +16.67 points (1 discordant image)" in warning
    assert "(2 discordant images)" in (resolution_warning(_comparison(1, 1), 1.0) or "")
    assert "95% CI -8.40 to +16.67" in _comparison(1, 0).summary()


def test_the_terminal_table_keeps_bracketed_text() -> None:
    from edgeresnet.report import print_table
    from tests.test_report import synthetic_result

    result = synthetic_result()
    result.rows[-1].error = "engine [sm_90] needs TensorRT"
    console = Console(record=True, width=250)
    print_table(result, console=console)
    text = console.export_text()
    assert "(paired 95% interval)" in text
    assert "+1.00 (+0.20 to +2.50)" in text
    assert "engine [sm_90] needs TensorRT" in text


def test_export_prints_each_warning_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    warning = "30 evaluation images cannot resolve a 1.0-point budget: ..."

    def fake_export(*args: object, progress: object, **kwargs: object) -> SimpleNamespace:
        from edgeresnet.accuracy import Accuracy
        from edgeresnet.bundle.records import QuantizationRecord
        from edgeresnet.export.results import BundleSummary

        progress(f"warning: {warning}")  # type: ignore[operator]
        bundle = BundleSummary(model_file="model.onnx", accuracy=Accuracy(86.67, 100.0, 30),
                               quantization=QuantizationRecord(gate_verdict="unresolved"),
                               comparison=_comparison(1, 0))
        report = SimpleNamespace(accuracy_measured=True, fp32=Accuracy(90.0, 100.0, 30),
                                 bundles={"onnxruntime-int8": bundle}, warnings=(warning,), layer_reports={},
                                 seconds=1.0)
        return SimpleNamespace(report=report, output=tmp_path, refused={}, withdrawn=(), left=())

    monkeypatch.setattr("edgeresnet.api.export_model", fake_export)
    result = CliRunner().invoke(cli, ["export", "runs/x", "--int8", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.output.count("cannot resolve") == 1
    assert "-8.40 to +16.67" in result.output and ".." not in result.output.replace("...", "")


def test_predict_on_a_folder_without_images_names_what_it_reads_and_skipped(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    (scans / "more").mkdir(parents=True)
    for name in ("a.heic", "b.heic", "more/c.heic", "notes.txt", ".DS_Store"):
        (scans / name).write_bytes(b"x")
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "no-bundle"), str(scans)])
    assert result.exit_code == 2
    line = result.output.strip()
    assert line == (f"error: no image files found in {scans} (read .bmp .gif .jpeg .jpg .png .tif .tiff .webp; "
                    "skipped 3 .heic, 1 .txt)")


def test_gif_and_tiff_are_read(tmp_path: Path) -> None:
    pixels = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60)
    Image.fromarray(pixels).save(tmp_path / "scan.tif")  # 16-bit grayscale, as scanners write
    colours = np.zeros((32, 32, 3), np.uint8)
    colours[:, 16:] = (200, 30, 30)
    Image.fromarray(colours).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "anim.gif")
    assert find_images([tmp_path]) == [tmp_path / "anim.gif", tmp_path / "scan.tif"]
    assert decode_image(tmp_path / "scan.tif").tolist() == (pixels >> 8).astype(np.uint8).tolist()
    assert decode_image(tmp_path / "anim.gif").tolist() == colours.tolist()


def test_frames_of_the_right_shape_but_wrong_dtype_blame_the_dtype() -> None:
    from edgeresnet.data.preprocessing import PreprocessSpec
    from edgeresnet.errors import DatasetError
    from edgeresnet.runtime.classifier import Classifier

    classifier = Classifier(runner=None, spec=PreprocessSpec(input_size=(32, 32), channels="RGB"),  # type: ignore[arg-type]
                            class_names=[str(k) for k in range(10)])
    with pytest.raises(DatasetError, match=r"got float32 values of the right shape.*astype\(np.uint8\)"):
        classifier.predict_frames(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(DatasetError, match=r"got shape \(2, 28, 28, 3\)"):
        classifier.predict_frames(np.zeros((2, 28, 28, 3), np.uint8))


def test_the_short_training_hint_follows_the_measured_accuracy() -> None:
    from edgeresnet.training.config import short_run_hint

    assert short_run_hint(90, 15, 93.0, 10, measured_on="validation") is None  # a useful fine-tune
    hint = short_run_hint(90, 3, 41.5, 10, measured_on="validation")
    assert hint == ("only 90 optimizer steps in 3 epochs, reaching 41.50% top-1 on the validation images "
                    "(chance 10.00%): raise --epochs for a useful model")
    assert short_run_hint(90, 1, None, 10, measured_on="validation") is not None
    assert short_run_hint(400, 1, 20.0, 10, measured_on="validation") is None  # long enough: no guess
