"""The markdown report of benchmarks/e2e_latency.py: targets as ratios within the run, the stage split, agreement."""

from __future__ import annotations

from typing import Any

from e2e_stages import STAGE_TITLES
from PIL import Image

from edgeresnet.accuracy import wilson_interval

# (key in the ratios, what it is, limit on the ratio to model + decode floor or None)
PATHS = (
    ("camera_frame", "camera frame (uint8 224×224×3) → label", None),
    ("jpeg_640x427", "640×427 JPEG → label (floor: Pillow's full decode)", 1.15),
    ("jpeg_12mp", "12 MP JPEG → label (floor: Pillow's reduced-size decode)", 1.15),
    ("folder_b8", "folder of 640×427 JPEGs, batch 8, per batch (floor: Pillow's full decodes, serial)", None),
)
BEYOND_TITLES = {
    "decode_above_floor": "decoder above Pillow's decode", "colour": "colour", "resize_and_crop": "resize + crop",
    "batch": "batch", "normalise_numpy": "float + normalise (numpy)",
    "backend_above_model_only": "backend call above the float model-only call",
    "ood_hint": "out-of-distribution hint", "rest_of_the_call": "rest of the call (checks, softmax, ranking)",
}


def markdown(record: dict[str, Any]) -> str:
    lines = _header(record)
    timing = record.get("timing")
    if timing and "jpeg_640x427" in timing.get("ratios", {}):
        lines += _timing(record, timing)
    elif timing:  # a record from before the ratios to (model + decode floor): its figures are not comparable
        lines += ["", ("Timing from an earlier version of this script (no decode floors): rerun it without "
                  "`--agreement-only`.")]
    if record.get("agreement"):
        lines += _agreement(record["agreement"])
    if record.get("photo_faithfulness"):
        lines += _faithfulness(record["photo_faithfulness"])
    return "\n".join(lines) + "\n"


def _header(record: dict[str, Any]) -> list[str]:
    env = record.get("environment", {})
    versions = env.get("versions", {})
    lines = [
        "# From a photo to a label (issues 10 and 22)", "",
        (f"- **Machine:** {env.get('cpu', {}).get('model', '?')}, {record.get('threads')} threads, "
         f"load average at start {record.get('load_average')}"),
        "- **Versions:** " + ", ".join(f"{k} {versions[k]}" for k in ("python", "openvino", "onnxruntime", "torch",
                                                                         "numpy") if k in versions)
        + f", Pillow {Image.__version__}",
        f"- **Date:** {record.get('date')}; **command:** `{record.get('command')}`",
    ]
    if "calib_images" in record:
        lines += [
            (f"- **Model:** ResNet-50, 224×224, OpenVINO INT8 bundle (random-init weights, NNCF with "
             f"{record['calib_images']} Fashion-MNIST calibration images); preprocessing resize 256 + center crop "
             f"224; normalisation in the model: {record.get('in_model_preprocessing')}; the bundle carries the "
             "out-of-distribution ranges `export` records, so every call computes the hint"),
            (f"- {record['rounds']} alternating rounds of ≥ {record['seconds']} s per configuration; figures are the "
             "median over rounds of each round's p50; every ratio is taken within this run"),
        ]
    return lines


def _timing(record: dict[str, Any], timing: dict[str, Any]) -> list[str]:
    p50 = timing["p50_ms_median_over_rounds"]
    ratios = timing["ratios"]
    lines = ["", "| configuration | p50 ms (median of rounds) |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.3f} |" for name, value in p50.items()]
    lines += ["", "| path | ms | ÷ model-only | ÷ (model-only + decode floor) | limit | met |",
              "| --- | ---: | ---: | ---: | ---: | :---: |"]
    for key, title, limit in PATHS:
        entry = ratios[key]
        met = "—" if limit is None else ("yes" if entry["over_model_plus_floor"] <= limit else "no")
        lines.append(f"| {title} | {entry['ms']:.2f} | {entry['over_model']:.3f}× | "
                     f"{entry['over_model_plus_floor']:.3f}× | {'—' if limit is None else f'≤ {limit:g}×'} | {met} |")
    lines += ["", ("Issue 10's targets, for continuity: 640×427 JPEG ÷ model-only "
              f"{ratios['jpeg_640x427']['over_model']:.3f}× (≤ 1.25×); folder images/s ÷ model-only images/s at "
              f"batch 8 {1.0 / ratios['folder_b8']['over_model']:.3f}× (≥ 0.8×: "
              f"{timing['folder_b8_images_per_s']:.1f} against {timing['model_b8_images_per_s']:.1f} images/s, "
              f"{record['folder_files']} files).")]
    split = timing.get("stage_split")
    if split:
        lines += _split(split)
    return lines


