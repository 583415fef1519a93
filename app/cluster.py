"""The server's model compute: Dask worker processes, started with the server or reached
at a scheduler's address.

Why Dask distributed: it is the HoloViz ecosystem's way to take work off a Panel
server, it starts a local cluster in one call, and the same code then runs on many
machines. Solver truth, rollouts and scores (app/work.py) run in worker processes, one
thread each, so they share neither the web process's GIL nor its event loop; each worker
keeps the models it loaded (app/models.py) between jobs.

Settings, read once when the server starts (app/app_hooks.py) or on first use:
- `LATENTSIM_APP_SCHEDULER` or `panel serve app --args --scheduler tcp://host:8786`: use
  that scheduler's workers (started with `dask scheduler` / `dask worker`, with
  latentsim installed and the same assets). An address that cannot be reached stops the
  start with an error naming it.
- `LATENTSIM_APP_WORKERS` or `--workers N`: otherwise start a local cluster of N worker
  processes (default: one per core); 0 runs the models on the web process's compute
  thread instead (app/compute.InProcessCompute), as notebooks and headless tests do.
- `LATENTSIM_APP_BATCH` or `--batch 0|1` (default 1): stack the blocks of runs on one
  worker into one unit and their network calls into one (app/batching.py); 0 sends each
  block alone (for comparisons).

A run's units go to its two places (`place`): its rollout streams live on the worker
with the fewest runs' rollouts, its solver run on an idle other worker if there is one,
else on the same worker; each lives there and only there. If a worker dies, the
scheduler fails the waiting units bound to it after `no-workers-timeout` (set to 3 s for
the local cluster; set it on a scheduler you start yourself), which fails the runs with
a place there only, and the nanny restarts the worker for the runs that follow. A unit
that reaches a process without its run's state fails with work.RunLostError.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from app.compute import COMPUTE, InProcessCompute, ModelCompute, PendingCount, Places
from engine.errors import LatentsimError, integer_setting

T = TypeVar("T")
log = logging.getLogger(__name__)

SCHEDULER_VARIABLE = "LATENTSIM_APP_SCHEDULER"
WORKERS_VARIABLE = "LATENTSIM_APP_WORKERS"
BATCH_VARIABLE = "LATENTSIM_APP_BATCH"
CONNECT_TIMEOUT_S = 10
TRIM_SETTING = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
# A unit is bound to the worker holding its run; if that worker is gone, the scheduler
# fails the unit after this long instead of keeping it forever (docs/app.md).
NO_WORKERS_SETTING = "distributed.scheduler.no-workers-timeout"
NO_WORKERS_TIMEOUT = "3s"


class ComputeUnavailableError(LatentsimError):
    """The model compute cannot be started or reached."""


@dataclass(frozen=True)
class ComputeSettings:
    """Where model runs go: an existing scheduler, else `workers` local processes."""

    scheduler: str | None = None
    workers: int = os.cpu_count() or 1
    batch: bool = True  # stack runs' block requests per worker (app/batching.py)

    @classmethod
    def parse(cls, argv: Sequence[str] = ()) -> tuple[ComputeSettings, list[str]]:
        """Settings from `--scheduler`/`--workers`/`--batch` in `argv` (the server's
        `--args`) over the environment, and the rest of `argv` (the sources to show,
        app/sources.py)."""
        parser = argparse.ArgumentParser(prog="panel serve app --args", add_help=False)
        parser.add_argument("--scheduler", default=os.environ.get(SCHEDULER_VARIABLE) or None)
        parser.add_argument("--workers", default=os.environ.get(WORKERS_VARIABLE))
        parser.add_argument("--batch", default=os.environ.get(BATCH_VARIABLE, "1"))
        options, rest = parser.parse_known_args(list(argv))
        workers = cls.workers
        if options.workers is not None:
            workers = integer_setting(f"--workers ({WORKERS_VARIABLE})", options.workers, 0)
        batch = integer_setting(f"--batch ({BATCH_VARIABLE})", options.batch, 0, 1)
        return cls(options.scheduler, workers, bool(batch)), rest


class DaskCompute:
    """Model runs on the workers of a Dask cluster (a `distributed.Client`)."""

    def __init__(self, client: Any, cluster: Any = None, *, batch: bool = True):
        self.client, self.cluster, self.batch = client, cluster, batch
        self._placed: Counter[str] = Counter()  # runs whose rollouts are on each worker
        self._scoring: Counter[str] = Counter()  # runs whose blocks each worker scores
        self._pending = PendingCount()
        self._lock = threading.Lock()  # for the counts

    @classmethod
    def start(cls, settings: ComputeSettings) -> DaskCompute:
        """Connect to `settings.scheduler`, or start a local cluster of `settings.workers`.

        The client is not made dask's default: xarray would then take distributed locks
        for every NetCDF file the web process writes (the downloads)."""
        if settings.scheduler is not None:
            try:
                client = Client(settings.scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError) as err:
                raise ComputeUnavailableError(
                    f"cannot reach the Dask scheduler at {settings.scheduler!r} "
                    f"({SCHEDULER_VARIABLE} / --scheduler) within {CONNECT_TIMEOUT_S} s: {err}"
                ) from err
            compute = cls(client, batch=settings.batch)
        else:
            # The nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins
            # glibc's mmap threshold: every tensor over 128 KiB is then a fresh mmap and
            # page faults: a default rollout took about twice as long (docs/app.md).
            # Set for the process, not a `with` block: the nannies' restarts read them too.
            dask.config.set({TRIM_SETTING: None, NO_WORKERS_SETTING: NO_WORKERS_TIMEOUT})
            cluster = LocalCluster(
                n_workers=settings.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = Client(cluster, set_as_default=False)
            compute = cls(client, cluster, batch=settings.batch)
        compute.client.register_plugin(WarmUp())
        return compute

    @property
    def pending(self) -> int:
        return self._pending.value

    def place(self) -> Places:
        """The connected worker with the fewest runs' rollouts on it; the run's blocks are
        scored on another worker if one is idle (no run there at all), else there too.
        A lightly loaded cluster so runs a lone run's scoring alongside its sampling,
        while under load each run stays on one worker, and a worker that dies fails only
        the runs that have a place on it. (One round trip to the scheduler: a
        millisecond on a local cluster.)"""
        # Asked of the scheduler each time: the client's cached `scheduler_info()` is
        # refreshed in the background and can be caught holding no workers.
        workers = list(self.client.nthreads())
        if not workers:
            address = self.client.scheduler.address
            raise ComputeUnavailableError(f"no Dask worker is connected to {address}")
        with self._lock:
            rollouts = min(workers, key=lambda w: (self._placed[w], self._scoring[w]))
            idle = [w for w in workers if not self._placed[w] + self._scoring[w]]
            scoring = next((w for w in idle if w != rollouts), rollouts)
            self._placed[rollouts] += 1
            self._scoring[scoring] += 1
        return Places(rollouts, scoring)

    async def run(self, where: Hashable, function: Callable[..., T], *args: Any) -> T:
        future = self._submit(where, function, *args)
        try:
            return await _settled(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def release(self, places: Places, function: Callable[..., Any], *args: Any) -> None:
        for where in places.distinct():
            self._submit(where, function, *args)  # runs after the unit in progress there
        with self._lock:
            for counts, where in ((self._placed, places.rollouts), (self._scoring, places.scoring)):
                counts[where] -= 1
                if counts[where] <= 0:
                    del counts[where]

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def _submit(self, where: Hashable, function: Callable[..., Any], *args: Any) -> Any:
        self._pending.add()
        # Strictly there: with loose restrictions the scheduler moves units to an idle
        # worker (work stealing), away from their run's state.
        future = self.client.submit(function, *args, workers=[where], pure=False)
        future.add_done_callback(self._pending.done)
        return future


async def _settled(future: Any) -> Any:
    """Await a `distributed.Future` of a synchronous client from the event loop.

    Its result is fetched in the client's callback thread, so a large block never
    blocks the loop; a worker lost under the unit surfaces as ComputeUnavailableError."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def deliver(result: Any, error: BaseException | None) -> None:
        if waiter.done():
            return
        if error is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(error)

    def fetch(done: Any) -> None:
        result, error = None, None
        try:
            result = done.result()
        except LatentsimError as err:  # the unit's own failure, as raised there
            error = err
        except BaseException as err:  # the cluster's: a lost worker, a closed connection
            error = ComputeUnavailableError(
                f"the compute worker running this job was lost ({type(err).__name__}); "
                "other runs are unaffected: press Run to start it again"
            )
            error.__cause__ = err
        if not loop.is_closed():
            loop.call_soon_threadsafe(deliver, result, error)

    future.add_done_callback(fetch)
    return await waiter


