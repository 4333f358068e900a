"""Kill export, train, compile and pipeline at any moment: the old state intact or the new one whole.

Each command runs in a process of its own and is killed with SIGKILL, either after a random delay or at an
injected point (after the N-th entry of its final publish moved into place). Right after the kill, every
entry of the output is the previous run's, byte for byte, or the new run's; a mix is allowed only while an
unfinished publish journal names the set, and then readers refuse it. The next run into the output finishes
or cleans what the killed one left and succeeds, leaving no temporary behind.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from edgeresnet.placement import interrupted_publish, read_ledger
from tests.adversarial import placement_fixtures as fixtures
from tests.adversarial.placement_fixtures import ONE_TARGET, TRAIN_QUICK, cli_process, run, tool_state

blobs, weights = fixtures.blobs, fixtures.weights

# Kills the CLI (SIGKILL, no clean-up of any kind) when the ENTRY-th entry of a publish into ROOT is moving in.
KILLER = """
import os, signal, sys
from pathlib import Path
import edgeresnet.placement.publishing as publishing
root, entry = Path(os.environ["KILL_ROOT"]).absolute(), int(os.environ["KILL_ENTRY"])
real, moved = publishing.move_into_place, []
def move(incoming, target, *, aside):
    if Path(target).absolute().parent == root:
        if len(moved) == entry:
            os.kill(os.getpid(), signal.SIGKILL)
        moved.append(target)
    real(incoming, target, aside=aside)
publishing.move_into_place = move
from edgeresnet.cli import main
sys.argv = ["edgeresnet", *sys.argv[1:]]
main()
"""


def killed_at_entry(root: Path, entry: int, *args: object) -> None:
    """Run the CLI with ``args`` and kill it as the ``entry``-th entry of its publish into ``root`` moves."""
    import os
    import subprocess
    import sys

    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                   "KILL_ROOT": str(root), "KILL_ENTRY": str(entry)}
    done = subprocess.run([sys.executable, "-c", KILLER, *map(str, args)], env=environment, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr


def killed_after(seconds: float, *args: object) -> int:
    """Run the CLI with ``args`` and SIGKILL it after ``seconds`` (if it still runs); its exit status."""
    process = cli_process(*args)
    try:
        process.wait(timeout=seconds)
    except Exception:  # noqa: BLE001 (TimeoutExpired: still running, as intended)
        process.send_signal(signal.SIGKILL)
    process.communicate()
    return process.returncode


def assert_old_or_new(root: Path, before: dict[str, str], entries: list[str]) -> str:
    """Each entry is byte-identical to ``before`` or differs from it whole; a mix only under a journal."""
    now = tool_state(root)
    kinds = set()
    for entry in entries:
        old = {k: v for k, v in before.items() if k == entry or k.startswith(f"{entry}/")}
        new = {k: v for k, v in now.items() if k == entry or k.startswith(f"{entry}/")}
        kinds.add("old" if new == old else "new")
    if len(kinds) > 1:
        assert any(interrupted_publish(root / entry) is not None for entry in entries), (kinds, sorted(now))
        return "mixed"
    return kinds.pop()


def assert_nothing_left(root: Path) -> None:
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        assert read_ledger(directory).temporaries == {}, directory
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".lock")]


@pytest.fixture(scope="module")
def exported(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("export") / "out"
    assert run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET).exit_code == 0
    return output


EXPORT_ENTRIES = ["export_report.json", "onnxruntime-fp32", "pytorch-fp32"]


@pytest.mark.parametrize("entry", [0, 2])  # before the first move; between the last two
def test_export_killed_while_publishing(exported: Path, weights: Path, tmp_path: Path, entry: int) -> None:
    output = Path(shutil.copytree(exported, tmp_path / "out", symlinks=True))
    before = tool_state(output)
    killed_at_entry(output, entry, "export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET,
                    "--overwrite")
    state = assert_old_or_new(output, before, EXPORT_ENTRIES)
    assert state == ("old" if entry == 0 else "mixed")
    if state == "mixed":
        assert run("verify", output / "onnxruntime-fp32").exit_code == 2  # readers refuse the mixed set
    again = run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET, "--overwrite")
    assert again.exit_code == 0, again.output  # the roll-forward recorded what it moved as the tool's
    assert run("verify", output / "onnxruntime-fp32").exit_code == 0
    assert_nothing_left(output)


@pytest.fixture(scope="module")
def changing_entries(exported: Path, weights: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The export entries a second, complete run rewrites with other bytes.

    An entry a rerun writes byte for byte again (the same weights give the same checkpoint) looks "old" after
    a finished publish, which would read as a mix; only entries that change can tell old from new.
    """
    output = Path(shutil.copytree(exported, tmp_path_factory.mktemp("rerun") / "out", symlinks=True))
    before = tool_state(output)
    assert run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET, "--overwrite").exit_code == 0
    after = tool_state(output)

    def part(state: dict[str, str], entry: str) -> dict[str, str]:
        return {k: v for k, v in state.items() if k == entry or k.startswith(f"{entry}/")}

    changing = [entry for entry in EXPORT_ENTRIES if part(before, entry) != part(after, entry)]
    assert changing, "a rerun must rewrite at least its report"
    return changing