def _split(split: dict[str, Any]) -> list[str]:
    kinds = list(split)
    lines = ["", ("Stage split (median over rounds of each p50, ms): the runtime's own functions in its order, and "
             "beside them in the same loop, call by call, the decode floor, model-only and the whole "
             "`Classifier.predict` of the file (see `benchmarks/e2e_stages.py`):"), "",
             "| stage | " + " | ".join(kinds) + " |", "| --- |" + " ---: |" * len(kinds)]
    for stage, title in STAGE_TITLES.items():
        lines.append(f"| {title} | " + " | ".join(f"{split[k]['stages_ms'][stage]:.3f}" for k in kinds) + " |")
    lines.append("| sum of the steps (decode to hint) | "
                 + " | ".join(f"{split[k]['steps_sum_ms']:.3f}" for k in kinds) + " |")
    lines.append("| model-only (same loop) | "
                 + " | ".join(f"{split[k]['stages_ms']['model_only']:.3f}" for k in kinds) + " |")
    lines.append("| end to end, `Classifier.predict` (same loop) | "
                 + " | ".join(f"{split[k]['end_to_end_ms']:.3f}" for k in kinds) + " |")
    lines.append("| end to end ÷ (model-only + decode floor), same loop | "
                 + " | ".join(f"{split[k]['paired_over_model_plus_floor']:.3f}×" for k in kinds) + " |")
    lines += ["", "Above (model-only + decode floor) in that loop, ms:", "",
              "| where | " + " | ".join(kinds) + " |", "| --- |" + " ---: |" * len(kinds)]
    for part, title in BEYOND_TITLES.items():
        lines.append(f"| {title} | " + " | ".join(f"{split[k]['beyond_model_plus_floor_ms'][part]:+.3f}"
                                                 for k in kinds) + " |")
    lines.append("| total: end to end − (model-only + decode floor) | "
                 + " | ".join(f"{sum(split[k]['beyond_model_plus_floor_ms'].values()):+.3f}" for k in kinds) + " |")
    return lines


def _agreement(record: dict[str, Any]) -> list[str]:
    low, high = wilson_interval(round(record["top1_agreement_pct"] * record["images"] / 100), record["images"])
    limit_met = "yes" if record["top1_agreement_pct"] >= 99.5 else "no"
    if low < 99.5 <= high:
        limit_met += f", but {record['images']} images cannot tell it from 99.5%"
    lines = [
        "", (f"Top-1 agreement of the runtime's decode path with a plain full decode + the same resize: "
             f"**{record['top1_agreement_pct']:.2f}%** (95% CI {low:.2f} to {high:.2f}) of "
             f"{record['images']} JPEGs at draft margin {record['draft_margin_in_use']:g} (limit ≥ 99.5%: {limit_met})."),
        "", (f"JPEG evaluation set: {record['images']} Fashion-MNIST evaluation images upscaled to "
             f"{record['sides_px']} px; ResNet-20 trained with the default recipe on "
             f"{record['checkpoint_train_images']} images for {record['checkpoint_epochs']} "
             f"epochs, top-1 {record['checkpoint_top1_pct_plain_decode']:.2f}% through the plain decode."), "",
        "| draft margin | top-1 agreement % | by side (px → %) | accuracy plain → fast | mean abs Δpixel | decode s |",
        "| ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for margin, entry in record["by_margin"].items():
        by_side = ", ".join(f"{side}: {pct:.1f}" for side, pct in entry["agreement_pct_by_side"].items())
        lines.append(f"| {margin} | {entry['top1_agreement_pct']:.2f} | {by_side} | {entry['summary']} | "
                     f"{entry['pixel_mean_abs_diff']:.3f} | {entry['decode_seconds']:.2f} |")
    lines.append(f"\nPlain full-resolution decode of the same files: {record['plain_decode_seconds']:.2f} s.")
    return lines


def _faithfulness(record: dict[str, Any]) -> list[str]:
    names = list(record["files"])
    lines = ["", "Real photos at resize 256 + crop 224, fast path vs plain full decode: PSNR dB (decoded size)", "",
             "| draft margin | " + " | ".join(f"{name} {'×'.join(map(str, record['files'][name]))}"
                                            for name in names) + " |",
             "| ---: |" + " ---: |" * len(names)]
    for margin, rows in record["by_margin"].items():
        cells = [f"{rows[name]['psnr_db'] if rows[name]['psnr_db'] is not None else 'identical'} "
                 f"({'×'.join(map(str, rows[name]['decoded_at']))})" for name in names]
        lines.append(f"| {margin} | " + " | ".join(cells) + " |")
    bands = record.get("bands_vs_one_call")
    if bands:
        cells = [f"{bands[name]['psnr_db'] if bands[name]['psnr_db'] is not None else 'identical'} "
                 f"(max {bands[name]['max_abs_diff']}, {bands[name]['pixels_differing_pct']:.2f}% of values)"
                 for name in names]
        lines.append("| bands vs one Pillow call (plain decode) | " + " | ".join(cells) + " |")
    return lines
