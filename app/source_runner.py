"""Show an opened source in the session's store: its truth, and the rollout it holds or
that a registered emulator computes, with the same scores as the zoo's rollouts.

The store and the views were built for the zoo's jobs, so a source is described in the
same terms: a `RunRequest` with one series ("main"), truth frames (`FileTruth`) indexed
by stored frame, and `RolloutBlock`s whose `frame_index` points into them. Work (reading
a trajectory, scoring a block, one emulator call) runs on the compute worker, and the
results reach the store through the session's dispatch, as in app/runner.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray

from app.compute import COMPUTE, ComputeQueue
from app.runner import Dispatch, apply_now
from app.sources import NO_EMULATOR, SourceState
from app.state import RunRequest, SeriesSpec
from app.store import BlockUpdate, RunStore
from app.work import block_scores
from engine.errors import LatentsimError
from engine.rollout import RolloutBlock, TruthFrame
from engine.sources import (
    Frames,
    MemoryWell,
    RolloutFile,
    SolverSource,
    WellSource,
    run_emulator,
)
from engine.sources.emulators import registered_emulators
from engine.systems.base import SystemSpec

log = logging.getLogger(__name__)
# What a series of each source kind is, for views that have nothing to show without a
# model (no autoencoder reconstruction, no latents): keyed by `Series.space`.
WITHOUT_MODEL = {
    "file": "a rollout file holds frames, not the model that made them",
    "truth": "a dataset alone has no model",
    "emulator": "your own emulator is run on the fields themselves",
}
FILE_BLOCK = 8  # leads per scored block of a rollout file: the views fill in as they come


@dataclass(frozen=True)
class SourceJob:
    """What to show: fixed when Open is pressed."""

    label: str
    source: WellSource | MemoryWell | SolverSource | RolloutFile
    split: str | None
    trajectory: int
    start: int
    axis: str | None
    index: int
    emulator: str
    members: int
    description: str = ""

    @classmethod
    def from_state(cls, state: SourceState) -> SourceJob:
        return cls(
            state.label,
            state.opened,  # type: ignore[arg-type]
            state.split,
            state.trajectory,
            state.start,
            state.axis,
            state.index,
            state.emulator,
            state.members,
            state.describe(),
        )


class FileTruth:
    """Truth frames from a file, with the interface of engine.rollout.TruthRecord."""

    def __init__(self, frames: Frames):
        self.source = frames
        self.frames = [
            TruthFrame(i, float(t), torch.from_numpy(frames.values[i]), 1.0, 0.0)
            for i, t in enumerate(frames.time)
        ]

    def dataset(self) -> xarray.Dataset:
        source = self.source
        data = {
            name: (("time", "x", "y"), source.values[:, c], {"units": unit})
            for c, (name, unit) in enumerate(zip(source.channels, source.units, strict=True))
        }
        coords = {"time": source.time, "x": source.x, "y": source.y}
        return xarray.Dataset(data, coords=coords, attrs={"source": str(source.attrs)})


class FileRollout:
    """The downloadable form of a series read from a file or run by a user emulator."""

    def __init__(self, dataset: xarray.Dataset):
        self._dataset = dataset

    def dataset(self, blocks: int | None = None) -> xarray.Dataset:
        """All of it, whatever `blocks` says: a file's series is set once it is complete."""
        return self._dataset


