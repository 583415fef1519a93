"""One job's work: units on a compute worker, and the events they yield.

`compute_request` (on the event loop) runs a `RunRequest` unit by unit on a
`ModelCompute` (app/compute.py): one unit prepares the main pipeline and the solver run,
one opens each series and computes its first block, one computes each further block
with the truth frames it is compared to and its scores. Work goes out in as few units as
possible, since under load every unit waits for one unit of every other job; the block
requests of runs at one place are batched (app/batching.py) unless the compute says not.

The units (`prepare`, `open_series`, `advance`, `close_run`) run where the compute puts
them: a Dask worker process, or the local thread. A run's live objects (pipelines,
solver, rollout streams) stay there in `LIVE_RUNS`, under the run's id; units return
only picklable results: records of the solver run and the rollouts (engine.rollout's
`TruthRecord` and `RolloutRecord`, sent once without frames), each scored block and the
truth frames computed since the last unit. The driver appends those to the records, so
the web process holds one copy of the results whatever the number of sessions showing
them. A unit that finds no state for its run (its worker died and the run's units went
to another) raises `RunLostError`.

Each result becomes an event (`Prepared`, `Opened`, `Computed`, `Diverged`, `Completed`)
passed to `emit`; it holds everything a session needs to show it, and nothing of any
session, so the events of one computation can be applied to any number of sessions'
stores (app/shared_runs.py, app/runner.py). Failures propagate as exceptions; a
diverging rollout is a result (`Diverged`), and the job goes on with the next series.
"""

from __future__ import annotations

import math
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from app.batching import BlockBatcher
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

    Cancelling the calling task stops it at the unit in progress; the run's state is
    dropped where it lives either way (after the unit in progress there, if any)."""
    run_id = uuid.uuid4().hex
    where = compute.place()
    try:
        prepared, frames = await compute.run(where, prepare, run_id, load, zoo, request)
        truth = prepared.truth
        truth.frames.extend(frames)
        emit(prepared)
        for spec in request.series:
            opened, outcome, frames = await compute.run(where, open_series, run_id, spec)
            truth.frames.extend(frames)
            emit(opened)
            while isinstance(outcome, BlockUpdate):
                opened.record.blocks.append(outcome.block)
                emit(Computed(spec, outcome, len(truth.frames)))
                if compute.batch:  # stacked with other runs' blocks at the same place
                    outcome, frames = await batcher_of(compute).advance(where, run_id, spec.key)
                else:
                    outcome, frames = await compute.run(where, advance, run_id, spec.key)
                truth.frames.extend(frames)
            emit(Completed(spec) if outcome is None else Diverged(spec, outcome))
    finally:
        compute.release(where, close_run, run_id)


_BATCHERS: weakref.WeakKeyDictionary[ModelCompute, BlockBatcher] = weakref.WeakKeyDictionary()


def batcher_of(compute: ModelCompute) -> BlockBatcher:
    """The one batcher of `compute`, shared by all its runs."""
    if compute not in _BATCHERS:
        _BATCHERS[compute] = BlockBatcher(compute, advance_many)
    return _BATCHERS[compute]


# -- units of work (where the compute runs them) ----------------------------------------------
Outcome = BlockUpdate | RolloutDivergedError | None  # None: the rollout is complete


class RunLostError(LatentsimError):
    """A unit of a run reached a process that does not hold the run's state."""

    def __init__(self, run_id: str):
        super().__init__(
            f"the compute worker running this job stopped (run {run_id[:8]} is gone with "
            "it); other runs are unaffected: press Run to start it again"
        )


@dataclass
class LiveRun:
    """A run's live objects, in the process that computes it."""

    load: Loader
    zoo: Zoo
    request: RunRequest
    main: Pipeline
    truth: TruthStream
    context: torch.Tensor
    series: dict[str, RolloutStream] = field(default_factory=dict)  # by series key
    shipped: int = 0  # truth frames already returned

    def new_truth(self) -> list[TruthFrame]:
        """The truth frames computed since the last unit returned."""
        frames = self.truth.frames[self.shipped :]
        self.shipped += len(frames)
        return frames


