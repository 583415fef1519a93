"""One job's work: units on compute workers, and the events they yield.

`compute_request` (on the event loop) runs a `RunRequest` unit by unit on a
`ModelCompute` (app/compute.py), at two places: the *rollout* place computes the
emulators' blocks, the *scoring* place runs the solver and scores each block against it
(scores, autoencoder floor, rank histogram). While block k is scored, block k+1 is
already being sampled: with two workers a run's scoring is off its critical path (with
one worker, or the local thread, both places are the same and the units just take
turns). Under load every unit waits for one unit of every other job at its place, so
work goes out in as few units as possible; the block requests of runs at one place are
batched (app/batching.py) unless the compute says not.

The units (`prepare`, `open_series`, `advance`, `score`, `close_run`) run where the compute
puts them: a Dask worker process, or the local thread. A run's live objects stay there
in `LIVE_RUNS`, under the run's id: the solver run where `prepare` ran, the rollout
streams where `open_series` ran. Units return only picklable results: records of the
solver run and the rollouts (engine.rollout's `TruthRecord` and `RolloutRecord`, sent
once without frames), each block, its scores and the truth frames computed since the
last unit. The driver appends those to the records, so the web process holds one copy of
the results whatever the number of sessions showing them. A unit that finds no state for
its run (its worker died and the run's units went to another) raises `RunLostError`.

Each result becomes an event (`Prepared`, `Opened`, `Computed`, `Diverged`, `Completed`)
passed to `emit`; it holds everything a session needs to show it, and nothing of any
session, so the events of one computation can be applied to any number of sessions'
stores (app/shared_runs.py, app/runner.py). Failures propagate as exceptions; a
diverging rollout is a result (`Diverged`), and the job goes on with the next series.
"""

from __future__ import annotations

import asyncio
import math
import uuid
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from app.batching import BlockBatcher, Failed
from app.compute import ModelCompute
from app.state import RunRequest, SeriesSpec
from app.store import BlockUpdate
from engine.errors import LatentsimError
from engine.metrics import ensemble_scores, rank_histogram
from engine.pipeline import Pipeline
from engine.rollout import (
    RolloutBlock,
    RolloutConfig,
    RolloutDivergedError,
    RolloutRecord,
    RolloutStream,
    TruthFrame,
    TruthRecord,
    TruthStream,
    advance_together,
    stream_rollout,
    stream_truth,
)
from engine.systems.base import SystemSpec
from engine.zoo import Zoo

Loader = Callable[[Zoo, str], Pipeline]


@dataclass(frozen=True)
class Prepared:
    """The main pipeline is loaded and the solver run has its context frames.

    `truth` grows as later units bring frames. `truth_frames`: how many truth frames
    existed when this was computed; a store takes its colour limits from those only, so
    they never depend on when it is applied."""

    spec: SystemSpec
    truth: TruthRecord
    truth_frames: int


@dataclass(frozen=True)
class Opened:
    """A series' rollout has started (its first block follows); `record` gathers its
    blocks as they arrive."""

    spec: SeriesSpec
    space: str
    rate: float | None
    cards: dict[str, Any]
    record: RolloutRecord


@dataclass(frozen=True)
class Computed:
    """One block of a series, scored, and the truth frames existing at that point."""

    spec: SeriesSpec
    update: BlockUpdate
    truth_frames: int


@dataclass(frozen=True)
class Diverged:
    """A series' rollout diverged; the blocks before it are valid."""

    spec: SeriesSpec
    error: RolloutDivergedError


@dataclass(frozen=True)
class Completed:
    """A series reached the horizon."""

    spec: SeriesSpec


Event = Prepared | Opened | Computed | Diverged | Completed
Outcome = RolloutBlock | RolloutDivergedError | None  # None: the rollout is complete


def results_bytes(events: list[Event]) -> int:
    """Memory held by a computation's results: the truth frames, the rollouts' frames and
    latents, the reconstructions (the scores are small); what keeping a run costs."""
    total = 0
    for event in events:
        if isinstance(event, Prepared):
            total += sum(frame.frame.nbytes for frame in event.truth.frames)
        elif isinstance(event, Computed):
            update, block = event.update, event.update.block
            arrays = (block.frames, block.latents, update.recon, update.truth_latents)
            total += sum(array.nbytes for array in arrays if array is not None)
    return total


