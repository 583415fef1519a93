"""A session's job runner: solver truth, rollouts block by block, scores, progress.

A job is a coroutine on the server's event loop. Every unit of CPU work (loading a
model, one emulator block with the truth frames it needs and its scores) runs on the
shared compute worker (app/compute.py); between units the coroutine applies the result
to the session's `RunStore` through `dispatch`, which the shell sets to run updates
under the Bokeh document lock as one batched message. So the store and the views are
only ever touched on the event loop, and the loop stays free while torch computes.

Cancelling (the Cancel button, a new Run, or the browser leaving) sets the job's flag;
the job stops after the unit in progress (at most one emulator block). A diverging
rollout or a failing solver becomes a notification; the valid part stays on screen.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from app.compute import COMPUTE, ComputeQueue
from app.models import current_zoo, load_pipeline
from app.state import RunRequest, SeriesSpec
from app.store import BlockUpdate, RunStore
from engine.diffusion.samplers import get_sampler
from engine.errors import LatentsimError
from engine.metrics import ensemble_scores, rank_histogram
from engine.pipeline import Pipeline
from engine.rollout import (
    RolloutBlock,
    RolloutConfig,
    RolloutDivergedError,
    RolloutStream,
    TruthStream,
    stream_rollout,
    stream_truth,
)
from engine.zoo import Zoo

log = logging.getLogger(__name__)

Dispatch = Callable[[Callable[[], None]], Awaitable[None]]


async def apply_now(update: Callable[[], None]) -> None:
    """The headless dispatcher: apply at once (tests, notebooks)."""
    update()


@dataclass
class Job:
    """One run; `cancelled` is checked between units of work."""

    request: RunRequest
    cancelled: bool = False
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
        loader: Callable[[Zoo, str], Pipeline] = load_pipeline,
        compute: ComputeQueue = COMPUTE,
    ):
        self.store, self.dispatch = store, dispatch
        self._zoo, self._load, self._compute = zoo, loader, compute
        self.job: Job | None = None
        self.task: asyncio.Task | None = None

    # -- control ---------------------------------------------------------------------------
    def start(self, request: RunRequest) -> asyncio.Task:
        """Cancel any running job and start `request` (call from the event loop)."""
        self.cancel()
        self.task = asyncio.get_running_loop().create_task(self.run(request))
        return self.task

    def cancel(self) -> None:
        if self.job is not None and not self.job.cancelled:
            self.job.cancelled = True
            self.store.status = "cancelling…"

    def close(self, *_: Any) -> None:
        """The session is gone: stop the job and drop its results."""
        if self.job is not None and not self.job.cancelled:
            log.info("session closed: cancelling its job")
        self.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.store.series = {}
        self.store.truth = None

    # -- the job -------------------------------------------------------------------------------
    async def run(self, request: RunRequest) -> None:
        """Run a whole job; returns when it is done, cancelled or failed."""
        job = Job(request)
        self.job = job
        streams: list[RolloutStream | TruthStream] = []
        try:
            ahead = self._compute.pending
            queued = f" (queued behind {ahead} steps of other sessions)" if ahead else ""
            await self._apply(
                job,
                lambda: self.store.param.update(
                    running=True, status=f"loading the emulator…{queued}", progress=0.0
                ),
            )
            await self._steps(job, streams)
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
            for stream in streams:  # on the worker: a block may still be running there
                self._compute.submit(stream.close)

    async def _steps(self, job: Job, streams: list[RolloutStream | TruthStream]) -> None:
        """Models and truth, then each series block by block; returns early when cancelled.

        Work goes to the shared worker in as few units as possible (one to prepare, one
        per block), since under load every unit waits for one unit of every other
        session."""
        request = job.request
        zoo = self._zoo()
        main, truth, context = await self._compute.run(_prepare, self._load, zoo, request)
        streams.append(truth)
        if not await self._apply(job, lambda: self._reset(job, main, truth)):
            return
        for spec in request.series:
            if job.cancelled:
                return
            pipeline = main if spec.key == "main" else None
            await self._run_series(job, spec, zoo, pipeline, context, truth, streams)

    async def _run_series(
        self,
        job: Job,
        spec: SeriesSpec,
        zoo: Zoo,
        pipeline: Pipeline | None,
        context: torch.Tensor,
        truth: TruthStream,
        streams: list[RolloutStream | TruthStream],
    ) -> None:
        store = self.store
        pipeline, stream, outcome = await self._compute.run(
            _open, self._load, zoo, spec, pipeline, context, job.request, truth
        )
        streams.append(stream)

        def started() -> None:
            series = store.series[spec.key]
            series.stream, series.members = stream, stream.config.members
            series.space, series.rate = pipeline.space, pipeline.rate
            series.status = "running"
            store.cards[spec.key] = pipeline.cards
            for note in stream.coercions:
                store.notify("info", f"{spec.label}: {note}")

        if not await self._apply(job, started):
            return
        while outcome is not None:
            if isinstance(outcome, RolloutDivergedError):
                await self._apply(job, lambda err=outcome: self._diverged(spec, err))
                return
            if not await self._apply(job, lambda u=outcome: self._block(job, spec, u, truth)):
                break
            if job.cancelled:
                break
            outcome = await self._compute.run(_advance, spec.key, pipeline, stream, truth)
        status = "cancelled" if job.cancelled else "done"
        await self._apply(
            job, lambda: setattr(store.series[spec.key], "status", status), even_if_cancelled=True
        )

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

    def _reset(self, job: Job, main: Pipeline, truth: TruthStream) -> None:
        request = job.request
        self.store.reset(request, main.spec)
        self.store.set_truth(truth)
        reference = _cost(request.main)
        job.costs = {s.key: _cost(s) / reference for s in request.series}
        self.store.status = "running the solver and the emulator…"

    def _block(self, job: Job, spec: SeriesSpec, update: BlockUpdate, truth: TruthStream) -> None:
        store = self.store
        store.add_block(update)
        store.truth_updated()
        block = update.block
        job.done_cost += len(block.lead) * job.costs[spec.key]
        total = sum(job.costs.values()) * job.request.horizon
        main = store.series["main"]
        per_cost = main.seconds_per_frame if main.blocks else block.seconds_per_frame
        remaining = max(total - job.done_cost, 0.0) * per_cost
        series = store.series[spec.key]
        changes = {
            "progress": min(job.done_cost / total, 1.0),
            "status": f"{spec.label}: {series.ready}/{job.request.horizon} frames",
            "eta": f"~{remaining:.0f} s left" if remaining >= 1 else "<1 s left",
        }
        if spec.key == "main":
            frames = len(truth.frames)
            solver = (
                (truth.frames[-1].elapsed - truth.frames[0].elapsed) / (frames - 1)
                if frames > 1
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


# -- units of work (on the compute worker) --------------------------------------------------
Outcome = BlockUpdate | RolloutDivergedError | None  # None: the rollout is complete


def _prepare(
    load: Callable[[Zoo, str], Pipeline], zoo: Zoo, request: RunRequest
) -> tuple[Pipeline, TruthStream, torch.Tensor]:
    """The main pipeline, the solver run and its context frames (c, C, X, Y).

    The truth is as long as the rollouts need, on the models' grid; its frames are
    computed on demand, as blocks come in.
    """
    main = load(zoo, request.main.emulator)
    stride = max(s.frame_stride for s in request.series)
    spec = main.spec
    frames = (request.context - 1 + request.horizon) * stride + 1
    truth = stream_truth(
        spec.name,
        request.conditions,
        request.seed,
        n_frames=frames,
        grid=spec.grid.shape,
        device="cpu",
    )
    _extend(truth, (request.context - 1) * main.frame_stride)
    context = torch.stack(
        [truth.frames[i * main.frame_stride].frame for i in range(request.context)]
    )
    return main, truth, context


def _extend(truth: TruthStream, frame: int) -> None:
    while len(truth.frames) <= frame:
        next(truth)


def _open(
    load: Callable[[Zoo, str], Pipeline],
    zoo: Zoo,
    spec: SeriesSpec,
    pipeline: Pipeline | None,
    context: torch.Tensor,
    request: RunRequest,
    truth: TruthStream,
) -> tuple[Pipeline, RolloutStream, Outcome]:
    """Start one series' rollout and compute its first block."""
    pipeline = pipeline if pipeline is not None else load(zoo, spec.emulator)
    config = RolloutConfig(
        members=spec.members,
        context=request.context,
        horizon=request.horizon,
        sampler=spec.sampler,
        steps=spec.steps,
        seed=request.seed,
    )
    stream = stream_rollout(pipeline, context, request.conditions, config, context_start=0)
    return pipeline, stream, _advance(spec.key, pipeline, stream, truth)


