"""Work shared with a helper thread: results in order, and a busy helper never holds the caller up."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgeresnet.sharing import share


def test_results_come_in_order_with_and_without_a_helper() -> None:
    tasks = [lambda k=k: k * k for k in range(7)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert share(tasks, pool) == share(tasks, None) == [k * k for k in range(7)]
    assert share([], None) == []


def test_a_helper_that_never_starts_costs_nothing_but_the_work() -> None:
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(release.wait)  # the only helper thread is busy: what share gives it waits in the queue
        started = time.perf_counter()
        assert share([lambda k=k: k for k in range(4)], pool) == [0, 1, 2, 3]
        assert time.perf_counter() - started < 1.0
        release.set()


def test_a_helper_stuck_inside_a_task_is_not_waited_for() -> None:
    calls: list[str] = []
    stuck = threading.Event()

    def slow_in_helper() -> str:
        if threading.current_thread() is not threading.main_thread():
            calls.append("helper")
            stuck.wait(5)  # as if descheduled while holding the task
        return "done"

    def quick() -> str:
        time.sleep(0.01)  # long enough for the helper to take the other task
        return "done"

    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.perf_counter()
        assert share([quick, slow_in_helper], pool) == ["done", "done"]
        assert time.perf_counter() - started < 2.0
        stuck.set()


def test_an_error_in_a_task_reaches_the_caller() -> None:
    def broken() -> int:
        raise ValueError("no")

    with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(ValueError, match="no"):
        share([lambda: 1, broken, lambda: 3], pool)


def test_a_pool_shut_down_just_means_no_helper() -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    assert share([lambda: 1, lambda: 2], pool) == [1, 2]
