"""Throughput at saturation: images per second with several requests in flight, and the latency it costs.

A server or a camera pipeline with several streams does not wait for one image before sending the next.
Each backend has its own way to keep the hardware busy, and each is used as its vendor's tool does:

* **OpenVINO**: the model compiled with the ``THROUGHPUT`` performance hint (the plugin picks its CPU
  streams) and the compiled model's optimal number of asynchronous infer requests, each restarted as it completes
  (``benchmark_app -hint throughput``).
* **ONNX Runtime** (and PyTorch): several sessions run concurrently from as many threads, the intra-op
  threads split between them (ONNX Runtime releases the GIL while it runs).
* **TensorRT**: several execution contexts, each on its own CUDA stream, enqueued before any is waited
  for (``trtexec --streams``).

Every request's latency (enqueue to completion) is kept; the images/s is the images completed over the
wall time of the timed window. Stopping follows the latency loop's rule (minimum requests and time, cap).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeresnet.bench.artifacts import Artifact, open_runner
from edgeresnet.bench.job import BenchmarkJob
from edgeresnet.bench.latency import LatencyStats, latency_stats, should_stop
from edgeresnet.runtime.base import Runner


@dataclass(frozen=True)
class ThroughputStats:
    """Per-request latency at saturation, and the images per second completed."""

    latency: LatencyStats
    images_per_s: float
    streams: int


def measure_throughput(artifact: Artifact, runner: Runner, batch: np.ndarray, job: BenchmarkJob,
                       threads: int) -> ThroughputStats:
    """Saturate ``artifact``'s backend with ``batch`` and measure it (see the module's notes per backend)."""
    if runner.backend == "openvino":
        return _openvino(artifact, batch, job, threads)
    if runner.backend == "tensorrt":
        return _tensorrt(runner, batch, job)
    return _concurrent_sessions(artifact, batch, job, threads)


def default_sessions(threads: int, streams: int | None) -> tuple[int, int]:
    """(sessions, intra-op threads each): ``streams`` sessions, else one per two threads (one per thread
    below four), the threads shared out evenly."""
    sessions = streams or (threads if threads < 4 else threads // 2)
    return sessions, max(1, threads // sessions)


def _stop(job: BenchmarkJob, done: int, elapsed: float) -> bool:
    return should_stop(done, elapsed, min_runs=job.min_runs, min_time_s=job.min_time_s, max_time_s=job.max_time_s)


def _stats(latencies_s: list[float], images: int, wall_s: float, size: int, streams: int) -> ThroughputStats:
    stats = latency_stats(np.asarray(latencies_s) * 1000.0, size)
    return ThroughputStats(latency=stats, images_per_s=images / wall_s if wall_s > 0 else float("inf"),
                           streams=streams)


def _openvino(artifact: Artifact, batch: np.ndarray, job: BenchmarkJob, threads: int) -> ThroughputStats:
    with open_runner(artifact, device=job.device, threads=threads, performance_hint="THROUGHPUT") as runner:
        return saturate_openvino(runner, batch, job)


def saturate_openvino(runner: Runner, batch: np.ndarray, job: BenchmarkJob) -> ThroughputStats:
    """Keep the optimal number of asynchronous infer requests of an OpenVINO runner (compiled with the
    THROUGHPUT hint) busy with ``batch``.

    Requests are restarted in turn as each completes, with no Python callback: a callback needs the GIL on
    OpenVINO's thread, and tearing the queue down while one runs can deadlock.
    """
    import openvino as ov

    requests = runner.infer_requests(len(batch), job.streams or 0)  # type: ignore[attr-defined]
    tensor = ov.Tensor(np.ascontiguousarray(batch, dtype=np.float32), shared_memory=False)
    for request in requests:
        request.set_input_tensor(0, tensor)
    for _ in range(max(job.warmup, 1)):
        for request in requests:
            request.start_async()
        for request in requests:
            request.wait()
    clock = time.perf_counter
    latencies: list[float] = []
    started = []
    start = clock()
    for request in requests:
        started.append(clock())
        request.start_async()
    index, now = 0, start
    try:
        while True:
            requests[index].wait()
            now = clock()
            latencies.append(now - started[index])
            if _stop(job, len(latencies), now - start):
                break
            started[index] = clock()
            requests[index].start_async()
            index = (index + 1) % len(requests)
    finally:
        for request in requests:
            request.wait()
    return _stats(latencies, len(latencies) * len(batch), now - start, len(batch), len(requests))


def _tensorrt(runner: Runner, batch: np.ndarray, job: BenchmarkJob) -> ThroughputStats:
    from edgeresnet.runtime.tensorrt_engine import ExecutionWorker

    count = job.streams or 2
    workers: list[ExecutionWorker] = []
    try:
        for _ in range(count):
            workers.append(ExecutionWorker(runner, batch))

        def round_trip() -> list[float]:
            started = [time.perf_counter()]
            for worker in workers:
                worker.enqueue()
            finished = []
            for worker in workers:
                worker.wait()
                finished.append(time.perf_counter() - started[0])
            return finished

        for _ in range(job.warmup):
            round_trip()
        latencies: list[float] = []
        start = time.perf_counter()
        while not _stop(job, len(latencies), time.perf_counter() - start):
            latencies += round_trip()
        wall = time.perf_counter() - start
    finally:
        for worker in workers:
            worker.close()
    return _stats(latencies, len(latencies) * len(batch), wall, len(batch), count)


def _concurrent_sessions(artifact: Artifact, batch: np.ndarray, job: BenchmarkJob, threads: int) -> ThroughputStats:
    sessions, per_session = default_sessions(threads, job.streams)
    runners = [open_runner(artifact, device=job.device, threads=per_session, allow_host_code=job.allow_host_code)
               for _ in range(sessions)]
    try:
        calls = [runner.bind_for_timing(batch) for runner in runners]
        for call in calls:
            for _ in range(min(job.warmup, 3)):
                call()
        return _run_threads(calls, job, len(batch))
    finally:
        for runner in runners:
            runner.close()


def _run_threads(calls: list[Callable[[], object]], job: BenchmarkJob, size: int) -> ThroughputStats:
    """Each call looped in its own thread until the shared stopping rule says enough."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    starts: list[float] = []
    # The clock starts once every thread is ready, so thread start-up is not counted as the model's time.
    ready = threading.Barrier(len(calls), action=lambda: starts.append(time.perf_counter()))
    failures: list[BaseException] = []

    def loop(call: Callable[[], object]) -> None:
        try:
            ready.wait()
            start = starts[0]
            while not stop.is_set():
                before = time.perf_counter()
                call()
                after = time.perf_counter()
                with lock:
                    latencies.append(after - before)
                    if _stop(job, len(latencies), after - start):
                        stop.set()
        except BaseException as error:  # noqa: BLE001  (re-raised in the caller's thread below)
            failures.append(error)
            stop.set()

    workers = [threading.Thread(target=loop, args=(call,), daemon=True) for call in calls]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - starts[0] if starts else 0.0
    if failures:
        raise failures[0]
    return _stats(latencies, len(latencies) * size, wall, size, len(calls))
