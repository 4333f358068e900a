"""`edgeresnet export`: ONNX, INT8 with real calibration data, one bundle per target."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgeresnet import api
from edgeresnet.backends import export_targets
from edgeresnet.bundle.vocabulary import CALIB_METHODS, DEFAULT_MAX_ACCURACY_DROP
from edgeresnet.cli.core import InputSizeType, OpsetType, ProgressEcho, ThreadsType, cli, number_range
from edgeresnet.export.job import INT8_ONLY, ExportJob
from edgeresnet.limits import printable

if TYPE_CHECKING:
    from edgeresnet.export.results import BundleSummary, ExportResult

TARGET_CHOICES = [*export_targets(), "all"]
# 2 is a user mistake with nothing written; 3 says the export published what passed and the accuracy
# gate refused at least one INT8 artifact, so a script can tell "FP32 is there, INT8 is not" from both.
REFUSED_EXIT = 3


@cli.command("export")
@click.argument("model")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for the bundles (one per target and precision) and export_report.json.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Weights for an architecture-name MODEL (.safetensors or a torchvision/timm state dict).")
@click.option("--num-classes", type=number_range(int, 1, 100_000), default=None,
              help="Classes of an architecture-name MODEL (default: the data's, else 1000).")
@click.option("--in-chans", type=click.Choice(["1", "3"]), default=None,
              help="Input channels of an architecture-name MODEL (default 3).")
@click.option("--input-size", type=InputSizeType(), default=None,
              help="Input side of an architecture-name MODEL (default: the model's).")
@click.option("--int8", is_flag=True, help="Also build calibrated INT8 artifacts for every target.")
@click.option("--target", "targets", multiple=True, type=click.Choice(TARGET_CHOICES),
              help="Target runtime (repeatable). Default: every target whose export step can run here.")
@click.option("--data", default=None,
              help="Evaluation data (its evaluation split). Default: --calib-data, else the checkpoint's data.")
@click.option("--calib-data", default=None,
              help="Calibration data (its calibration split, never the evaluation split).")
@click.option("--calib-size", type=number_range(int, 1, 10**7), default=None,
              help="Class-balanced calibration images. Default: the whole calibration split, up to 512; "
                   "a size larger than the split is refused.")
@click.option("--calib-method", type=click.Choice(CALIB_METHODS), default="auto",
              show_default=True,
              help="Range method; auto keeps the one whose INT8 model agrees best with FP32 on the calibration split.")
@click.option("--calib-table", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Rebuild INT8 from this calibration table instead of recalibrating.")
@click.option("--max-accuracy-drop", type=number_range(float, 0, 100), default=DEFAULT_MAX_ACCURACY_DROP,
              show_default=True,
              help="Allowed top-1 drop of INT8 versus FP32, in points. An INT8 model whose drop's 95% interval "
                   "lies above it keeps its worst-quantized layers in float, or is refused.")
@click.option("--strict-gate", is_flag=True,
              help="Publish INT8 only when the drop's whole 95% interval is within the budget (default: "
                   "unless the data show it is over).")
@click.option("--batch", type=number_range(int, 1, 4096), default=None, help="Static batch size (default: dynamic).")
@click.option("--opset", type=OpsetType(), default=17, show_default=True,
              help="ONNX opset of the exported model.")
@click.option("--eval-limit", type=number_range(int, 1, 10**9), default=None,
              help="Evaluate on a class-balanced subset of this many images (default: the whole split).")
@click.option("--threads", type=ThreadsType(), default=None, help="Runtime threads for evaluation.")
@click.option("--overwrite", is_flag=True, help="Replace bundles a previous export wrote into --output.")
def export_command(**flags: Any) -> None:
    """Export MODEL to ONNX and, with --int8, to calibrated INT8 for ONNX Runtime, OpenVINO and TensorRT.

    MODEL is a checkpoint directory written by `train`, or an architecture name with --weights.
    Every artifact is evaluated on the held-out evaluation split. Each INT8 model is compared with FP32 on
    the same images and gets a verdict from the drop's 95% interval against --max-accuracy-drop: within
    budget, over budget (the whole interval above it) or unresolved (too few images to tell). Over budget
    keeps its most sensitive layers in float; if that fails, that INT8 artifact is refused and everything
    else is still published. Unresolved is published with a warning (refused with --strict-gate).

    Exit status: 0 everything published; 2 a usage or input error, nothing written; 3 published, but the
    accuracy gate refused at least one INT8 artifact (listed with its figures).

    Example: edgeresnet export runs/r20 --int8 --target all --output runs/r20-export
    """

    if not flags["int8"]:
        context = click.get_current_context()
        given = [f"--{name.replace('_', '-')}" for name in (*INT8_ONLY, "calib_method")
                 if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"{', '.join(given)} need --int8")
    # Click has checked every flag; the job's own checks are the same rules, for Python callers.
    job = ExportJob(**{**flags, "in_chans": int(flags["in_chans"]) if flags["in_chans"] else None,
                       "targets": flags["targets"] or None})
    progress = ProgressEcho()
    result = api.export_model(job, progress=progress)
    _print_results(result, already_warned=progress.warned)
    for name, refusal in result.refused.items():
        click.echo(f"refused {name}: {refusal.describe(cli=True)}", err=True)
    for path in result.withdrawn:
        click.echo(f"removed {printable(path.name)}: an earlier run's, not rebuilt by this one", err=True)
    for path in result.left:
        click.echo(f"warning: {printable(str(path))} is an earlier run's, changed during this one, and was kept: "
                   "it is not from this run", err=True)
    if result.refused:
        click.get_current_context().exit(REFUSED_EXIT)


def _print_results(result: ExportResult, *, already_warned: set[str]) -> None:
    """The table of what was published, each distinct warning once, and where it went."""
    from edgeresnet.accuracy import format_interval

    report = result.report
    if not report.accuracy_measured:
        for name in report.bundles:
            click.echo(f"{name:<22} accuracy not measured (no --data); parity with PyTorch checked on "
                       "generated inputs")
        click.echo(f"bundles in {result.output} ({report.seconds:.0f}s)")
        return
    click.echo(f"{'bundle':<22} {'top-1':>8} {'drop':>7} {'95% CI':>16} {'agree':>7}  notes")
    for name, summary in report.bundles.items():
        comparison = summary.comparison
        if comparison is not None:
            interval = format_interval(*comparison.drop_ci95_points)
            drop, agreement = comparison.drop_points, f"{comparison.agreement_pct:.2f}%"
        else:
            drop, interval, agreement = report.fp32.top1 - summary.accuracy.top1, "", ""
        click.echo(f"{name:<22} {summary.accuracy.top1:>7.2f}% {drop:>+6.2f} {interval:>16} {agreement:>7}  "
                   f"{', '.join(_notes(summary))}")
    click.echo(f"drops in top-1 points against FP32 on {report.fp32.images:,} evaluation images (paired 95% interval)")
    for warning in (w for w in report.warnings if w not in already_warned):
        click.echo(f"warning: {warning}", err=True)
    if report.layer_reports:
        click.echo(f"per-layer quantization report: {result.output / 'layer_report.md'}")
    click.echo(f"bundles in {result.output} ({report.seconds:.0f}s)")


def _notes(summary: BundleSummary) -> list[str]:
    quantization = summary.quantization
    if quantization is None:
        return []
    notes = ["unresolved"] if quantization.gate_verdict == "unresolved" else []
    if quantization.float_nodes:
        count = len(quantization.float_nodes)
        notes.append(f"{count} layer{'s' if count != 1 else ''} kept in float")
    if quantization.chosen:
        notes.append(f"via {quantization.chosen}")
    return notes
