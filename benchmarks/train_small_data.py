"""Training on small data: edgeresnet's default recipe beside plain reference recipes, and fine-tuning.

Cases (Fashion-MNIST, ResNet-20, 28×28 grayscale):

* ``500``, ``1500``, ``5000``, ``full``: class-balanced subsets of the 55,000-image training split.
  Every recipe trains on the same images for the same number of epochs and is scored on the same
  held-out test images (the official test set, never seen in training or epoch selection).
* ``finetune``: ResNet-20 pretrained with the default recipe on classes 0-4, fine-tuned with the
  default recipe on 500 images of classes 5-9, beside the default recipe from scratch on the same 500
  images; scored on the test images of classes 5-9.

Recipes: ``default`` is ``edgeresnet.train.train`` with every default (it carves its own validation
share out of the subset and keeps the best epoch). The references are plain loops written here, each
on all images of the subset and keeping the last epoch, with Fashion-MNIST's published statistics:

* ``ref-sgd-onecycle``: SGD Nesterov, one-cycle to 0.05, batch 64, label smoothing 0.1, shifts of ±2 px
  (the reference loop of issue 9);
* ``ref-sgd-cosine``: SGD momentum 0.9, lr 0.1, cosine, batch 128, weight decay 5e-4, no augmentation;
* ``ref-adamw``: AdamW lr 1e-3, weight decay 0.05, cosine, batch 64, shifts of ±2 px.

Every accuracy has its Wilson 95% interval and image count; each default-vs-reference difference is
paired on the same test images (``edgeresnet.accuracy.compare_paired``). Wall times are measured in
the same run on the same machine, which is shared: read them as ratios within one run.

Usage (bounded runs for a shared machine; the defaults run everything):

    python benchmarks/train_small_data.py --cases 500,1500,finetune --epochs 15 --test-images 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeresnet.accuracy import compare_paired, wilson_interval
from edgeresnet.checkpoint import load_checkpoint
from edgeresnet.data import PreprocessSpec, open_source
from edgeresnet.environment import environment
from edgeresnet.models import create_model
from edgeresnet.training import TrainJob, train

CASES = ("500", "1500", "5000", "full", "finetune")
REFERENCES = ("ref-sgd-onecycle", "ref-sgd-cosine", "ref-adamw")
PRETRAIN_CLASSES = (0, 1, 2, 3, 4)
FINETUNE_CLASSES = (5, 6, 7, 8, 9)


@dataclass(frozen=True)
class Outcome:
    recipe: str
    logits: np.ndarray
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class Reference:
    name: str
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    schedule: str  # "onecycle" | "cosine"
    peak_lr: float
    batch_size: int
    label_smoothing: float
    shift: int


REFERENCE_RECIPES = {
    "ref-sgd-onecycle": Reference(
        "ref-sgd-onecycle", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
        "onecycle", 0.05, 64, 0.1, 2),
    "ref-sgd-cosine": Reference(
        "ref-sgd-cosine", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4),
        "cosine", 0.1, 128, 0.0, 0),
    "ref-adamw": Reference(
        "ref-adamw", lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.05), "cosine", 1e-3, 64, 0.0, 2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--recipes", default=",".join(REFERENCES), help="reference recipes beside the default")
    parser.add_argument("--epochs", type=int, default=15, help="epoch budget of the subset and fine-tuning cases")
    parser.add_argument("--case-epochs", default="full=2",
                        help="per-case epoch budgets overriding --epochs, e.g. full=2,5000=5")
    parser.add_argument("--pretrain-images", type=int, default=27_500, help="classes 0-4 images to pretrain on")
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--finetune-seeds", default="0,1,2", help="training seeds of the fine-tuning case")
    parser.add_argument("--test-images", type=int, default=10_000, help="class-balanced test images scored")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy CPU)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = sorted(set(cases) - set(CASES)) + sorted(set(recipes) - set(REFERENCES))
    if unknown:
        parser.error(f"unknown case or recipe: {', '.join(unknown)}")
    args.finetune_seeds = [int(seed) for seed in args.finetune_seeds.split(",") if seed.strip()]
    args.case_epochs = {key.strip(): int(value) for key, _, value in
                        (item.partition("=") for item in args.case_epochs.split(",") if item.strip())}
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeresnet-train-bench-"))
    command = "python benchmarks/train_small_data.py " + " ".join(sys.argv[1:])
    results: dict[str, Any] = {"command": command.strip(), "environment": environment(), "cases": {}}
    for case in cases:
        started = time.perf_counter()
        if case == "finetune":
            results["cases"][case] = _finetune_case(args, work / case)
        else:
            results["cases"][case] = _subset_case(case, recipes, args, work / case)
        _log(f"{case}: done in {time.perf_counter() - started:.0f} s")
        _write(results, args.output)  # after every case: a long run keeps what it finished


# --- cases ----------------------------------------------------------------------------------------


def _subset_case(case: str, recipes: list[str], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    source = open_source("fashion-mnist")
    train_split = source.split("train")
    images = len(train_split) if case == "full" else int(case)
    epochs = args.case_epochs.get(case, args.epochs)
    test = source.split("evaluation").balanced_sample(min(args.test_images, len(source.split("evaluation"))))
    subset = train_split if case == "full" else train_split.balanced_sample(images)
    outcomes = [_default_recipe("fashion-mnist", images if case != "full" else None, epochs, work / "default",
                                test, test.labels, args)]
    spec = source.default_preprocess()
    train_x, train_y = _arrays(subset, spec)
    test_x = _arrays(test, spec)[0]
    for name in recipes:
        outcomes.append(_reference(REFERENCE_RECIPES[name], train_x, train_y, test_x, epochs, num_classes=10))
        _log(f"{case} {name}: {_top1(outcomes[-1].logits, test.labels)}")
    return _case_record(f"{images:,} training images, {epochs} epochs", images, epochs, test.labels, outcomes)


def _finetune_case(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Pretrain on classes 0-4, fine-tune on 500 images of classes 5-9; scratch on the same 500 images."""
    source = open_source("fashion-mnist")
    work.mkdir(parents=True, exist_ok=True)
    train_split = source.split("train")
    pretrain_npz = _class_npz(train_split, PRETRAIN_CLASSES, args.pretrain_images, work / "pretrain.npz")
    # NpzSource trains on 80% of each class: 625 images give the 500 training images.
    finetune_npz = _class_npz(train_split, FINETUNE_CLASSES, 625, work / "finetune.npz")
    test_split = source.split("evaluation")
    wanted = np.flatnonzero(np.isin(test_split.labels, FINETUNE_CLASSES))
    test = test_split.subset(wanted[: min(len(wanted), args.test_images)])
    test_labels = test.labels - FINETUNE_CLASSES[0]

    pretraining = _pretrain(pretrain_npz, work, args)
    weights = str(work / "pretrain" / "model.safetensors")
    epochs = args.case_epochs.get("finetune", args.epochs)
    outcomes, seed_pairs = [], []
    # Several seeds: the paired interval covers the test images' sampling, not the spread between training
    # runs, and a fine-tuning gain of a fraction of a point is the size of that spread.
    for seed in args.finetune_seeds:
        finetuned = _default_recipe(finetune_npz, None, epochs, work / f"finetuned-{seed}", test, test_labels, args,
                                    weights=weights, label=f"default fine-tuned from classes 0-4, seed {seed}",
                                    seed=seed)
        scratch = _default_recipe(finetune_npz, None, epochs, work / f"scratch-{seed}", test, test_labels, args,
                                  label=f"default from scratch, seed {seed}", seed=seed)
        outcomes += [finetuned, scratch]
        paired = compare_paired(test_labels, scratch.logits, finetuned.logits)
        low, high = paired.drop_ci95_points
        seed_pairs.append({"seed": seed, "finetuned_minus_scratch_points": round(-paired.drop_points, 2),
                           "ci95": [round(-high, 2), round(-low, 2)], "images": paired.images})
    record = _case_record(f"fine-tuning: 500 images of classes 5-9, {epochs} epochs", 500, epochs,
                          test_labels, outcomes)
    record["seed_pairs"] = seed_pairs
    record["mean_finetuned_minus_scratch_points"] = round(
        float(np.mean([pair["finetuned_minus_scratch_points"] for pair in seed_pairs])), 2)
    record["pretraining"] = pretraining
    return record


