"""``edgeresnet serve``: the runtime ``Classifier`` behind KServe's model server core.

KServe's ``kserve`` package provides the server: the Open Inference Protocol (KServe v2) over HTTP
(FastAPI/uvicorn) and gRPC (grpcio), health (``/v2/health/live``), readiness (``/v2/health/ready``,
``/v2/models/<name>/ready``), model metadata and Prometheus metrics (``/metrics``). This module adds what
a classifier needs: the request tensors of :mod:`edgeresnet.serve.protocol`, dynamic batching in front
of the runtime (:mod:`edgeresnet.serve.batching`), binding to one interface (KServe binds every
interface; here the default is the loopback), and a clean stop on SIGTERM/SIGINT.

PyTriton would put Triton's own binary in front of the same Classifier, but its releases pin
``numpy<2`` and this project runs on numpy 2 (see docs/serving.md).
"""

from __future__ import annotations

import asyncio
import functools
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeresnet.errors import EdgeResNetError
from edgeresnet.serve import protocol
from edgeresnet.serve.batching import BatchingOptions, DynamicBatcher

GRPC_MESSAGE_BYTES = 64 << 20  # a batch of 32 encoded photos fits


@dataclass(frozen=True)
class ServeJob:
    """What ``edgeresnet serve`` runs: bundles, where to listen, how to batch."""

    bundles: tuple[Path, ...]
    names: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    backend: str | None = None
    device: str = "auto"
    threads: int | None = None
    grace_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.bundles:
            raise EdgeResNetError("no bundles given")
        if self.names and len(self.names) != len(self.bundles):
            raise EdgeResNetError(f"{len(self.names)} names given for {len(self.bundles)} bundles")
        for label, port in (("--http-port", self.http_port), ("--grpc-port", self.grpc_port)):
            if not 0 <= port < 65536:
                raise EdgeResNetError(f"{label} must be a port number (0 for any free port), got {port}")
        if self.http_port == self.grpc_port != 0:
            raise EdgeResNetError("--http-port and --grpc-port must differ")


def import_kserve() -> Any:
    """Import kserve; its model_server module parses ``sys.argv`` on import, so it sees none of ours."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        import kserve
        import kserve.model_server  # the FastAPI app the REST server mounts
    except ImportError as error:
        raise EdgeResNetError(f"`edgeresnet serve` needs the serving extra ({error.name} is not installed): "
                              "pip install 'edgeresnet[serve]'") from error
    finally:
        sys.argv = argv
    return kserve


@functools.cache
def batch_rows_metric() -> Any:
    """Rows per model call, on /metrics beside KServe's request latencies (one histogram per process)."""
    from prometheus_client import Histogram

    return Histogram("edgeresnet_batch_rows", "Rows per model call formed by dynamic batching", ["model"],
                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))


def classifier_model_class() -> type:
    """The KServe model class, defined once kserve is importable (the base install does not need it)."""
    kserve = import_kserve()
    from kserve.errors import InvalidInput

    class ClassifierModel(kserve.Model):  # type: ignore[misc,name-defined]
        """One bundle's Classifier as a KServe model: requests are batched, ranked as Classifier.predict ranks."""

        def __init__(self, name: str, classifier: Any, batching: BatchingOptions) -> None:
            super().__init__(name)
            self.classifier = classifier
            self.batching = batching
            observe = batch_rows_metric().labels(model=name).observe
            self.pixels = DynamicBatcher(classifier.logits_from_pixels, batching, on_batch=observe)
            self.tensors = DynamicBatcher(classifier.logits, batching, on_batch=observe)
            self.ready = True

        def get_input_types(self) -> list[dict[str, Any]]:
            return protocol.input_types(self.classifier.spec, self.batching.max_batch)

        def get_output_types(self) -> list[dict[str, Any]]:
            return protocol.output_types()

        async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
            try:
                top_k = protocol.top_k_of(getattr(payload, "parameters", None), len(self.classifier.labels))
                logits = await _logits(self, protocol.the_input(list(getattr(payload, "inputs", []) or [])))
            except (protocol.RequestError, EdgeResNetError) as error:
                raise InvalidInput(str(error)) from error
            # The Classifier's own ranking: served labels are Classifier.predict's labels by construction.
            return _response(self.name, self.classifier._rank(logits, top_k), payload)

        async def close(self) -> None:
            await self.pixels.close()
            await self.tensors.close()
            self.classifier.close()

    return ClassifierModel


async def _logits(model: Any, tensor: Any) -> np.ndarray:
    """A request's input through the model's batchers: tensors, frames, or encoded images decoded first."""
    spec = model.classifier.spec
    height, width = spec.input_size
    array = protocol.as_array(tensor)
    if tensor.name == protocol.TENSOR:
        rows = protocol.check_rows(tensor.name, array, (spec.num_channels, height, width))
        return await model.tensors.submit(rows.astype(np.float32, copy=False))
    if tensor.name == protocol.PIXELS:
        rows = protocol.check_rows(tensor.name, array, (height, width, spec.num_channels))
        return await model.pixels.submit(np.ascontiguousarray(rows))
    images = protocol.encoded_images(array)
    if len(images) > model.batching.max_batch:
        raise protocol.RequestError(f"a request may hold {model.batching.max_batch} images, got {len(images)}")
    # Decoding runs in threads (Pillow releases the GIL), never on the event loop.
    pixels = await asyncio.gather(*(asyncio.to_thread(protocol.decode_pixels, spec, data, i)
                                    for i, data in enumerate(images)))
    return await model.pixels.submit(np.stack(pixels))


