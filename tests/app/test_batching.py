"""Blocks of different sessions' runs batched into one unit and one network call: each
session ends exactly as alone; a lost run or a failing unit reaches only whom it should;
a cancelled request is not sent."""

from __future__ import annotations

import asyncio

import pytest
from store_snapshots import alone, assert_same, snapshot

import app.work
from app.batching import BlockBatcher, Failed
from app.compute import ComputeQueue, InProcessCompute
from app.models import load_pipeline
from app.runner import Runner
from app.shared_runs import SharedRuns
from app.store import RunStore
from app.work import RunLostError


@pytest.fixture
def request_for(request_for):
    """Longer runs with a stochastic sampler: noise drawn at every step."""
    return lambda **changes: request_for(**{"sampler": "ddpm", "horizon": 8, **changes})


def run_together(compute, zoo, requests) -> list[RunStore]:
    runners = [
        Runner(RunStore(), zoo=lambda: zoo, compute=compute, runs=SharedRuns(keep=0))
        for _ in requests
    ]

    async def scenario():
        await asyncio.gather(*(r.start(q) for r, q in zip(runners, requests, strict=True)))

    asyncio.run(scenario())
    return [runner.store for runner in runners]


@pytest.mark.parametrize("batch", [True, False])
def test_sessions_batched_together_end_as_if_alone(tiny_zoo, request_for, batch):
    compute = InProcessCompute(ComputeQueue(), batch=batch)
    requests = [request_for(seed=seed) for seed in (1, 2, 3)]
    requests.append(request_for(seed=4, steps=3))  # another sampler: its own network call
    stores = run_together(compute, tiny_zoo, requests)
    for store, request in zip(stores, requests, strict=True):
        assert store.status == f"done: 8 frames of {request.main.label}"
        assert_same(snapshot(store), snapshot(alone(tiny_zoo, request)))
    if batch:  # the four runs' blocks went out together, round after round
        sizes = app.work.batcher_of(compute).sizes
        assert sizes.count(4) >= 4, sizes
    else:
        assert compute not in app.work._BATCHERS


def test_a_lost_run_in_a_batch_fails_alone(tiny_zoo, request_for):
    request = request_for(seed=5)
    _, _, context = app.work.prepare("kept", load_pipeline, tiny_zoo, request)
    app.work.open_series("kept", load_pipeline, tiny_zoo, request, request.main, context)
    try:
        kept, lost = app.work.advance_many([("kept", "main"), ("gone", "main")])
        assert kept.lead.tolist() == [3, 4]
        assert isinstance(lost, Failed) and isinstance(lost.error, RunLostError)
        assert "press Run to start it again" in str(lost.error)
        with pytest.raises(RunLostError):
            app.work.advance("gone", "main")
    finally:
        app.work.close_run("kept")
    assert app.work.LIVE_RUNS == {}


class FailingCompute(InProcessCompute):
    """Fails every batch unit as a whole, as a lost worker would."""

    async def run(self, where, function, *args):
        await asyncio.sleep(0.01)
        raise ConnectionError("worker gone")


def test_a_failing_unit_fails_its_batch_and_a_cancelled_request_is_not_sent():
    sent = []

    def unit(requests):
        sent.append(list(requests))
        return [f"block of {run_id}" for run_id, _ in requests]

    async def scenario():
        batcher = BlockBatcher(InProcessCompute(ComputeQueue()), unit)
        asked = [asyncio.ensure_future(batcher.advance("w", r, "main")) for r in "abcd"]
        await asyncio.sleep(0)  # all four asked; the batch leaves on the loop's next turn
        asked[2].cancel()
        results = await asyncio.gather(*asked, return_exceptions=True)
        assert results[:2] == ["block of a", "block of b"] and results[3] == "block of d"
        assert isinstance(results[2], asyncio.CancelledError)
        assert await batcher.advance("w", "e", "main") == "block of e"  # alone: at once

        failing = BlockBatcher(FailingCompute(ComputeQueue()), unit)
        outcomes = await asyncio.gather(
            *(failing.advance("w", r, "main") for r in "xy"), return_exceptions=True
        )
        assert [type(o) for o in outcomes] == [ConnectionError, ConnectionError]

    asyncio.run(scenario())
    assert sent == [[("a", "main"), ("b", "main"), ("d", "main")], [("e", "main")]]
