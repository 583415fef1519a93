"""A session's job runner: follows a computation and reports it into the session's store.

The computation (app/work.py) runs on the server's model compute (worker processes,
app/cluster.py) and yields events: the pipeline and solver run, each series' start,
each scored block. Sessions whose requests are identical share one computation
(app/shared_runs.py): a session that joins late first applies everything computed so
far in one update, then each new event as it comes. Updates reach the session's
`RunStore` through `dispatch`, which the shell sets to run them under the Bokeh
document lock as one batched message. So the store and the views are only ever touched
on the event loop, and the loop stays free while torch computes.

Cancelling (the Cancel button, a new Run, or the browser leaving) leaves the
computation at once; it stops after the unit in progress when no session follows it
any more. A diverging rollout or a failing solver becomes a notification; the valid
part stays on screen.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from app.cluster import model_compute
from app.compute import ModelCompute
from app.models import current_zoo, load_pipeline
from app.shared_runs import Queued, SharedRuns, Subscription
from app.state import RunRequest, SeriesSpec
from app.store import RunStore
from app.work import (
    Completed,
    Computed,
    Diverged,
    Event,
    Loader,
    Opened,
    Prepared,
    compute_request,
    results_bytes,
)
from engine.diffusion.samplers import get_sampler
from engine.errors import LatentsimError
from engine.rollout import RolloutDivergedError
from engine.zoo import Zoo

log = logging.getLogger(__name__)

# The server's runs, shared by all its sessions (bounds: docs/app.md, app/shared_runs.py).
SHARED_RUNS = SharedRuns.from_environment(measure=results_bytes)

Dispatch = Callable[[Callable[[], None]], Awaitable[None]]


async def apply_now(update: Callable[[], None]) -> None:
    """The headless dispatcher: apply at once (tests, notebooks)."""
    update()


@dataclass
class Job:
    """One run of one session; `cancelled` is checked between updates."""

    request: RunRequest
    cancelled: bool = False
    subscription: Subscription | None = None
    done_cost: float = 0.0
    costs: dict[str, float] = field(default_factory=dict)  # series key -> cost per frame


class Runner:
    """Runs one job at a time for one session and reports into its store."""

    def __init__(
        self,
        store: RunStore,
        *,
        dispatch: Dispatch = apply_now,
        zoo: Callable[[], Zoo] = current_zoo,
        loader: Loader = load_pipeline,
        compute: ModelCompute | None = None,
        runs: SharedRuns = SHARED_RUNS,
    ):
        self.store, self.dispatch = store, dispatch
        self._zoo, self._load, self._runs = zoo, loader, runs
        self._compute = compute  # None: the server's, started on first use
        self.job: Job | None = None
        self.task: asyncio.Task | None = None

    # -- control ---------------------------------------------------------------------------
    def start(self, request: RunRequest) -> asyncio.Task:
        """Cancel any running job and start `request` (call from the event loop)."""
        self.cancel()
        self.task = asyncio.get_running_loop().create_task(self.run(request))
        return self.task

    def cancel(self) -> None:
        job = self.job
        if job is not None and not job.cancelled:
            job.cancelled = True
            self.store.status = "cancelling…"
            if job.subscription is not None:
                job.subscription.leave()

    def close(self, *_: Any) -> None:
        """The session is gone: stop the job and drop its results."""
        if self.job is not None and not self.job.cancelled:
            log.info("session closed: cancelling its job")
        self.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.store.series = {}
        self.store.truth = None

    def key(self, request: RunRequest, zoo: Zoo) -> Hashable:
        """What decides a job's numbers: the request, the zoo (app/models.current_zoo
        gives a new one whenever the manifest changes) and how models are loaded."""
        return request.key(), zoo, self._load

    # -- the job -------------------------------------------------------------------------------
    async def run(self, request: RunRequest) -> None:
        """Run a whole job; returns when it is done, cancelled or failed."""
        job = Job(request)
        self.job = job
        try:
            zoo = self._zoo()
            compute = self._compute if self._compute is not None else model_compute()
            ahead = compute.pending

            def produce(emit: Callable[[Event], None]) -> Awaitable[None]:
                return compute_request(emit, request, zoo, self._load, compute)

            job.subscription = self._runs.join(self.key(request, zoo), produce)
            status = _joined_text(job.subscription, ahead)
            await self._apply(
                job, lambda: self.store.param.update(running=True, status=status, progress=0.0)
            )
            await self._follow(job, job.subscription)
            await self._apply(job, lambda: self._finish(job), even_if_cancelled=True)
        except asyncio.CancelledError:
            job.cancelled = True
            raise
        except LatentsimError as err:
            await self._fail(job, f"{type(err).__name__}: {err}")
        except Exception as err:  # keep serving: report, log, leave a sane state
            log.exception("explorer job failed")
            await self._fail(job, f"unexpected {type(err).__name__}: {err}")
        finally:
            if job.subscription is not None:
                job.subscription.leave()

    async def _follow(self, job: Job, subscription: Subscription) -> None:
        """Everything computed so far in one update, then each new event with whatever
        else arrived while the last update waited for the document (a session that falls
        behind a busy server redraws once for several blocks, not once per block);
        returns when the computation ends or the job is cancelled."""
        backlog = subscription.catch_up()
        if backlog and not await self._apply(job, lambda: self._show(job, backlog)):
            return
        async for event in subscription:
            events = [event, *subscription.catch_up()]
            if not await self._apply(job, lambda e=events: self._show(job, e)):
                return

    # -- updates (on the event loop) --------------------------------------------------------------
    async def _apply(
        self, job: Job, update: Callable[[], None], *, even_if_cancelled: bool = False
    ) -> bool:
        """Apply `update` to the store (and bump its revision) unless the job is stale."""
        if self.job is not job or (job.cancelled and not even_if_cancelled):
            return False

        def guarded() -> None:
            if self.job is job:
                update()
                self.store.bump()

        await self.dispatch(guarded)
        return self.job is job and not job.cancelled

    def _show(self, job: Job, events: list[Event]) -> None:
        store = self.store
        for event in events:
            match event:
                case Prepared():
                    self._reset(job, event)
                case Opened():
                    self._opened(event)
                case Computed():
                    self._block(job, event)
                case Diverged():
                    self._diverged(event.spec, event.error)
                case Completed():
                    store.series[event.spec.key].status = "done"
                case Queued():
                    store.status = queued_text(event)

    def _reset(self, job: Job, event: Prepared) -> None:
        request = job.request
        self.store.reset(request, event.spec)
        self.store.set_truth(event.truth, event.truth_frames)
        reference = _cost(request.main)
        job.costs = {s.key: _cost(s) / reference for s in request.series}
        self.store.status = "running the solver and the emulator…"

    def _opened(self, event: Opened) -> None:
        store, spec, record = self.store, event.spec, event.record
        series = store.series[spec.key]
        series.record, series.members = record, record.config.members
        series.space, series.rate = event.space, event.rate
        series.status = "running"
        store.cards[spec.key] = event.cards
        for note in record.coercions:
            store.notify("info", f"{spec.label}: {note}")

    def _block(self, job: Job, event: Computed) -> None:
        store, spec, update = self.store, event.spec, event.update
        store.add_block(update)
        store.truth_updated(event.truth_frames)
        block = update.block
        job.done_cost += len(block.lead) * job.costs[spec.key]
        total = sum(job.costs.values()) * job.request.horizon
        main = store.series["main"]
        per_cost = main.seconds_per_frame if main.blocks else block.seconds_per_frame
        remaining = max(total - job.done_cost, 0.0) * per_cost
        series = store.series[spec.key]
        status = f"{spec.label}: {series.ready}/{job.request.horizon} frames"
        sessions = job.subscription.sessions if job.subscription is not None else 1
        changes = {
            "progress": min(job.done_cost / total, 1.0),
            "status": status + (f" · shared by {sessions} sessions" if sessions > 1 else ""),
            "eta": f"~{remaining:.0f} s left" if remaining >= 1 else "<1 s left",
        }
        if spec.key == "main":
            truth = store.truth.frames[: event.truth_frames]
            solver = (
                (truth[-1].elapsed - truth[0].elapsed) / (len(truth) - 1)
                if len(truth) > 1
                else math.nan
            )
            changes["speed"] = speed_text(block.seconds_per_frame, series.members, solver)
        store.param.update(**changes)

    def _diverged(self, spec: SeriesSpec, err: RolloutDivergedError) -> None:
        series = self.store.series[spec.key]
        series.status = f"diverged at lead {err.lead}"
        self.store.notify(
            "warning",
            f"{spec.label}: {err}. The {series.ready} valid frames before it are kept.",
        )

    def _finish(self, job: Job) -> None:
        store = self.store
        main = store.series.get("main") if store.request is job.request else None
        ready = main.ready if main is not None else 0
        if job.cancelled:
            for series in store.series.values():
                if series.status == "running":
                    series.status = "cancelled"
            store.param.update(running=False, eta="", status=f"cancelled after {ready} frames")
        else:
            store.param.update(
                running=False,
                progress=1.0,
                eta="",
                status=f"done: {ready} frames of {job.request.main.label}",
            )

    async def _fail(self, job: Job, message: str) -> None:
        def report() -> None:
            self.store.param.update(running=False, eta="", status=f"failed: {message}")
            self.store.notify("error", message)

        await self._apply(job, report, even_if_cancelled=True)


def _joined_text(subscription: Subscription, ahead: int) -> str:
    """The first status of a job: whose computation it follows, and what it waits for."""
    if subscription.joined == "finished":
        return "this run was computed already: showing it…"
    if subscription.joined == "in progress":
        others = subscription.sessions - 1
        plural = "s" if others > 1 else ""
        return f"joined the same run, already in progress for {others} other session{plural}…"
    queued = f" (queued behind {ahead} steps of other sessions)" if ahead else ""
    return f"loading the emulator…{queued}"


def queued_text(event: Queued) -> str:
    """What a session waiting for its turn reads (the cap is the server's setting)."""
    before = f"{event.ahead} other run{'s' if event.ahead != 1 else ''}" if event.ahead else "none"
    return (
        f"server busy: {event.limit} runs are computing, the most it runs at once "
        f"(LATENTSIM_APP_MAX_RUNS); yours is queued, waiting before it: {before}…"
    )


def speed_text(emulator: float, members: int, solver: float) -> str:
    """Seconds per frame of the emulator (all members at once) against the solver's."""
    plural = "s" if members > 1 else ""
    text = f"emulator {emulator:.2g} s/frame ({members} member{plural}"
    text += f", {emulator / members:.2g} s per member) · " if members > 1 else ") · "
    if not math.isfinite(solver):
        return text + "solver: –"
    return text + f"solver {solver:.2g} s/frame (one trajectory, after spin-up)"


def _cost(spec: SeriesSpec) -> float:
    """Relative cost per frame: members x network evaluations per emulator call."""
    if spec.kind != "diffusion":
        return 1.0
    return spec.members * get_sampler(spec.sampler, steps=spec.steps).nfe()