def test_export_killed_at_a_random_moment(exported: Path, weights: Path, tmp_path: Path,
                                          changing_entries: list[str]) -> None:
    output = Path(shutil.copytree(exported, tmp_path / "out", symlinks=True))
    before = tool_state(output)
    delay = random.Random(time.time_ns()).uniform(0.5, 6.0)
    status = killed_after(delay, "export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET,
                          "--overwrite")
    state = assert_old_or_new(output, before, changing_entries)  # a mix only under a journal
    # A kill after the last move but before the process ends leaves the new set whole: also a right answer.
    assert state in ("old", "mixed", "new") if status == -signal.SIGKILL else state == "new", (delay, status, state)
    again = run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET, "--overwrite")
    assert again.exit_code == 0, (delay, again.output)
    assert_nothing_left(output)


@pytest.fixture(scope="module")
def trained(blobs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("train") / "run"
    assert run("train", "--data", blobs, "--output", output, *TRAIN_QUICK).exit_code == 0
    return output


@pytest.mark.parametrize("entry", [1])  # the card of epoch 2 in, its weights not yet
def test_train_killed_while_replacing_its_checkpoint(trained: Path, blobs: Path, tmp_path: Path, entry: int) -> None:
    from edgeresnet.checkpoint import load_checkpoint

    output = Path(shutil.copytree(trained, tmp_path / "run"))
    before = tool_state(output)
    killed_at_entry(output, entry, "train", "--data", blobs, "--output", output, *TRAIN_QUICK, "--epochs", "2",
                    "--resume")
    state = assert_old_or_new(output, before, ["card.json", "model.safetensors"])
    assert state == ("old" if entry == 0 else "mixed")
    if state == "old":
        load_checkpoint(output)  # the previous checkpoint, whole
    again = run("train", "--data", blobs, "--output", output, *TRAIN_QUICK, "--epochs", "2", "--resume")
    assert again.exit_code == 0, again.output
    assert json.loads((output / "card.json").read_text())["metrics"]["epoch"] == 2
    load_checkpoint(output)  # weights and card of one epoch
    assert_nothing_left(output)


def test_a_first_epoch_killed_while_moving_in_leaves_nothing_that_looks_like_the_users(
    blobs: Path, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    killed_at_entry(output, 1, "train", "--data", blobs, "--output", output, *TRAIN_QUICK)
    assert (output / "card.json").is_file() and not (output / "model.safetensors").exists()
    refused = run("train", "--data", blobs, "--output", output, *TRAIN_QUICK)
    assert refused.exit_code == 2 and "already holds a checkpoint" in refused.output, refused.output
    assert "did not write" not in refused.output
    again = run("train", "--data", blobs, "--output", output, *TRAIN_QUICK, "--overwrite")
    assert again.exit_code == 0, again.output
    assert_nothing_left(output)


def test_train_killed_at_a_random_moment(trained: Path, blobs: Path, tmp_path: Path) -> None:
    from edgeresnet.checkpoint import load_checkpoint

    output = Path(shutil.copytree(trained, tmp_path / "run"))
    delay = random.Random(time.time_ns()).uniform(0.5, 8.0)
    killed_after(delay, "train", "--data", blobs, "--output", output, *TRAIN_QUICK, "--epochs", "2", "--resume")
    again = run("train", "--data", blobs, "--output", output, *TRAIN_QUICK, "--epochs", "2", "--resume")
    if again.exit_code != 0:  # the killed run had finished its second epoch
        assert "already finished 2 epochs" in again.output, (delay, again.output)
    load_checkpoint(output)
    assert_nothing_left(output)


def test_compile_killed_at_a_random_moment(exported: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    output = tmp_path / "ov"
    command = ["compile", exported / "onnxruntime-fp32", "--target", "openvino", "--precision", "fp16",
               "--output", output]
    assert run(*command).exit_code == 0
    before = tool_state(tmp_path)
    delay = random.Random(time.time_ns()).uniform(0.3, 5.0)
    killed_after(delay, *command, "--overwrite")
    assert assert_old_or_new(tmp_path, before, ["ov"]) in ("old", "new")  # one entry: swapped in one step
    assert run(*command, "--overwrite").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ov"]  # the killed run's staging went, nothing else
    assert_nothing_left(output)


@pytest.mark.slow
@pytest.mark.parametrize("entry", [1, 3])
def test_pipeline_killed_while_publishing_its_set(tmp_path: Path, entry: int) -> None:
    import numpy as np

    from tests.runtime.tiny_bundle import blob_images

    images, labels = blob_images(300, seed=5)  # 30 calibration images: the least INT8 calibration takes
    data = tmp_path / "blobs.npz"
    np.savez(data, images=images, labels=labels)
    output = tmp_path / "pipeline"
    command = ["pipeline", "--data", data, "--epochs", "1", "--target", "onnxruntime", "--batch-sizes", "1",
               "--threads", "1", "--max-accuracy-drop", "100", "--calib-size", "20", "--min-time", "0",
               "--output", output]
    assert run(*command).exit_code == 0
    before = tool_state(output)
    killed_at_entry(output, entry, *command, "--overwrite")
    entries = ["benchmark", "bundles", "checkpoint", "summary.md"]
    assert assert_old_or_new(output, before, entries) == "mixed"
    assert run(*command, "--overwrite").exit_code == 0
    # The new set whole: the bundles' provenance names the checkpoint beside them, with its weights.
    from edgeresnet.bundle import read_manifest, sha256_file

    provenance = read_manifest(output / "bundles" / "onnxruntime-fp32").provenance
    assert provenance.checkpoint == str((output / "checkpoint").absolute())
    assert provenance.checkpoint_sha256 == sha256_file(output / "checkpoint" / "model.safetensors")
    assert_nothing_left(output)
