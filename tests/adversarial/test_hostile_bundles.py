"""For any mutation of a signed bundle — file bytes, manifest fields (re-signed or not), files added, removed,
linked in or out, FIFOs, external data — every loader either refuses with one line or runs exactly the
bytes the manifest hashes, and ``verify`` OK means ``predict`` runs those bytes.

Loaders: ``Classifier.load``, ``verify_bundle``, ``edgeresnet predict`` / ``verify`` (exit 2 and one line
when refusing), and the benchmark's runner. Derandomized and small by default; set
``EDGERESNET_FUZZ_EXAMPLES=300`` for a longer search.
"""

from __future__ import annotations

import faulthandler
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeresnet.cli.deploy  # noqa: F401  (registers predict/verify)
from edgeresnet.cli.core import cli
from edgeresnet.errors import EdgeResNetError
from tests.adversarial.corpus import (
    EXTERNAL_LOCATIONS,
    HOSTILE_NAMES,
    MANIFEST_FIELDS,
    PLANTS,
    Mutation,
    corpus,
    resign,
    sha256,
)
from tests.runtime.tiny_bundle import blob_images, golden_inputs

EXAMPLES = int(os.environ.get("EDGERESNET_FUZZ_EXAMPLES", "12"))
HOSTILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FILE_NAMES = ("model.onnx", "model.pixels.onnx", "golden.npz", "model.onnx.data", "model.xml", "model.bin")

mutations = st.one_of(
    st.builds(Mutation, st.just("flip"), st.sampled_from(FILE_NAMES), st.integers(0, 1 << 20)),
    st.builds(Mutation, st.just("evil-bytes"), st.sampled_from(FILE_NAMES)),
    st.builds(Mutation, st.just("field"), st.sampled_from(MANIFEST_FIELDS), st.sampled_from(HOSTILE_NAMES)),
    st.builds(Mutation, st.just("plant"), st.sampled_from(HOSTILE_NAMES), st.sampled_from(PLANTS)),
    st.builds(Mutation, st.just("external"), st.sampled_from(["good", "evil"]), st.sampled_from(EXTERNAL_LOCATIONS)),
    st.builds(Mutation, st.just("remove"), st.sampled_from(FILE_NAMES)),
    st.just(Mutation("resign")),
)
# Most attacks end with a re-signing: that is what makes them interesting (the hashes all match).
edits = st.tuples(st.lists(mutations, min_size=1, max_size=4), st.booleans())


@pytest.fixture
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="hostile-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _manifest_files(bundle: Path) -> dict[str, str]:
    import json

    return json.loads((bundle / "manifest.json").read_text())["files"]


def assert_runs_hashed_bytes(runner: object, bundle: Path) -> None:
    """Everything the runner was built from is the manifest's listed bytes, name by name."""
    files = _manifest_files(bundle)
    loaded = [runner.model_bytes]  # type: ignore[attr-defined]
    if getattr(runner, "pixel_model_bytes", None) is not None:
        loaded.append(runner.pixel_model_bytes)  # type: ignore[attr-defined]
    assert loaded[0] is not None, "a bundle's runner must be built from hashed bytes, not a path"
    for model in loaded:
        name = model.path.relative_to(bundle).as_posix()
        assert files.get(name) == sha256(model.data), f"{name} ran with bytes the manifest does not hash"
        for key, data in model.companions.items():
            companion = (str(Path(name).with_suffix(".bin")) if key == "weights"
                         else posixpath.join(posixpath.dirname(name), key))
            assert files.get(companion) == sha256(data), f"{companion} ran with unhashed bytes"


def assert_one_line(error: BaseException) -> None:
    assert isinstance(error, EdgeResNetError), f"{type(error).__name__}: {error}"
    text = str(error).strip()
    assert text and "\n" not in text and "\x1b" not in text.encode("unicode_escape").decode(), repr(text)


def _load(bundle: Path) -> tuple[object | None, np.ndarray | None]:
    from edgeresnet.runtime.classifier import Classifier

    try:
        classifier = Classifier.load(bundle)
    except Exception as error:  # noqa: BLE001 (the property: only the project's one-line error)
        assert_one_line(error)
        return None, None
    with classifier:
        assert_runs_hashed_bytes(classifier.runner, bundle)
        return classifier.runner, classifier.runner.infer(golden_inputs())


