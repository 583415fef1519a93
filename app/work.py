"""One job's work: units on the compute worker, and the events they yield.

`compute_request` runs a `RunRequest` unit by unit on the shared compute worker
(app/compute.py): one unit prepares the main pipeline and the solver run, one opens each
series and computes its first block, one computes each further block with the truth
frames it is compared to and its scores. Work goes to the worker in as few units as
possible, since under load every unit waits for one unit of every other job.

Each result becomes an event (`Prepared`, `Opened`, `Computed`, `Diverged`, `Completed`)
passed to `emit`; it holds everything a session needs to show it, and nothing of any
session, so the events of one computation can be applied to any number of sessions'
stores (app/shared_runs.py, app/runner.py). Failures propagate as exceptions; a
diverging rollout is a result (`Diverged`), and the job goes on with the next series.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from app.compute import ComputeQueue
from app.state import RunRequest, SeriesSpec
from app.store import BlockUpdate
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

Loader = Callable[[Zoo, str], Pipeline]


@dataclass(frozen=True)
class Prepared:
    """The main pipeline is loaded and the solver run has its context frames.

    `truth_frames`: how many truth frames existed when this was computed; a store takes
    its colour limits from those only, so they never depend on when it is applied."""

    main: Pipeline
    truth: TruthStream
    truth_frames: int


@dataclass(frozen=True)
class Opened:
    """A series' rollout has started (its first block follows)."""

    spec: SeriesSpec
    pipeline: Pipeline
    stream: RolloutStream


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
    compute: ComputeQueue,
) -> None:
    """Compute `request` on the worker, emitting each result as it comes.

    Cancelling the calling task stops it at the unit in progress; the solver run and the
    rollouts are closed on the worker either way (a block may still be running there)."""
    streams: list[RolloutStream | TruthStream] = []
    try:
        main, truth, context = await compute.run(_prepare, load, zoo, request)
        streams.append(truth)
        emit(Prepared(main, truth, len(truth.frames)))
        for spec in request.series:
            pipeline = main if spec.key == "main" else None
            pipeline, stream, outcome = await compute.run(
                _open, load, zoo, spec, pipeline, context, request, truth
            )
            streams.append(stream)
            emit(Opened(spec, pipeline, stream))
            while isinstance(outcome, BlockUpdate):
                emit(Computed(spec, outcome, len(truth.frames)))
                outcome = await compute.run(_advance, spec.key, pipeline, stream, truth)
            emit(Completed(spec) if outcome is None else Diverged(spec, outcome))
    finally:
        for stream in streams:
            compute.submit(stream.close)


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
