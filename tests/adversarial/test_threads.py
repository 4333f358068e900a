"""An app's threads sharing one Classifier get, call by call, exactly the answers one thread gets.

Each available backend (ONNX Runtime, its pixel model, OpenVINO on an IR and on an ONNX file) is hammered
from 8 threads at once with different batch sizes and inputs, and every answer is compared bit for bit
with the same call made alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from edgeresnet.runtime.classifier import Classifier
from tests.adversarial.corpus import corpus
from tests.runtime.tiny_bundle import SPEC, blob_images

THREADS = 8
CALLS_PER_THREAD = 6
CASES = {  # name → (bundle kind, backend, which entry point)
    "onnxruntime": ("external", "onnxruntime", "tensor"),
    "onnxruntime-pixel-model": ("onnx", "onnxruntime", "pixels"),
    "openvino-ir": ("ir", "openvino", "tensor"),
    "openvino-ir-pixels": ("ir", "openvino", "pixels"),
    "openvino-onnx": ("onnx", "openvino", "pixels"),
}


def _workload(seed: int) -> list[np.ndarray]:
    """Calls of one thread: uint8 frames of varied batch sizes (a static request would have to switch)."""
    rng = np.random.default_rng(seed)
    frames = blob_images(CALLS_PER_THREAD * 4, seed=1000 + seed)[0]
    sizes = rng.integers(1, 5, CALLS_PER_THREAD)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return [frames[s : s + n] for s, n in zip(starts, sizes)]


def _entry(classifier: Classifier, kind: str) -> Callable[[np.ndarray], np.ndarray]:
    if kind == "pixels":
        return classifier.logits_from_pixels
    return lambda frames: classifier.logits(SPEC.normalise(frames))


@pytest.mark.parametrize("case", sorted(CASES))
def test_eight_threads_get_what_one_thread_gets(case: str) -> None:
    kind, backend, entry = CASES[case]
    if backend == "openvino":
        pytest.importorskip("openvino")
    if kind not in corpus().bundles:
        pytest.skip("needs openvino")
    workloads = [_workload(seed) for seed in range(THREADS)]
    with Classifier.load(corpus().bundles[kind], backend=backend) as classifier:
        if entry == "pixels" and backend == "onnxruntime":
            assert classifier.runner.preprocesses_in_model  # the pixel model is what is hammered
        call = _entry(classifier, entry)
        alone = [[call(frames) for frames in work] for work in workloads]
        together: list[list[np.ndarray] | BaseException] = [[] for _ in range(THREADS)]
        start = threading.Barrier(THREADS)

        def hammer(index: int) -> None:
            try:
                start.wait()
                for _ in range(3):  # rounds, so the calls interleave differently
                    together[index] = [call(frames) for frames in workloads[index]]
            except BaseException as error:  # noqa: BLE001 (reported below, with the thread's index)
                together[index] = error

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    for index in range(THREADS):
        answers = together[index]
        assert not isinstance(answers, BaseException), f"thread {index}: {answers!r}"
        assert len(answers) == CALLS_PER_THREAD
        for got, expected in zip(answers, alone[index]):
            np.testing.assert_array_equal(got, expected)  # bit for bit


def test_closing_while_another_thread_infers_waits_for_it() -> None:
    """close() takes the runner's lock: a call in flight finishes, later calls get the one-line error."""
    from edgeresnet.errors import EdgeResNetError

    classifier = Classifier.load(corpus().bundles["onnx"])
    frames = blob_images(4, seed=3)[0]
    results: list[object] = []

    def infer() -> None:
        for _ in range(20):
            try:
                results.append(classifier.logits_from_pixels(frames))
            except EdgeResNetError as error:
                results.append(error)

    worker = threading.Thread(target=infer)
    worker.start()
    classifier.close()
    worker.join(timeout=60)
    assert results and all(isinstance(r, np.ndarray | EdgeResNetError) for r in results)
    assert all("is closed" in str(r) for r in results if isinstance(r, EdgeResNetError))
