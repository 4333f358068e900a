"""Which input of a residual Add is the shortcut (identity) and which the convolution branch.

TensorRT fuses Conv+Add(+ReLU) into one INT8 kernel when the convolution branch enters the Add
unquantized and only the shortcut carries Q/DQ (NVIDIA's explicit-quantization guide; ModelOpt writes
it so). Both the TensorRT QDQ writer and the rule checker need to tell the two inputs apart, on the
FP32 graph and on a QDQ graph alike, so the judgement lives here once.

The two inputs of a residual Add meet at the tensor the block forked from. The shortcut is the input
with fewer nodes between the fork and the Add (none for a plain identity; a 1×1 projection Conv, or
option A's Slice+Pad, for a downsampling block); the other is the convolution branch. Q/DQ nodes
count as no distance, so a QDQ model reads like the FP32 model it came from.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

_TRANSPARENT = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class ResidualInputs:
    """The two inputs of one residual Add, told apart; ``shortcut`` is None where the branches tie."""

    add: str
    shortcut: str | None
    branch: str | None


def residual_inputs(
    add: onnx.NodeProto, producers: Mapping[str, onnx.NodeProto], constants: Iterable[str]
) -> ResidualInputs:
    """Tell the shortcut of ``add`` from its convolution branch by their distance from the fork."""
    constant_names = set(constants)
    first, second = add.input[0], add.input[1]
    near, far = _distances(first, producers, constant_names), _distances(second, producers, constant_names)
    common = set(near) & set(far)
    if not common:
        return ResidualInputs(add.name, None, None)
    fork = min(common, key=lambda tensor: (near[tensor] + far[tensor], tensor))
    if near[fork] == far[fork]:
        return ResidualInputs(add.name, None, None)
    return ResidualInputs(add.name, first, second) if near[fork] < far[fork] else ResidualInputs(add.name, second, first)


def _distances(tensor: str, producers: Mapping[str, onnx.NodeProto], constants: set[str]) -> dict[str, int]:
    """Every ancestor tensor of ``tensor`` with the fewest compute nodes between them."""
    distance = {tensor: 0}
    queue = deque([tensor])
    while queue:
        current = queue.popleft()
        node = producers.get(current)
        if node is None:
            continue
        step = 0 if node.op_type in _TRANSPARENT else 1
        sources = node.input[:1] if node.op_type in _TRANSPARENT else node.input
        for source in sources:
            if not source or source in constants:
                continue
            candidate = distance[current] + step
            if candidate < distance.get(source, candidate + 1):
                distance[source] = candidate
                # 0-steps go first so distances stay minimal (a 0-1 breadth-first search)
                if step == 0:
                    queue.appendleft(source)
                else:
                    queue.append(source)
    return distance
