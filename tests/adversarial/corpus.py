"""A corpus of hostile inputs: signed bundles and the mutations an attacker (or a careless user) applies.

A *signed* bundle is one edgeresnet wrote. Anyone can edit it and *re-sign* it — recompute the sha256 of
the files they changed and the manifest's own hash — so signing proves integrity, not authorship. The
property tests draw sequences of :class:`Mutation` and state what must hold whatever they do.

The ``evil`` files differ from the good ones in their weights (so their logits differ): if one of them
ever runs while the manifest does not list its hash under the name that was loaded, the door has failed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.runtime.tiny_bundle import SPEC, golden_inputs, make_bundle, tiny_model

BUNDLE_KINDS = ("onnx", "external", "ir")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Corpus:
    """Signed bundles of each kind and, outside them, evil look-alikes."""

    root: Path
    bundles: dict[str, Path]
    outside: Path  # evil.onnx, evil.data, evil.xml/bin: different weights, never part of a bundle

    def fresh(self, kind: str, into: Path) -> Path:
        target = into / kind
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.bundles[kind], target, symlinks=True)
        return target


def _evil_onnx(source: Path, target: Path) -> Path:
    """The same network with the classifier bias shifted: same interface, other answers."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(source))
    for initializer in proto.graph.initializer:
        if initializer.name.endswith("fc.bias"):
            bias = numpy_helper.to_array(initializer).copy()
            bias[::2] += 50.0
            initializer.CopyFrom(numpy_helper.from_array(bias, initializer.name))
    onnx.save(proto, str(target))
    return target


