"""Hostile files other than bundles: folders with link loops, JSON nested or sized to crash a parser,
bare ONNX models declaring absurd inputs. Each is read to the end with a one-line error at worst.
"""

from __future__ import annotations

import faulthandler
import json
import os
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeresnet.cli.deploy  # noqa: F401
from edgeresnet.cli.core import cli
from edgeresnet.errors import EdgeResNetError
from tests.adversarial.corpus import corpus

EXAMPLES = int(os.environ.get("EDGERESNET_FUZZ_EXAMPLES", "25"))
FILES_FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# --- folders -----------------------------------------------------------------------------------------

LINKS = ("self", "parent", "root", "sibling", "outside", "outside-file", "dangling", "fifo")


def _folder(root: Path, outside: Path, links: list[tuple[str, str]]) -> set[str]:
    """An image folder with links of the given kinds in the given sub-folders; the real images it holds."""
    from PIL import Image

    for sub in ("a", "a/deep", "b"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (len(sub), 0, 0)).save(root / sub / "img.png")
    outside.mkdir(exist_ok=True)
    Image.new("RGB", (4, 4), (0, 0, 9)).save(outside / "secret.png")
    for index, (where, kind) in enumerate(links):
        link = root / where / f"link{index}{'.png' if kind in ('outside-file', 'fifo') else ''}"
        target = {"self": root / where, "parent": (root / where).parent, "root": root, "sibling": root / "b",
                  "outside": outside, "outside-file": outside / "secret.png", "dangling": root / "nowhere"}.get(kind)
        if kind == "fifo":
            os.mkfifo(link)
        else:
            link.symlink_to(target)
    return {os.path.realpath(root / sub / "img.png") for sub in ("a", "a/deep", "b")}


@FILES_FUZZ
@given(links=st.lists(st.tuples(st.sampled_from(["a", "a/deep", "b", "."]), st.sampled_from(LINKS)), max_size=5))
def test_predict_folder_walks_finish_and_list_each_image_once(tmp_path_factory: pytest.TempPathFactory,
                                                               links: list[tuple[str, str]]) -> None:
    from edgeresnet.data.decoding import find_images

    base = tmp_path_factory.mktemp("walk")
    images = _folder(base / "data", base / "outside", links)
    faulthandler.dump_traceback_later(60, exit=True)
    try:
        found = find_images([base / "data"])
    finally:
        faulthandler.cancel_dump_traceback_later()
    reals = [os.path.realpath(path) for path in found]
    assert len(reals) == len(set(reals)), "an image listed twice"
    assert all(Path(real).is_relative_to(os.path.realpath(base / "data")) for real in reals), "left the folder"
    assert images <= set(reals)


