"""INT8 accuracy across data sets: our default `export --int8` for every target beside the peers' defaults.

For each suite entry (benchmarks/int8_cases.py: Fashion-MNIST full, a 1,500-image folder, an
ImageNet-style ResNet-18 at 64×64 RGB) in one run on one machine:

1. `edgeresnet export CKPT --int8 --target all --calib-data DATA` with every default (calibration
   size, `auto` method, accuracy gate), and
2. on the same FP32 ONNX (the bundle's model_fp32.onnx) and the same calibration images the export
   used (checked by the data hash): ONNX Runtime `quantize_static` defaults, `nncf.quantize`
   defaults, and NVIDIA ModelOpt `quantize(quantize_mode="int8")` defaults (in ModelOpt's own
   environment, a subprocess, with the calibration images saved to .npy), once as is (its FP16
   high-precision parts are what TensorRT runs, not what ONNX Runtime's CPU runs faithfully) and once
   with `high_precision_dtype="fp32"`;
3. every artifact scored against FP32 on score images never used for calibration or method choice,
   as a paired comparison: top-1, drop with its 95% interval, agreement, image count. Our bundles
   also show the interval the export's gate stated on its own evaluation split, and whether it covers
   the drop measured on the score images.

Usage: python benchmarks/int8_accuracy.py [--cases a,b] [--score-limit N] [--scale S] [--no-modelopt]
(--score-limit bounds a run on a busy machine: the export's --eval-limit and the score set both take N.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_cases import CASES, Case, prepare

OUR_BUNDLES = ("onnxruntime-int8", "openvino-int8", "tensorrt-int8")
TARGET_MARGIN = 0.1  # points: each target within 0.1 of the best peer default (the target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--score-limit", type=int, default=None,
                        help="score on at most this many images, and let the export's gate evaluate on as many")
    parser.add_argument("--scale", type=float, default=1.0, help="share of the imagenet-style folder to write")
    parser.add_argument("--no-modelopt", action="store_true", help="skip the ModelOpt peer")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    from edgeresnet.environment import environment

    work = args.work or Path(tempfile.mkdtemp(prefix="edgeresnet-int8-"))
    for name in args.cases.split(","):
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        record = {"environment": environment(), "command": " ".join(["python", *sys.argv]), "started": started,
                  "case": run_case(CASES[name], work, args, _log)}
        # One JSON per case (cases can run as separate processes); the Markdown gathers every case's.
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / f"int8_accuracy.{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        (args.output / "int8_accuracy.md").write_text(_markdown(_gather(args.output)))
    _log(f"wrote {args.output / 'int8_accuracy.md'}")


def _gather(output: Path) -> dict[str, dict[str, Any]]:
    records = {path.name.split(".")[1]: json.loads(path.read_text()) for path in output.glob("int8_accuracy.*.json")}
    return {name: records[name] for name in CASES if name in records}


def run_case(case: Case, work: Path, args: argparse.Namespace, log: Any) -> dict[str, Any]:
    from edgeresnet.export.job import ExportJob
    from edgeresnet.export.sources import load_model_source
    from edgeresnet.export.workflow import run_export

    data, checkpoint, train_record = prepare(case, args.scale, log=log)
    source = load_model_source(str(checkpoint))
    out = work / case.name
    started = time.perf_counter()
    options = ExportJob(model=str(checkpoint), output=out / "export", int8=True, targets=("all",), calib_data=data,
                        data=data, eval_limit=args.score_limit)
    gate_failure = None
    export = run_export(options, source=source, progress=lambda message: log(f"{case.name}: {message}"))
    if export.refused:
        # The default export refused some INT8 artifacts: record why, then score every artifact it would have
        # built (gate off).
        gate_failure = "; ".join(refusal.describe() for refusal in export.refused.values())
        log(f"{case.name}: the default export's gate refused {', '.join(export.refused)}: {gate_failure}")
        export = run_export(dataclasses.replace(options, max_accuracy_drop=100.0, overwrite=True), source=source,
                            progress=lambda message: log(f"{case.name} (gate off): {message}"))
    export_seconds = time.perf_counter() - started
    report = export.report.to_dict()
    fp32 = out / "export" / "onnxruntime-int8" / "model_fp32.onnx"
    labels, score_batches, score_note = _score_set(case, data, source, args.score_limit)
    reference = _onnx_logits(fp32, score_batches)
    rows: dict[str, dict[str, Any]] = {}
    logits: dict[str, np.ndarray] = {}
    for bundle in OUR_BUNDLES:
        logits[f"edgeresnet {bundle}"] = _bundle_logits(out / "export" / bundle, score_batches)
    calib, digest = _calibration_images(data, source, report["calibration"])
    assert digest == report["calibration"]["data_hash"], "peers must see the export's calibration images"
    peers = _peers(fp32, calib, out, args.no_modelopt, log)
    for name, path_or_error in peers.items():
        if isinstance(path_or_error, str):
            rows[name] = {"error": path_or_error}
            continue
        logits[name] = _runner_logits(path_or_error, score_batches)
    from edgeresnet.evaluation import compare_paired

    for name, values in logits.items():
        comparison = compare_paired(labels, reference, values)
        rows[name] = {"comparison": comparison.to_dict(), "summary": comparison.summary()}
        bundle = name.removeprefix("edgeresnet ")
        if bundle in report["bundles"]:
            stated = report["bundles"][bundle]["comparison"]
            low, high = stated["drop_ci95_points"]
            rows[name]["gate_stated"] = stated
            rows[name]["gate_interval_covers_score_drop"] = low <= comparison.drop_points <= high
    peer_names = [name for name in logits if name.startswith("peer")]
    if peer_names:
        best = max(peer_names, key=lambda name: rows[name]["comparison"]["candidate_top1"])
        for name, values in logits.items():
            if name.startswith("edgeresnet"):
                versus = compare_paired(labels, logits[best], values)
                rows[name]["versus_best_peer"] = {"peer": best, **versus.to_dict()}
                rows[name]["meets_target"] = (versus.drop_points <= TARGET_MARGIN
                                              or versus.drop_ci95_points[0] <= TARGET_MARGIN)
    return {"description": case.description, "train": train_record, "export_seconds": round(export_seconds, 1),
            "default_export_gate_failure": gate_failure,
            "calibration": report["calibration"], "fp32_top1_score": rows[next(iter(rows))]["comparison"][
                "reference_top1"] if rows else None, "score_images": len(labels), "score_set": score_note,
            "export_bundles": {name: report["bundles"][name]["comparison"] for name in OUR_BUNDLES},
            "rows": rows}


def _score_set(case: Case, data: str, source: Any, limit: int | None) -> tuple[np.ndarray, list[np.ndarray], str]:
    from edgeresnet.data import open_source
    from edgeresnet.export.prepare import label_mapping

    if case.score_on_fmnist_test:
        scored = open_source("fashion-mnist")
        split = scored.split("evaluation").balanced_sample(min(case.score_on_fmnist_test, limit or 10**9))
        note = (f"{len(split)} Fashion-MNIST test images (class-balanced), never in the folder: the export's gate saw "
                "only the folder's own evaluation split")
    else:
        scored = open_source(data)
        split = scored.split("evaluation")
        if limit and limit < len(split):
            split = split.balanced_sample(limit)
        note = (f"the {len(split)}-image evaluation split, never used for calibration or method choice (the same "
                "images the export's gate measured)")
    mapping = label_mapping(scored.class_names, source.class_names, what=scored.name)
    images, labels = [], []
    for batch, batch_labels in split.batches(source.preprocessing, 250):
        images.append(batch)
        labels.append(mapping[batch_labels])
    return np.concatenate(labels), images, note


def _calibration_images(data: str, source: Any, calibration: dict[str, Any]) -> tuple[np.ndarray, str]:
    from edgeresnet.data import open_source

    samples = open_source(data).split("calibration").balanced_sample(calibration["plan"]["calibration_images"])
    return np.concatenate([b for b, _ in samples.batches(source.preprocessing, 64)]), samples.fingerprint()


def _peers(fp32: Path, calib: np.ndarray, out: Path, skip_modelopt: bool, log: Any) -> dict[str, Path | str]:
    from edgeresnet.calibration import peer_quantize_static_default
    from edgeresnet.export.openvino import peer_nncf_default

    peers: dict[str, Path | str] = {}
    log("peer: onnxruntime quantize_static defaults")
    batches = [calib[i : i + 64] for i in range(0, len(calib), 64)]
    peers["peer onnxruntime quantize_static"] = peer_quantize_static_default(fp32, out / "peer-ort.onnx", batches)
    log("peer: nncf.quantize defaults")
    peers["peer nncf.quantize"] = peer_nncf_default(fp32, out / "peer-nncf" / "model.xml", [im[None] for im in calib])
    if skip_modelopt:
        return peers
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.calibration.modelopt_support import ENV_VAR, modelopt_python

    python = modelopt_python()  # ModelOpt's own interpreter: $EDGERESNET_MODELOPT_PYTHON or a probed venv
    if python is None:
        for label in ("peer modelopt int8", "peer modelopt int8 (FP32 high precision)"):
            peers[label] = f"ModelOpt is not installed: set {ENV_VAR} to an interpreter that has it"
        return peers
    np.save(out / "calibration.npy", calib)
    for label, extra in (("peer modelopt int8", []), ("peer modelopt int8 (FP32 high precision)", ["fp32"])):
        log(f"{label} (subprocess)")
        target = out / f"peer-modelopt{'-' + extra[0] if extra else ''}.onnx"
        run = subprocess.run([python, str(Path(__file__).parent / "modelopt_peer.py"), str(fp32),
                              str(out / "calibration.npy"), str(target), *extra], capture_output=True, text=True,
                             timeout=1800, check=False)
        if run.returncode != 0 or not target.exists():
            tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
            peers[label] = f"ModelOpt failed: {tail[0][:300]}"
        else:
            peers[label] = target
    return peers


def _bundle_logits(bundle: Path, batches: list[np.ndarray]) -> np.ndarray:
    model = bundle / ("model.xml" if (bundle / "model.xml").exists() else "model.onnx")
    return _runner_logits(model, batches)


def _runner_logits(model: Path, batches: list[np.ndarray]) -> np.ndarray:
    if model.suffix == ".xml":
        from edgeresnet.runtime.openvino import OpenVinoRunner

        with OpenVinoRunner(model, precision="int8") as runner:
            return np.concatenate([runner.infer(batch) for batch in batches])
    return _onnx_logits(model, batches)


def _onnx_logits(model: Path, batches: list[np.ndarray]) -> np.ndarray:
    from edgeresnet.calibration.session import BatchSession

    session = BatchSession(model)
    return np.concatenate([session.logits(batch) for batch in batches]).astype(np.float32)


def _markdown(records: dict[str, dict[str, Any]]) -> str:
    lines = ["# INT8 accuracy across data sets, beside the peers' defaults", "",
             ("Drops are FP32 top-1 minus INT8 top-1 in points on the same score images (paired), with Tango's 95% "
              "interval; agreement is the share of images whose top-1 class is FP32's. `vs best peer`: our top-1 "
              f"minus the best peer default's, paired; the target is within {TARGET_MARGIN} points, or an interval "
              "that cannot exclude it. All INT8 models run in ONNX Runtime / OpenVINO on the CPU named per case "
              "(TensorRT's QDQ model too: no TensorRT here)."), ""]
    for name, record in records.items():
        case, env = record["case"], record["environment"]
        versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        where = (f"Run {record['started']} on {env['cpu']['model']} ({env['cpu']['usable_cores']} cores usable, "
                 f"shared; flags {', '.join(env['cpu']['flags']) or 'none listed'}); {versions}. "
                 f"Command: `{record['command']}`.")
        lines += [f"## {name}: {case['description']}", "", where, ""]
        lines += _case_lines(case)
    return "\n".join(lines) + "\n"


def _case_lines(case: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    calibration = case["calibration"]
    choice = calibration.get("auto_choice") or {}
    setup = (f"Training: {case['train']['model']}, {case['train']['epochs']} epochs, "
             f"{case['train']['seconds']:.0f} s (cached under runs/bench-int8/). Export `--int8 --target all` "
             f"with defaults: {case['export_seconds']:.0f} s; calibration {calibration['samples']} images, "
             f"method {calibration['method']} ({choice.get('decided_by', 'given')}). Score set: {case['score_set']}.")
    lines += [setup, "",
              ("| artifact | top-1 | drop (pt) | 95% interval | agreement | images | vs best peer | gate's stated "
               "interval (covers?) |"), "|---|---|---|---|---|---|---|---|"]
    for row_name, row in case["rows"].items():
        if "error" in row:
            lines.append(f"| {row_name} | error: {row['error']} | | | | | | |")
            continue
        c = row["comparison"]
        versus = row.get("versus_best_peer")
        versus_text = (f"{-versus['drop_points']:+.2f} ({-versus['drop_ci95_points'][1]:+.2f} to "
                       f"{-versus['drop_ci95_points'][0]:+.2f}) {'✓' if row['meets_target'] else '✗'}"
                       if versus else "")
        stated = row.get("gate_stated")
        stated_text = (f"{stated['drop_ci95_points'][0]:+.2f} to {stated['drop_ci95_points'][1]:+.2f} on "
                       f"{stated['images']} ({'yes' if row['gate_interval_covers_score_drop'] else 'no'})"
                       if stated else "")
        lines.append(f"| {row_name} | {c['candidate_top1']:.2f}% | {c['drop_points']:+.2f} | "
                     f"{c['drop_ci95_points'][0]:+.2f} to {c['drop_ci95_points'][1]:+.2f} | {c['agreement_pct']:.2f}% | "
                     f"{c['images']:,} | {versus_text} | {stated_text} |")
    if case.get("default_export_gate_failure"):
        failure = case["default_export_gate_failure"]
        lines += ["", f"**The default export failed its accuracy gate** (our rows: gate off): {failure}"]
    first = next((row for row in case["rows"].values() if "comparison" in row), None)
    if first:
        lines += ["", f"FP32 top-1 on the score set: {first['comparison']['reference_top1']:.2f}%.", ""]
    return lines


def _log(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