async def compute_request(
    emit: Callable[[Event], None],
    request: RunRequest,
    zoo: Zoo,
    load: Loader,
    compute: ModelCompute,
) -> None:
    """Compute `request` on `compute`, emitting each result as it comes.

    Cancelling the calling task stops it at the units in progress; the run's state is
    dropped where it lives either way (after the unit in progress there, if any)."""
    run_id = uuid.uuid4().hex
    places = compute.place()
    rollouts, scoring = places.rollouts, places.scoring
    try:
        prepared, frames, context = await compute.run(scoring, prepare, run_id, load, zoo, request)
        truth = prepared.truth
        truth.frames.extend(frames)
        emit(prepared)
        for spec in request.series:
            opened, outcome = await compute.run(
                rollouts, open_series, run_id, load, zoo, request, spec, context
            )
            emit(opened)
            while isinstance(outcome, RolloutBlock):
                # Block k+1 is asked for before block k is scored: at two places they overlap.
                following = _next_block(compute, rollouts, run_id, spec.key)
                try:
                    scores, frames = await compute.run(scoring, score, run_id, spec.key, outcome)
                    truth.frames.extend(frames)
                    opened.record.blocks.append(outcome)
                    emit(Computed(spec, scores.update(spec.key, outcome), len(truth.frames)))
                    outcome = await following
                finally:
                    following.cancel()  # only if this job ended while it was in flight
            emit(Completed(spec) if outcome is None else Diverged(spec, outcome))
    finally:
        compute.release(places, close_run, run_id)


def _next_block(
    compute: ModelCompute, where: Hashable, run_id: str, key: str
) -> asyncio.Future[Outcome]:
    """The next block of a run's series, asked for at once; stacked with other runs'
    blocks at the same place when the compute batches."""
    if compute.batch:
        return batcher_of(compute).submit(where, run_id, key)
    return asyncio.ensure_future(compute.run(where, advance, run_id, key))


_BATCHERS: weakref.WeakKeyDictionary[ModelCompute, BlockBatcher] = weakref.WeakKeyDictionary()


def batcher_of(compute: ModelCompute) -> BlockBatcher:
    """The one batcher of `compute`, shared by all its runs."""
    if compute not in _BATCHERS:
        _BATCHERS[compute] = BlockBatcher(compute, advance_many)
    return _BATCHERS[compute]


# -- units of work (where the compute runs them) ----------------------------------------------
class RunLostError(LatentsimError):
    """A unit of a run reached a process that does not hold the run's state."""

    def __init__(self, run_id: str):
        super().__init__(
            f"the compute worker running this job stopped (run {run_id[:8]} is gone with "
            "it); other runs are unaffected: press Run to start it again"
        )


@dataclass
class SolverRun:
    """The run's truth and what scores blocks against it, where `prepare` ran."""

    load: Loader
    zoo: Zoo
    request: RunRequest
    truth: TruthStream
    shipped: int = 0  # truth frames already returned

    def new_truth(self) -> list[TruthFrame]:
        """The truth frames computed since the last unit returned."""
        frames = self.truth.frames[self.shipped :]
        self.shipped += len(frames)
        return frames

    def pipeline(self, key: str) -> Pipeline:
        """The pipeline of series `key` (its autoencoder gives the block's floor)."""
        spec = next(s for s in self.request.series if s.key == key)
        return self.load(self.zoo, spec.emulator)


@dataclass
class LiveRun:
    """A run's live objects in this process: the solver run (where `prepare` ran) and
    the rollout streams by series key (where `open_series` ran); both on one place."""

    solver: SolverRun | None = None
    series: dict[str, RolloutStream] = field(default_factory=dict)


LIVE_RUNS: dict[str, LiveRun] = {}  # this process's runs, by id


def _live(run_id: str) -> LiveRun:
    try:
        return LIVE_RUNS[run_id]
    except KeyError:
        raise RunLostError(run_id) from None


def prepare(
    run_id: str, load: Loader, zoo: Zoo, request: RunRequest
) -> tuple[Prepared, list[TruthFrame], torch.Tensor]:
    """Start the solver run and compute its context frames (c, C, X, Y), returned for the
    rollouts. The truth is as long as the rollouts need, on the models' grid; its
    frames are computed on demand, as blocks are scored."""
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
    solver = SolverRun(load, zoo, request, truth)
    LIVE_RUNS.setdefault(run_id, LiveRun()).solver = solver
    new = solver.new_truth()
    return Prepared(spec, truth.record.detached(), len(new)), new, context