def _check_everything(bundle: Path, image: Path) -> None:
    faulthandler.dump_traceback_later(60, exit=True)  # a loader blocking on a FIFO must fail, not hang CI
    try:
        _check_loaders(bundle, image)
    finally:
        faulthandler.cancel_dump_traceback_later()


def _check_loaders(bundle: Path, image: Path) -> None:
    from edgeresnet.bench.artifacts import load_artifact, open_runner
    from edgeresnet.verify import verify_bundle

    before = _state(bundle)
    runner, logits = _load(bundle)
    report = verify_bundle(bundle)
    assert all("\n" not in failure for failure in report.failures)
    if report.passed:  # verify OK ⇒ predict loads, runs the hashed bytes, and gives the golden answers
        assert runner is not None, "verify passed a bundle the runtime refuses"
        assert report.golden is not None and report.golden.passed
    predicted = CliRunner().invoke(cli, ["predict", str(bundle), str(image), "--top-k", "1"])
    verified = CliRunner().invoke(cli, ["verify", str(bundle)])
    for result in (predicted, verified):
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
        if result.exit_code == 2:  # one error line (warnings, each on its own line, may precede it)
            lines = result.stderr.strip().splitlines()
            assert [line for line in lines if not line.startswith("warning: ")] == lines[-1:], result.stderr
            assert lines[-1].startswith("error: ")
    if runner is None:  # refused by the runtime: refused by the CLI (a loaded model may still fail to run)
        assert predicted.exit_code == 2
    assert (verified.exit_code == 0) == report.passed
    try:
        with open_runner(load_artifact(bundle), device="cpu", threads=1) as bench_runner:
            assert_runs_hashed_bytes(bench_runner, bundle)
    except Exception as error:  # noqa: BLE001
        assert_one_line(error)
    assert _state(bundle) == before, "a loader changed the bundle"
    del logits


def _state(bundle: Path) -> dict[Path, tuple[int, ...]]:
    """What a loader must leave as it was (access times aside)."""
    return {p: (s.st_mode, s.st_ino, s.st_size, s.st_mtime_ns)
            for p in bundle.rglob("*") for s in [p.lstat()]}


def _image(root: Path) -> Path:
    from PIL import Image

    path = root / "image.png"
    if not path.exists():
        Image.fromarray(blob_images(1, seed=5)[0][0]).save(path)
    return path


@pytest.mark.parametrize("kind", ["onnx", "external", "ir"])
def test_the_signed_bundles_load_and_verify(kind: str, workdir: Path) -> None:
    """The starting point of every mutation is sound: otherwise refusals would prove nothing."""
    if kind not in corpus().bundles:
        pytest.skip("needs openvino")
    bundle = corpus().fresh(kind, workdir)
    runner, logits = _load(bundle)
    assert runner is not None and logits is not None
    _check_everything(bundle, _image(workdir))


@pytest.mark.parametrize("kind", ["onnx", "external", "ir"])
@HOSTILE
@given(edit=edits)
def test_any_mutation_is_refused_or_runs_the_hashed_bytes(kind: str, workdir: Path,
                                                          edit: tuple[list[Mutation], bool]) -> None:
    if kind not in corpus().bundles:
        pytest.skip("needs openvino")
    steps, sign_at_end = edit
    bundle = corpus().fresh(kind, workdir)
    for step in steps:
        step.apply(bundle, corpus().outside)
    if sign_at_end:
        resign(bundle)
    _check_everything(bundle, _image(workdir))


# --- the attacks the first sweep found, kept as named cases ------------------------------------------


def _evil_logits() -> np.ndarray:
    from edgeresnet.runtime.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(corpus().outside / "evil.onnx") as runner:
        return runner.infer(golden_inputs())


