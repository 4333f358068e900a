"""Fuzzing the readers of untrusted files: manifests, model cards, image folders.

Whatever the bytes, a reader either returns a value or raises the project's own error with a one-line
message, and writes nothing (the directory is byte-identical afterwards).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeresnet.errors import EdgeResNetError

V1_BUNDLE = Path(__file__).parent / "fixtures" / "bundle_v1"
# Derandomized so CI sees the same examples every run; EDGERESNET_FUZZ_EXAMPLES=600 for a longer search.
FUZZ = settings(max_examples=int(os.environ.get("EDGERESNET_FUZZ_EXAMPLES", "60")), deadline=None,
                derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_one_line(error: EdgeResNetError) -> None:
    text = str(error)
    assert text.strip() and "\n" not in text.strip(), repr(text)


@pytest.fixture
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="fuzz-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _mutated(record: dict[str, Any], data: st.DataObject) -> Any:
    """The valid manifest with one value, somewhere in it, replaced by arbitrary JSON."""
    path: list[Any] = []
    node: Any = record
    while isinstance(node, dict | list) and node and data.draw(st.booleans(), label="descend"):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return data.draw(json_values, label="whole")
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = data.draw(json_values, label="value")
    return record


def _read_bundle(bundle: Path) -> None:
    from edgeresnet.bundle import read_manifest
    from edgeresnet.verify import verify_bundle

    before = snapshot(bundle)
    try:
        read_manifest(bundle)
    except EdgeResNetError as error:
        assert_one_line(error)
    report = verify_bundle(bundle)  # never raises: problems are its report
    assert all("\n" not in failure for failure in report.failures)
    assert snapshot(bundle) == before


@FUZZ
@given(data=st.data())
def test_manifest_reader_on_mutated_manifests(workdir: Path, data: st.DataObject) -> None:
    bundle = workdir / "b"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(V1_BUNDLE, bundle)
    record = json.loads((bundle / "manifest.json").read_text())
    if data.draw(st.booleans(), label="as version 2"):
        from edgeresnet.bundle import read_manifest

        record = json.loads(json.dumps(read_manifest(bundle).to_dict()))
    (bundle / "manifest.json").write_text(json.dumps(_mutated(record, data)))
    _read_bundle(bundle)


@FUZZ
@given(content=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_manifest_reader_on_arbitrary_bytes(workdir: Path, content: bytes) -> None:
    bundle = workdir / "b"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(V1_BUNDLE, bundle)
    (bundle / "manifest.json").write_bytes(content)
    _read_bundle(bundle)


def _card_record() -> dict[str, Any]:
    return {"format": "edgeresnet-checkpoint", "format_version": 1, "architecture": "resnet20", "num_classes": 10,
            "in_chans": 3, "preprocessing": {"input_size": [32, 32], "channels": "RGB"},
            "class_names": [str(i) for i in range(10)]}


@FUZZ
@given(data=st.data())
def test_card_reader_as_export_uses_it(workdir: Path, data: st.DataObject) -> None:
    """The card reader `export` (and so `pipeline`) runs; a card with no weights beside it must say so."""
    from edgeresnet.export.model_source import load_model_source

    checkpoint = workdir / "ckpt"
    shutil.rmtree(checkpoint, ignore_errors=True)
    checkpoint.mkdir()
    content = (data.draw(st.binary(max_size=200)) if data.draw(st.booleans(), label="bytes")
               else json.dumps(_mutated(_card_record(), data)).encode())
    (checkpoint / "card.json").write_bytes(content)
    before = snapshot(checkpoint)
    with pytest.raises(EdgeResNetError) as caught:
        load_model_source(str(checkpoint))
    assert_one_line(caught.value)
    assert snapshot(checkpoint) == before


@FUZZ
@given(data=st.data())
def test_card_reader_itself(workdir: Path, data: st.DataObject) -> None:
    from edgeresnet.checkpoint import read_card

    checkpoint = workdir / "ckpt"
    shutil.rmtree(checkpoint, ignore_errors=True)
    checkpoint.mkdir()
    (checkpoint / "card.json").write_text(json.dumps(_mutated(_card_record(), data)))
    try:
        read_card(checkpoint)
    except EdgeResNetError as error:
        assert_one_line(error)


_names = st.sampled_from(["a.png", "b.jpg", "c.jpeg", "d.webp", "e.bmp", "notes.txt", ".hidden.png", "f.PNG"])


@FUZZ
@given(
    layout=st.lists(st.tuples(st.sampled_from(["cat", "dog", "bird", "cat/sub", ".cache"]), _names,
                              st.binary(max_size=120) | st.sampled_from([b"real"])), max_size=10),
    links=st.lists(st.sampled_from(["outside", "loop", "inside", "file-outside"]), max_size=3),
)
def test_image_folder_reader(workdir: Path, layout: list[tuple[str, str, bytes]], links: list[str]) -> None:
    import numpy as np
    from PIL import Image

    from edgeresnet.data import open_source
    from edgeresnet.data.preprocessing import PreprocessSpec

    root = workdir / "data"
    outside = workdir / "elsewhere"
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(outside, ignore_errors=True)
    outside.mkdir(parents=True)
    Image.new("RGB", (6, 6), (9, 9, 9)).save(outside / "secret.png")
    root.mkdir()
    for folder, name, content in layout:
        (root / folder).mkdir(parents=True, exist_ok=True)
        if content == b"real":
            Image.fromarray(np.full((5, 7, 3), 120, np.uint8)).save(root / folder / f"{name}.png")
        else:
            (root / folder / name).write_bytes(content)
    for kind in links:
        target = {"outside": outside, "loop": root, "inside": root / "cat", "file-outside": outside / "secret.png"}
        (root / "dog").mkdir(exist_ok=True)
        link = root / "dog" / f"link-{kind}" if kind != "outside" else root / "zz-linked-class"
        if not link.exists() and not link.is_symlink():
            link.symlink_to(target[kind])
    before = snapshot(outside), sorted(str(p) for p in root.rglob("*"))
    spec = PreprocessSpec(input_size=(8, 8), channels="RGB")
    try:
        source = open_source(str(root))
        for split in ("train", "calibration", "evaluation"):
            for images, _ in source.split(split).batches(spec, 4):
                assert np.isfinite(images).all()
        listed = source._store.relpaths  # type: ignore[attr-defined]  # every file the source will read
        assert not any("secret" in path or "link-file-outside" in path for path in listed)
        assert "zz-linked-class" not in source.class_names
    except EdgeResNetError as error:
        assert_one_line(error)
    assert (snapshot(outside), sorted(str(p) for p in root.rglob("*"))) == before


def test_links_inside_an_image_folder_stay_inside_it(tmp_path: Path) -> None:
    from PIL import Image

    from edgeresnet.data import open_source

    root, outside = tmp_path / "data", tmp_path / "private"
    for folder in (root / "cat", root / "dog", outside):
        folder.mkdir(parents=True)
    for index in range(3):
        Image.new("RGB", (6, 6), (index, 0, 0)).save(root / "cat" / f"{index}.png")
        Image.new("RGB", (6, 6), (0, index, 0)).save(root / "dog" / f"{index}.png")
        Image.new("RGB", (6, 6), (0, 0, index)).save(outside / f"photo{index}.png")
    (root / "holiday").symlink_to(outside)  # a class folder that is really elsewhere
    (root / "dog" / "more").symlink_to(outside)
    (root / "dog" / "one.png").symlink_to(outside / "photo0.png")
    (root / "cat" / "again").symlink_to(root / "cat")  # a loop
    (root / "cat" / "dogs-too").symlink_to(root / "dog")  # inside: followed
    source = open_source(str(root))
    assert source.class_names == ["cat", "dog"]
    listed = source._store.relpaths  # type: ignore[attr-defined]
    assert sorted(listed) == sorted([f"cat/{i}.png" for i in range(3)] + [f"cat/dogs-too/{i}.png" for i in range(3)]
                                    + [f"dog/{i}.png" for i in range(3)])