LIVE_RUNS: dict[str, LiveRun] = {}  # this process's runs, by id


def _live(run_id: str) -> LiveRun:
    try:
        return LIVE_RUNS[run_id]
    except KeyError:
        raise RunLostError(run_id) from None


def prepare(
    run_id: str, load: Loader, zoo: Zoo, request: RunRequest
) -> tuple[Prepared, list[TruthFrame]]:
    """Load the main pipeline, start the solver run and compute its context frames (c,
    C, X, Y). The truth is as long as the rollouts need, on the models' grid; its frames
    are computed on demand, as blocks come in."""
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
    run = LiveRun(load, zoo, request, main, truth, context)
    LIVE_RUNS[run_id] = run
    new = run.new_truth()
    return Prepared(spec, truth.record.detached(), len(new)), new


def open_series(run_id: str, spec: SeriesSpec) -> tuple[Opened, Outcome, list[TruthFrame]]:
    """Start one series' rollout and compute its first block."""
    run = _live(run_id)
    request = run.request
    pipeline = run.main if spec.key == "main" else run.load(run.zoo, spec.emulator)
    config = RolloutConfig(
        members=spec.members,
        context=request.context,
        horizon=request.horizon,
        sampler=spec.sampler,
        steps=spec.steps,
        seed=request.seed,
    )
    stream = stream_rollout(pipeline, run.context, request.conditions, config, context_start=0)
    run.series[spec.key] = stream
    opened = Opened(spec, pipeline.space, pipeline.rate, pipeline.cards, stream.record.detached())
    outcome = _scored(spec.key, pipeline, advance_together([stream])[0], run.truth)
    return opened, outcome, run.new_truth()


def advance(run_id: str, key: str) -> tuple[Outcome, list[TruthFrame]]:
    """The next block of series `key`, scored, and the truth frames it needed."""
    (result,) = advance_many([(run_id, key)])
    if isinstance(result, Exception):
        raise result
    return result


def advance_many(
    requests: list[tuple[str, str]],
) -> list[tuple[Outcome, list[TruthFrame]] | Exception]:
    """`advance` for several (run id, series key) at once: rollouts that run the same
    model with the same sampler and steps make one network call together
    (engine.rollout.advance_together). A request that fails gets its error in its
    place, so one lost or failing run does not fail the others batched with it."""
    results: list[tuple[Outcome, list[TruthFrame]] | Exception] = [
        RunLostError(run_id) for run_id, _ in requests
    ]  # replaced for every run this process holds
    live = [
        (index, LIVE_RUNS[run_id], key)
        for index, (run_id, key) in enumerate(requests)
        if run_id in LIVE_RUNS
    ]
    outcomes = advance_together([run.series[key] for _, run, key in live])
    for (index, run, key), outcome in zip(live, outcomes, strict=True):
        try:
            scored = _scored(key, run.series[key].pipeline, outcome, run.truth)
            results[index] = scored, run.new_truth()
        except Exception as err:  # that run's failure, reported to it alone
            results[index] = err
    return results


def close_run(run_id: str) -> None:
    """Drop a run's state and close its streams (nothing if it is gone already)."""
    run = LIVE_RUNS.pop(run_id, None)
    if run is None:
        return
    run.truth.close()
    for stream in run.series.values():
        stream.close()


def _extend(truth: TruthStream, frame: int) -> None:
    while len(truth.frames) <= frame:
        next(truth)


def _scored(
    key: str,
    pipeline: Pipeline,
    outcome: RolloutBlock | RolloutDivergedError | None,
    truth: TruthStream,
) -> Outcome:
    """A new block with the truth frames it is compared to, its scores, AE floor and
    rank histogram: all the numerics, so the event loop only copies results."""
    if not isinstance(outcome, RolloutBlock):
        return outcome  # done, or diverged: a result to report, not a failure of the job
    block = outcome
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