@pytest.mark.parametrize("name", ["{outside}/evil.onnx", "../outside/evil.onnx", "linkdir/evil.onnx", "link.onnx"])
def test_a_resigned_manifest_naming_a_model_outside_is_refused(workdir: Path, name: str) -> None:
    bundle = corpus().fresh("onnx", workdir)
    if name == "link.onnx":
        Mutation("plant", name, "link-out").apply(bundle, corpus().outside)
    if name.startswith("linkdir"):
        Mutation("plant", name, "dir-link-out").apply(bundle, corpus().outside)
    Mutation("field", "model_file", name).apply(bundle, corpus().outside)
    Mutation("field", "files+", name).apply(bundle, corpus().outside)  # even listed with its hash
    resign(bundle)
    runner, _ = _load(bundle)
    assert runner is None
    result = CliRunner().invoke(cli, ["predict", str(bundle), str(_image(workdir))])
    assert result.exit_code == 2 and "outside the bundle" in result.stderr


@pytest.mark.parametrize("kind", ["external", "ir", "onnx"])
def test_an_unlisted_companion_edited_after_signing_never_runs(workdir: Path, kind: str) -> None:
    """External data, an IR's .bin or the pixel model: listed and hashed, or the bundle is refused."""
    if kind not in corpus().bundles:
        pytest.skip("needs openvino")
    bundle = corpus().fresh(kind, workdir)
    companion = {"external": "model.onnx.data", "ir": "model.bin", "onnx": "model.pixels.onnx"}[kind]
    Mutation("field", "files-", "").apply(bundle, corpus().outside)  # reset below: drop exactly the companion
    import json

    record = json.loads((bundle / "manifest.json").read_text())
    record["files"] = {**_manifest_files(corpus().bundles[kind])}
    record["files"].pop(companion)
    (bundle / "manifest.json").write_text(json.dumps(record))
    resign(bundle)
    from edgeresnet.verify import verify_bundle

    report = verify_bundle(bundle)
    assert not report.passed and any(f"{companion} is opened by the runtime" in f for f in report.failures)
    assert _load(bundle)[0] is None


def test_external_data_swapped_for_evil_weights_and_resigned_runs_only_as_hashed(workdir: Path) -> None:
    """Re-signed evil weights are the bundle's bytes now: they may run, but only with their hashes listed."""
    bundle = corpus().fresh("external", workdir)
    shutil.copyfile(corpus().outside / "evil.data", bundle / "model.onnx.data")
    runner, _ = _load(bundle)
    assert runner is None  # not re-signed: refused
    resign(bundle)
    runner, logits = _load(bundle)
    assert runner is not None and logits is not None
    np.testing.assert_allclose(logits, _evil_logits(), atol=1e-4)  # what runs is what is hashed


def test_a_model_file_edited_after_loading_changes_nothing_that_runs(workdir: Path) -> None:
    """The runtime built its session from the hashed bytes: editing the file afterwards cannot reach it."""
    from edgeresnet.runtime.classifier import Classifier

    bundle = corpus().fresh("external", workdir)
    with Classifier.load(bundle) as classifier:
        before = classifier.logits(golden_inputs())
        shutil.copyfile(corpus().outside / "evil.data", bundle / "model.onnx.data")
        after = classifier.logits(golden_inputs())
    np.testing.assert_array_equal(before, after)


def test_a_fifo_in_place_of_the_model_is_refused_without_blocking(workdir: Path) -> None:
    bundle = corpus().fresh("onnx", workdir)
    (bundle / "model.onnx").unlink()
    os.mkfifo(bundle / "model.onnx")
    runner, _ = _load(bundle)
    assert runner is None


def test_labels_with_escape_sequences_are_printed_escaped(workdir: Path) -> None:
    import json

    bundle = corpus().fresh("onnx", workdir)
    record = json.loads((bundle / "manifest.json").read_text())
    record["labels"] = ["\x1b]0;pwned\x07\x1b[2J" + str(i) for i in range(len(record["labels"]))]
    (bundle / "manifest.json").write_text(json.dumps(record))
    resign(bundle)
    result = CliRunner().invoke(cli, ["predict", str(bundle), str(_image(workdir))])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output and "\\x1b]0;pwned" in result.output
