"""The bundle door finds every external-data file an ONNX model names, wherever in the model it sits.

``external_data_locations`` walks the protobuf by hand (no onnx import in the runtime), and the hash guarantee
for companions rests on it: a file it missed would be opened by ONNX Runtime without a sha256. Generated
models put external tensors in initializers, Constant values, tensor-list attributes, sparse initializers and
sparse attributes, nested If branches and model-local functions; the answer is compared with a brute-force
walk over every TensorProto in the message tree.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from edgeresnet.bundle.onnx_refs import external_data_locations

KINDS = ("initializer", "constant", "tensor_list", "sparse_initializer", "sparse_attribute", "if")


def _external(name: str, location: str) -> TensorProto:
    tensor = numpy_helper.from_array(np.zeros(2, np.float32), name)
    set_external_data(tensor, location=location, offset=0, length=8)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    return tensor


def _graph(rng: random.Random, depth: int, names: list[int]) -> onnx.GraphProto:
    def location() -> str:
        names.append(len(names))
        return f"w{len(names)}.data"

    nodes, initializers, sparse = [], [], []
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(KINDS if depth < 3 else KINDS[:2])
        if kind == "initializer":
            initializers.append(_external(f"i{len(names)}", location()))
        elif kind == "constant":
            nodes.append(helper.make_node("Constant", [], [f"c{len(names)}"], value=_external("v", location())))
        elif kind == "tensor_list":
            node = helper.make_node("Custom", [], [f"t{len(names)}"])
            node.attribute.append(helper.make_attribute("ts", [_external("a", location()), _external("b", location())]))
            nodes.append(node)
        elif kind == "sparse_initializer":
            sparse.append(helper.make_sparse_tensor(_external("sv", location()), _external("si", location()), [2]))
        elif kind == "sparse_attribute":
            value = helper.make_sparse_tensor(_external("sv", location()), _external("si", location()), [2])
            nodes.append(helper.make_node("Constant", [], [f"s{len(names)}"], sparse_value=value))
        else:
            nodes.append(helper.make_node("If", ["x"], [f"o{len(names)}"], then_branch=_graph(rng, depth + 1, names),
                                          else_branch=_graph(rng, depth + 1, names)))
    return helper.make_graph(nodes, f"g{depth}", [], [], initializer=initializers, sparse_initializer=sparse)


def _every_location(message: object, found: list[str]) -> list[str]:
    if isinstance(message, TensorProto):
        found += [entry.value for entry in message.external_data if entry.key == "location"]
    for descriptor, value in message.ListFields():  # type: ignore[attr-defined]
        if descriptor.type == descriptor.TYPE_MESSAGE:
            for item in value if descriptor.label == descriptor.LABEL_REPEATED else [value]:
                _every_location(item, found)
    return found


@settings(max_examples=int(os.environ.get("EDGERESNET_FUZZ_EXAMPLES", "60")), deadline=None, derandomize=True,
          database=None)
@given(seed=st.integers(0, 2**32 - 1), with_function=st.booleans())
def test_every_external_tensor_location_is_found(seed: int, with_function: bool) -> None:
    model = helper.make_model(_graph(random.Random(seed), 0, []))
    if with_function:
        model.functions.append(helper.make_function(
            "local", "fn", [], [], [helper.make_node("Constant", [], ["z"], value=_external("fv", "function.data"))],
            [helper.make_opsetid("", 13)]))
    assert set(external_data_locations(model.SerializeToString())) == set(_every_location(model, []))
