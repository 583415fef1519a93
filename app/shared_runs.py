"""One computation for identical runs: sessions that ask for the same thing share it.

A classroom opens the page at once, and every session starts the same default rollout
(same seed, models, sampler, members, conditions). Computing it once per session would
queue N identical jobs on the single compute worker (app/compute.py). Here a run is a
task on the event loop that appends its results (events) to a log as they are computed;
the first session's `join` starts it, and each later session with the same key gets the
log so far at once (`catch_up`) and then follows the new events. Each subscriber applies
them to its own store through its own dispatch, so sharing changes nothing about who
touches a session's document, or when.

Leaving (Cancel, a new Run, the browser closing) only unsubscribes; when the last
subscriber leaves, the task is cancelled: the unit of work in progress on the worker
finishes, nothing after it runs. An exception ends the log and is raised to every
subscriber after the events before it, as it would be to a session alone. A run that
finished normally stays in a small LRU (`keep` runs, by count), so a session arriving
later (or pressing Run again) replays it at once; failed or abandoned runs are dropped.

At most `max_running` different runs compute at once (0: no cap). A run started beyond
that waits, first come first served, for one to end; it emits a `Queued` event whenever
its place changes, so its sessions see how many runs are ahead of theirs. A waiting run
holds no results, so the cap bounds the memory of the runs in progress, and on the one
compute worker the runs that do start finish sooner than if all interleaved.

A run's events hold the frames that every subscriber's store refers to anyway, so N
sessions of one run hold its results once. The LRU keeps at most `keep` finished runs
and at most `keep_mb` megabytes of their results (as `measure` counts them); a run
larger than that is not kept at all.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

from engine.errors import check_integer, integer_setting

KEEP_VARIABLE = "LATENTSIM_APP_KEEP_RUNS"
KEEP_MB_VARIABLE = "LATENTSIM_APP_KEEP_MB"
MAX_RUNNING_VARIABLE = "LATENTSIM_APP_MAX_RUNS"
DEFAULT_KEEP = 2
DEFAULT_KEEP_MB = 256
DEFAULT_MAX_RUNNING = 4

Emit = Callable[[Any], None]
Produce = Callable[[Emit], Awaitable[None]]
Joined = Literal["started", "in progress", "finished"]


@dataclass(frozen=True)
class Queued:
    """A run waits for one of the `limit` runs in progress to end; `ahead` wait before it."""

    ahead: int
    limit: int


class SharedRun:
    """The events of one computation, its subscribers and how it ended."""

    def __init__(self, key: Hashable):
        self.key = key
        self.events: list[Any] = []
        self.subscribers = 0
        self.finished = False
        self.error: BaseException | None = None  # why it ended early, if it did
        self.nbytes = 0  # of its results, measured when it finished
        self.ahead: int | None = None  # runs waiting before it, while it waits for a turn
        self.task: asyncio.Task | None = None
        self._waiters: set[asyncio.Future] = set()

    def emit(self, event: Any) -> None:
        self.events.append(event)
        self.wake()

    def wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, waiter: asyncio.Future) -> None:
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)


class Subscription:
    """One session's place in a run: the events it has not seen yet, in order."""

    def __init__(self, runs: SharedRuns, run: SharedRun, joined: Joined):
        self.run, self.joined = run, joined
        self._runs = runs
        self._seen = 0
        self._left = False
        self._waiter: asyncio.Future | None = None

    @property
    def sessions(self) -> int:
        """How many sessions follow this run now (this one included)."""
        return self.run.subscribers

    def catch_up(self) -> list[Any]:
        """Every event emitted so far and not yet seen."""
        events = self.run.events[self._seen :]
        self._seen += len(events)
        return events

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        """The next event, waiting for it; the run's error after its last event."""
        run = self.run
        while not self._left and self._seen == len(run.events):
            if run.finished:
                if run.error is not None:
                    raise run.error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await run.wait(self._waiter)
        if self._left:
            raise StopAsyncIteration
        self._seen += 1
        return run.events[self._seen - 1]

    def leave(self) -> None:
        """Stop following (idempotent); a wait in progress ends at once."""
        if self._left:
            return
        self._left = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._runs.leave(self.run)


