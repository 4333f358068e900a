"""Dynamic batching: requests that arrive while the model is busy run together as one batch.

Triton's scheduler does this for a model repository; for ``edgeresnet serve`` it is done here, in front
of the runtime ``Classifier``: each request waits in a queue; a collector takes every request already
waiting (up to ``max_batch`` rows), waits at most ``max_delay_s`` for more, and hands the batch to a
model instance in a worker thread. With ``max_delay_s = 0`` a lone request never waits, and under load
the queue fills while the previous batch runs, so batches grow exactly when they pay off.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from edgeresnet.errors import EdgeResNetError


@dataclass(frozen=True)
class BatchingOptions:
    max_batch: int = 32  # rows per model call
    max_delay_s: float = 0.0  # how long a batch may wait for more requests once one is there
    instances: int = 1  # batches running at once (each in its own thread)

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.instances < 1:
            raise EdgeResNetError("max batch and instances must be at least 1")
        if not 0 <= self.max_delay_s <= 10:
            raise EdgeResNetError(f"the queue delay must lie between 0 and 10 s, got {self.max_delay_s}")


class DynamicBatcher:
    """Runs ``run(rows) -> results`` on batches gathered from concurrent :meth:`submit` calls.

    ``run`` takes N rows stacked on axis 0 and returns N result rows; it is called from worker
    threads, one batch per instance at a time. Bind one batcher to one event loop.
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], options: BatchingOptions = BatchingOptions(),
                 on_batch: Callable[[int], None] | None = None) -> None:
        self._run = run
        self._on_batch = on_batch  # told the rows of every model call (the server's metrics)
        self.options = options
        self.batch_sizes: collections.Counter[int] = collections.Counter()  # rows per model call, for tests/metrics
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] | None = None
        self._carry: tuple[np.ndarray, asyncio.Future[np.ndarray]] | None = None
        self._collector: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(max_workers=options.instances, thread_name_prefix="edgeresnet-batch")

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """Queue ``rows`` (at most ``max_batch``) and wait for their results."""
        if len(rows) == 0 or len(rows) > self.options.max_batch:
            raise EdgeResNetError(f"a request must hold 1 to {self.options.max_batch} items, got {len(rows)}")
        if self._collector is None:
            self._start()
        assert self._queue is not None
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((rows, future))
        return await future

    def _start(self) -> None:
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.options.instances)
        self._collector = asyncio.get_running_loop().create_task(self._collect_forever())

    async def _collect_forever(self) -> None:
        assert self._slots is not None
        while True:
            batch = await self._gather()
            await self._slots.acquire()  # a free model instance; meanwhile requests keep queueing
            task = asyncio.get_running_loop().create_task(self._run_batch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _gather(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        assert self._queue is not None
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, rows = [first], len(first[0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.max_delay_s
        while rows < self.options.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if rows + len(item[0]) > self.options.max_batch:
                self._carry = item  # first in the next batch: order is kept, nothing is split
                break
            batch.append(item)
            rows += len(item[0])
        return batch

    async def _run_batch(self, batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        assert self._slots is not None
        try:
            stacked = batch[0][0] if len(batch) == 1 else np.concatenate([rows for rows, _ in batch])
            self.batch_sizes[len(stacked)] += 1
            if self._on_batch is not None:
                self._on_batch(len(stacked))
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, stacked)
            start = 0
            for rows, future in batch:
                if not future.done():  # a client that went away cancelled its future
                    future.set_result(results[start:start + len(rows)])
                start += len(rows)
        except Exception as error:  # noqa: BLE001  (every waiting request gets the error; the batcher keeps serving)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Stop collecting, let running batches finish, fail what still waits."""
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        waiting = [self._carry] if self._carry else []
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for _, future in waiting:
            if not future.done():
                future.set_exception(EdgeResNetError("the server is shutting down"))
        self._executor.shutdown(wait=True)
