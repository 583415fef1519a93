"""Block requests of the runs on one place, sent as one unit: batching across sessions.

Each run awaits one block at a time. Sent one by one, N runs on a worker cost N units
and N network calls per round of blocks. Here a run's request joins its place's queue;
while a unit is in flight there, requests wait, and when it returns everything that
arrived meanwhile leaves as one `work.advance_many` unit, where rollouts of the same
model, sampler and steps share one network call (engine.rollout.advance_together, each
rollout drawing its noise from its own generator, so its numbers are the same as alone).
A run alone pays nothing: with nothing in flight, its request leaves on the event loop's
next turn.

Requests of one batch get their own results or errors: the unit answers a request that
failed alone with `Failed(error)` (a run lost in a batch does not fail the others); a
failure of the unit itself reaches all of them. A cancelled request is dropped if not yet
sent and ignored if in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from app.compute import ModelCompute

Request = tuple[str, str]  # (run id, series key)


@dataclass(frozen=True)
class Failed:
    """A unit's answer to one request that failed alone: `error` is raised to its caller.
    (An exception that is a result, such as a rollout's divergence, is answered as is.)"""

    error: Exception


class BlockBatcher:
    """Per place, at most one batch unit in flight; the next one holds all that waited."""

    def __init__(self, compute: ModelCompute, unit: Callable[[list[Request]], list[Any]]):
        self.compute, self.unit = compute, unit
        self._queues: dict[Hashable, list[tuple[Request, asyncio.Future]]] = {}
        self._draining: set[Hashable] = set()
        self.sizes: list[int] = []  # requests per unit sent, for benchmarks and tests

    async def advance(self, where: Hashable, run_id: str, key: str) -> Any:
        """The result of `unit([(run_id, key)])[0]`, computed in a batch at `where`."""
        return await self.submit(where, run_id, key)

    def submit(self, where: Hashable, run_id: str, key: str) -> asyncio.Future:
        """`advance`, queued at once: a run that asks for its next block before it
        awaits something else joins the next batch all the same. Cancelling the
        future drops the request if it is not yet sent."""
        future = asyncio.get_running_loop().create_future()
        self._queues.setdefault(where, []).append(((run_id, key), future))
        if where not in self._draining:
            self._draining.add(where)
            asyncio.get_running_loop().create_task(self._drain(where))
        return future

    async def _drain(self, where: Hashable) -> None:
        try:
            while True:
                # The runs just answered ask for their next block in their next step on
                # the loop: let them join the queue first, or they would keep leaving as
                # a batch of their own, behind the runs that waited meanwhile.
                await asyncio.sleep(0)
                queue = self._queues.pop(where, None)
                if not queue:
                    return
                batch = [(request, future) for request, future in queue if not future.done()]
                if batch:
                    await self._send(where, batch)
        finally:
            self._draining.discard(where)

    async def _send(self, where: Hashable, batch: list[tuple[Request, asyncio.Future]]) -> None:
        self.sizes.append(len(batch))
        try:
            results = await self.compute.run(where, self.unit, [request for request, _ in batch])
        except Exception as err:  # the unit failed as a whole (a lost worker): all of them
            results = [Failed(err)] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its run was cancelled meanwhile
                continue
            if isinstance(result, Failed):
                future.set_exception(result.error)
            else:
                future.set_result(result)