def test_a_folder_holding_links_to_itself_lists_each_image_once(tmp_path: Path) -> None:
    """The sweep's case: one link to itself listed an image 41 times, two never finished."""
    from edgeresnet.data.decoding import find_images

    images = _folder(tmp_path / "data", tmp_path / "outside", [(".", "self"), ("a", "root"), ("a/deep", "parent")])
    found = find_images([tmp_path / "data"])
    assert sorted(os.path.realpath(p) for p in found) == sorted(images)
    result = CliRunner().invoke(cli, ["predict", str(corpus().bundles["onnx"]), str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("img.png") == 3


def test_image_folder_data_sets_never_leave_their_root(tmp_path: Path) -> None:
    from edgeresnet.data import open_source

    _folder(tmp_path / "data", tmp_path / "outside", [("a", "outside"), ("b", "root"), ("a", "self")])
    source = open_source(str(tmp_path / "data"))
    listed = source._store.relpaths  # type: ignore[attr-defined]
    assert not any("secret" in path for path in listed)
    reals = [os.path.realpath(tmp_path / "data" / p) for p in listed if p.startswith("a/")]
    assert len(reals) == len(set(reals))


# --- JSON anyone may write ---------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _manifest(root: Path, text: str) -> None:
    (root / "b").mkdir(exist_ok=True)
    (root / "b" / "manifest.json").write_text(text)


def _card(root: Path, text: str) -> None:
    (root / "ckpt").mkdir(exist_ok=True)
    (root / "ckpt" / "card.json").write_text(text)


READERS = {
    "manifest": (_manifest, lambda root: __import__("edgeresnet.bundle", fromlist=["x"]).read_manifest(root / "b")),
    "card": (_card, lambda root: __import__("edgeresnet.checkpoint", fromlist=["x"]).read_card(root / "ckpt")),
    "calibration": (lambda root, text: (root / "t.json").write_text(text),
                    lambda root: __import__("edgeresnet.calibration", fromlist=["x"]).CalibrationTable.load(
                        root / "t.json")),
    "report": (lambda root, text: (root / "r.json").write_text(text),
               lambda root: __import__("edgeresnet.report", fromlist=["x"]).read_report(root / "r.json")),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("content", [
    _nested(65), _nested(1000), _nested(100_000), '{"a":' * 5000 + "1" + "}" * 5000, "[1]" + " " * (17 << 20),
    "1" * 5000, "{\"x\": NaN}", "\xff\xfe", "",
], ids=["depth65", "depth1000", "depth100000", "objects5000", "17MiB", "long-int", "nan", "latin1", "empty"])
def test_json_files_are_read_with_limits(tmp_path: Path, reader: str, content: str) -> None:
    write, read = READERS[reader]
    write(tmp_path, content)
    with pytest.raises(EdgeResNetError) as caught:
        read(tmp_path)
    text = str(caught.value)
    assert "\n" not in text.strip() and len(text) < 1000


def test_a_deep_manifest_fails_verify_and_predict_with_one_line(tmp_path: Path) -> None:
    _manifest(tmp_path, _nested(100_000))
    for command in (["verify", str(tmp_path / "b")], ["predict", str(tmp_path / "b"), str(tmp_path)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output


# --- bare models declaring absurd inputs --------------------------------------------------------------


def _bare_model(path: Path, side: int, declared: int) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["pooled", "w"], ["logits"])],
        "absurd",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, declared, declared])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor("w", TensorProto.FLOAT, [3, 2], np.ones(6, np.float32).tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    spec = {"input_size": [side, side], "channels": "RGB"}
    model.metadata_props.add(key="preprocessing", value=json.dumps(spec))
    model.metadata_props.add(key="labels", value=json.dumps(["a", "b"]))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("side", "declared"), [(100_000, 100_000), (16, 1_000_000), (50_000, 16)])
def test_a_bare_model_with_an_absurd_input_is_refused_before_allocating(tmp_path: Path, side: int,
                                                                         declared: int) -> None:
    from edgeresnet.runtime.classifier import Classifier

    model = _bare_model(tmp_path / "absurd.onnx", side, declared)
    with pytest.raises(EdgeResNetError) as caught:
        Classifier.load(model)
    assert "\n" not in str(caught.value).strip()
    result = CliRunner().invoke(cli, ["predict", str(model), str(tmp_path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("name", [".edgeresnet-written.json", "card.json", "calibration.json"])
def test_a_fifo_where_the_tool_reads_json_is_one_line_not_a_hang(tmp_path: Path, name: str) -> None:
    from edgeresnet.limits import read_json
    from edgeresnet.placement import read_ledger

    os.mkfifo(tmp_path / name)  # nothing ever writes to it: an open() without O_NONBLOCK would wait forever
    faulthandler.dump_traceback_later(20, exit=True)
    try:
        with pytest.raises(EdgeResNetError, match="not a regular file"):
            read_json(tmp_path / name, what="file")
        if name == ".edgeresnet-written.json":
            with pytest.raises(EdgeResNetError, match="not a regular file"):
                read_ledger(tmp_path)
    finally:
        faulthandler.cancel_dump_traceback_later()
