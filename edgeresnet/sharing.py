"""A few independent pieces of work shared with one helper thread, never waiting on it for long.

For one image at a time a core is often idle (the model is not running yet); numpy and Pillow let go of
the GIL in their loops, so a helper thread can take part of the work. The rule that makes this safe on a
busy machine: the caller takes tasks too, and a task the helper still holds when the caller runs out is
waited for only as long as one task took the caller, then run by the caller as well. Tasks must be pure
(the same result whoever runs them), so the outcome never depends on threads, cores or timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")


def share(tasks: Sequence[Callable[[], T]], pool: Executor | None) -> list[T]:
    """Every task's result, in order; with ``pool``, one of its threads takes tasks beside this one."""
    count = len(tasks)
    results: list[T | None] = [None] * count
    done = [threading.Event() for _ in range(count)]
    todo = iter(range(count))  # next() on a range iterator is atomic under the GIL: each task is taken once
    own_task_s = [0.0]

    def take(caller: bool) -> None:
        for k in todo:
            started = time.perf_counter()
            results[k] = tasks[k]()
            done[k].set()
            if caller:
                own_task_s[0] = time.perf_counter() - started

    if pool is not None and count > 1:
        try:
            pool.submit(take, False)  # never waited for long: what it has not finished, this thread does
        except RuntimeError:  # a pool shut down (its owner closed) or the interpreter exiting: no helper
            pass
    take(True)
    # A new list: a helper that finishes late writes into ``results``, never into what the caller holds.
    return [results[k] if done[k].wait(own_task_s[0]) else tasks[k]() for k in range(count)]  # type: ignore[misc]
