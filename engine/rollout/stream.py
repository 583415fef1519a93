"""Emulator rollouts, block by block (`stream_rollout`) or whole (`rollout`)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import numpy as np
import torch
import xarray

from engine.diffusion import Sampler
from engine.emulator.base import Emulator
from engine.errors import ParameterError, check_integer
from engine.pipeline import Pipeline, resolve_conditions
from engine.rollout.cf import conditions_attrs, cpu_copy, dataset_frames, fields_dataset
from engine.rollout.config import STREAM_ENSEMBLE, RolloutConfig, RolloutDivergedError
from engine.systems.base import SystemSpec, seed_generator


@dataclass(frozen=True)
class RolloutBlock:
    """Frames from one emulator call (the last block is truncated to the horizon)."""

    lead: np.ndarray  # (n,) int: emulator steps after the last context frame, from 1
    lead_time: np.ndarray  # (n,) float: lead · Δ · frame_dt
    frame_index: np.ndarray  # (n,) int: matching truth frame, context_start + (c−1+lead)·Δ
    frames: torch.Tensor  # (K, n, C, X, Y) float32 CPU, physical units
    latents: torch.Tensor | None  # (K, n, C', h, w) float32 CPU; None in pixel space
    progress: float  # frames produced / horizon, in (0, 1]
    elapsed: float  # seconds spent computing so far (not counting the consumer's time)
    seconds_per_frame: float  # elapsed / frames produced (one frame = all K members)
    nfe: int  # network evaluations so far; one evaluation serves all K members


T = TypeVar("T")


class Clock:
    """Accumulates wall time spent inside `with clock:` blocks."""

    def __init__(self) -> None:
        self.total = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.total += time.perf_counter() - self._start


class Stream(Generic[T]):
    """An iterator that keeps what it yielded and can be closed.

    `close()` (or leaving a `with` block) stops the work: nothing more is computed, and
    iterating ends.
    """

    def __init__(self) -> None:
        self.items: list[T] = []
        self.closed = False

    def __iter__(self) -> Stream[T]:
        return self

    def __next__(self) -> T:
        if self.closed:
            raise StopIteration
        item = self._produce()
        self.items.append(item)
        return item

    def _produce(self) -> T:
        """The next item (StopIteration when there is none)."""
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- emulator rollouts -----------------------------------------------------------------
@dataclass
class RolloutRecord:
    """A rollout's blocks and what labels them, without the models.

    Picklable and small apart from the blocks, so a rollout computed in one process (a
    compute worker) can be gathered, shown and saved in another (the app's web process):
    ship `detached()` once, then append the blocks as they arrive.
    """

    spec: SystemSpec
    kind: str
    description: dict[str, Any]  # Pipeline.describe()
    frame_stride: int
    config: RolloutConfig
    conditions: dict[str, Any]
    coercions: tuple[str, ...]
    context_start: int
    blocks: list[RolloutBlock] = field(default_factory=list)

    def detached(self) -> RolloutRecord:
        """The same record with no blocks: what to send before the blocks."""
        return replace(self, blocks=[])

    def lead_time(self, lead: np.ndarray) -> np.ndarray:
        return lead * (self.spec.frame_dt * self.frame_stride)

    def frame_index(self, lead: np.ndarray) -> np.ndarray:
        return self.context_start + (self.config.context - 1 + lead) * self.frame_stride

    def dataset(self, blocks: int | None = None) -> xarray.Dataset:
        """The blocks so far (the first `blocks` of them, if given: what a viewer that has
        shown only those offers) as a Dataset with dims (member, time, x, y); see `rollout`."""
        spec, config = self.spec, self.config
        kept = self.blocks[:blocks]
        grid = spec.grid.shape
        empty = np.zeros((config.members, 0, len(spec.channel_names), *grid), np.float32)
        frames = np.concatenate([empty, *(b.frames.numpy() for b in kept)], axis=1)
        lead = np.concatenate([np.zeros(0, np.int64), *(b.lead for b in kept)])
        last = kept[-1] if kept else None
        diffusion = self.kind == "diffusion"
        attrs = {
            "title": f"{spec.title}: {self.kind} emulator rollout",
            **self.description,
            "sampler": config.sampler if diffusion else "none",
            "sampler_options": json.dumps(dict(config.sampler_options) if diffusion else {}),
            "steps": config.steps if diffusion else 0,
            "members": config.members,
            "context": config.context,
            "context_start": self.context_start,
            "horizon": config.horizon,
            "seed": config.seed,
            "frame_dt": spec.frame_dt,
            **conditions_attrs(spec, self.conditions),
            "coercions": "; ".join(self.coercions),
            "complete": int(len(lead) == config.horizon),
            "nfe": last.nfe if last else 0,
            "elapsed_s": last.elapsed if last else 0.0,
        }
        coords = {
            "member": (
                "member",
                np.arange(config.members),
                {"standard_name": "realization", "long_name": "ensemble member"},
            ),
            "time": (
                "time",
                self.lead_time(lead).astype(np.float64),
                {
                    "long_name": "lead time after the last context frame",
                    "units": "1",
                    "axis": "T",
                    "comment": "in the system's (non-dimensional) simulation time units",
                },
            ),
            "lead": ("time", lead, {"long_name": "emulator steps after the last context frame"}),
            "frame": ("time", self.frame_index(lead), {"long_name": "matching truth frame"}),
        }
        return fields_dataset(spec, frames, ("member", "time"), coords, attrs)


@dataclass(frozen=True)
class EmulatorCall:
    """The inputs of a rollout's next emulator call (K members along the batch)."""

    emulator: Emulator
    window: torch.Tensor  # (K, c, *latent or pixel shape)
    label: torch.Tensor  # (K, P)
    sampler: Sampler | None
    generator: torch.Generator


class RolloutStream(Stream[RolloutBlock]):
    """Blocks of an emulator rollout, as they are computed.

    Attributes: the effective `config`, its `coercions`, the full `conditions` (defaults
    filled in) and `context_start`. `record` holds the blocks yielded so far, so a
    cancelled or diverged rollout still gives its valid part (`dataset()`).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        context: torch.Tensor,
        conditions: dict[str, Any],
        config: RolloutConfig,
        coercions: tuple[str, ...],
        context_start: int,
    ):
        self.pipeline = pipeline
        super().__init__()
        self.record = RolloutRecord(
            pipeline.spec,
            pipeline.kind,
            pipeline.describe(),
            pipeline.frame_stride,
            config,
            conditions,
            coercions,
            context_start,
            blocks=self.items,
        )
        self.produced = self.nfe = 0  # frames and network evaluations so far
        self._clock = Clock()
        members = config.members
        with self._clock, torch.inference_mode():
            self._window = pipeline.encode(context).unsqueeze(0).repeat(members, 1, 1, 1, 1)
            self._labels = pipeline.label(conditions).expand(members, -1)
            self._sampler = config.make_sampler() if pipeline.kind == "diffusion" else None
            self._generator = torch.Generator(device=pipeline.device)
            self._generator.manual_seed(seed_generator(config.seed, STREAM_ENSEMBLE).initial_seed())
            self._nfe_per_call = int(pipeline.emulator.nfe(self._sampler))

    @property
    def blocks(self) -> list[RolloutBlock]:
        return self.items

    @property
    def config(self) -> RolloutConfig:
        return self.record.config

    @property
    def conditions(self) -> dict[str, Any]:
        return self.record.conditions

    @property
    def coercions(self) -> tuple[str, ...]:
        return self.record.coercions

    @property
    def context_start(self) -> int:
        return self.record.context_start

    def lead_time(self, lead: np.ndarray) -> np.ndarray:
        return self.record.lead_time(lead)

    def frame_index(self, lead: np.ndarray) -> np.ndarray:
        return self.record.frame_index(lead)

    def dataset(self, blocks: int | None = None) -> xarray.Dataset:
        """The blocks so far as a Dataset; see `RolloutRecord.dataset`."""
        return self.record.dataset(blocks)

    # -- one emulator call at a time, alone or stacked with other rollouts' ----------------
    @property
    def done(self) -> bool:
        """Closed, diverged, or at the horizon: no more emulator calls."""
        return self.closed or self.produced >= self.config.horizon

    def next_call(self) -> EmulatorCall:
        """The inputs of the next emulator call (StopIteration when done)."""
        if self.done:
            raise StopIteration
        return EmulatorCall(
            self.pipeline.emulator, self._window, self._labels, self._sampler, self._generator
        )

    def _produce(self) -> RolloutBlock:
        call = self.next_call()
        with self._clock, torch.inference_mode():
            new = call.emulator.generate(
                call.window, call.label, sampler=call.sampler, generator=call.generator
            )
        return self._block(new)

    def accept(self, new: torch.Tensor, seconds: float) -> RolloutBlock:
        """The block from `new`, this rollout's rows of a call computed elsewhere (stacked
        with other rollouts', `advance_together`) in `seconds` of this rollout's share."""
        self._clock.total += seconds
        block = self._block(new)
        self.items.append(block)
        return block

    def _block(self, new: torch.Tensor) -> RolloutBlock:
        """Decode and check the call's output, slide the window, make the block."""
        pipeline, config = self.pipeline, self.config
        per_call = pipeline.window - config.context
        expected = (config.members, per_call, *self._window.shape[2:])
        with self._clock:
            with torch.inference_mode():
                if tuple(new.shape) != expected:
                    raise ParameterError("emulator output shape", tuple(new.shape), expected)
                take = min(per_call, config.horizon - self.produced)
                kept = new[:, :take]
                frames = pipeline.decode(kept)
                lead = np.arange(self.produced + 1, self.produced + take + 1)
                self._check_finite(kept, frames, lead)
                self._window = torch.cat([self._window, new], dim=1)[:, -config.context :]
            frames = cpu_copy(frames)
            latents = cpu_copy(kept) if pipeline.space == "latent" else None
        self.produced += take
        self.nfe += self._nfe_per_call
        return RolloutBlock(
            lead=lead,
            lead_time=self.lead_time(lead),
            frame_index=self.frame_index(lead),
            frames=frames,
            latents=latents,
            progress=self.produced / config.horizon,
            elapsed=self._clock.total,
            seconds_per_frame=self._clock.total / self.produced,
            nfe=self.nfe,
        )

    def _check_finite(self, model: torch.Tensor, frames: torch.Tensor, lead: np.ndarray) -> None:
        finite = torch.isfinite(model).flatten(2).all(2) & torch.isfinite(frames).flatten(2).all(2)
        if bool(finite.all()):
            return
        bad_frame, bad_member = (~finite).T.nonzero()[0].tolist()  # earliest frame first
        frame = frames[bad_member, bad_frame]
        channels = self.pipeline.spec.channel_names
        where = [name for i, name in enumerate(channels) if not bool(frame[i].isfinite().all())]
        lead_value = int(lead[bad_frame])
        self.closed = True  # nothing valid can follow
        raise RolloutDivergedError(
            bad_member, lead_value, float(self.lead_time(lead_value)), where or ["latents"]
        )


def stream_rollout(
    pipeline: Pipeline,
    context_frames: torch.Tensor | np.ndarray | xarray.Dataset,
    conditions: Mapping[str, Any] | None = None,
    config: RolloutConfig | None = None,
    *,
    context_start: int | None = None,
) -> RolloutStream:
    """Roll the emulator out block by block; see the module docstring for conventions.

    context_frames: the last c = config.context physical frames, (c, C, X, Y), Δ stored
        frames apart, or a Dataset with dims (time, x, y) and one variable per channel
        (e.g. `truth.isel(time=slice(s, s + c * Δ, Δ))`), whose `frame` coordinate then
        sets `context_start` and must step by Δ.
    conditions: the system's parameters and choices; missing ones take their defaults.
    context_start: truth index of the first context frame (default: from the Dataset,
        else 0); it only labels the output (`frame`), for `score_rollout`.

    Inputs are checked here, before any block is computed. Each block comes from one
    emulator call on all K members at once (the context is repeated over the batch); the
    window then slides so that its last c frames become the next context. A block with
    non-finite values raises RolloutDivergedError instead of being yielded.
    """
    config = config if config is not None else RolloutConfig()
    config, coercions = config.resolve(pipeline)
    spec = pipeline.spec
    if isinstance(context_frames, xarray.Dataset):
        if "frame" in context_frames.coords:
            index = context_frames["frame"].values
            if len(index) > 1 and np.any(np.diff(index) != pipeline.frame_stride):
                raise ParameterError(
                    "context frames",
                    index.tolist(),
                    f"frames {pipeline.frame_stride} apart (the emulator's frame stride)",
                )
            if context_start is None and len(index):
                context_start = int(index[0])
        context_frames = dataset_frames(context_frames, spec.channel_names)[0]
    context = torch.as_tensor(context_frames)
    shape = (config.context, len(spec.channel_names), *spec.grid.shape)
    if tuple(context.shape) != shape:
        raise ParameterError(
            "context_frames shape",
            tuple(context.shape),
            f"{shape}: (context, channels {', '.join(spec.channel_names)}, x, y)",
        )
    if not bool(torch.isfinite(context).all()):
        raise ParameterError("context_frames", "non-finite values", "finite physical frames")
    context_start = check_integer("context_start", 0 if context_start is None else context_start, 0)
    resolved = resolve_conditions(spec, conditions)
    if config.device is not None:
        pipeline.to(config.device)
    return RolloutStream(pipeline, context, resolved, config, coercions, context_start)


def rollout(
    pipeline: Pipeline,
    context_frames: torch.Tensor | np.ndarray | xarray.Dataset,
    conditions: Mapping[str, Any] | None = None,
    config: RolloutConfig | None = None,
    *,
    context_start: int | None = None,
) -> xarray.Dataset:
    """A whole rollout as an xarray.Dataset with dims (member, time, x, y).

    One float32 variable per channel in physical units (CF long_name, units). Coordinates:
    `time` (lead time), `lead` (lead index) and `frame` (matching truth frame) along
    time, `x`/`y` from the grid, `member` (standard_name realization). Attributes record
    the system, rate (or "pixel"), models, sampler, steps, members, context, seed,
    conditions (JSON) and coercions. Arguments as for `stream_rollout`.
    """
    stream = stream_rollout(
        pipeline, context_frames, conditions, config, context_start=context_start
    )
    for _ in stream:
        pass
    return stream.dataset()