def _to_external(source: Path, target: Path, location: str) -> Path:
    import onnx

    proto = onnx.load(str(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(target), save_as_external_data=True, all_tensors_to_one_file=True, location=location,
              size_threshold=0)
    return target


@functools.cache
def corpus() -> Corpus:
    """Built once per test process (a few seconds: one tiny model, three bundles, OpenVINO conversion)."""
    from edgeresnet.export.onnx import add_pixel_input
    from edgeresnet.runtime.onnxruntime import OnnxRuntimeRunner

    root = Path(tempfile.mkdtemp(prefix="edgeresnet-hostile-"))
    import atexit

    atexit.register(shutil.rmtree, root, True)
    model = tiny_model()
    work, outside = root / "work", root / "outside"
    work.mkdir()
    outside.mkdir()
    with OnnxRuntimeRunner(model.onnx) as runner:
        golden = runner.infer(golden_inputs())
    pixels = add_pixel_input(model.onnx, work / "model.pixels.onnx", SPEC)
    bundles = {"onnx": make_bundle(root / "onnx", model.onnx, outputs=golden, pixel_model="model.pixels.onnx",
                                   extra_files={"model.pixels.onnx": pixels})}
    external = _to_external(model.onnx, work / "ext" / "model.onnx", "model.onnx.data")
    bundles["external"] = make_bundle(root / "external", external, outputs=golden,
                                      extra_files={"model.onnx.data": external.parent / "model.onnx.data"})
    evil = _evil_onnx(model.onnx, outside / "evil.onnx")
    _to_external(evil, outside / "evil_ext" / "evil.onnx", "evil.data")
    shutil.copyfile(outside / "evil_ext" / "evil.data", outside / "evil.data")
    try:
        from edgeresnet.export.openvino import convert_to_ir

        xml = convert_to_ir(model.onnx, work / "ir" / "model.xml")
        bundles["ir"] = make_bundle(root / "ir", xml, target="openvino", outputs=golden,
                                    extra_files={"model.bin": xml.with_suffix(".bin")})
        convert_to_ir(evil, outside / "evil.xml")
    except ImportError:  # OpenVINO is optional: the other kinds are still tested
        pass
    return Corpus(root, bundles, outside)


# --- mutations ---------------------------------------------------------------------------------------

# Names an attacker writes into a manifest, beside the bundle's own. "{outside}" becomes the absolute
# path of the folder holding the evil files.
HOSTILE_NAMES = (
    "{outside}/evil.onnx", "../outside/evil.onnx", "../../outside/evil.onnx", "sub/../model.onnx",
    "./model.onnx", "model.onnx/", "", ".", "/", "evil.onnx", "link.onnx", "linkdir/evil.onnx", "loop.onnx",
    "model.pixels.onnx", "golden.npz", "model.bin", "C:\\evil.onnx", "\x1b]0;pwned\x07.onnx", "fifo.onnx",
    "model.onnx.data", "model.xml", "manifest.json", "sub/evil.onnx",
)
MANIFEST_FIELDS = ("model_file", "pixel_model", "golden.file", "files+", "files-")


@dataclass(frozen=True)
class Mutation:
    """One hostile edit: ``kind`` picks the action, ``name`` and ``value`` its arguments."""

    kind: str
    name: str = ""
    value: Any = None

    def apply(self, bundle: Path, outside: Path) -> None:
        ACTIONS[self.kind](bundle, outside, self)

    def __repr__(self) -> str:
        return f"Mutation({self.kind!r}, {self.name!r}, {self.value!r})"


def _listed(bundle: Path) -> list[str]:
    record = _record(bundle)
    files = record.get("files") if isinstance(record, dict) else None
    return sorted(files) if isinstance(files, dict) else []


def _record(bundle: Path) -> Any:
    try:
        return json.loads((bundle / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _write_record(bundle: Path, record: Any) -> None:
    path = bundle / "manifest.json"
    if path.is_symlink():
        path.unlink()
    path.write_text(json.dumps(record))


def _target(bundle: Path, name: str) -> Path | None:
    """The bundle file a mutation touches: ``name`` when listed, else the first listed file."""
    listed = _listed(bundle)
    if not listed:
        return None
    return bundle / (name if name in listed else listed[0])


def _flip(bundle: Path, outside: Path, m: Mutation) -> None:
    path = _target(bundle, m.name)
    if path is None or not path.is_file() or path.is_symlink() or stat_is_fifo(path):
        return
    data = bytearray(path.read_bytes())
    if data:
        data[int(m.value) % len(data)] ^= 0xFF
        path.write_bytes(bytes(data))


def _swap_in_evil(bundle: Path, outside: Path, m: Mutation) -> None:
    """Replace a listed file's bytes by an evil file's (model, IR, weights or external data)."""
    path = _target(bundle, m.name)
    if path is None or not path.is_file() or stat_is_fifo(path):
        return
    evil = {".onnx": "evil.onnx", ".xml": "evil.xml", ".bin": "evil.bin", ".data": "evil.data"}.get(path.suffix)
    if evil and (outside / evil).is_file():
        if path.is_symlink():
            path.unlink()
        shutil.copyfile(outside / evil, path)


def _hostile_name(value: str, outside: Path) -> str:
    return value.replace("{outside}", str(outside))


def _set_field(bundle: Path, outside: Path, m: Mutation) -> None:
    record = _record(bundle)
    if not isinstance(record, dict):
        return
    value = _hostile_name(m.value, outside)
    files = record.setdefault("files", {}) if isinstance(record.get("files", {}), dict) else {}
    if m.name == "golden.file":
        record.setdefault("golden", {})["file"] = value
    elif m.name == "files+":
        files[value] = sha256(_bytes_at(bundle, value))
    elif m.name == "files-":
        files.pop(_listed(bundle)[hash(value) % len(_listed(bundle))] if files else "", None)
    else:
        record[m.name] = value
    _write_record(bundle, record)


def _bytes_at(bundle: Path, name: str) -> bytes:
    path = Path(name) if os.path.isabs(name) else bundle / name
    try:
        return path.read_bytes() if path.is_file() and not stat_is_fifo(path) else b""
    except OSError:
        return b""


def _plant(bundle: Path, outside: Path, m: Mutation) -> None:
    """Put something at ``name`` inside the bundle: an evil copy, a link out or in, a loop, a FIFO, a dir link."""
    name = _hostile_name(m.name, outside)
    if os.path.isabs(name) or ".." in name.split("/") or not name.strip("/.") or "\\" in name:
        return
    kind = m.value
    if kind == "dir-link-out":  # the name's first folder (or the name itself) becomes a link out of the bundle
        link = bundle / name.split("/")[0]
        if not link.exists() and not link.is_symlink():
            link.symlink_to(outside, target_is_directory=True)
        return
    path = bundle / name
    if path.is_dir() and not path.is_symlink():
        return
    if path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "evil-copy":
        shutil.copyfile(outside / "evil.onnx", path)
    elif kind == "link-out":
        path.symlink_to(outside / "evil.onnx")
    elif kind == "link-in":
        path.symlink_to(bundle / "golden.npz")
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "fifo":
        os.mkfifo(path)


def _to_external_data(bundle: Path, outside: Path, m: Mutation) -> None:
    """Rewrite the bundle's ONNX model to keep its weights in ``value`` (a location anyone may write)."""
    model = bundle / "model.onnx"
    if not model.is_file() or model.is_symlink():
        return
    location = _hostile_name(m.value, outside)
    try:
        import onnx

        proto = onnx.load(str(model), load_external_data=True)
        onnx.save(proto, str(model), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=location, size_threshold=0)
    except Exception:  # noqa: BLE001 (onnx refuses some locations itself: then there is nothing to test)
        return
    if m.name == "evil":  # the data file then holds the evil weights (same layout, other bias)
        evil = outside / "evil.data"
        data_path = (model.parent / location) if not os.path.isabs(location) else Path(location)
        if data_path.is_file() and evil.stat().st_size == data_path.stat().st_size:
            shutil.copyfile(evil, data_path)


def _remove(bundle: Path, outside: Path, m: Mutation) -> None:
    path = _target(bundle, m.name)
    if path is not None and (path.is_file() or path.is_symlink()):
        path.unlink()


def resign(bundle: Path, outside: Path | None = None, m: Mutation | None = None) -> None:
    """What anyone can do: recompute the sha256 of every listed file that reads, then the manifest's own."""
    from edgeresnet.bundle import Manifest

    record = _record(bundle)
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return
    for name in list(record["files"]):
        path = bundle / name if isinstance(name, str) and not os.path.isabs(name) else Path(str(name))
        try:
            if path.is_file() and not stat_is_fifo(path):
                record["files"][name] = sha256(path.read_bytes())
        except OSError:
            continue
    # A manifest the mutations made unreadable has nothing to re-sign.
    with contextlib.suppress(Exception):
        record["manifest_sha256"] = Manifest.from_dict(record).content_sha256()
    _write_record(bundle, record)


def stat_is_fifo(path: Path) -> bool:
    import stat

    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


ACTIONS: dict[str, Callable[[Path, Path, Mutation], None]] = {
    "flip": _flip, "evil-bytes": _swap_in_evil, "field": _set_field, "plant": _plant,
    "external": _to_external_data, "remove": _remove, "resign": resign,
}
PLANTS = ("evil-copy", "link-out", "link-in", "loop", "fifo", "dir-link-out")
EXTERNAL_LOCATIONS = ("weights.data", "model.onnx.data", "../outside/evil.data", "{outside}/evil.data", "sub/w.data")


def logits_of(classifier: Any) -> np.ndarray:
    return classifier.logits(golden_inputs())