def _pretrain(data: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The default recipe on classes 0-4, reused from an earlier run with the same settings (it is the slow part)."""
    output, record_path = work / "pretrain", work / "pretrain.json"
    settings = {"images": args.pretrain_images, "epochs": args.pretrain_epochs}
    if record_path.is_file() and (output / "card.json").is_file():
        record = json.loads(record_path.read_text())
        if record.get("settings") == settings:
            _log(f"reusing the pretrained ResNet-20 in {output}")
            return record
    started = time.perf_counter()
    pretrained = train(TrainJob(data=data, output=str(output), epochs=args.pretrain_epochs, progress=False,
                                   threads=args.threads, overwrite=True))
    record = {"settings": settings, "classes": list(PRETRAIN_CLASSES), "images": pretrained.card.data["train_images"],
              "epochs": args.pretrain_epochs, "seconds": round(time.perf_counter() - started, 1),
              "own_evaluation_top1": round(pretrained.top1, 2)}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    _log(f"pretrained on classes 0-4: {pretrained.top1:.2f}% on its own evaluation split")
    return record


def _class_npz(split: Any, classes: tuple[int, ...], count: int, path: Path) -> str:
    members = np.flatnonzero(np.isin(split.labels, classes))
    chosen = split.subset(members).balanced_sample(min(count, len(members)), seed=0)
    images = np.stack([chosen.raw(i) for i in range(len(chosen))])
    labels = np.searchsorted(np.array(classes), chosen.labels)
    names = np.array([split.class_names[c] for c in classes], dtype=str)
    np.savez(path, images=images, labels=labels, class_names=names)
    return str(path)


# --- recipes --------------------------------------------------------------------------------------


def _default_recipe(
    data: str, train_limit: int | None, epochs: int, output: Path, test: Any, labels: np.ndarray,
    args: argparse.Namespace,
    *, weights: str | None = None, label: str = "default", seed: int = 0,
) -> Outcome:
    started = time.perf_counter()
    result = train(TrainJob(data=data, output=str(output), epochs=epochs, train_limit=train_limit,
                               weights=weights, progress=False, threads=args.threads, overwrite=True,
                               eval_limit=100, seed=seed))
    seconds = time.perf_counter() - started
    model, card = load_checkpoint(output)
    logits = _logits(model, *_arrays(test, card.preprocessing)[:1])
    recipe = card.training["recipe"]
    note = (f"batch {recipe['batch_size']}, peak lr {recipe['lr']:.3g}, warm-up {recipe['warmup_steps']} of "
            f"{recipe['total_steps']} steps, kept epoch {result.kept_epoch} of {epochs} on "
            f"{card.data['validation_images']} validation images")
    if recipe["freeze_epochs"]:
        note += f", head alone for {recipe['freeze_epochs']} epoch"
    _log(f"{label}: {_top1(logits, labels)}  ({note})")
    return Outcome(label, logits, seconds, note)


def _reference(
    recipe: Reference, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, epochs: int, *,
    num_classes: int,
) -> Outcome:
    """A plain loop: default PyTorch initialisation, all images, last epoch kept."""
    started = time.perf_counter()
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=num_classes, in_chans=train_x.shape[1])
    optimizer = recipe.optimizer(list(model.parameters()))
    batch = min(recipe.batch_size, len(train_x))
    steps_per_epoch = len(train_x) // batch
    total = steps_per_epoch * epochs
    if recipe.schedule == "onecycle":
        scheduler: Any = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.peak_lr, total_steps=total)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    rng = np.random.default_rng(0)
    x_all, y_all = torch.from_numpy(train_x), torch.from_numpy(train_y)
    for _ in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(train_x)))
        for step in range(steps_per_epoch):
            index = order[step * batch : (step + 1) * batch]
            x = _random_shift(x_all[index], recipe.shift, rng) if recipe.shift else x_all[index]
            loss = criterion(model(x), y_all[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return Outcome(recipe.name, _logits(model, test_x), time.perf_counter() - started)


def _random_shift(x: torch.Tensor, pad: int, rng: np.random.Generator) -> torch.Tensor:
    """Zero-padded random crop (the background of normalised Fashion-MNIST is the pad value's minimum)."""
    n, _, h, w = x.shape
    background = float(x.amin())
    padded = nn.functional.pad(x, (pad, pad, pad, pad), value=background)
    out = torch.empty_like(x)
    offsets = rng.integers(0, 2 * pad + 1, size=(n, 2))
    for i, (top, left) in enumerate(offsets):
        out[i] = padded[i, :, top : top + h, left : left + w]
    return out


# --- scoring --------------------------------------------------------------------------------------


def _arrays(images: Any, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*images.batches(spec, 1000), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


@torch.no_grad()
def _logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i : i + 500])).numpy() for i in range(0, len(x), 500)])


