"""The files an ONNX model names for its external data, read from its bytes without the onnx package.

ONNX Runtime and OpenVINO open an initializer's ``external_data`` ``location`` relative to the model
file, so a model file alone does not say which bytes run. The bundle's door lists those files and hashes
them; this module finds them. It walks protobuf's wire format (the runtime-only install has no onnx
package) through the few messages that can hold a tensor — the graph's initializers, node attributes
(``t``, ``tensors``, sparse tensors) and their sub-graphs, and model-local functions — and skips
everything else by its length, so a 100 MB model is read in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgeresnet.errors import BundleError

# Field numbers of onnx.proto3 (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ...).
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODES, _GRAPH_INITIALIZERS, _GRAPH_SPARSE_INITIALIZERS = 1, 5, 15
_NODE_ATTRIBUTES = 5
_FUNCTION_NODES = 7
_ATTR_TENSOR, _ATTR_GRAPH, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 13, 14
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_EXTERNAL = 1
# Sub-graphs nest (If/Loop bodies); a ResNet has none, and a crafted model must not recurse forever.
MAX_NESTING = 32

_WIRE_VARINT, _WIRE_FIXED64, _WIRE_LEN, _WIRE_FIXED32 = 0, 1, 2, 5


def external_data_locations(data: bytes, *, name: str = "the model") -> list[str]:
    """The ``location`` of every tensor stored outside ``data`` (an ONNX ModelProto), in order, once each."""
    found: list[str] = []
    try:
        for field, value in _fields(data, 0, len(data)):
            if field == _MODEL_GRAPH:
                _graph(data, value, found, 1)
            elif field == _MODEL_FUNCTIONS:
                _nodes_of(data, value, _FUNCTION_NODES, found, 1)
    except (IndexError, ValueError) as error:
        raise BundleError(f"{name} is not a readable ONNX model ({error})") from error
    return list(dict.fromkeys(found))


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int | tuple[int, int]]]:
    """(field number, value) of each field in ``data[start:end]``; a length-delimited value is its (start, end)."""
    position = start
    while position < end:
        key, position = _varint(data, position)
        field, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            value, position = _varint(data, position)
            yield field, value
        elif wire == _WIRE_LEN:
            length, position = _varint(data, position)
            if position + length > end:
                raise ValueError("a field runs past the end of its message")
            yield field, (position, position + length)
            position += length
        elif wire == _WIRE_FIXED64:
            position += 8
        elif wire == _WIRE_FIXED32:
            position += 4
        else:
            raise ValueError(f"wire type {wire} is not protobuf's")
    if position != end:
        raise ValueError("a field runs past the end of its message")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _span(value: object) -> tuple[int, int]:
    if not isinstance(value, tuple):
        raise ValueError("a message field is not length-delimited")  # noqa: TRY004 (malformed data, caught as such)
    return value


def _graph(data: bytes, span: object, found: list[str], depth: int) -> None:
    if depth > MAX_NESTING:
        raise ValueError(f"sub-graphs nest deeper than {MAX_NESTING}")
    start, end = _span(span)
    for field, value in _fields(data, start, end):
        if field == _GRAPH_INITIALIZERS:
            _tensor(data, value, found)
        elif field == _GRAPH_SPARSE_INITIALIZERS:
            _sparse(data, value, found)
        elif field == _GRAPH_NODES:
            _node(data, value, found, depth)


def _nodes_of(data: bytes, span: object, node_field: int, found: list[str], depth: int) -> None:
    start, end = _span(span)
    for field, value in _fields(data, start, end):
        if field == node_field:
            _node(data, value, found, depth)


def _node(data: bytes, span: object, found: list[str], depth: int) -> None:
    start, end = _span(span)
    for field, value in _fields(data, start, end):
        if field != _NODE_ATTRIBUTES:
            continue
        a_start, a_end = _span(value)
        for attribute, item in _fields(data, a_start, a_end):
            if attribute in (_ATTR_TENSOR, _ATTR_TENSORS):
                _tensor(data, item, found)
            elif attribute in (_ATTR_SPARSE, _ATTR_SPARSES):
                _sparse(data, item, found)
            elif attribute in (_ATTR_GRAPH, _ATTR_GRAPHS):
                _graph(data, item, found, depth + 1)


def _sparse(data: bytes, span: object, found: list[str]) -> None:
    start, end = _span(span)
    for field, value in _fields(data, start, end):
        if field in (_SPARSE_VALUES, _SPARSE_INDICES):
            _tensor(data, value, found)


def _tensor(data: bytes, span: object, found: list[str]) -> None:
    start, end = _span(span)
    external = False
    location = None
    for field, value in _fields(data, start, end):
        if field == _TENSOR_DATA_LOCATION:
            external = value == _EXTERNAL
        elif field == _TENSOR_EXTERNAL_DATA:
            key = val = None
            e_start, e_end = _span(value)
            for entry, text in _fields(data, e_start, e_end):
                if entry in (_ENTRY_KEY, _ENTRY_VALUE):
                    t_start, t_end = _span(text)
                    decoded = data[t_start:t_end].decode("utf-8", errors="strict")
                    key, val = (decoded, val) if entry == _ENTRY_KEY else (key, decoded)
            if key == "location":
                location = val
    if location is not None:
        found.append(location)
    elif external:
        raise ValueError("a tensor is stored externally but names no location")