class SourceRunner:
    """Shows one source job at a time in `store`; a new one cancels the old."""

    def __init__(
        self, store: RunStore, *, dispatch: Dispatch = apply_now, compute: ComputeQueue = COMPUTE
    ):
        self.store, self.dispatch, self._compute = store, dispatch, compute
        self.task: asyncio.Task | None = None
        self._token: object | None = None

    def start(self, job: SourceJob) -> asyncio.Task:
        self.cancel()
        self.task = asyncio.get_running_loop().create_task(self.run(job))
        return self.task

    def cancel(self) -> None:
        """Stop the job shown and say so; a block in flight on the compute thread
        finishes unseen."""
        running = self.task is not None and not self.task.done()
        self.close()
        if running:
            self.store.param.update(running=False, eta="", status="cancelled")

    def close(self, *_: Any) -> None:
        """The session is gone: stop its job, touching nothing of the page."""
        self._token = None
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def run(self, job: SourceJob) -> None:
        token = self._token = object()

        async def apply(update) -> bool:
            if self._token is not token:
                return False

            def guarded() -> None:
                if self._token is token:
                    update()
                    self.store.bump()

            await self.dispatch(guarded)
            return self._token is token

        try:
            await self._show(job, apply)
        except asyncio.CancelledError:
            raise
        except LatentsimError as err:
            message = f"{job.label}: {err}"
            await apply(lambda: self._failed(message))
        except Exception as err:  # keep serving: report, log
            log.exception("showing a source failed")
            message = f"{job.label}: unexpected {type(err).__name__}: {err}"
            await apply(lambda: self._failed(message))

    def _failed(self, message: str) -> None:
        self.store.param.update(running=False, eta="", status=f"failed: {message}")
        self.store.notify("error", message)

    async def _show(self, job: SourceJob, apply) -> None:
        store = self.store
        truth_frames, request, spec, kind = await self._compute.run(_prepare, job)
        truth = FileTruth(truth_frames) if truth_frames is not None else None

        def reset() -> None:
            store.reset(request, spec)
            if truth is not None:
                store.set_truth(truth)
            series = store.series["main"]
            series.space, series.status = kind, "running"
            store.status = f"opening {job.label}…"
            store.cards["main"] = {"source": {"description": job.description}}

        if not await apply(reset):
            return
        if isinstance(job.source, RolloutFile):
            updates = _file_blocks(job.source, truth)
            dataset = job.source.dataset()
        elif job.emulator != NO_EMULATOR:
            updates = _emulator_blocks(job, truth, request)
            dataset = None
        else:
            await apply(lambda: self._done(f"done: truth of {job.label} (no prediction)"))
            return
        blocks: list[RolloutBlock] = []
        while True:
            update = await self._compute.run(next, updates, None)
            if update is None:
                break
            blocks.append(update.block)
            if not await apply(lambda u=update: self._block(u, request)):
                return
        series_data = (
            dataset if dataset is not None else _emulated_dataset(blocks, truth.source, job)
        )

        def finish() -> None:
            store.series["main"].record = FileRollout(series_data)
            store.series["main"].status = "done"
            ready = store.series["main"].ready
            self._done(f"done: {ready} frames of {request.main.label}")

        await apply(finish)

    def _block(self, update: BlockUpdate, request: RunRequest) -> None:
        store = self.store
        store.add_block(update)
        series = store.series["main"]
        series.members = update.block.frames.shape[0]
        store.param.update(
            progress=min(series.ready / request.horizon, 1.0),
            status=f"{request.main.label}: {series.ready}/{request.horizon} frames",
        )

    def _done(self, status: str) -> None:
        self.store.param.update(running=False, progress=1.0, eta="", status=status)


# -- on the compute worker -------------------------------------------------------------------
def _prepare(job: SourceJob) -> tuple[Frames | None, RunRequest, SystemSpec, str]:
    """The truth frames, the request describing the job, the grid's spec (its frame
    interval from the stored or lead times) and the series' kind (`WITHOUT_MODEL`)."""
    source = job.source
    if isinstance(source, RolloutFile):
        spec, truth = source.grid.spec(), source.truth
        members, horizon = source.members.shape[:2]
        label, kind, context = Path(source.path).name, "file", 1
    else:
        truth = source.frames(job.split, job.trajectory, axis=job.axis, index=job.index)
        spec = truth.spec()
        entry = registered_emulators().get(job.emulator)
        if entry is None:
            label, kind, context, members = "truth", "truth", 0, 1
        else:
            label, kind, context = f"{entry.name} (your emulator)", "emulator", entry.context
            members = job.members if entry.ensemble else 1
        horizon = len(truth.time) - job.start - context
        if horizon < 1:
            raise LatentsimError(
                f"start frame {job.start} leaves no frame to predict after "
                f"{context} context frame(s) of {len(truth.time)}"
            )
    series = SeriesSpec(
        key="main",
        label=label,
        emulator=job.label,
        kind=kind,
        rate="pixel",
        sampler="none",
        steps=0,
        members=members,
        frame_stride=1,
    )
    request = RunRequest(
        system=spec.name,
        conditions={},
        seed=job.trajectory,
        context=job.start + context,
        horizon=horizon,
        series=(series,),
    )
    return truth, request, spec, kind