def _advance(key: str, pipeline: Pipeline, stream: RolloutStream, truth: TruthStream) -> Outcome:
    """The next block with the truth frames it is compared to, its scores, AE floor and
    rank histogram: all the numerics, so the event loop only copies results."""
    try:
        block = next(stream)
    except StopIteration:
        return None
    except RolloutDivergedError as err:  # a result to report, not a failure of the job
        return err
    _extend(truth, int(block.frame_index.max()))
    target = torch.stack([truth.frames[int(i)].frame for i in block.frame_index]).double()
    scores, rank = block_scores(block, target)
    recon = latents = None
    floor: dict[str, np.ndarray] = {}
    if pipeline.space == "latent":
        encoded = pipeline.encode(target.float())
        restored = pipeline.decode(encoded)
        latents, recon = encoded.cpu().numpy(), restored.cpu().numpy()
        floor = _scores(torch.from_numpy(recon)[None].double(), target)
        floor = {name: floor[name] for name in ("vrmse", "crps")}
    return BlockUpdate(key, block, scores, floor, recon, latents, rank)


def block_scores(
    block: RolloutBlock, target: torch.Tensor
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """A block's per (lead, field) scores against `target` (leads, C, X, Y, float64) and
    its rank histogram, pooled over the block's leads at sampled points (None for a
    single member): what every source's rollout shows in Diagnostics."""
    scores = _scores(block.frames.double(), target)
    rank = None
    if block.frames.shape[0] > 1:
        generator = torch.Generator().manual_seed(int(block.lead[0]))
        rank = rank_histogram(block.frames, target.float(), generator).numpy()
    return scores, rank


def _scores(members: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    """Per (lead, field) scores; CRPS is the fair one with >= 2 members, else the MAE."""
    scores = ensemble_scores(members, truth)
    crps = scores.get("crps_fair", scores["crps"])
    picked = {
        "vrmse": scores["vrmse"],
        "ssr": scores["ssr"],
        "crps": crps,
        "spread": scores["spread"],
        "rmse": scores["rmse"],
    }
    if members.shape[0] < 2:
        picked["ssr"] = torch.full_like(crps, math.nan)
    return {name: value.float().numpy() for name, value in picked.items()}


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
