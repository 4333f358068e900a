"""Triton's model configuration (``config.pbtxt``) as a typed record, written in protobuf text format.

Only the fields a classifier bundle needs are modelled; the text follows Triton's ``ModelConfig``
message (``model_config.proto``), and the tests parse every file we write with Triton's own schema
(``tritonclient.grpc.model_config_pb2``) so a field name or enum typo fails there, not on a server.
Writing needs no Triton package: the repository is built where the bundle is, served elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# numpy / ONNX Runtime / OpenVINO element type names → Triton's DataType enum.
TRITON_TYPES = {
    "float32": "TYPE_FP32", "float": "TYPE_FP32", "f32": "TYPE_FP32",
    "float16": "TYPE_FP16", "f16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16", "bf16": "TYPE_BF16",
    "uint8": "TYPE_UINT8", "u8": "TYPE_UINT8",
    "int8": "TYPE_INT8", "i8": "TYPE_INT8",
    "int32": "TYPE_INT32", "i32": "TYPE_INT32",
    "int64": "TYPE_INT64", "i64": "TYPE_INT64",
}
INSTANCE_KINDS = ("KIND_CPU", "KIND_GPU", "KIND_AUTO")


@dataclass(frozen=True)
class TensorConfig:
    """One input or output: name, Triton data type, dims without the batch axis when batching."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    label_filename: str | None = None

    def __post_init__(self) -> None:
        if self.data_type not in TRITON_TYPES.values():
            raise ValueError(f"{self.data_type!r} is not a Triton data type")


@dataclass(frozen=True)
class ModelConfig:
    """What Triton needs to serve one model, and what OpenVINO Model Server reads beside it."""

    name: str
    backend: str  # onnxruntime | openvino | tensorrt
    max_batch_size: int  # 0: the model takes whole batches, no batching by the server
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    instance_count: int = 1
    instance_kind: str = "KIND_CPU"
    # None: no dynamic batching; otherwise how long a request may wait for others (microseconds).
    max_queue_delay_us: int | None = 100
    preferred_batch_sizes: tuple[int, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)  # comments at the top of the file

    def __post_init__(self) -> None:
        if self.max_batch_size < 0 or self.instance_count < 1:
            raise ValueError("max_batch_size must be >= 0 and instance_count >= 1")
        if self.instance_kind not in INSTANCE_KINDS:
            raise ValueError(f"instance kind must be one of {INSTANCE_KINDS}, got {self.instance_kind!r}")
        if self.max_queue_delay_us is not None and self.max_batch_size == 0:
            raise ValueError("dynamic batching needs max_batch_size > 0")

    def to_pbtxt(self) -> str:
        lines = [f"# {note}" for note in self.notes]
        lines += [f"name: {_quote(self.name)}", f"backend: {_quote(self.backend)}",
                  f"max_batch_size: {self.max_batch_size}"]
        lines += _tensors("input", self.inputs) + _tensors("output", self.outputs)
        if self.max_queue_delay_us is not None:
            lines.append("dynamic_batching {")
            if self.preferred_batch_sizes:
                lines.append(f"  preferred_batch_size: [ {', '.join(map(str, self.preferred_batch_sizes))} ]")
            lines += [f"  max_queue_delay_microseconds: {self.max_queue_delay_us}", "}"]
        lines += ["instance_group [", "  {", f"    count: {self.instance_count}",
                  f"    kind: {self.instance_kind}", "  }", "]"]
        for key, value in self.parameters:
            lines += ["parameters {", f"  key: {_quote(key)}",
                      f"  value: {{ string_value: {_quote(value)} }}", "}"]
        return "\n".join(lines) + "\n"


def triton_type(name: str) -> str:
    """An element type name as numpy, ONNX Runtime (``tensor(float)``) or OpenVINO (``f32``) spell it."""
    key = name.removeprefix("tensor(").removesuffix(")").lower()
    if key not in TRITON_TYPES:
        raise ValueError(f"no Triton data type for element type {name!r}")
    return TRITON_TYPES[key]


def _tensors(kind: str, tensors: tuple[TensorConfig, ...]) -> list[str]:
    lines = [f"{kind} ["]
    for position, tensor in enumerate(tensors):
        lines += ["  {", f"    name: {_quote(tensor.name)}", f"    data_type: {tensor.data_type}",
                  f"    dims: [ {', '.join(map(str, tensor.dims))} ]"]
        if tensor.label_filename:
            lines.append(f"    label_filename: {_quote(tensor.label_filename)}")
        lines.append("  }" + ("," if position < len(tensors) - 1 else ""))
    return [*lines, "]"]


def _quote(text: str) -> str:
    # Protobuf text format strings: backslash and double quote escaped, no raw newlines.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