def _score(key: str, block: RolloutBlock, truth: FileTruth | None) -> BlockUpdate:
    if truth is None:
        return BlockUpdate(key, block, {}, {}, None, None, None)
    target = torch.stack([truth.frames[int(i)].frame for i in block.frame_index]).double()
    scores, rank = block_scores(block, target)
    return BlockUpdate(key, block, scores, {}, None, None, rank)


def _file_blocks(source: RolloutFile, truth: FileTruth | None) -> Iterator[BlockUpdate]:
    leads = source.members.shape[1]
    for first in range(0, leads, FILE_BLOCK):
        rows = slice(first, min(first + FILE_BLOCK, leads))
        lead = np.arange(rows.start + 1, rows.stop + 1)
        block = RolloutBlock(
            lead=lead,
            lead_time=source.lead_time[rows],
            frame_index=source.frame_index[rows],
            frames=torch.from_numpy(np.ascontiguousarray(source.members[:, rows])),
            latents=None,
            progress=rows.stop / leads,
            elapsed=0.0,
            seconds_per_frame=float("nan"),
            nfe=0,
        )
        yield _score("main", block, truth)


def _emulator_blocks(
    job: SourceJob, truth: FileTruth, request: RunRequest
) -> Iterator[BlockUpdate]:
    entry = registered_emulators()[job.emulator]
    first = job.start + entry.context  # truth frame of lead 1
    context = np.stack([truth.source.values[i] for i in range(job.start, first)])
    produced = 0
    times = truth.source.time
    conditions = job.source.parameters(job.split, job.trajectory)
    for frames in run_emulator(entry, context, conditions, request.horizon, job.members):
        n = frames.shape[1]
        lead = np.arange(produced + 1, produced + n + 1)
        index = first - 1 + lead
        block = RolloutBlock(
            lead=lead,
            lead_time=times[index] - times[first - 1],
            frame_index=index,
            frames=torch.from_numpy(frames),
            latents=None,
            progress=(produced + n) / request.horizon,
            elapsed=0.0,
            seconds_per_frame=float("nan"),
            nfe=0,
        )
        produced += n
        yield _score("main", block, truth)


def _emulated_dataset(blocks: list[RolloutBlock], truth: Frames, job: SourceJob) -> xarray.Dataset:
    """A user emulator's rollout in the rollout-file schema (docs/sources.md), naming its
    truth, so the download opens again in the explorer as a rollout file."""
    frames = np.concatenate([b.frames.numpy() for b in blocks], axis=1)
    dims = ("member", "time", "x", "y")
    data = {
        name: (dims, frames[:, :, c], {"units": unit, "long_name": long_name})
        for c, (name, unit, long_name) in enumerate(
            zip(truth.channels, truth.units, truth.long_names, strict=True)
        )
    }
    coords = {
        "member": np.arange(frames.shape[0]),
        "time": np.concatenate([b.lead_time for b in blocks]),
        "frame": ("time", np.concatenate([b.frame_index for b in blocks])),
        "x": truth.x,
        "y": truth.y,
    }
    attrs = {"emulator": job.emulator, "truth_trajectory": job.trajectory}
    if isinstance(job.source, WellSource):
        attrs.update(truth_file=str(job.source.path), truth_split=job.split or "")
    return xarray.Dataset(data, coords=coords, attrs=attrs)
