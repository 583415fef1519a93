"""Identical runs shared between sessions, headless: a session that joins (at the start,
midway, after the end) ends with the same store as alone; leaving, failures, what is
not shared, and the bound on finished runs kept."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from app_zoo import diverging
from store_snapshots import alone, assert_same, snapshot

import app.work
from app.compute import ComputeQueue, InProcessCompute
from app.models import load_pipeline
from app.runner import Runner, queued_text
from app.shared_runs import (
    KEEP_MB_VARIABLE,
    KEEP_VARIABLE,
    MAX_RUNNING_VARIABLE,
    Queued,
    SharedRuns,
)
from app.state import ExplorerState, ZooMenus
from app.store import RunStore
from app.work import results_bytes
from engine.errors import ParameterError, SolverDivergedError

HORIZON = 6  # 3 blocks of 2 frames per series


class CountingQueue(ComputeQueue):
    """The local compute thread, counting the units of work submitted by name (the
    blocks of a batch one by one)."""

    def __init__(self) -> None:
        super().__init__()
        self.units: Counter[str] = Counter()

    def submit(self, function, *args):
        name = getattr(function, "__name__", "close")
        if name == "advance_many":  # a batch of blocks: count each block
            self.units["advance"] += len(args[0])
        else:
            self.units[name] += 1
        return super().submit(function, *args)

    def drain(self) -> None:
        """Let stream closes queued after a job run."""
        super().submit(lambda: None).result(timeout=30)


@pytest.fixture
def compute():
    return CountingQueue()


@pytest.fixture
def sessions_compute(compute):
    return InProcessCompute(compute)


@pytest.fixture
def sessions(tiny_zoo, sessions_compute):
    """Runners of separate sessions on one server: one compute queue, one SharedRuns."""
    runs = SharedRuns(keep=2, measure=results_bytes)

    def make(n: int, **options) -> list[Runner]:
        return [
            Runner(RunStore(), zoo=lambda: tiny_zoo, compute=sessions_compute, runs=runs, **options)
            for _ in range(n)
        ]

    make.runs = runs
    return make


async def until(condition, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never met")


@pytest.mark.parametrize("join", ["at the start", "midway", "after the end"])
def test_a_session_that_joins_ends_with_the_same_store_as_alone(
    tiny_zoo, request_for, sessions, compute, join
):
    request = request_for()
    first, second = sessions(2)
    seen = []  # the second session's main series, at each of its updates
    second.store.param.watch(
        lambda _: seen.append(second.store.main.ready if second.store.main else None), "revision"
    )

    async def scenario():
        task = first.start(request)
        if join == "midway":
            await until(lambda: first.store.main is not None and first.store.main.ready == 2)
        elif join == "after the end":
            await task
        await asyncio.gather(task, second.start(request))

    asyncio.run(scenario())
    expected = snapshot(alone(tiny_zoo, request))
    assert_same(snapshot(first.store), expected)
    assert_same(snapshot(second.store), expected)
    assert compute.units["prepare"] == 1 and compute.units["open_series"] == 2  # computed once
    assert second.job.subscription.joined == (
        "finished" if join == "after the end" else "in progress"
    )
    if join == "midway":  # what was computed before it joined came in one update
        assert next(n for n in seen if n) >= 2
    assert sessions.runs.finished_keys == [first.key(request, tiny_zoo)]
    frames = sum(b.frames.nbytes for s in first.store.series.values() for b in s.blocks)
    assert sessions.runs.kept_bytes > frames  # counted: frames, latents, truth, recon


def test_joining_a_run_in_progress_says_so_while_it_streams(tiny_zoo, request_for, sessions):
    request = request_for()
    first, second = sessions(2)
    statuses = []
    second.store.param.watch(lambda e: statuses.append(e.new), "status")

    async def scenario():
        task = first.start(request)
        await asyncio.sleep(0)
        await asyncio.gather(task, second.start(request))

    asyncio.run(scenario())
    assert statuses[0] == "joined the same run, already in progress for 1 other session…"
    assert any(s.endswith(" · shared by 2 sessions") for s in statuses), statuses
    assert statuses[-1] == first.store.status == f"done: {HORIZON} frames of {request.main.label}"


def test_a_session_over_the_cap_is_told_it_waits_and_ends_as_if_alone(tiny_zoo, request_for):
    runs = SharedRuns(keep=0, max_running=1, measure=results_bytes)
    first, second = (Runner(RunStore(), zoo=lambda: tiny_zoo, runs=runs) for _ in range(2))
    statuses = []
    second.store.param.watch(lambda e: statuses.append(e.new), "status")
    requests = request_for(seed=1), request_for(seed=2)

    async def scenario():
        await asyncio.gather(first.start(requests[0]), second.start(requests[1]))

    asyncio.run(scenario())
    waiting = [s for s in statuses if s.startswith("server busy")]
    assert waiting and "waiting before it: none" in waiting[0], statuses
    assert statuses.index(waiting[-1]) < statuses.index("running the solver and the emulator…")
    assert_same(snapshot(second.store), snapshot(alone(tiny_zoo, requests[1])))
    assert runs.running == runs.waiting == 0


def test_cancelling_one_session_leaves_the_others_run_complete(
    tiny_zoo, request_for, sessions, compute
):
    request = request_for()
    leaving, staying = sessions(2)

    def cancel_after_first_block(_):
        if leaving.store.main is not None and leaving.store.main.ready >= 2:
            leaving.cancel()

    leaving.store.param.watch(cancel_after_first_block, "revision")

    async def scenario():
        await asyncio.gather(leaving.start(request), staying.start(request))

    asyncio.run(scenario())
    assert leaving.store.status == "cancelled after 2 frames"
    assert leaving.store.series["main"].status == "cancelled"
    download = leaving.store.series["main"].dataset()  # what it shows, not what went on
    assert download.sizes["time"] == 2 and download.attrs["complete"] == 0
    assert_same(snapshot(staying.store), snapshot(alone(tiny_zoo, request)))
    assert compute.units["open_series"] == 2 and compute.units["advance"] == 6  # all of it, once


def test_the_last_session_leaving_stops_the_computation(tiny_zoo, request_for, sessions, compute):
    request = request_for()
    runners = sessions(2)

    def leave_after_first_block(runner):
        def watcher(_):
            if runner.store.main is not None and runner.store.main.ready >= 2:
                runner.close()

        return watcher

    for runner in runners:
        runner.store.param.watch(leave_after_first_block(runner), "revision")

    async def scenario():
        tasks = [runner.start(request) for runner in runners]
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.1)  # the computation's task ends once it is cancelled

    asyncio.run(scenario())
    compute.drain()
    # Prepared, the main series' first block, at most the block in progress: no more.
    assert compute.units["prepare"] == 1 and compute.units["open_series"] == 1
    assert compute.units["advance"] <= 1
    assert sessions.runs.running == 0 and sessions.runs.finished_keys == []  # not kept
    assert compute.units["close_run"] == 1 and app.work.LIVE_RUNS == {}  # dropped there


@pytest.mark.parametrize(
    "changes", [{"seed": 1}, {"members": 2}, {"horizon": 4}, {"sampler": "heun"}, {"steps": 3}]
)
def test_requests_that_differ_are_not_shared(request_for, sessions, compute, changes):
    base, other = request_for(), request_for(**changes)
    assert base.key() != other.key()
    runners = sessions(2)

    async def scenario():
        await asyncio.gather(runners[0].start(base), runners[1].start(other))

    asyncio.run(scenario())
    assert compute.units["prepare"] == 2
    assert [r.job.subscription.joined for r in runners] == ["started", "started"]


def test_different_conditions_or_loaders_are_not_shared(tiny_zoo, request_for, sessions):
    base = request_for()
    state = ExplorerState(ZooMenus(tiny_zoo))
    assert state.set_condition("Rayleigh", base.conditions["Rayleigh"] * 2) is None
    hotter = request_for(conditions=state.conditions)
    assert base.key() != hotter.key()
    same = request_for(conditions=dict(reversed(base.conditions.items())))
    assert base.key() == same.key()  # the order of the conditions does not matter
    plain = sessions(1)[0]
    other = sessions(1, loader=lambda zoo, name: load_pipeline(zoo, name))[0]
    assert plain.key(base, tiny_zoo) != other.key(base, tiny_zoo)


def test_a_failure_reaches_every_session(tiny_zoo, request_for, sessions, monkeypatch):
    def diverging_solver(*_, **__):
        raise SolverDivergedError("rayleigh_benard", 0, {"Rayleigh": 1e7}, 3.5, "NaN in b")

    monkeypatch.setattr(app.work, "stream_truth", diverging_solver)
    request = request_for()
    runners = sessions(2)

    async def scenario():
        await asyncio.gather(*(runner.start(request) for runner in runners))

    asyncio.run(scenario())
    expected = alone(tiny_zoo, request)
    assert expected.status.startswith("failed") and "solver diverged" in expected.status
    for runner in runners:
        assert runner.store.status == expected.status and not runner.store.running
        assert runner.store.notice == expected.notice
    assert sessions.runs.finished_keys == []  # a failed run is computed again next time


def test_a_diverging_rollout_is_reported_to_every_session(tiny_zoo, request_for, sessions):
    request = request_for()
    real = load_pipeline(tiny_zoo, request.main.emulator)

    def loader(zoo, name):
        if name != request.main.emulator:
            return load_pipeline(zoo, name)
        return diverging(real)

    runners = sessions(2, loader=loader)

    async def scenario():
        await asyncio.gather(*(runner.start(request) for runner in runners))

    asyncio.run(scenario())
    for runner in runners:
        main = runner.store.series["main"]
        assert main.ready == 2 and main.status == "diverged at lead 3"
        assert runner.store.series["reference"].ready == HORIZON
        assert runner.store.status.startswith("done")
    notices = [runner.store.notice for runner in runners]
    assert notices[0] == notices[1] and "2 valid frames" in notices[0][1]


# -- SharedRuns alone, with fake computations ------------------------------------------------
def fake(calls: Counter, events: int = 2):
    """A computation of `events` events, counting how often it is started."""

    def produce(key):
        async def compute(emit):
            calls[key] += 1
            for i in range(events):
                await asyncio.sleep(0)
                emit((key, i))

        return compute

    return produce


async def follow(runs: SharedRuns, key, produce) -> list:
    subscription = runs.join(key, produce(key))
    events = subscription.catch_up()
    events += [event async for event in subscription]
    subscription.leave()
    return events


def test_finished_runs_are_kept_up_to_the_bound_least_recently_used_first():
    runs, calls = SharedRuns(keep=2), Counter()
    produce = fake(calls)

    async def scenario():
        for key in ("a", "b", "c"):
            assert await follow(runs, key, produce) == [(key, 0), (key, 1)]
        assert runs.finished_keys == ["b", "c"]
        assert await follow(runs, "b", produce) == [("b", 0), ("b", 1)]  # replayed
        assert runs.finished_keys == ["c", "b"]
        await follow(runs, "a", produce)  # computed again: it was dropped
        assert runs.finished_keys == ["b", "a"]

    asyncio.run(scenario())
    assert calls == {"a": 2, "b": 1, "c": 1}


def test_finished_runs_are_kept_up_to_a_size_too():
    megabyte = 2**20
    runs = SharedRuns(keep=10, keep_mb=5, measure=lambda events: len(events) * megabyte)
    calls = Counter()

    async def scenario():
        for key in ("a", "b", "c"):  # 2 MB each
            await follow(runs, key, fake(calls))
        assert runs.finished_keys == ["b", "c"] and runs.kept_bytes == 4 * megabyte
        await follow(runs, "big", fake(calls, events=6))  # larger than the bound: not kept
        assert runs.finished_keys == ["b", "c"]

    asyncio.run(scenario())


def test_keeping_no_finished_run_still_shares_the_runs_in_progress():
    runs, calls = SharedRuns(keep=0), Counter()
    produce = fake(calls, events=5)

    async def scenario():
        together = await asyncio.gather(*(follow(runs, "a", produce) for _ in range(3)))
        assert together == [[("a", i) for i in range(5)]] * 3
        await follow(runs, "a", produce)

    asyncio.run(scenario())
    assert calls["a"] == 2 and runs.finished_keys == []


def test_leaving_while_waiting_returns_at_once():
    runs = SharedRuns()

    async def forever(emit):
        emit("first")
        await asyncio.sleep(3600)

    async def scenario():
        subscription = runs.join("slow", forever)
        assert await anext(subscription) == "first"
        waiting = asyncio.ensure_future(anext(subscription))
        await asyncio.sleep(0.01)
        subscription.leave()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, 1)
        await asyncio.sleep(0.01)
        assert subscription.run.task.cancelled() and runs.running == 0

    asyncio.run(scenario())


def gated(started: list, release: dict[str, asyncio.Event]):
    """Computations that note when they start and end when their event is set."""

    def produce(key):
        async def compute(emit):
            started.append(key)
            release.setdefault(key, asyncio.Event())
            await release[key].wait()
            emit((key, "done"))

        return compute

    return produce


def test_runs_beyond_the_cap_wait_in_turn_and_say_how_many_are_ahead():
    runs, started, release = SharedRuns(max_running=2), [], {}
    produce = gated(started, release)

    async def scenario():
        subscriptions = {key: runs.join(key, produce(key)) for key in "abcd"}
        await asyncio.sleep(0.01)
        assert started == ["a", "b"] and (runs.running, runs.waiting) == (4, 2)
        assert subscriptions["c"].catch_up() == [Queued(0, 2)]
        assert subscriptions["d"].catch_up() == [Queued(1, 2)]
        joined = runs.join("d", produce("d"))  # a late joiner of a waiting run sees its place
        assert joined.catch_up() == [Queued(1, 2)]
        joined.leave()
        release["b"].set()
        await asyncio.sleep(0.01)
        assert started == ["a", "b", "c"]  # b's slot went to the first in line
        assert subscriptions["d"].catch_up() == [Queued(0, 2)]
        for key in "acd":
            release.setdefault(key, asyncio.Event()).set()
        for key, subscription in subscriptions.items():
            events = [e async for e in subscription]
            assert events[-1] == (key, "done")
            subscription.leave()
        assert started == ["a", "b", "c", "d"] and runs.waiting == 0

    asyncio.run(scenario())


def test_a_waiting_run_left_by_its_sessions_gives_up_its_place():
    runs, started, release = SharedRuns(max_running=1), [], {}
    produce = gated(started, release)

    async def scenario():
        first = runs.join("a", produce("a"))
        second = runs.join("b", produce("b"))
        third = runs.join("c", produce("c"))
        await asyncio.sleep(0.01)
        assert third.catch_up() == [Queued(1, 1)]
        second.leave()  # b never starts; c moves up
        await asyncio.sleep(0.01)
        assert third.catch_up() == [Queued(0, 1)] and runs.waiting == 1
        release["a"].set()
        await asyncio.sleep(0.01)
        assert started == ["a", "c"]
        release["c"].set()
        assert [e async for e in third] == [("c", "done")]
        first.leave()
        third.leave()
        assert runs.running == 0
        # every slot was given back: two new runs start at once, one after the other
        again = runs.join("e", produce("e"))
        await asyncio.sleep(0.01)
        assert started[-1] == "e"
        again.leave()

    asyncio.run(scenario())


def test_the_queued_status_names_the_cap_and_the_runs_ahead():
    assert "server busy" in queued_text(Queued(0, 4))
    assert "LATENTSIM_APP_MAX_RUNS" in queued_text(Queued(0, 4))
    assert "none" in queued_text(Queued(0, 4))
    assert "3 other runs" in queued_text(Queued(3, 4))
    assert "1 other run…" in queued_text(Queued(1, 4))


def test_no_cap_runs_everything_at_once():
    runs, started, release = SharedRuns(max_running=0), [], {}

    async def scenario():
        subscriptions = [runs.join(key, gated(started, release)(key)) for key in "abcdef"]
        await asyncio.sleep(0.01)
        assert sorted(started) == list("abcdef") and runs.waiting == 0
        for subscription in subscriptions:
            subscription.leave()

    asyncio.run(scenario())


def test_the_bounds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(KEEP_VARIABLE, "7")
    monkeypatch.setenv(KEEP_MB_VARIABLE, "64")
    monkeypatch.setenv(MAX_RUNNING_VARIABLE, "3")
    runs = SharedRuns.from_environment(measure=len)
    assert (runs.keep, runs.keep_bytes, runs.max_running) == (7, 64 * 2**20, 3)
    for variable in (KEEP_VARIABLE, KEEP_MB_VARIABLE, MAX_RUNNING_VARIABLE):
        for bad in ("-1", "many"):
            monkeypatch.setenv(variable, bad)
            with pytest.raises(ParameterError, match=variable):
                SharedRuns.from_environment(measure=len)
            monkeypatch.setenv(variable, "1")