class SharedRuns:
    """Runs in progress by key, plus the last finished ones (an LRU bounded by count and
    by the bytes of their results, as `measure(events)` counts them)."""

    def __init__(
        self,
        keep: int = DEFAULT_KEEP,
        keep_mb: int = DEFAULT_KEEP_MB,
        max_running: int = DEFAULT_MAX_RUNNING,
        measure: Callable[[list[Any]], int] = lambda events: 0,
    ):
        self.keep = check_integer("keep", keep, 0)
        self.keep_bytes = check_integer("keep_mb", keep_mb, 0) * 2**20
        self.max_running = check_integer("max_running", max_running, 0)
        self._measure = measure
        self._running: dict[Hashable, SharedRun] = {}
        self._finished: OrderedDict[Hashable, SharedRun] = OrderedDict()
        self._slots_taken = 0
        self._waiting: deque[tuple[SharedRun, asyncio.Future]] = deque()

    @classmethod
    def from_environment(cls, measure: Callable[[list[Any]], int]) -> SharedRuns:
        """The bounds from LATENTSIM_APP_KEEP_RUNS (default 2; 0 keeps no finished run),
        LATENTSIM_APP_KEEP_MB (default 256) and LATENTSIM_APP_MAX_RUNS (default 4; 0: no
        cap)."""
        bounds = []
        for variable, default in (
            (KEEP_VARIABLE, DEFAULT_KEEP),
            (KEEP_MB_VARIABLE, DEFAULT_KEEP_MB),
            (MAX_RUNNING_VARIABLE, DEFAULT_MAX_RUNNING),
        ):
            bounds.append(integer_setting(variable, os.environ.get(variable, str(default)), 0))
        return cls(*bounds, measure=measure)

    @property
    def finished_keys(self) -> list[Hashable]:
        """Keys of the finished runs kept, least recently used first."""
        return list(self._finished)

    @property
    def running(self) -> int:
        """Runs in progress, computing or waiting for their turn."""
        return len(self._running)

    @property
    def waiting(self) -> int:
        """Runs waiting for their turn (beyond `max_running`)."""
        return len(self._waiting)

    @property
    def kept_bytes(self) -> int:
        return sum(run.nbytes for run in self._finished.values())

    def join(self, key: Hashable, produce: Produce) -> Subscription:
        """Follow the run of `key`: a finished one, one in progress, or a new one whose
        events `produce(emit)` computes (called on the running event loop)."""
        run = self._finished.get(key)
        if run is not None:
            self._finished.move_to_end(key)
            joined: Joined = "finished"
        elif key in self._running:
            run, joined = self._running[key], "in progress"
        else:
            run, joined = SharedRun(key), "started"
            self._running[key] = run
            run.task = asyncio.get_running_loop().create_task(self._in_turn(run, produce))
            run.task.add_done_callback(lambda task: self._ended(run, task))
        run.subscribers += 1
        return Subscription(self, run, joined)

    def leave(self, run: SharedRun) -> None:
        run.subscribers -= 1
        if run.subscribers == 0 and not run.finished:
            self._forget(run)
            run.task.cancel()

    async def _in_turn(self, run: SharedRun, produce: Produce) -> None:
        """Compute once one of the `max_running` slots is free (at once if one is)."""
        await self._take_slot(run)
        try:
            await produce(run.emit)
        finally:
            self._release_slot()

    async def _take_slot(self, run: SharedRun) -> None:
        if not self.max_running or self._slots_taken < self.max_running:
            self._slots_taken += 1
            return
        slot = asyncio.get_running_loop().create_future()
        self._waiting.append((run, slot))
        self._announce()
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():  # handed over as it was cancelled
                self._release_slot()
            elif (run, slot) in self._waiting:  # a release may have dropped it already
                self._waiting.remove((run, slot))
                self._announce()
            raise

    def _release_slot(self) -> None:
        """Hand the slot to the first run waiting, or free it."""
        while self._waiting:
            _, slot = self._waiting.popleft()
            if not slot.done():
                slot.set_result(None)
                self._announce()
                return
        self._slots_taken -= 1

    def _announce(self) -> None:
        """A Queued event to each waiting run whose place changed."""
        for ahead, (run, _) in enumerate(self._waiting):
            if run.ahead != ahead:
                run.ahead = ahead
                run.emit(Queued(ahead, self.max_running))

    def _ended(self, run: SharedRun, task: asyncio.Task) -> None:
        run.finished = True
        if task.cancelled():
            run.error = asyncio.CancelledError()
        else:
            run.error = task.exception()
        self._forget(run)
        if run.error is None:
            self._keep(run)
        run.wake()

    def _keep(self, run: SharedRun) -> None:
        run.nbytes = self._measure(run.events)
        if not self.keep or run.nbytes > self.keep_bytes:
            return
        self._finished[run.key] = run
        while len(self._finished) > self.keep or self.kept_bytes > self.keep_bytes:
            self._finished.popitem(last=False)

    def _forget(self, run: SharedRun) -> None:
        if self._running.get(run.key) is run:
            del self._running[run.key]
