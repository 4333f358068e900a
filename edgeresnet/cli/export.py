"""`edgeresnet export`: ONNX, INT8 with real calibration data, one bundle per target."""

from __future__ import annotations

from pathlib import Path

import click

from edgeresnet.bundle.vocabulary import CALIB_METHODS, TARGETS
from edgeresnet.cli.core import InputSizeType, OpsetType, ProgressEcho, ThreadsType, cli, number_range

TARGET_CHOICES = [*TARGETS, "all"]


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
@click.option("--max-accuracy-drop", type=number_range(float, 0, 100), default=1.0, show_default=True,
              help="Allowed top-1 drop of INT8 versus FP32, in points (on the point estimate); the layers with "
                   "the worst quantization error fall back to float.")
@click.option("--strict-gate", is_flag=True,
              help="Require the upper end of the drop's 95% interval, not its estimate, to be within the budget.")
@click.option("--batch", type=number_range(int, 1, 4096), default=None, help="Static batch size (default: dynamic).")
@click.option("--opset", type=OpsetType(), default=17, show_default=True,
              help="ONNX opset of the exported model.")
@click.option("--eval-limit", type=number_range(int, 1, 10**9), default=None,
              help="Evaluate on a class-balanced subset of this many images (default: the whole split).")
@click.option("--threads", type=ThreadsType(), default=None, help="Runtime threads for evaluation.")
@click.option("--overwrite", is_flag=True, help="Replace bundles a previous export wrote into --output.")
def export_command(
    model: str, output: Path, weights: Path | None, num_classes: int | None, in_chans: str | None,
    input_size: int | None, int8: bool, targets: tuple[str, ...], data: str | None, calib_data: str | None,
    calib_size: int | None, calib_method: str, calib_table: Path | None, max_accuracy_drop: float,
    strict_gate: bool, batch: int | None, opset: int, eval_limit: int | None, threads: int | None, overwrite: bool,
) -> None:
    """Export MODEL to ONNX and, with --int8, to calibrated INT8 for ONNX Runtime, OpenVINO and TensorRT.

    MODEL is a checkpoint directory written by `train`, or an architecture name with --weights.
    Every artifact is evaluated on the held-out evaluation split; an INT8 model that loses more than
    --max-accuracy-drop top-1 points keeps its most sensitive layers in float, or the export fails.

    Example: edgeresnet export runs/r20 --int8 --target all --output runs/r20-export
    """
    from edgeresnet.api import export_model
    from edgeresnet.evaluation import format_interval

    if not int8:
        context = click.get_current_context()
        given = [f"--{name.replace('_', '-')}" for name in ("calib_data", "calib_size", "calib_method", "calib_table",
                                                                   "strict_gate")
                 if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"{', '.join(given)} need --int8")

    progress = ProgressEcho()
    result = export_model(
        model, output, weights=weights, num_classes=num_classes, in_chans=int(in_chans) if in_chans else None,
        input_size=input_size, int8=int8, targets=targets or None, data=data, calib_data=calib_data,
        calib_size=calib_size, calib_method=calib_method, calib_table=calib_table,  # type: ignore[arg-type]
        max_accuracy_drop=max_accuracy_drop, strict_gate=strict_gate, opset=opset, batch=batch,
        eval_limit=eval_limit, threads=threads, overwrite=overwrite,
        progress=progress,
    )
    if not result.report.get("accuracy_measured", True):
        for name in result.report["bundles"]:
            click.echo(f"{name:<22} accuracy not measured (no --data); parity with PyTorch checked on "
                       "generated inputs")
        click.echo(f"bundles in {result.output} ({result.report['seconds']:.0f}s)")
        return
    fp32 = result.report["fp32"]["top1"]
    click.echo(f"{'bundle':<22} {'top-1':>8} {'drop':>7} {'95% CI':>16} {'agree':>7}  notes")
    for name, summary in result.report["bundles"].items():
        top1 = summary["accuracy"]["top1"]
        comparison = summary.get("comparison")
        interval = format_interval(*comparison["drop_ci95_points"]) if comparison else ""
        agreement = f"{comparison['agreement_pct']:.2f}%" if comparison else ""
        drop = comparison["drop_points"] if comparison else fp32 - top1
        quantization = summary.get("quantization") or {}
        notes = []
        if quantization.get("float_nodes"):
            count = len(quantization['float_nodes'])
            notes.append(f"{count} layer{'s' if count != 1 else ''} kept in float")
        if quantization.get("chosen"):
            notes.append(f"via {quantization['chosen']}")
        click.echo(f"{name:<22} {top1:>7.2f}% {drop:>+6.2f} {interval:>16} {agreement:>7}  {', '.join(notes)}")
    images = result.report["fp32"]["images"]
    click.echo(f"drops in top-1 points against FP32 on {images:,} evaluation images (paired 95% interval)")
    warnings = {(summary.get("quantization") or {}).get("warning") for summary in result.report["bundles"].values()}
    for warning in sorted(w for w in warnings if w and w not in progress.warned):
        click.echo(f"warning: {warning}", err=True)
    if result.report.get("layer_reports"):
        click.echo(f"per-layer quantization report: {result.output / 'layer_report.md'}")
    click.echo(f"bundles in {result.output} ({result.report['seconds']:.0f}s)")