def open_series(
    run_id: str,
    load: Loader,
    zoo: Zoo,
    request: RunRequest,
    spec: SeriesSpec,
    context: torch.Tensor,
) -> tuple[Opened, Outcome]:
    """Start one series' rollout from the `context` frames and compute its first block."""
    pipeline = load(zoo, spec.emulator)
    config = RolloutConfig(
        members=spec.members,
        context=request.context,
        horizon=request.horizon,
        sampler=spec.sampler,
        steps=spec.steps,
        seed=request.seed,
    )
    stream = stream_rollout(pipeline, context, request.conditions, config, context_start=0)
    LIVE_RUNS.setdefault(run_id, LiveRun()).series[spec.key] = stream
    opened = Opened(spec, pipeline.space, pipeline.rate, pipeline.cards, stream.record.detached())
    return opened, advance_together([stream])[0]


def advance(run_id: str, key: str) -> Outcome:
    """The next block of series `key` (None once it is complete; the error if it diverged)."""
    (result,) = advance_many([(run_id, key)])
    if isinstance(result, Failed):
        raise result.error
    return result


def advance_many(requests: list[tuple[str, str]]) -> list[Outcome | Failed]:
    """`advance` for several (run id, series key) at once: rollouts that run the same
    model with the same sampler and steps make one network call together
    (engine.rollout.advance_together). A run this process does not hold gets its
    `RunLostError` in its place, so it does not fail the others batched with it."""
    results: list[Outcome | Failed] = [Failed(RunLostError(run_id)) for run_id, _ in requests]
    live = [
        (index, LIVE_RUNS[run_id].series[key])
        for index, (run_id, key) in enumerate(requests)
        if run_id in LIVE_RUNS and key in LIVE_RUNS[run_id].series
    ]
    outcomes = advance_together([stream for _, stream in live])
    for (index, _), outcome in zip(live, outcomes, strict=True):
        results[index] = outcome
    return results


@dataclass(frozen=True)
class BlockScores:
    """A block's scores, autoencoder floor, reconstruction and rank histogram."""

    scores: dict[str, np.ndarray]
    floor: dict[str, np.ndarray]
    recon: np.ndarray | None
    truth_latents: np.ndarray | None
    rank: np.ndarray | None

    def update(self, key: str, block: RolloutBlock) -> BlockUpdate:
        return BlockUpdate(
            key, block, self.scores, self.floor, self.recon, self.truth_latents, self.rank
        )


def score(run_id: str, key: str, block: RolloutBlock) -> tuple[BlockScores, list[TruthFrame]]:
    """`block` of series `key` against the truth frames it matches (computed here if not
    yet), with the autoencoder floor: all the numerics, so the event loop only copies
    results; and the truth frames computed since the last unit."""
    solver = _live(run_id).solver
    if solver is None:
        raise RunLostError(run_id)
    truth = solver.truth
    _extend(truth, int(block.frame_index.max()))
    target = torch.stack([truth.frames[int(i)].frame for i in block.frame_index]).double()
    scores, rank = block_scores(block, target)
    recon = latents = None
    floor: dict[str, np.ndarray] = {}
    pipeline = solver.pipeline(key)
    if pipeline.space == "latent":
        encoded = pipeline.encode(target.float())
        restored = pipeline.decode(encoded)
        latents, recon = encoded.cpu().numpy(), restored.cpu().numpy()
        floor = _scores(torch.from_numpy(recon)[None].double(), target)
        floor = {name: floor[name] for name in ("vrmse", "crps")}
    return BlockScores(scores, floor, recon, latents, rank), solver.new_truth()


def close_run(run_id: str) -> None:
    """Drop what this process holds of a run and close it (nothing if it is gone already)."""
    run = LIVE_RUNS.pop(run_id, None)
    if run is None:
        return
    if run.solver is not None:
        run.solver.truth.close()
    for stream in run.series.values():
        stream.close()


def _extend(truth: TruthStream, frame: int) -> None:
    while len(truth.frames) <= frame:
        next(truth)


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