class WarmUp(WorkerPlugin):
    """A worker plugin: import the units (and torch) when a worker starts or restarts,
    so the first run placed on it does not wait for that."""

    name = "latentsim-warm-up"

    def setup(self, worker: Any) -> None:
        import app.work  # noqa: F401


# -- the server's compute ---------------------------------------------------------------------
_lock = threading.Lock()
_compute: ModelCompute | None = None


def start_model_compute(settings: ComputeSettings) -> ModelCompute:
    """Start (or reach) the server's model compute; once per process."""
    global _compute
    with _lock:
        if _compute is None:
            if settings.scheduler is None and settings.workers == 0:
                _compute = InProcessCompute(COMPUTE, batch=settings.batch)
            else:
                _compute = DaskCompute.start(settings)
            log.info("model compute: %s", describe(_compute))
        return _compute


def model_compute() -> ModelCompute:
    """The server's model compute, started from the environment if not yet."""
    return _compute if _compute is not None else start_model_compute(ComputeSettings.parse()[0])


def stop_model_compute() -> None:
    global _compute
    with _lock:
        if isinstance(_compute, DaskCompute):
            _compute.close()
        _compute = None


def describe(compute: ModelCompute) -> str:
    """One line for the log and the page: where model runs go."""
    if isinstance(compute, DaskCompute):
        workers = len(compute.client.nthreads())
        return f"Dask scheduler {compute.client.scheduler.address}, {workers} workers"
    return "the web process's compute thread"
