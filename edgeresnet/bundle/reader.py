"""The one door into a bundle: every name a manifest gives is resolved inside the bundle, and every byte
a backend runs is read here and checked against the manifest's sha256.

    reader = BundleReader.open("bundles/r20-int8")
    model = reader.model(reader.manifest.model_file)   # ModelBytes: hashed bytes, companions included

Rules, for files and directories alike:

- a name is relative, normalised POSIX text (no ``..``, no absolute path, no control characters);
- its real path (every symbolic link resolved) lies inside the bundle's real root;
- it is a regular file, read once, and its bytes are the ones hashed: nothing re-opens it by path;
- every file a backend opens — the model, an IR's ``.bin``, an ONNX model's external data, the pixel
  model, the golden samples, the calibration table — must be listed in ``files`` with its sha256.

``verify`` asks :meth:`BundleReader.problems` and then loads the runner through the same reader, so
"verify OK" means "predict runs these bytes". What cannot hold (a file edited after an app loaded it)
is written down in ``docs/security.md``.
"""

from __future__ import annotations

import io
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from edgeresnet.bundle.layout import GOLDEN_FILE, MANIFEST_FILE
from edgeresnet.bundle.manifest import Manifest, manifest_from_record
from edgeresnet.bundle.model_bytes import IR_WEIGHTS, ModelBytes
from edgeresnet.bundle.onnx_refs import external_data_locations
from edgeresnet.digests import sha256_bytes, sha256_stream
from edgeresnet.errors import BundleError, one_line
from edgeresnet.limits import NotRegularFileError, open_regular, parse_json, printable, require_memory
from edgeresnet.placement import RESERVED, interrupted_publish

if TYPE_CHECKING:
    import numpy as np

