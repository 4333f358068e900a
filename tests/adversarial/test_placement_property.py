"""For any directory content, a run never removes or changes a file it did not write.

Hypothesis draws what a user keeps in an output folder: files and directories, named like anything,
including names shaped like the temporaries, staging directories, ``.old`` and ``.partial`` directories this
and older versions of edgeresnet created (``.notes.20241201.tmp``, ``.export-settings/``, ...). A run goes into
that folder (export, train and compile through the CLI; the placement layer directly for many more shapes,
the pipeline's nested set included), with or without ``--overwrite``, then a second run over the first one's
results, with a file of the tool's edited between them or not. Each run ends with exit 0 or a one-line refusal
(exit 2), and every file and directory the user had is still there with the same bytes. Only the tool's
reserved bookkeeping names (``.edgeresnet-written.json`` and its ``.tmp``, ``.edgeresnet.lock``, ``.NAME.lock``)
are left out of the draw: docs/placement.md lists them.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeresnet.errors import PlacementError
from tests.adversarial import placement_fixtures as fixtures
from tests.adversarial.placement_fixtures import ONE_TARGET, TRAIN_QUICK, run, snapshot

blobs, weights = fixtures.blobs, fixtures.weights

LOOKALIKES = [
    ".notes.20241201.tmp", ".export-settings", ".export-k2j4_x9a", ".onnxruntime-fp32.old", ".a.ab12cd34.partial",
    ".report.json.zz12yy34.tmp", ".edgeresnet-staging-abcd1234", ".edgeresnet-staging.0123abcd.tmp",
    ".model.safetensors.a1b2c3d4.tmp", ".preds.csv.1f2e3d4c.tmp", ".ov.compile.k2j4_x9a", "publish.json",
]
TOOL_NAMES = ["onnxruntime-fp32", "pytorch-fp32", "export_report.json", "card.json", "model.safetensors",
              "train_state.pt", "summary.md", "bundles", "checkpoint", "benchmark", "ov", "manifest.json"]
names = st.one_of(
    st.sampled_from(LOOKALIKES + TOOL_NAMES + ["notes.txt", "thesis.tex"]),
    st.from_regex(r"\.?[a-z]{1,6}(-[a-z]{1,5})?(\.[a-z0-9_]{8})?\.(tmp|partial|old|json|txt)", fullmatch=True),
)
contents = st.binary(max_size=16)
trees = st.dictionaries(names, st.one_of(contents, st.dictionaries(names, contents, max_size=3)), max_size=5)
SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True,
                    print_blob=True)


def materialise(root: Path, tree: dict) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, value in tree.items():
        if isinstance(value, dict):
            materialise(root / name, value)
        else:
            (root / name).write_bytes(value)


def assert_users_files_kept(user: dict[str, str], now: dict[str, str]) -> None:
    changed = {key for key, value in user.items() if now.get(key) != value}
    assert not changed, f"the run removed or changed the user's {sorted(changed)}"


def assert_exit_0_or_one_line(result: object) -> None:
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.stderr.strip().splitlines()[-1].startswith("error: "), result.stderr
        assert "Traceback" not in result.output


def edit_one_of_the_tools_files(root: Path, user: dict[str, str], choice: int) -> dict[str, str]:
    """Edit one file the run wrote; from now on it is the user's: ``user`` with it added."""
    written = sorted(key for key, value in snapshot(root).items()
                     if key not in user and value != "dir" and not key.endswith(".edgeresnet-written.json"))
    if not written:
        return user
    key = written[choice % len(written)]
    target = root / key
    target.write_bytes(target.read_bytes() + b" edited")
    return {**user, key: snapshot(root)[key]}


