"""Inference without torch: the Runner protocol and its backends.

Nothing here imports torch; backends import their runtime (onnxruntime, openvino, tensorrt) lazily.
"""

from edgeresnet.runtime.base import Runner, RunnerInfo
from edgeresnet.runtime.classifier import Classifier, Prediction

__all__ = ["Classifier", "Prediction", "Runner", "RunnerInfo"]
