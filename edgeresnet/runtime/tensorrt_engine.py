"""What a loaded TensorRT engine is, and more of it at once: layer precisions and extra execution contexts.

The companion of :mod:`edgeresnet.runtime.tensorrt`, for the benchmark and the build alike:

* :func:`inspect_layer_precisions` reads the engine inspector's JSON (detailed where the engine was built
  with ``ProfilingVerbosity.DETAILED``, as ``compile`` builds them) and counts layers by precision, so a
  benchmark row says what the engine really runs (INT8 52, FP16 3 ...), not what was asked for.
* :class:`ExecutionWorker` is one more execution context of a runner's engine with its own CUDA stream and
  buffers: several of them in flight at once is TensorRT's throughput mode (what ``trtexec --streams``
  measures).

Written against the documented 10.x/11.x API; the names are checked against NVIDIA's bindings
(tests/tensorrt_api) and the behaviour with the stand-in there.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from edgeresnet.errors import EdgeResNetError

log = logging.getLogger(__name__)


def inspect_layer_precisions(trt: Any, engine: Any, context: Any) -> dict[str, int]:
    """Layer counts by precision from the engine inspector, for ``context`` (its input shape set)."""
    inspector = engine.create_engine_inspector()
    if hasattr(inspector, "execution_context"):  # 11.x
        inspector.execution_context = context
    else:  # 10.x
        inspector.context = context
    information = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    return summarise_layer_precisions(json.loads(information))


def runner_layer_precisions(runner: Any) -> dict[str, int]:
    """A :class:`~edgeresnet.runtime.tensorrt.TensorRTRunner`'s engine, inspected at the optimisation
    profile's largest batch (a dynamic-shape context reports formats only once its input shape is set)."""
    engine, context = runner._engine, runner._engine.create_execution_context()
    if context is None:
        return {}
    shape = (runner.max_batch, *tuple(engine.get_tensor_shape(runner._input))[1:])
    context.set_input_shape(runner._input, shape)
    return inspect_layer_precisions(runner._trt, engine, context)


class ExecutionWorker:
    """One more execution context of ``runner``'s engine, with its own stream and buffers, bound to ``batch``.

    ``enqueue`` copies the batch in, runs the engine and copies the logits out on this worker's stream
    without waiting; ``wait`` waits for that stream. Several workers enqueued before any waits keep the
    GPU busy with several requests at once.
    """

    def __init__(self, runner: Any, batch: np.ndarray) -> None:
        from edgeresnet.runtime.tensorrt import _open_device_memory

        engine = runner._engine
        self._name = runner.model_path.name
        self._input, self._output = runner._input, runner._output
        if not runner._min_batch <= len(batch) <= runner.max_batch:
            raise EdgeResNetError(f"{self._name} takes batches of {runner._min_batch} to {runner.max_batch} images, "
                                  f"not {len(batch)}")
        self._memory = _open_device_memory(runner._index)
        try:
            context = engine.create_execution_context()
            if context is None:
                raise EdgeResNetError(f"TensorRT cannot create another execution context for {self._name} "
                                      "(out of GPU memory?)")
            self._context = context
            self._host_in = np.ascontiguousarray(batch, dtype=runner._input_dtype)
            if not context.set_input_shape(self._input, self._host_in.shape):
                raise EdgeResNetError(f"{self._name} cannot take a batch of shape {self._host_in.shape}")
            out_shape = tuple(context.get_tensor_shape(self._output))
            self._host_out = np.empty(out_shape, dtype=runner._output_dtype)
            self._in = self._memory.alloc(self._host_in.nbytes)
            self._out = self._memory.alloc(self._host_out.nbytes)
            context.set_tensor_address(self._input, self._in)
            context.set_tensor_address(self._output, self._out)
        except BaseException:
            self._memory.close()
            raise

    def enqueue(self) -> None:
        self._memory.upload(self._in, self._host_in)
        if not self._context.execute_async_v3(self._memory.stream):
            raise EdgeResNetError(f"TensorRT failed to run {self._name}")
        self._memory.download(self._host_out, self._out)

    def wait(self) -> np.ndarray:
        self._memory.synchronize()
        return self._host_out

    def close(self) -> None:
        self._context = None
        self._memory.close()


def summarise_layer_precisions(engine_information: dict[str, Any]) -> dict[str, int]:
    """Count an engine's layers by the precision they compute in (their input's data type).

    ``engine_information`` is the engine inspector's JSON (``{"Layers": [...]}``): each tensor says its
    type in ``"Format/Datatype"`` on 10.x, and in ``"Datatype"`` beside a separate ``"Format"`` on 11.x.
    Reformat layers move data between formats and are counted apart; layers described only by name
    (an engine built without DETAILED profiling verbosity) count as ``unknown``.
    """
    counts = {"INT8": 0, "FP16": 0, "FP32": 0, "other": 0, "reformat": 0, "unknown": 0}
    for layer in engine_information.get("Layers", []):
        if not isinstance(layer, dict):
            counts["unknown"] += 1
        elif layer.get("LayerType") == "Reformat":
            counts["reformat"] += 1
        else:
            counts[_layer_precision(layer)] += 1
    return {name: count for name, count in counts.items() if count}


_TYPE_KEYS = ("Datatype", "Format/Datatype", "Format")  # 11.x, 10.x, and 11.x's format text as a last resort


def _layer_precision(layer: dict[str, Any]) -> str:
    for tensor in [*layer.get("Inputs", []), *layer.get("Outputs", [])]:
        if not isinstance(tensor, dict):
            continue
        for key in _TYPE_KEYS:
            precision = _precision_of(str(tensor.get(key, "")).lower())
            if precision:
                return precision
    return "unknown"


def _precision_of(text: str) -> str:
    # Order matters: "int8" before any float; bfloat16 and the 8- and 4-bit floats are not FP16 or FP32;
    # "float" alone means FP32.
    if "int8" in text and "uint8" not in text:
        return "INT8"
    if any(word in text for word in ("fp8", "float8", "e4m3", "e5m2", "fp4", "bf16", "bfloat", "int4", "int32",
                                     "int64", "bool", "uint8")):
        return "other"
    if "fp16" in text or "half" in text:
        return "FP16"
    if "fp32" in text or "float" in text:
        return "FP32"
    return ""
