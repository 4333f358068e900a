"""The application-facing classifier: a bundle (or a bare model file) in, labelled predictions out.

    with Classifier.load("bundles/r20-int8") as classifier:
        for prediction in classifier.predict(["shoe.png"], top_k=3)[0]:
            print(prediction.label, prediction.probability)

It needs numpy, Pillow and one runtime (onnxruntime, openvino or tensorrt), never torch. Every image
goes through the bundle's own PreprocessSpec, so the app preprocesses exactly as evaluation did.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Self

import numpy as np
from PIL import Image

from edgeresnet.bundle import Manifest
from edgeresnet.bundle.reader import BundleReader
from edgeresnet.data.decoding import DECODE_ERRORS
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import BundleError, DatasetError, EdgeResNetError, one_line
from edgeresnet.runtime.base import Runner, RunnerInfo
from edgeresnet.runtime.loading import bundle_runner_options, metadata_of_bare_model, open_bundle_runner
from edgeresnet.runtime.ood import OodCheck, check_batch, pixel_features
from edgeresnet.runtime.records import FilePrediction, Prediction
from edgeresnet.runtime.select import AUTO_DEVICE, open_runner

ImageInput = str | Path | Image.Image | np.ndarray


class Classifier:
    """A runner plus the preprocessing and class names it was built with."""

    def __init__(self, runner: Runner, spec: PreprocessSpec, class_names: Sequence[str],
                 manifest: Manifest | None = None) -> None:
        self.runner = runner
        self.spec = spec
        self.class_names = list(class_names)
        self.manifest = manifest
        self.ood_profile = manifest.ood if manifest is not None else None
        # One image at a time leaves a core idle while it is resized: this thread takes some of the
        # resize's bands meanwhile (PreprocessSpec.resize_and_crop; 0.98 → 0.61 ms for a 640×427 photo
        # on 2 cores). Files in predict_iter are already decoded side by side, so they do without it.
        self._resize_pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeresnet-resize")
                             if usable_cores() > 1 else None)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        backend: str | None = None,
        device: str = AUTO_DEVICE,
        threads: int | None = None,
        check_hashes: bool = True,
        allow_host_code: bool = False,
    ) -> Classifier:
        """Open a bundle directory, or a bare ``.onnx`` whose metadata carries preprocessing and labels.

        Args:
            backend: ``onnxruntime``, ``openvino`` or ``tensorrt``; by default the model file's suffix
                decides.
            device: the backend's device (``cpu``, ``cuda``, ``GPU``...); ``auto`` is the backend's default.
            check_hashes: refuse a bundle whose files differ from its manifest (a model that is not the
                one described would give silently wrong answers).
            allow_host_code: let a version-compatible TensorRT engine run the lean runtime it embeds
                (host code). Only for engines from a source you trust: a manifest cannot turn it on.
        """
        path = Path(path)
        if path.is_dir():
            reader = BundleReader.open(path)  # the one door: every byte the runner gets is hashed there
            runner = open_bundle_runner(reader, backend=backend, device=device, threads=threads,
                                        check_hashes=check_hashes, allow_host_code=allow_host_code)
            return cls(runner, reader.manifest.preprocessing, reader.manifest.class_names, reader.manifest)
        if not path.is_file():
            raise BundleError(f"no bundle or model file at {path}")
        spec, labels = metadata_of_bare_model(path)
        # Only an .onnx can carry its own metadata, so a bare model is never an engine.
        runner = open_runner(path, backend=backend, device=device, threads=threads)
        return cls(runner, spec, labels)

    # --- inference -------------------------------------------------------------------------------

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int = 5) -> list[list[Prediction]]:
        """Top-``top_k`` predictions for each image, best first.

        ``images`` is one image or a sequence of them: file paths, PIL images, uint8 arrays (H×W or
        H×W×C, any size: they are resized as the spec says), or float32 arrays already preprocessed to
        the model's C×H×W. A 4-D array is a batch (uint8 N×H×W×C images, or a preprocessed N×C×H×W).
        Every image becomes uint8 pixels at the input size and goes to the model through
        ``Runner.infer_pixels``: where the backend normalises inside the model, no numpy arithmetic
        runs per image. For camera frames already at the input size, :meth:`predict_frames` skips
        the resize too.

        Raises:
            DatasetError: a file is missing or cannot be decoded (naming it); nothing is returned for
                the batch. To go on past bad files, use :meth:`predict_iter`, which reports them as rows.
        """
        _check_top_k(top_k)
        if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
            return self._predict_pixels(self.spec.pixels_batch(images), top_k)
        items = _as_items(images)
        if not items:
            raise DatasetError("no images given")
        if any(_is_tensor(item) for item in items):
            return self._rank(self.logits(self.preprocess(items)), top_k)
        return self._predict_pixels(as_batch([self._pixels_of(item) for item in items]), top_k)

    def predict_frames(self, frames: np.ndarray, top_k: int = 5) -> list[list[Prediction]]:
        """Top-``top_k`` predictions for uint8 N×H×W×C camera frames already at the model's input size.

        The frames are taken as they are (no resize or crop, whatever the spec's ``resize_to``) and go
        to the model in one call: with in-model preprocessing (OpenVINO) nothing runs per image in numpy.
        """
        _check_top_k(top_k)
        return self._predict_pixels(frames, top_k)

    def predict_iter(
        self,
        paths: Iterable[str | Path],
        *,
        batch_size: int = 8,
        top_k: int = 5,
        workers: int | None = None,
    ) -> Iterator[FilePrediction]:
        """Classify image files in batches, decoding in a thread pool while the model runs.

        Results come in the order of ``paths``, one per file. A file that is missing or cannot be
        decoded yields a result with ``error`` set (``ok`` False, no predictions) and the run goes on,
        where :meth:`predict` raises instead. Decoding (Pillow releases the
        GIL) runs up to two batches ahead of inference, so the model rarely waits for files.

        Args:
            workers: decoding threads; by default one per usable core.
        """
        _check_top_k(top_k)
        if batch_size < 1:
            raise EdgeResNetError(f"batch size must be at least 1, got {batch_size}")
        threads = workers or usable_cores()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="edgeresnet-decode") as pool:
            pending: deque[tuple[Path, Future[np.ndarray]]] = deque()
            remaining = iter(paths)
            lookahead = 3 * batch_size  # the batch being run and two being decoded
            while True:
                for path in itertools.islice(remaining, lookahead - len(pending)):
                    path = Path(path)
                    pending.append((path, pool.submit(self.load_pixels, path)))
                if not pending:
                    return
                batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
                yield from self._predict_loaded(batch, top_k)

    def _predict_loaded(self, batch: list[tuple[Path, Future[np.ndarray]]], top_k: int) -> list[FilePrediction]:
        pixels: list[np.ndarray] = []
        errors: dict[int, str] = {}
        for position, (_, future) in enumerate(batch):
            try:
                pixels.append(future.result())
            except DatasetError as error:
                errors[position] = str(error)
        ranked, checks = self._ranked_and_checked(as_batch(pixels), top_k) if pixels else ([], [])
        results, found = [], iter(zip(ranked, checks or itertools.repeat(None)))
        for position, (path, _) in enumerate(batch):
            if position in errors:
                results.append(FilePrediction(str(path), (), errors[position]))
            else:
                predictions, check = next(found)
                results.append(FilePrediction(str(path), tuple(predictions), None, check))
        return results

    def load_pixels(self, path: str | Path) -> np.ndarray:
        """An image file → uint8 H×W×C model pixels; a missing or undecodable file is a DatasetError."""
        return self._load(Path(path), None)

    def _load(self, path: Path, pool: Executor | None) -> np.ndarray:
        if not path.is_file():
            raise DatasetError(f"image not found: {path}")
        try:
            return self.spec.load(path, pool)
        except DECODE_ERRORS as error:
            raise DatasetError(f"cannot decode image {path}: {one_line(error)}") from error

    def preprocess(self, images: ImageInput | Sequence[ImageInput]) -> np.ndarray:
        """Images → the float32 N×C×H×W batch the model takes."""
        items = _as_items(images)
        if not items:
            raise DatasetError("no images given")
        return np.stack([self._preprocess_one(item) for item in items])

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Raw logits for a preprocessed float32 N×C×H×W batch."""
        expected = tuple(self.spec.input_shape()[1:])
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            shape = getattr(batch, "shape", type(batch).__name__)
            raise DatasetError(
                "expected a preprocessed float32 batch of shape "
                f"N×{'×'.join(map(str, expected))}, got {shape}"
            )
        if not np.issubdtype(batch.dtype, np.floating):
            raise DatasetError(f"a preprocessed batch must be float32, got {batch.dtype}; "
                               "pass uint8 images to predict() to have them preprocessed")
        return self._checked(self.runner.infer(batch.astype(np.float32, copy=False)))

    def logits_from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Raw logits for uint8 N×H×W×C pixels at the model's input size (camera frames, ``load_pixels``)."""
        height, width = self.spec.input_size
        expected = (height, width, self.spec.num_channels)
        wanted = f"uint8 pixels of shape N×{'×'.join(map(str, expected))}"
        if not isinstance(pixels, np.ndarray):
            raise DatasetError(f"expected {wanted} in a numpy array, got {type(pixels).__name__}")
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != expected:
            raise DatasetError(f"expected {wanted}, got shape {pixels.shape}")
        if pixels.dtype != np.uint8:  # the shape is right: name what is wrong, the type of the values
            raise DatasetError(f"expected {wanted}, got {pixels.dtype} values of the right shape; frames are "
                               "taken as they are: convert 0-255 pixels with frames.astype(np.uint8)")
        return self._checked(self.runner.infer_pixels(pixels, self.spec))

    @property
    def resize_pool(self) -> Executor | None:
        """The thread that shares one image's resize bands with the caller's (None on one core)."""
        return self._resize_pool

    def describe(self) -> RunnerInfo:
        return self.runner.describe()

    def close(self) -> None:
        if self._resize_pool is not None:
            self._resize_pool.shutdown()
        self.runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- helpers ---------------------------------------------------------------------------------

    def _checked(self, logits: np.ndarray) -> np.ndarray:
        if logits.ndim != 2 or logits.shape[1] != len(self.class_names):
            raise EdgeResNetError(
                f"the model gives {logits.shape} logits but the bundle lists {len(self.class_names)} labels"
            )
        return logits

    def check_ood(self, pixels: np.ndarray, logits: np.ndarray,
                  features: dict[str, np.ndarray] | None = None) -> list[OodCheck] | None:
        """Out-of-distribution verdicts for uint8 pixels at the input size and their logits; None without ranges.

        ``features``: the pixels' ``pixel_features`` when the caller has them already.
        """
        return None if self.ood_profile is None else check_batch(self.ood_profile, pixels, logits, features)

    def _predict_pixels(self, pixels: np.ndarray, top_k: int) -> list[list[Prediction]]:
        return self._ranked_and_checked(pixels, top_k)[0]

    def _ranked_and_checked(self, pixels: np.ndarray, top_k: int) -> tuple[list[list[Prediction]], list[OodCheck] | None]:
        # The hint's pixel statistics before the model call: the pixels are still in cache and no backend
        # thread is spinning on the other core yet (0.18 against 0.27 ms after it, 224×224 RGB:
        # benchmarks/results/photo_path_micro.md).
        features = pixel_features(pixels) if self.ood_profile is not None else None
        logits = self.logits_from_pixels(pixels)
        checks = self.check_ood(pixels, logits, features)
        return self._rank(logits, top_k, checks), checks

    def _rank(self, logits: np.ndarray, top_k: int, checks: list[OodCheck] | None = None) -> list[list[Prediction]]:
        probabilities = _softmax(logits)
        k = min(top_k, probabilities.shape[1])
        ranked = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        flags = [check.flagged for check in checks] if checks is not None else [None] * len(ranked)
        return [
            [Prediction(int(i), self._label(int(i)), float(row[i]), flag) for i in order]
            for row, order, flag in zip(probabilities, ranked, flags)
        ]

    def _label(self, index: int) -> str:
        return self.class_names[index] if index < len(self.class_names) else str(index)

    def _pixels_of(self, item: ImageInput) -> np.ndarray:
        if isinstance(item, (str, Path)):
            return self._load(Path(item), self._resize_pool)
        return self.spec.pixels(item, self._resize_pool)

    def _preprocess_one(self, item: ImageInput) -> np.ndarray:
        if _is_tensor(item):
            # A float array is a tensor, not a picture: resizing it would guess at its scale and layout.
            expected = tuple(self.spec.input_shape()[1:])
            if item.shape != expected:
                raise DatasetError(
                    "a float array is taken as a preprocessed input and must be "
                    f"{'×'.join(map(str, expected))}, got {'×'.join(map(str, item.shape))}; "
                    "pass uint8 images to have them resized"
                )
            return item.astype(np.float32, copy=False)
        return self.spec.normalise(self._pixels_of(item)[None])[0]


def _check_top_k(top_k: int) -> None:
    if top_k < 1:
        raise EdgeResNetError(f"top_k must be at least 1, got {top_k}")


def _is_tensor(item: object) -> bool:
    return isinstance(item, np.ndarray) and np.issubdtype(item.dtype, np.floating)


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _as_items(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, (str, Path, Image.Image)):
        return [images]
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images)
        if images.ndim == 3 and images.dtype == np.uint8 and images.shape[-1] not in (1, 3, 4):
            return list(images)  # N×H×W grayscale images
        return [images]
    if isinstance(images, Sequence):
        return list(images)
    raise DatasetError(f"unsupported image input {type(images).__name__}")


def as_batch(images: list[np.ndarray]) -> np.ndarray:
    """Same-shaped arrays → one N×... batch; a single image becomes a view, not a copy."""
    return images[0][None] if len(images) == 1 else np.stack(images)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    return exp / exp.sum(axis=1, keepdims=True)


__all__ = ["Classifier", "FilePrediction", "Prediction", "bundle_runner_options", "usable_cores"]
