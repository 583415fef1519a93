"""Where the explorer's engine work runs: a local worker thread, or compute workers.

Two kinds of work leave the event loop, which must stay free to serialise frames to
every browser:
- **Model runs** (solver truth, rollouts, scores: app/work.py) go to a `ModelCompute`.
  Served, that is a Dask cluster (app/cluster.py): worker processes that keep the models
  loaded. `InProcessCompute` runs the same units on the local thread below, for
  notebooks, headless tests and servers configured without workers. A run's units carry
  only its id and small arguments; its live state (solver, rollout streams) stays at the
  `Places` that `place()` gave it, and each unit of the run goes to one of them.
- **Local work** on files the web process opened (`latentsim view` sources, movies) runs
  on `COMPUTE`, one worker thread: sessions interleave unit by unit, first come first
  served, and a session can tell its user how much work is queued ahead of it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class PendingCount:
    """Units of work submitted and not finished, counted across threads (futures finish
    on worker or client threads): what a session's "queued behind n" reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    @property
    def value(self) -> int:
        with self._lock:
            return self._count

    def add(self) -> None:
        with self._lock:
            self._count += 1

    def done(self, _: Any = None) -> None:
        """One unit finished (usable as a future's done callback)."""
        with self._lock:
            self._count -= 1


class ComputeQueue:
    """A single-worker executor that counts the work waiting for it."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="latentsim-compute")
        self._pending = PendingCount()

    @property
    def pending(self) -> int:
        """Units of work submitted and not finished (all sessions together)."""
        return self._pending.value

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        self._pending.add()
        future = self._executor.submit(function, *args)
        future.add_done_callback(self._pending.done)
        return future

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on the worker; a cancelled caller drops work not yet started."""
        future = self.submit(function, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise


COMPUTE = ComputeQueue()


@dataclass(frozen=True)
class Places:
    """Where a run's units go: its rollouts, and the solver run that scores their blocks.
    Two places let block k be scored while block k+1 is sampled; they may be one."""

    rollouts: Hashable
    scoring: Hashable

    def distinct(self) -> tuple[Hashable, ...]:
        return (self.rollouts,) if self.scoring == self.rollouts else (self.rollouts, self.scoring)


class ModelCompute(Protocol):
    """Runs the units of model runs (app/work.py), each run at its places."""

    batch: bool  # stack the block requests of runs at one place (app/batching.py)

    @property
    def pending(self) -> int:
        """Units submitted and not finished, all runs together (for the queue status)."""

    def place(self) -> Places:
        """Where a new run's units go (its state lives there until `release`)."""

    async def run(self, where: Hashable, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` at `where`; a cancelled caller drops it if not yet started."""

    def release(self, places: Places, function: Callable[..., Any], *args: Any) -> None:
        """Send the run's last unit (`function(*args)`, not awaited) to each of its places
        and free them."""


class InProcessCompute:
    """Model runs on the local compute thread: one place, this process."""

    def __init__(self, queue: ComputeQueue = COMPUTE, *, batch: bool = True):
        self.queue, self.batch = queue, batch

    @property
    def pending(self) -> int:
        return self.queue.pending

    def place(self) -> Places:
        return Places("local", "local")

    async def run(self, where: Hashable, function: Callable[..., T], *args: Any) -> T:
        return await self.queue.run(function, *args)

    def release(self, places: Places, function: Callable[..., Any], *args: Any) -> None:
        self.queue.submit(function, *args)
