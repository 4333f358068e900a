"""KServe's data plane, with binary REST inputs kept binary, and a model registry clients cannot empty.

The Open Inference Protocol's binary tensor extension lets an HTTP client append raw tensor bytes after
the JSON header (tritonclient does this by default). KServe's REST decoder turns every such tensor back
into a JSON-style Python list, which costs a Python object per pixel and cannot hold an encoded image
at all (BYTES must then be UTF-8 text). Here the bytes stay as they arrived; everything else (the JSON
form, gRPC, validation of the model's answer) is KServe's. Imported only when the server starts.

KServe's repository extension also lets any client unload a model (``POST /v2/repository/models/<name>/unload``);
the models here are the bundles the operator started the server with, so unloading is refused (HTTP 501).
"""

from __future__ import annotations

from typing import Any

import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput


class BinaryDataPlane(DataPlane):
    def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> InferRequest:
        length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER) if isinstance(body, bytes) else None
        if length is None:
            return super().decode_inference_request(body, headers, model_name)
        try:
            json_length = int(length)
            if not 0 < json_length <= len(body):
                raise ValueError
            header = orjson.loads(body[:json_length])
        except (ValueError, orjson.JSONDecodeError):
            raise InvalidInput(f"the {INFERENCE_CONTENT_LENGTH_HEADER} header does not frame a JSON request") from None
        entries = header.get("inputs") if isinstance(header, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidInput("the request's 'inputs' must be a list of objects")
        if not entries or any("data" in entry for entry in entries):
            return super().decode_inference_request(body, headers, model_name)  # the JSON form: KServe's
        inputs, raw = [], []
        start = json_length
        for entry in entries:
            size = (entry.get("parameters") or {}).get("binary_data_size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0 or start + size > len(body):
                raise InvalidInput(f"input {entry.get('name')!r} has no valid binary_data_size within the request")
            shape = entry.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise InvalidInput(f"input {entry.get('name')!r} has no valid shape")
            inputs.append(InferInput(name=str(entry.get("name")), shape=shape, datatype=str(entry.get("datatype")),
                                     parameters=entry.get("parameters")))
            raw.append(body[start:start + size])
            start += size
        outputs = header.get("outputs")
        requested = ([RequestedOutput(name=str(o.get("name")), parameters=o.get("parameters")) for o in outputs
                      if isinstance(o, dict)] if isinstance(outputs, list) else None)
        parameters = header.get("parameters")
        return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=header.get("id"), raw_inputs=raw,
                            parameters=parameters if isinstance(parameters, dict) else None,
                            request_outputs=requested)


class FixedModelRepository(ModelRepository):
    def unload(self, name: str) -> None:
        raise NotImplementedError("models are fixed when edgeresnet serve starts: restart it to change them")