# A manifest is small; anything far larger is not one, and is refused before it is parsed.
MAX_MANIFEST_BYTES = 16 << 20


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a file inside a bundle, or None when it can (before links are resolved)."""
    if not isinstance(name, str) or not name:
        return "not a file name"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name) or "\\" in name:
        return "a name with control characters or backslashes"
    if name.startswith("/") or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        return "an absolute path, outside the bundle"
    parts = name.split("/")
    if ".." in parts:
        return "a path with '..', outside the bundle"
    if any(part in ("", ".") for part in parts) or PurePosixPath(name).as_posix() != name:
        return "not a normalised relative path"
    return None


@dataclass
class BundleReader:
    """A bundle opened through the door: its real root, its manifest, and reads checked against it.

    Args:
        given: the path as the caller named it (used in messages and in ``ModelBytes.path``).
        root: its real path; every file must resolve inside it.
    """

    given: Path
    root: Path
    manifest: Manifest
    record: dict[str, Any] = field(default_factory=dict)
    manifest_file_sha256: str | None = None  # of the manifest bytes this reader parsed (``open`` only)
    _verified: dict[str, bytes] = field(default_factory=dict, repr=False)
    _problems: list[str] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> BundleReader:
        """Read the manifest of the bundle at ``path`` (one-line BundleErrors for anything unreadable)."""
        given = Path(path)
        if not given.is_dir():
            raise BundleError(f"bundle not found: {given}")
        reader = cls(given, Path(os.path.realpath(given)), manifest=None)  # type: ignore[arg-type]
        reader.record = reader.manifest_record()
        reader.manifest = manifest_from_record(reader.record)
        return reader

    @classmethod
    def of(cls, path: str | Path, manifest: Manifest) -> BundleReader:
        """A reader for a manifest the caller already holds (its record is not re-read)."""
        given = Path(path)
        return cls(given, Path(os.path.realpath(given)), manifest)

    def manifest_record(self) -> dict[str, Any]:
        path = self.given / MANIFEST_FILE
        if not path.exists() and not path.is_symlink():
            raise BundleError(f"{self.given} is not a bundle (no {MANIFEST_FILE})")
        if interrupted_publish(self.given) is not None:
            raise BundleError(f"{self.given} belongs to an output whose last run was interrupted while moving its "
                              f"results into place; rerun that command into {self.given.parent} to finish it")
        data = _read_regular(self.resolve(MANIFEST_FILE), MANIFEST_FILE, limit=MAX_MANIFEST_BYTES)
        self.manifest_file_sha256 = sha256_bytes(data)
        record = parse_json(data, what=str(path), error=BundleError, max_bytes=MAX_MANIFEST_BYTES)
        if not isinstance(record, dict):
            raise BundleError(f"{path} is not an edgeresnet bundle manifest (not a JSON object)")
        return record

    # --- names and bytes ----------------------------------------------------------------------------

    def resolve(self, name: object) -> Path:
        """The real path of ``name`` inside the bundle; a BundleError if it is malformed or leads out."""
        problem = name_problem(name)
        if problem is not None:
            raise BundleError(f"the manifest names {printable(repr(name))}: {problem}")
        real = Path(os.path.realpath(self.root / str(name)))
        if real == self.root or not real.is_relative_to(self.root):
            raise BundleError(f"{name} leads outside the bundle (through a symbolic link)")
        return real

    def read(self, name: str, *, check_hash: bool = True) -> bytes:
        """The bytes of the listed file ``name``, checked against its sha256 unless ``check_hash`` is off."""
        if name in self._verified:
            return self._verified[name]
        expected = self.manifest.files.get(name)
        if expected is None and check_hash:
            raise BundleError(f"{name} is opened by the runtime but the manifest records no sha256 for it")
        data = _read_regular(self.resolve(name), name)
        if check_hash:
            if sha256_bytes(data) != expected:
                raise BundleError(f"{name} was modified (sha256 differs from the manifest)")
            self._verified[name] = data
        return data

    def model(self, name: str, *, check_hashes: bool = True) -> ModelBytes:
        """A model file and every file it reads beside it, as hashed bytes."""
        data = self.read(name, check_hash=check_hashes)
        companions = {location: self.read(companion, check_hash=check_hashes)
                      for location, companion in self._companions(name, data).items()}
        return ModelBytes(self.given / name, data, companions)

    def verified_path(self, name: str) -> Path:
        """The real path of a listed file after its bytes (and its companions') matched the manifest.

        For build steps whose tools only take paths (compile's converters); the runtime uses bytes.
        """
        self.model(name)
        return self.resolve(name)

    def golden(self) -> tuple[np.ndarray, np.ndarray]:
        """The golden inputs (float N×C×H×W) and outputs (float N×classes), read from their hashed bytes."""
        name = self.manifest.golden.get("file", GOLDEN_FILE)
        data = self.read(name if isinstance(name, str) else "")
        inputs, outputs = _golden_arrays(data, str(name))
        if inputs.ndim != 4 or outputs.ndim != 2 or len(inputs) != len(outputs) or not len(inputs):
            raise BundleError(f"golden samples {name} hold {inputs.shape} inputs and {outputs.shape} outputs, "
                              "not N×C×H×W inputs with N×classes outputs")
        return inputs, outputs

    def companions(self, name: str) -> dict[str, str]:
        """The files the listed model ``name`` reads beside it, found in its hashed bytes: key as the backend
        knows it → name inside the bundle (each confined to the bundle's folder)."""
        return self._companions(name, self.read(name))

    def _companions(self, name: str, data: bytes) -> dict[str, str]:
        """The files a model reads beside it: key as the backend knows it → name inside the bundle."""
        suffix = PurePosixPath(name).suffix.lower()
        if suffix == ".xml":
            return {IR_WEIGHTS: str(PurePosixPath(name).with_suffix(".bin"))}
        if suffix != ".onnx":
            return {}
        companions = {}
        for location in external_data_locations(data, name=name):
            problem = name_problem(location)
            if problem is not None:
                raise BundleError(f"{name} keeps tensors in {printable(repr(location))}: {problem}")
            companions[location] = posixpath.join(posixpath.dirname(name), location)
        return companions

    # --- checks -----------------------------------------------------------------------------------

    def runtime_names(self) -> list[str]:
        """Every file the runtime (and verify's golden check) opens for this bundle, companions included."""
        manifest = self.manifest
        golden = manifest.golden.get("file", GOLDEN_FILE)
        names = [manifest.model_file, *([manifest.pixel_model] if manifest.pixel_model else [])]
        found = list(names)
        for name in names:
            onnx = PurePosixPath(name).suffix.lower() == ".onnx"  # only an ONNX model names its companions
            found.extend(self._companions(name, self._model_bytes_for_names(name) if onnx else b"").values())
        return list(dict.fromkeys([*found, golden]))

    def _model_bytes_for_names(self, name: str) -> bytes:
        """A model's bytes to find the files it names: hashed and kept when listed (the runner reads them next,
        and the check of the listed files skips them), as they are when not (problems() says why)."""
        if name in self.manifest.files:
            try:
                return self.read(name)
            except BundleError:
                pass  # modified or unreadable: reported by the check of the listed files
        return self.read(name, check_hash=False)

    def problems(self) -> list[str]:
        """Everything wrong with the bundle's files: the manifest's own hash, each listed file (malformed,
        outside, missing, altered) and each file the runtime opens that is not listed. Empty when sound.

        Found once per reader: ``verify`` and the runner it then opens share one pass over the files.
        """
        if self._problems is None:
            self._problems = self._find_problems()
        return list(self._problems)

    def _find_problems(self) -> list[str]:
        problems = []
        recorded = self.manifest.manifest_sha256
        # The hash covers the text as written (a version-1 manifest hashed its own version-1 content).
        actual = {self.manifest.content_sha256(), getattr(self.manifest, "loaded_content_sha256", None)}
        if recorded and recorded not in actual:
            problems.append(f"{MANIFEST_FILE} was modified (its content no longer matches its recorded sha256)")
        try:
            opened = self.runtime_names()  # first: the model files it reads are hashed once, there
        except BundleError as error:
            opened, problems = [], [*problems, str(error)]
        for name, expected in self.manifest.files.items():
            try:
                if name not in self._verified and _digest_regular(self.resolve(name), name) != expected:
                    problems.append(f"{name} was modified (sha256 differs from the manifest)")
            except BundleError as error:
                problems.append(str(error))
        for name in opened:
            try:
                self.resolve(name)  # a name leading out says so, whether it is listed or not
            except BundleError as error:
                problems.append(str(error))
                continue
            if name not in self.manifest.files:
                problems.append(f"{name} is opened by the runtime but the manifest records no sha256 for it")
        return list(dict.fromkeys(problems))

    def unlisted_files(self) -> list[str]:
        """Files under the bundle that the manifest does not list and the runtime does not open (nothing
        reads them; placement's own ledger is not the bundle's)."""
        listed = set(self.manifest.files) | {MANIFEST_FILE} | set(RESERVED)
        try:
            listed |= set(self.runtime_names())  # an unlisted file the runtime opens is a problem, not a stray
        except BundleError:
            pass  # problems() reports it
        found = []
        for directory, subdirs, files in os.walk(self.root):  # never follows a link
            subdirs.sort()
            base = Path(directory)
            found += [(base / f).relative_to(self.root).as_posix() for f in sorted(files)]
        return [name for name in found if name not in listed]


# Golden samples are a few images: an archive expanding past this is not a bundle's.
MAX_GOLDEN_BYTES = 256 << 20


def _golden_arrays(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    import zipfile

    import numpy as np

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(member.file_size for member in archive.infolist())
            if expanded > MAX_GOLDEN_BYTES:
                raise BundleError(f"golden samples {name} expand to {expanded} bytes (at most {MAX_GOLDEN_BYTES})")
        with np.load(io.BytesIO(data), allow_pickle=False) as golden:
            inputs, outputs = golden["inputs"], golden["outputs"]
    except BundleError:
        raise
    except Exception as error:  # zipfile, zlib and numpy each raise their own types for a corrupt archive
        raise BundleError(f"cannot read golden samples {name}: {printable(one_line(error))}") from error
    if not all(np.issubdtype(a.dtype, np.floating) for a in (inputs, outputs)):
        raise BundleError(f"golden samples {name} are not floating-point arrays")
    return inputs, outputs


def _open_regular(real: Path, name: str, *, limit: int | None = None) -> tuple[Any, int]:
    """Open a regular file for reading; a FIFO, device or directory is refused without blocking on it."""
    try:
        handle, size = open_regular(real, follow_links=False)  # links were resolved inside the bundle
    except FileNotFoundError as error:
        raise BundleError(f"{name} is missing") from error
    except NotRegularFileError as error:
        raise BundleError(f"{name} is not a regular file") from error
    except OSError as error:
        raise BundleError(f"cannot read {name}: {os.strerror(error.errno or 0).lower()}") from error
    if limit is not None and size > limit:
        handle.close()
        raise BundleError(f"{name} is too large ({size} bytes, at most {limit})")
    return handle, size


def _read_regular(real: Path, name: str, *, limit: int | None = None) -> bytes:
    handle, size = _open_regular(real, name, limit=limit)
    with handle:
        require_memory(size, what=f"reading {name}", error=BundleError)
        return handle.read()


def _digest_regular(real: Path, name: str) -> str:
    handle, _ = _open_regular(real, name)
    with handle:
        return sha256_stream(handle)


__all__ = ["MAX_MANIFEST_BYTES", "BundleReader", "name_problem"]