def cli_runs(user_tree: dict, first: list[object], second: list[object], edit: int | None) -> None:
    """``first`` then ``second`` (CLI arguments; ``{out}`` is the folder) into a folder holding ``user_tree``."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        materialise(out, user_tree)
        user = snapshot(out)
        for index, arguments in enumerate((first, second)):
            result = run(*[out if a == "{out}" else a for a in arguments])
            assert_exit_0_or_one_line(result)
            assert_users_files_kept(user, snapshot(out))
            if index == 0 and edit is not None and result.exit_code == 0:
                user = edit_one_of_the_tools_files(out, user, edit)  # the second run must keep the edit


@pytest.mark.slow  # a dozen exports
@settings(SETTINGS, max_examples=6)
@given(tree=trees, overwrite=st.booleans(), edit=st.none() | st.integers(0, 50))
def test_export_never_touches_what_it_did_not_write(weights: Path, tree: dict, overwrite: bool,
                                                    edit: int | None) -> None:
    command = ["export", "resnet20", "--weights", weights, "--output", "{out}", *ONE_TARGET]
    cli_runs(tree, [*command, *(["--overwrite"] if overwrite else [])], [*command, "--overwrite"], edit)


@settings(SETTINGS, max_examples=5)
@given(tree=trees, overwrite=st.booleans(), edit=st.none() | st.integers(0, 50))
def test_train_never_touches_what_it_did_not_write(blobs: Path, tree: dict, overwrite: bool,
                                                   edit: int | None) -> None:
    command = ["train", "--data", blobs, "--output", "{out}", *TRAIN_QUICK]
    cli_runs(tree, [*command, *(["--overwrite"] if overwrite else [])], [*command, "--overwrite"], edit)


@pytest.fixture(scope="module")
def source_bundle(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("source") / "out"
    assert run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET).exit_code == 0
    return output / "onnxruntime-fp32"


@pytest.mark.slow  # ten compiles
@settings(SETTINGS, max_examples=5)
@given(tree=trees, overwrite=st.booleans(), edit=st.none() | st.integers(0, 50))
def test_compile_never_touches_what_it_did_not_write(source_bundle: Path, tree: dict, overwrite: bool,
                                                     edit: int | None) -> None:
    pytest.importorskip("openvino")
    # --output out/ov: the folder holding the user's files is the parent the run was never given.
    command = ["compile", source_bundle, "--target", "openvino", "--precision", "fp16", "--output"]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        materialise(out, tree)
        user = snapshot(out)
        for flags in ((["--overwrite"] if overwrite else []), ["--overwrite"]):
            result = run(*command, out / "ov", *flags)
            assert_exit_0_or_one_line(result)
            assert_users_files_kept(user, snapshot(out))
            if edit is not None and result.exit_code == 0 and (out / "ov").is_dir():
                user = edit_one_of_the_tools_files(out, user, edit)


def layer_run(root: Path, shape: str, entries: list[str], overwrite: bool) -> None:
    """One run of the placement layer shaped like a command (its entries' contents are the tool's own)."""
    from edgeresnet.atomic import atomic_write_text
    from edgeresnet.placement import claim_directory, place_outputs, replace_files

    with contextlib.suppress(PlacementError):
        if shape == "claim":  # train: a checkpoint rewritten in place, set by set
            with claim_directory(root, writes=entries, overwrite=overwrite) as directory:
                for _ in range(2):
                    with replace_files(directory) as staged:
                        for name in entries:
                            (staged / name).write_text("epoch")
            return
        if shape == "atomic":  # predict --output: one file, where nothing stands (predict checks that first)
            if not (root / f"{entries[0]}.csv").exists():
                atomic_write_text(root / f"{entries[0]}.csv", "rows")
            return
        with place_outputs(root, overwrite=overwrite, expect=entries) as staging:
            for index, name in enumerate(entries):
                if shape == "nested" and index == 0:  # the pipeline: outputs placed inside its own set
                    with place_outputs(staging.path / name) as inner:
                        (inner.path / "bundle").mkdir()
                        (inner.path / "bundle" / "model.onnx").write_bytes(b"m")
                elif index % 2:
                    (staging.path / name).write_text("report")
                else:
                    (staging.path / name).mkdir()
                    (staging.path / name / "model.onnx").write_bytes(b"model")


@settings(SETTINGS, max_examples=40)
@given(tree=trees, runs=st.lists(st.tuples(st.sampled_from(["publish", "nested", "claim", "atomic"]),
                                           st.lists(names, min_size=1, max_size=3, unique=True), st.booleans()),
                                 min_size=1, max_size=3))
def test_the_placement_layer_never_touches_what_it_did_not_write(tree: dict, runs: list) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "out"
        materialise(root, tree)
        user = snapshot(root)
        for shape, entries, overwrite in runs:
            layer_run(root, shape, entries, overwrite)
            assert_users_files_kept(user, snapshot(root))