def _response(name: str, ranked: list[list[Any]], payload: Any) -> Any:
    from kserve.protocol.infer_type import InferOutput, InferResponse

    tensors = ((protocol.LABELS, "BYTES", np.array([[p.label.encode() for p in r] for r in ranked], np.object_)),
               (protocol.PROBABILITIES, "FP32", np.array([[p.probability for p in r] for r in ranked], np.float32)),
               (protocol.INDICES, "INT64", np.array([[p.index for p in r] for r in ranked], np.int64)))
    outputs = []
    for output_name, datatype, array in tensors:
        output = InferOutput(name=output_name, shape=list(array.shape), datatype=datatype)
        # Raw bytes on both protocols: no Python object per value, and gRPC clients read raw contents.
        output.set_data_from_numpy(array, binary_data=True)
        outputs.append(output)
    from_grpc = getattr(payload, "from_grpc", False)
    return InferResponse(response_id=getattr(payload, "id", None) or "", model_name=name, infer_outputs=outputs,
                         from_grpc=from_grpc, use_binary_outputs=True)


def load_models(job: ServeJob) -> list[Any]:
    """Open every bundle (hash-checked by Classifier.load) as a served model; names must be unique."""
    from edgeresnet.runtime import Classifier
    from edgeresnet.serve.repository import model_name

    names = list(job.names) or [model_name(bundle) for bundle in job.bundles]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise EdgeResNetError(f"two bundles would be served as {duplicates[0]!r}: give --name for each bundle")
    classifiers: list[Any] = []
    try:
        for bundle in job.bundles:  # every bundle checked and opened before the server core is imported
            classifiers.append(Classifier.load(bundle, backend=job.backend, device=job.device, threads=job.threads))
        model_class = classifier_model_class()
    except BaseException:
        for classifier in classifiers:
            classifier.close()
        raise
    return [model_class(name, classifier, job.batching) for name, classifier in zip(names, classifiers)]


@dataclass(frozen=True)
class Listening:
    """Where a started server answers (the ports actually bound, when 0 asked for any free one)."""

    host: str
    http_port: int
    grpc_port: int
    models: tuple[str, ...]


def serve(job: ServeJob, on_ready: Callable[[Listening], None] | None = None) -> None:
    """Serve ``job``'s bundles until SIGTERM or SIGINT, then stop cleanly (requests in flight finish)."""
    models = load_models(job)
    try:
        asyncio.run(_serve(job, models, on_ready))
    finally:
        for model in models:
            model.classifier.close()  # closing twice is harmless; a failed start still releases the runtimes


async def _serve(job: ServeJob, models: list[Any], on_ready: Callable[[Listening], None] | None) -> None:
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer

    from edgeresnet.serve.dataplane import BinaryDataPlane, FixedModelRepository

    registry = FixedModelRepository()
    for model in models:
        registry.update(model)
    dataplane, extension = BinaryDataPlane(model_registry=registry), ModelRepositoryExtension(model_registry=registry)
    rest = RESTServer("kserve.model_server:app", dataplane, extension, job.http_port,
                      grace_period=max(1, round(job.grace_s)))
    rest.config.host = job.host
    http_socket = _bind_http(job.host, job.http_port)
    grpc_server, grpc_port = _grpc_server(job, dataplane, extension)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int, frame: object) -> None:  # uvicorn re-raises the signals it captured, too
        rest._server.should_exit = True
        loop.call_soon_threadsafe(stop.set)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        await grpc_server.start()
        rest.create_application()
        rest_task = loop.create_task(rest._server.serve(sockets=[http_socket]))
        while not rest._server.started and not rest_task.done() and not stop.is_set():
            await asyncio.sleep(0.02)
        if rest._server.started and on_ready is not None:
            on_ready(Listening(job.host, http_socket.getsockname()[1], grpc_port, tuple(m.name for m in models)))
        await asyncio.wait({rest_task, loop.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
        rest._server.should_exit = True
        await rest_task
        if not rest._server.started and not stop.is_set():
            raise EdgeResNetError(f"the HTTP server did not start on {job.host}:{job.http_port} (see the log above)")
        await grpc_server.stop(grace=job.grace_s)
        for model in models:
            await model.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        http_socket.close()


def _bind_http(host: str, port: int) -> socket.socket:
    """The HTTP listening socket, bound here so a busy port or bad address is one clear line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        raise EdgeResNetError(f"cannot listen for HTTP on {host}:{port}: {error.strerror or error}") from error
    sock.set_inheritable(True)
    return sock


def _grpc_server(job: ServeJob, dataplane: Any, extension: Any) -> tuple[Any, int]:
    """KServe's gRPC inference service, bound to ``job.host`` (KServe's own server binds every interface)."""
    from concurrent import futures

    from grpc import aio
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
    from kserve.protocol.grpc.servicer import InferenceServicer

    server = aio.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=(ExceptionToStatusInterceptor(),),
                        options=[("grpc.max_send_message_length", GRPC_MESSAGE_BYTES),
                                 ("grpc.max_receive_message_length", GRPC_MESSAGE_BYTES),
                                 ("grpc.so_reuseport", 0)])
    grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(dataplane, extension), server)
    host = f"[{job.host}]" if ":" in job.host else job.host
    try:
        port = server.add_insecure_port(f"{host}:{job.grpc_port}")
    except RuntimeError as error:  # grpcio raises where older versions returned 0
        raise EdgeResNetError(f"cannot listen for gRPC on {job.host}:{job.grpc_port}: {error}") from error
    if not port:
        raise EdgeResNetError(f"cannot listen for gRPC on {job.host}:{job.grpc_port} (in use, or no such address)")
    return server, port
