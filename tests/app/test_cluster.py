"""The explorer's model compute on Dask: a separately started scheduler and workers run
the same jobs as the local thread, a killed worker fails only its run, a closed session
leaves nothing on the workers, and bad settings are named."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import app.cluster
from app.cluster import ComputeSettings, ComputeUnavailableError, DaskCompute
from app.compute import InProcessCompute
from app.runner import Runner
from app.shared_runs import SharedRuns
from app.store import RunStore
from engine.errors import ParameterError

REPO = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """`dask scheduler` and two `dask worker`s (one thread each, with nannies), started as
    their own processes, as an operator would on a cluster."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    processes = []

    # As docs/app.md asks of a scheduler started by hand: a unit bound to a dead worker
    # fails after a few seconds instead of waiting for it forever.
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__NO_WORKERS_TIMEOUT": "3s"}

    def start(*args: str, name: str) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            processes.append(
                subprocess.Popen(
                    [str(DASK), *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )

    start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", name="s")
    for index in range(2):
        start("worker", address, "--nthreads", "1", "--no-dashboard", name=f"w{index}")
    try:
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def dask_compute(scheduler):
    compute = DaskCompute.start(ComputeSettings(scheduler=scheduler))
    compute.client.wait_for_workers(2, timeout=60)
    yield compute
    compute.close()


def runner_on(compute, zoo) -> Runner:
    return Runner(RunStore(), zoo=lambda: zoo, compute=compute, runs=SharedRuns(keep=0))


def live_runs(compute: DaskCompute) -> int:
    """Runs whose state the workers hold, all workers together."""
    counts = compute.client.run(lambda: len(__import__("app.work").work.LIVE_RUNS))
    return sum(counts.values())


def test_workers_compute_what_the_local_thread_computes(
    dask_compute, tiny_zoo, request_for, monkeypatch
):
    placed = []
    place = dask_compute.place
    monkeypatch.setattr(dask_compute, "place", lambda: placed.append(place()) or placed[-1])
    request = request_for(seed=3)
    stores = []
    for compute in (dask_compute, InProcessCompute()):
        runner = runner_on(compute, tiny_zoo)
        asyncio.run(runner.run(request))
        stores.append(runner.store)
    remote, local = stores
    assert remote.status == local.status == f"done: 6 frames of {request.main.label}"
    for key, series in local.series.items():
        other = remote.series[key]
        assert other.ready == series.ready == 6
        for mine, theirs in zip(series.blocks, other.blocks, strict=True):
            np.testing.assert_allclose(theirs.frames.numpy(), mine.frames.numpy(), atol=1e-5)
        for name, value in series.scores.items():
            np.testing.assert_allclose(other.scores[name], value, atol=1e-5, equal_nan=True)
    assert [f.index for f in remote.truth.frames] == [f.index for f in local.truth.frames]
    download = remote.series["main"].dataset()  # the web process's copy of the blocks
    assert download.sizes["time"] == 6 and download.attrs["complete"] == 1
    assert remote.truth.dataset().sizes["time"] == len(local.truth.frames)
    assert live_runs(dask_compute) == 0  # every run's state dropped on its workers
    (places,) = placed  # alone on the cluster: sampled on one worker, scored on the other
    assert places.rollouts != places.scoring


def test_a_closed_session_stops_its_run_on_the_worker(dask_compute, tiny_zoo, request_for):
    runner = runner_on(dask_compute, tiny_zoo)

    def close_after_first_block(_):
        if runner.store.main is not None and runner.store.main.ready >= 2:
            runner.close()

    runner.store.param.watch(close_after_first_block, "revision")
    asyncio.run(runner.run(request_for(seed=4, horizon=40)))
    deadline = time.monotonic() + 30
    while live_runs(dask_compute) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_runs(dask_compute) == 0
    assert runner.store.series == {}  # its results dropped with the session


def test_a_killed_worker_fails_only_its_run_and_a_new_run_works(
    dask_compute, tiny_zoo, request_for, monkeypatch
):
    placed = []
    place = dask_compute.place
    monkeypatch.setattr(dask_compute, "place", lambda: placed.append(place()) or placed[-1])
    victim, bystander = (runner_on(dask_compute, tiny_zoo) for _ in range(2))
    killed = []

    def kill_its_worker(_):
        if not killed and victim.store.main is not None and victim.store.main.ready >= 2:
            pids = dask_compute.client.run(os.getpid, workers=[placed[0].rollouts])
            killed.extend(pids.values())
            os.kill(killed[0], signal.SIGKILL)

    victim.store.param.watch(kill_its_worker, "revision")

    async def scenario():
        first = victim.start(request_for(seed=5, horizon=40))
        await asyncio.sleep(0)
        await asyncio.gather(first, bystander.start(request_for(seed=6, horizon=40)))

    asyncio.run(scenario())
    # The first run sampled on one worker and scored on the other, idle one; the second
    # found no idle worker and stays on the one without rollouts. Killing the first
    # run's rollout worker leaves the second alone.
    first, second = placed
    assert first.rollouts != first.scoring == second.rollouts == second.scoring
    assert killed
    lost = "failed: ComputeUnavailableError: the compute worker running this job was lost"
    assert victim.store.status.startswith(lost), victim.store.status
    level, message = victim.store.notice
    assert level == "error" and "press Run to start it again" in message
    assert bystander.store.status.startswith("done: 40 frames"), bystander.store.status

    dask_compute.client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    again = runner_on(dask_compute, tiny_zoo)
    asyncio.run(again.run(request_for(seed=5)))
    assert again.store.status.startswith("done: 6 frames"), again.store.status


def test_an_unreachable_scheduler_is_named(monkeypatch):
    monkeypatch.setattr(app.cluster, "CONNECT_TIMEOUT_S", 1)
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ComputeUnavailableError, match=address):
        DaskCompute.start(ComputeSettings(scheduler=address))


def test_the_server_does_not_start_on_an_unreachable_scheduler():
    address = f"tcp://127.0.0.1:{free_port()}"
    panel = Path(sys.executable).with_name("panel")
    command = [str(panel), "serve", "app", "--port", str(free_port()), "--address", "127.0.0.1"]
    result = subprocess.run(
        [*command, "--args", "--scheduler", address],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"latentsim cannot start: cannot reach the Dask scheduler at '{address}'" in (
        result.stdout + result.stderr
    )


def test_settings_from_arguments_over_the_environment(monkeypatch):
    monkeypatch.delenv(app.cluster.SCHEDULER_VARIABLE, raising=False)
    monkeypatch.delenv(app.cluster.WORKERS_VARIABLE, raising=False)
    settings, rest = ComputeSettings.parse(["run.nc", "--workers", "3", "other.zarr"])
    assert settings == ComputeSettings(None, 3) and rest == ["run.nc", "other.zarr"]
    assert ComputeSettings.parse([])[0].workers == (os.cpu_count() or 1)
    monkeypatch.setenv(app.cluster.SCHEDULER_VARIABLE, "tcp://10.0.0.5:8786")
    monkeypatch.setenv(app.cluster.WORKERS_VARIABLE, "0")
    assert ComputeSettings.parse([])[0] == ComputeSettings("tcp://10.0.0.5:8786", 0)
    assert ComputeSettings.parse(["--scheduler", "tcp://h:1"])[0].scheduler == "tcp://h:1"
    for bad in ("two", "-1"):
        with pytest.raises(ParameterError, match=f"--workers.*{bad}"):
            ComputeSettings.parse(["--workers", bad])