def _top1(logits: np.ndarray, labels: np.ndarray) -> str:
    return f"{100.0 * float((logits.argmax(1) == labels).mean()):.2f}%"


def _case_record(title: str, images: int, epochs: int, labels: np.ndarray, outcomes: list[Outcome]) -> dict[str, Any]:
    rows = []
    for outcome in outcomes:
        hits = int((outcome.logits.argmax(1) == labels).sum())
        low, high = wilson_interval(hits, len(labels))
        rows.append({"recipe": outcome.recipe, "top1": round(100.0 * hits / len(labels), 2),
                     "top1_ci95": [round(low, 2), round(high, 2)], "test_images": len(labels),
                     "seconds": round(outcome.seconds, 1), "note": outcome.note})
    first = outcomes[0]
    for row, outcome in zip(rows[1:], outcomes[1:], strict=True):
        # Paired on the same test images; reported as first row (default) minus this row.
        paired = compare_paired(labels, outcome.logits, first.logits)
        low, high = paired.drop_ci95_points
        row[f"{first.recipe} minus this"] = {"points": round(-paired.drop_points, 2),
                                            "ci95": [round(-high, 2), round(-low, 2)],
                                            "discordant": paired.discordant, "images": paired.images}
    best = max(rows[1:], key=lambda r: r["top1"]) if len(rows) > 1 else None
    return {"title": title, "train_images": images, "epochs": epochs, "rows": rows,
            "best_other": best["recipe"] if best else None}


