"""One compute worker for the whole server process.

Rollouts and solver runs are CPU-bound torch work. Running them on the event loop would
freeze every session; running one thread per session would oversubscribe the few cores
and starve the event loop, which must keep serialising frames to browsers. So every
session submits small units of work (one emulator block, one solver frame) to a single
worker thread: sessions interleave block by block (first come, first served), the loop
thread stays free, and a session can tell its user how much work is queued ahead of it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ComputeQueue:
    """A single-worker executor that counts the work waiting for it."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="latentsim-compute")
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Units of work submitted and not finished (all sessions together)."""
        with self._lock:
            return self._pending

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        with self._lock:
            self._pending += 1
        future = self._executor.submit(function, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on the worker; a cancelled caller drops work not yet started."""
        future = self.submit(function, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise


COMPUTE = ComputeQueue()
