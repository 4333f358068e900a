"""Inference without torch: the Runner protocol and its backends.

Nothing here imports torch; backends import their runtime (onnxruntime, openvino, tensorrt) lazily.
"""

from edgeresnet.runtime.base import Runner, RunnerInfo

__all__ = ["Runner", "RunnerInfo"]