def _write(results: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "train_small_data.json").write_text(json.dumps(results, indent=2) + "\n")
    (output / "train_small_data.md").write_text(_markdown(results))


def _markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = ["# Training on small data: default recipe vs plain references, and fine-tuning", "",
             (f"Machine: {env['cpu']['model']}, {env['cpu']['usable_cores']} cores usable (wall times are "
             f"comparable within one run only); {env['platform']}."),
             "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".", "",
             *[f"Command: `{command}`" for command in _commands(results)], "",
             ("ResNet-20 on Fashion-MNIST 28×28. Top-1 on held-out test images with Wilson 95% intervals; "
             "the difference column is the first row of each case minus that row, paired on the same test "
             "images (Tango score interval). References are plain loops in this script (see its docstring)."),
             ""]
    for case, record in results["cases"].items():
        lines += [f"## {case}: {record['title']}", "",
                  "| recipe | test top-1 (95% CI) | images | first row minus this (95% CI) | wall time | notes |",
                  "|---|---|---|---|---|---|"]
        for row in record["rows"]:
            diff = next((v for k, v in row.items() if k.endswith("minus this")), None)
            diff_text = "" if diff is None else f"{diff['points']:+.2f} pt ({diff['ci95'][0]:+.2f} to {diff['ci95'][1]:+.2f})"
            low, high = row["top1_ci95"]
            lines.append(f"| {row['recipe']} | {row['top1']:.2f}% ({low:.2f}–{high:.2f}) | {row['test_images']:,} | "
                         f"{diff_text} | {row['seconds']:.0f} s | {row['note']} |")
        if "pretraining" in record:
            pre = record["pretraining"]
            lines += ["", (f"Pretraining: default recipe on {pre['images']:,} images of classes 0-4, "
                      f"{pre['epochs']} epochs, {pre['seconds']:.0f} s.")]
        if record.get("seed_pairs"):
            pairs = "; ".join(f"seed {pair['seed']}: {pair['finetuned_minus_scratch_points']:+.2f} pt "
                              f"({pair['ci95'][0]:+.2f} to {pair['ci95'][1]:+.2f})" for pair in record["seed_pairs"])
            lines += ["", (f"Fine-tuned minus scratch, paired on the same {record['seed_pairs'][0]['images']:,} test "
                      f"images per training seed: {pairs}; mean over seeds "
                      f"{record['mean_finetuned_minus_scratch_points']:+.2f} pt.")]
        lines.append("")
    return "\n".join(lines)


def _commands(results: dict[str, Any]) -> list[str]:
    """One command per run; results merged from several bounded runs (``merge``) list each."""
    command = results["command"]
    return command if isinstance(command, list) else [command]


def merge(paths: list[Path], output: Path) -> None:
    """Combine the results of several bounded runs (each case from the run that measured it)."""
    merged: dict[str, Any] = {"command": [], "environment": None, "cases": {}}
    for path in paths:
        record = json.loads(path.read_text())
        merged["command"] += _commands(record)
        merged["environment"] = merged["environment"] or record["environment"]
        merged["cases"].update(record["cases"])
    _write(merged, output)


def _log(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
