"""Dynamic batching on its own: batches form under load, every caller gets its own rows, errors reach everyone."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from edgeresnet.errors import EdgeResNetError
from edgeresnet.serve.batching import BatchingOptions, DynamicBatcher


class SlowModel:
    """Doubles its rows after a pause, recording each call's size and the most calls at once."""

    def __init__(self, pause: float = 0.02, fail_on: int | None = None) -> None:
        self.pause, self.fail_on = pause, fail_on
        self.calls: list[int] = []
        self.active = self.most_active = 0
        self._lock = threading.Lock()

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls.append(len(rows))
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(self.pause)
            if self.fail_on is not None and self.fail_on in rows[:, 0]:
                raise RuntimeError("the runtime failed")
            return rows * 2
        finally:
            with self._lock:
                self.active -= 1


def run(coroutine: object) -> object:
    return asyncio.run(asyncio.wait_for(coroutine, 20))  # type: ignore[arg-type]


async def _submit_all(batcher: DynamicBatcher, sizes: list[int]) -> list[np.ndarray]:
    requests = [np.full((size, 2), index, np.float32) for index, size in enumerate(sizes)]
    try:
        return await asyncio.gather(*(batcher.submit(rows) for rows in requests))
    finally:
        await batcher.close()


def test_concurrent_requests_share_batches_and_get_their_own_rows() -> None:
    model = SlowModel()
    batcher = DynamicBatcher(model, BatchingOptions(max_batch=8))
    sizes = [1, 3, 2, 1, 4, 1, 1, 2, 5, 1]
    results = run(_submit_all(batcher, sizes))
    for index, (size, result) in enumerate(zip(sizes, results)):
        np.testing.assert_array_equal(result, np.full((size, 2), 2 * index, np.float32))
    assert sum(model.calls) == sum(sizes)
    assert len(model.calls) < len(sizes)  # batched
    assert max(model.calls) <= 8  # never above the limit, and no request split across calls
    assert batcher.batch_sizes == {size: model.calls.count(size) for size in set(model.calls)}


def test_a_queue_delay_gathers_requests_that_arrive_a_little_later() -> None:
    async def staggered() -> list[int]:
        model = SlowModel(pause=0.0)
        batcher = DynamicBatcher(model, BatchingOptions(max_batch=16, max_delay_s=0.5))

        async def later(delay: float, value: int) -> np.ndarray:
            await asyncio.sleep(delay)
            return await batcher.submit(np.full((1, 2), value, np.float32))

        await asyncio.gather(*(later(0.02 * i, i) for i in range(5)))
        await batcher.close()
        return model.calls

    assert run(staggered()) == [5]


def test_instances_run_batches_in_parallel() -> None:
    model = SlowModel(pause=0.1)
    batcher = DynamicBatcher(model, BatchingOptions(max_batch=2, instances=3))
    run(_submit_all(batcher, [2] * 6))
    assert model.most_active > 1


def test_a_failing_batch_fails_its_requests_and_the_batcher_keeps_serving() -> None:
    async def scenario() -> tuple[list[object], np.ndarray]:
        batcher = DynamicBatcher(SlowModel(fail_on=1), BatchingOptions(max_batch=4))
        outcomes = await asyncio.gather(*(batcher.submit(np.full((1, 2), v, np.float32)) for v in (0, 1)),
                                        return_exceptions=True)
        after = await batcher.submit(np.full((1, 2), 7, np.float32))
        await batcher.close()
        return outcomes, after

    outcomes, after = run(scenario())
    assert any(isinstance(o, RuntimeError) for o in outcomes)
    np.testing.assert_array_equal(after, [[14, 14]])


def test_empty_and_oversized_requests_are_refused() -> None:
    async def scenario() -> None:
        batcher = DynamicBatcher(SlowModel(), BatchingOptions(max_batch=4))
        for rows in (np.zeros((0, 2)), np.zeros((5, 2))):
            with pytest.raises(EdgeResNetError, match="1 to 4 items"):
                await batcher.submit(rows)
        await batcher.close()

    run(scenario())
    with pytest.raises(EdgeResNetError):
        BatchingOptions(max_delay_s=float("nan"))
