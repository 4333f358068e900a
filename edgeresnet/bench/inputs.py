"""Timing inputs without a data set: a bundle's golden samples, or generated inputs of its input spec.

On a device there is often no labelled data, and ``benchmark_app -m`` or ``trtexec --loadEngine`` time a
model file alone. So does ``benchmark`` without ``--data``: each bundle is timed on its golden inputs
(real preprocessed images saved at export), repeated to fill a batch, and must first reproduce its
golden outputs within its precision's tolerance (:func:`edgeresnet.parity.check_parity`, the judge
``verify`` uses); a checkpoint, or a bundle without golden samples, gets seeded standard-normal inputs
of its preprocessing's shape (normalised pixels have that scale). Accuracy is then "not measured".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeresnet.bench.artifacts import Artifact
from edgeresnet.errors import EdgeResNetError
from edgeresnet.runtime.base import Runner

GENERATED_SEED = 0
GENERATED_COUNT = 8


@dataclass(frozen=True)
class TimingInputs:
    """One artifact's inputs for timing, and the golden outputs they must give (None when generated)."""

    inputs: np.ndarray
    expected: np.ndarray | None
    source: str  # "golden samples" or "generated inputs"

    def batch(self, size: int) -> np.ndarray:
        """``size`` inputs, the samples repeated as often as needed."""
        return np.ascontiguousarray(np.resize(self.inputs, (size, *self.inputs.shape[1:])), dtype=np.float32)


def timing_inputs(artifact: Artifact) -> TimingInputs:
    """The golden samples of a bundle that has them, else generated inputs of the artifact's input shape."""
    if artifact.kind == "bundle":
        from edgeresnet.bundle import read_golden, read_manifest

        manifest = read_manifest(artifact.path)
        if manifest.golden:
            inputs, outputs = read_golden(artifact.path, manifest)
            if len(inputs):
                return TimingInputs(np.asarray(inputs, np.float32), np.asarray(outputs, np.float32), "golden samples")
    shape = artifact.preprocessing.input_shape(GENERATED_COUNT)
    generated = np.random.default_rng(GENERATED_SEED).standard_normal(shape).astype(np.float32)
    return TimingInputs(generated, None, "generated inputs")


def check_golden(runner: Runner, artifact: Artifact, inputs: TimingInputs) -> str | None:
    """None when there is nothing to check or the outputs reproduce; else a one-line failure."""
    if inputs.expected is None:
        return None
    from edgeresnet.parity import check_parity

    try:
        outputs = runner.infer(inputs.inputs)
        check = check_parity(inputs.expected, outputs, artifact.precision)
    except EdgeResNetError as error:
        return f"golden outputs: {error}"
    return None if check.passed else f"golden outputs not reproduced: {check.describe()}"
