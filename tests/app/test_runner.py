"""The job runner, headless: streaming, scores, cancel, divergence and failures."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from app_zoo import diverging

import app.work
from app.compute import COMPUTE
from app.models import load_pipeline
from app.runner import Runner
from app.shared_runs import SharedRuns
from app.store import RunStore
from engine.errors import SolverDivergedError
from engine.rollout import reconstruct, score_rollout

HORIZON = 6  # window 3, context 1: 2 frames per block, 3 blocks


def make_runner(store: RunStore, zoo, **options) -> Runner:
    """A runner sharing nothing with other tests' runs (no finished run to replay)."""
    return Runner(store, zoo=lambda: zoo, runs=SharedRuns(), **options)


def run(runner: Runner, request) -> None:
    asyncio.run(runner.run(request))


def wait_for_worker() -> None:
    """Stream closes are queued on the compute worker after a job; let them run."""
    COMPUTE.submit(lambda: None).result(timeout=30)


def test_a_job_streams_blocks_and_scores_them_like_the_engine(tiny_zoo, request_for):
    store = RunStore()
    seen = []
    store.param.watch(lambda _: seen.append(store.main.ready if store.main else None), "revision")
    runner = make_runner(store, tiny_zoo)
    run(runner, request_for())

    main, reference = store.series["main"], store.series["reference"]
    assert (main.ready, main.members, len(main.blocks)) == (HORIZON, 3, 3)
    assert (reference.ready, reference.members) == (HORIZON, 1)
    streamed = [n for n in seen if n]
    assert streamed[:3] == [2, 4, 6]  # one update per block, in order
    assert store.status.startswith("done") and not store.running and store.progress == 1.0
    assert "s/frame" in store.speed and "solver" in store.speed

    # Scores against the engine's own scoring of the same rollout and truth.
    truth = store.truth.dataset()
    expected = score_rollout(main.dataset(), truth)
    np.testing.assert_allclose(main.scores["vrmse"], expected["vrmse"].values.T, rtol=1e-5)
    np.testing.assert_allclose(main.scores["crps"], expected["crps_fair"].values.T, rtol=1e-5)
    np.testing.assert_allclose(main.scores["ssr"], expected["ssr"].values.T, rtol=1e-5)
    # The AE floor is the engine's reconstruction of those truth frames, scored.
    pipeline = load_pipeline(tiny_zoo, main.spec.emulator)
    frames = main.dataset()["frame"].values
    floor = score_rollout(reconstruct(pipeline, truth.isel(time=frames)), truth)
    np.testing.assert_allclose(main.floor["vrmse"], floor["vrmse"].values.T, rtol=1e-5)
    # The rank histogram pools every lead: K + 1 frequencies summing to 1.
    counts = store.rank_counts("main", "buoyancy")
    assert counts.shape == (4,) and counts.sum() == pytest.approx(1.0)
    assert store.rank_counts("reference", "buoyancy") is None  # one member
    # A deterministic emulator has no spread: SSR is undefined, CRPS is the MAE.
    assert np.isnan(reference.scores["ssr"]).all()
    assert np.isfinite(reference.scores["crps"]).all()


def test_cancel_stops_after_the_block_in_progress(tiny_zoo, request_for):
    store = RunStore()
    runner = make_runner(store, tiny_zoo)

    def cancel_after_first_block(_):
        if store.main is not None and store.main.ready >= 2:
            runner.cancel()

    store.param.watch(cancel_after_first_block, "revision")
    run(runner, request_for())
    wait_for_worker()
    main = store.series["main"]
    assert main.ready == 2 and main.status == "cancelled"
    assert store.series["reference"].status == "waiting"  # never started
    assert not store.running and store.status == "cancelled after 2 frames"
    assert app.work.LIVE_RUNS == {}  # the run's solver and rollouts were dropped


def test_a_new_run_replaces_the_running_one(tiny_zoo, request_for):
    store = RunStore()
    runner = make_runner(store, tiny_zoo)
    first, second = request_for(seed=1), request_for(seed=2, reference=False)

    async def scenario():
        old = runner.start(first)
        await asyncio.sleep(0)
        new = runner.start(second)
        await asyncio.gather(old, new)

    asyncio.run(scenario())
    assert store.request is second and list(store.series) == ["main"]
    assert store.series["main"].ready == HORIZON and not store.running


def test_a_diverging_rollout_is_reported_and_its_valid_frames_kept(tiny_zoo, request_for):
    request = request_for()
    real = load_pipeline(tiny_zoo, request.main.emulator)
    poisoned = diverging(real)

    def loader(zoo, name):
        return poisoned if name == request.main.emulator else load_pipeline(zoo, name)

    store = RunStore()
    notices = []
    store.param.watch(lambda e: notices.append(e.new), "notice")
    run(make_runner(store, tiny_zoo, loader=loader), request)
    main = store.series["main"]
    assert main.ready == 2 and main.status == "diverged at lead 3"
    assert notices and notices[0][0] == "warning" and "diverged" in notices[0][1]
    assert "2 valid frames" in notices[0][1]
    assert store.series["reference"].ready == HORIZON  # the job went on with the others
    assert not store.running and store.status.startswith("done")


def test_an_unknown_model_fails_the_job_with_a_notification(tiny_zoo, request_for):
    request = request_for()
    broken = dataclasses.replace(
        request, series=(dataclasses.replace(request.main, emulator="no-such-model"),)
    )
    store = RunStore()
    run(make_runner(store, tiny_zoo), broken)
    assert store.notice[0] == "error" and "no-such-model" in store.notice[1]
    assert store.status.startswith("failed") and not store.running


def test_a_failing_solver_fails_the_job_with_a_notification(tiny_zoo, request_for, monkeypatch):
    def diverging_solver(*_, **__):
        raise SolverDivergedError("rayleigh_benard", 0, {"Rayleigh": 1e7}, 3.5, "NaN in b")

    monkeypatch.setattr(app.work, "stream_truth", diverging_solver)
    store = RunStore()
    run(make_runner(store, tiny_zoo), request_for())
    assert store.notice[0] == "error" and "solver diverged" in store.notice[1]
    assert store.status.startswith("failed") and not store.running


def test_session_close_cancels_and_drops_results(tiny_zoo, request_for):
    store = RunStore()
    runner = make_runner(store, tiny_zoo)

    async def scenario():
        task = runner.start(request_for())
        while store.main is None or not store.main.ready:
            await asyncio.sleep(0.01)
        runner.close()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    wait_for_worker()
    assert store.series == {} and store.truth is None and runner.job.cancelled
