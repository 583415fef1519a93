"""Autoregressive emulator rollouts, ground-truth runs, reconstructions and their scores.

The app, notebooks and the CLI all go through this module, so its conventions are fixed:

- Frames are physical, channels in the system's order, shaped (..., C, X, Y) in the
  Well's [x, y] order; everything handed back is float32 on the CPU.
- One emulator step is Δ stored frames (the emulator's frame stride, usually 1), so
  Δ·frame_dt of simulation time.
- Lead index ℓ = 1, 2, ... counts emulator steps after the last context frame; lead
  time = ℓ·Δ·frame_dt.
- Alignment with the truth: the context is truth frames s, s+Δ, ..., s+(c−1)Δ (s is the
  context start), and lead ℓ is truth frame s + (c − 1 + ℓ)Δ. With Δ = 1, prediction
  j = ℓ − 1 (0-based) is truth frame s + c + j. Predictions carry this index as their
  `frame` coordinate and `score_rollout` aligns on it.
- Deterministic emulators ignore `members` > 1 (their members would be identical): the
  rollout has one member and says so in `coercions` / the `coercions` attribute.
- Computation runs under torch.inference_mode(), entered around each step and never held
  across a `yield`: inference mode is thread-local state, and holding it while the consumer
  runs would leak it into the caller's code. Yielded tensors are ordinary (non-inference)
  CPU tensors.
"""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import numpy as np
import torch
import xarray

from engine.device import resolve_device, resolve_dtype
from engine.diffusion.samplers import SAMPLER_NAMES, Sampler, get_sampler
from engine.errors import LatentsimError, ParameterError, UnknownNameError
from engine.metrics import (
    EPS,
    SSR_EPS,
    ensemble_scores,
    spectral_band_errors,
)
from engine.pipeline import Pipeline, out_of_training_range, resolve_conditions
from engine.systems import get_system
from engine.systems.base import System, SystemSpec, seed_generator

# seed_generator streams 0 and 1 draw conditions and initial conditions (systems/base.py);
# ensemble noise gets its own, so a rollout seed equal to a truth seed shares nothing.
STREAM_ENSEMBLE = 2
SEED_LIMIT = 2**63
CONVENTIONS = "CF-1.11"


class RolloutDivergedError(LatentsimError, FloatingPointError):
    """An emulator produced non-finite values; the blocks before this one were valid."""

    def __init__(self, member: int, lead: int, lead_time: float, where: list[str]):
        self.member, self.lead, self.lead_time, self.where = member, lead, lead_time, where
        super().__init__(
            f"rollout diverged: member {member} is non-finite at lead {lead} "
            f"(lead time {lead_time:.6g}) in {', '.join(where)}"
        )


def _integer(name: str, value: object, low: int, high: int | None = None, why: str = "") -> int:
    valid = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
    valid += why
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, value, valid)
    if value < low or (high is not None and value > high):
        raise ParameterError(name, value, valid)
    return int(value)


@dataclass(frozen=True)
class RolloutConfig:
    """How to roll an emulator out. Values are checked on construction.

    members: ensemble size K (rows of one batch). Deterministic emulators run 1 member
        whatever K is, and report the coercion.
    context: c frames conditioning each emulator call, 1..L−1 (checked against the
        emulator's window L when the rollout starts); each call generates L − c frames.
    horizon: frames to predict (the last block is truncated to it).
    sampler, steps, sampler_options: a sampler of engine.diffusion (ignored by
        deterministic emulators), e.g. sampler="ab", sampler_options={"order": 3}.
    seed: seeds the ensemble noise; the same seed, K and config reproduce a rollout.
    device: None runs on the pipeline's device; otherwise the pipeline is moved there.
    """

    members: int = 1
    context: int = 1
    horizon: int = 20
    sampler: str = "ab"
    steps: int = 16
    sampler_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("members", "context", "horizon", "steps"):
            object.__setattr__(self, name, _integer(name, getattr(self, name), 1))
        object.__setattr__(self, "seed", _integer("seed", self.seed, 0, SEED_LIMIT - 1))
        if self.sampler not in SAMPLER_NAMES:
            raise UnknownNameError("sampler", self.sampler, SAMPLER_NAMES)
        if not isinstance(self.sampler_options, Mapping):
            raise ParameterError("sampler_options", self.sampler_options, "a mapping")
        # Read-only, so the checked options cannot change after this check.
        object.__setattr__(self, "sampler_options", MappingProxyType(dict(self.sampler_options)))
        if "steps" in self.sampler_options:
            raise ParameterError("sampler option", "steps", "set RolloutConfig.steps instead")
        self.make_sampler()  # unknown or out-of-range options fail now, not mid-rollout
        if self.device is not None:
            resolve_device(self.device)

    def make_sampler(self) -> Sampler:
        return get_sampler(self.sampler, steps=self.steps, **self.sampler_options)

    def resolve(self, pipeline: Pipeline) -> tuple[RolloutConfig, tuple[str, ...]]:
        """(the config this pipeline runs, the coercions applied to get it)."""
        window = pipeline.window
        why = f" (the emulator's window is {window} and generates at least 1 frame per call)"
        _integer("context", self.context, 1, window - 1, why)
        if pipeline.kind == "deterministic" and self.members > 1:
            note = (
                f"members {self.members} -> 1: a deterministic emulator's members "
                "would be identical"
            )
            return replace(self, members=1), (note,)
        return self, ()


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


@dataclass(frozen=True)
class TruthFrame:
    """One solver frame of a ground-truth run."""

    index: int  # stored-frame index, 0-based
    time: float  # simulation time
    frame: torch.Tensor  # (C, X, Y) float32 CPU, physical units
    progress: float  # frames produced / n_frames
    elapsed: float  # seconds spent computing so far


T = TypeVar("T")


class _Clock:
    """Accumulates wall time spent inside `with clock:` blocks."""

    def __init__(self) -> None:
        self.total = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.total += time.perf_counter() - self._start


class _Stream(Generic[T]):
    """An iterator over a generator that keeps what it yielded and can be closed.

    `close()` (or leaving a `with` block) stops the work: the generator is closed at the
    `yield` it is suspended in, and nothing after it runs.
    """

    def __init__(self, generator: Iterator[T]):
        self._generator = generator
        self.items: list[T] = []

    def __iter__(self) -> _Stream[T]:
        return self

    def __next__(self) -> T:
        item = next(self._generator)
        self.items.append(item)
        return item

    def close(self) -> None:
        self._generator.close()  # type: ignore[attr-defined]

    def __enter__(self) -> _Stream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- emulator rollouts -----------------------------------------------------------------
class RolloutStream(_Stream[RolloutBlock]):
    """Blocks of an emulator rollout, as they are computed.

    Attributes: the effective `config`, its `coercions`, the full `conditions` (defaults
    filled in) and `context_start`. `dataset()` gathers the blocks yielded so far, so a
    cancelled or diverged rollout still gives its valid part.
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
        self.pipeline, self.conditions, self.config = pipeline, conditions, config
        self.coercions, self.context_start = coercions, context_start
        self._label = pipeline.label(conditions)
        super().__init__(self._run(context))

    @property
    def blocks(self) -> list[RolloutBlock]:
        return self.items

    def lead_time(self, lead: np.ndarray) -> np.ndarray:
        return lead * (self.pipeline.spec.frame_dt * self.pipeline.frame_stride)

    def frame_index(self, lead: np.ndarray) -> np.ndarray:
        return self.context_start + (self.config.context - 1 + lead) * self.pipeline.frame_stride

    def _run(self, context: torch.Tensor) -> Iterator[RolloutBlock]:
        pipeline, config, emulator = self.pipeline, self.config, self.pipeline.emulator
        members, c = config.members, config.context
        per_call = pipeline.window - c
        clock = _Clock()
        with clock, torch.inference_mode():
            window = pipeline.encode(context).unsqueeze(0).repeat(members, 1, 1, 1, 1)
            label = self._label.expand(members, -1)
            sampler = config.make_sampler() if pipeline.kind == "diffusion" else None
            generator = torch.Generator(device=pipeline.device)
            generator.manual_seed(seed_generator(config.seed, STREAM_ENSEMBLE).initial_seed())
            nfe_per_call = int(emulator.nfe(sampler))
        expected = (members, per_call, *window.shape[2:])
        produced = nfe = 0
        while produced < config.horizon:
            with clock:
                with torch.inference_mode():
                    new = emulator.generate(window, label, sampler=sampler, generator=generator)
                    if tuple(new.shape) != expected:
                        raise ParameterError("emulator output shape", tuple(new.shape), expected)
                    take = min(per_call, config.horizon - produced)
                    kept = new[:, :take]
                    frames = pipeline.decode(kept)
                    lead = np.arange(produced + 1, produced + take + 1)
                    self._check_finite(kept, frames, lead)
                    window = torch.cat([window, new], dim=1)[:, -c:]
                frames = _cpu_copy(frames)
                latents = _cpu_copy(kept) if pipeline.space == "latent" else None
            produced += take
            nfe += nfe_per_call
            yield RolloutBlock(
                lead=lead,
                lead_time=self.lead_time(lead),
                frame_index=self.frame_index(lead),
                frames=frames,
                latents=latents,
                progress=produced / config.horizon,
                elapsed=clock.total,
                seconds_per_frame=clock.total / produced,
                nfe=nfe,
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
        raise RolloutDivergedError(
            bad_member, lead_value, float(self.lead_time(lead_value)), where or ["latents"]
        )

    def dataset(self) -> xarray.Dataset:
        """The blocks so far as a Dataset with dims (member, time, x, y); see `rollout`."""
        spec, config = self.pipeline.spec, self.config
        grid = spec.grid.shape
        empty = np.zeros((config.members, 0, len(spec.channel_names), *grid), np.float32)
        frames = np.concatenate([empty, *(b.frames.numpy() for b in self.blocks)], axis=1)
        lead = np.concatenate([np.zeros(0, np.int64), *(b.lead for b in self.blocks)])
        last = self.blocks[-1] if self.blocks else None
        diffusion = self.pipeline.kind == "diffusion"
        attrs = {
            "title": f"{spec.title}: {self.pipeline.kind} emulator rollout",
            **self.pipeline.describe(),
            "sampler": config.sampler if diffusion else "none",
            "sampler_options": json.dumps(dict(config.sampler_options) if diffusion else {}),
            "steps": config.steps if diffusion else 0,
            "members": config.members,
            "context": config.context,
            "context_start": self.context_start,
            "horizon": config.horizon,
            "seed": config.seed,
            "frame_dt": spec.frame_dt,
            **_conditions_attrs(spec, self.conditions),
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
        return _fields_dataset(spec, frames, ("member", "time"), coords, attrs)


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
        context_frames = _dataset_frames(context_frames, spec.channel_names)[0]
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
    context_start = _integer("context_start", 0 if context_start is None else context_start, 0)
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


# -- ground truth and reconstructions ----------------------------------------------------
class TruthStream(_Stream[TruthFrame]):
    """Solver frames of one trajectory as they are computed; `dataset()` gathers them."""

    def __init__(
        self,
        system: System,
        conditions: dict[str, Any],
        seed: int,
        n_frames: int,
        device: torch.device,
        dtype: torch.dtype,
    ):
        self.system, self.conditions, self.seed, self.n_frames = system, conditions, seed, n_frames
        super().__init__(self._run(device, dtype))

    @property
    def frames(self) -> list[TruthFrame]:
        return self.items

    def _run(self, device: torch.device, dtype: torch.dtype) -> Iterator[TruthFrame]:
        times = self.system.spec.frame_times(self.n_frames)
        clock = _Clock()
        solver = self.system.frames(
            [self.conditions], [self.seed], n_frames=self.n_frames, device=device, dtype=dtype
        )
        for index in range(self.n_frames):
            # no_grad rather than inference_mode: solvers cache tensors across calls
            # (spectral coefficients), and inference tensors in a shared cache would break
            # later in-place use outside inference mode.
            with clock, torch.no_grad():
                frame = next(solver)[0]
            yield TruthFrame(
                index=index,
                time=float(times[index]),
                frame=_cpu_copy(frame),
                progress=(index + 1) / self.n_frames,
                elapsed=clock.total,
            )

    def dataset(self) -> xarray.Dataset:
        """The frames so far as a Dataset with dims (time, x, y); see `truth_dataset`."""
        spec = self.system.spec
        empty = np.zeros((0, len(spec.channel_names), *spec.grid.shape), np.float32)
        frames = np.concatenate([empty, *(f.frame.numpy()[None] for f in self.frames)])
        index = np.arange(len(self.frames))
        attrs = {
            "title": f"{spec.title}: ground truth",
            "system": spec.name,
            "source": spec.source,
            "references": spec.references,
            "seed": self.seed,
            "frame_dt": spec.frame_dt,
            **_conditions_attrs(spec, self.conditions),
            "complete": int(len(index) == self.n_frames),
            "elapsed_s": self.frames[-1].elapsed if self.frames else 0.0,
        }
        coords = {
            "time": (
                "time",
                spec.frame_times(self.n_frames)[: len(index)].astype(np.float64),
                {"long_name": "simulation time", "units": "1", "axis": "T"},
            ),
            "frame": ("time", index, {"long_name": "stored-frame index"}),
        }
        return _fields_dataset(spec, frames, ("time",), coords, attrs)


def stream_truth(
    system: System | str,
    conditions: Mapping[str, Any] | None = None,
    seed: int = 0,
    n_frames: int | None = None,
    *,
    grid: tuple[int, int] | None = None,
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype = "float32",
) -> TruthStream:
    """Run the solver for one trajectory, frame by frame (for progress and cancellation).

    `system` is a System or a registered name (then on `grid`, default the system's).
    Frames are those `System.frames` gives for (conditions, seed): the same seed gives the
    same initial condition as in generated datasets. Inputs are checked here.
    """
    if isinstance(system, str):
        system = get_system(system, grid)
    elif grid is not None and tuple(grid) != tuple(system.spec.grid.shape):
        raise ParameterError("grid", grid, f"None or the system's grid {system.spec.grid.shape}")
    resolved = resolve_conditions(system.spec, conditions)
    seed = _integer("seed", seed, 0, SEED_LIMIT - 1)
    n_frames = _integer("n_frames", system.spec.n_frames if n_frames is None else n_frames, 1)
    return TruthStream(
        system, resolved, seed, n_frames, resolve_device(device), resolve_dtype(dtype)
    )


def truth_dataset(
    system: System | str,
    conditions: Mapping[str, Any] | None = None,
    seed: int = 0,
    n_frames: int | None = None,
    *,
    grid: tuple[int, int] | None = None,
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype = "float32",
) -> xarray.Dataset:
    """One solver trajectory as a Dataset with dims (time, x, y).

    One float32 variable per channel (CF long_name, units); `time` is the simulation time
    and `frame` the stored-frame index; attributes record system, source, seed and
    conditions. Arguments as for `stream_truth`.
    """
    stream = stream_truth(system, conditions, seed, n_frames, grid=grid, device=device, dtype=dtype)
    for _ in stream:
        pass
    return stream.dataset()


def reconstruct(pipeline: Pipeline, truth: xarray.Dataset) -> xarray.Dataset:
    """decode(encode(truth)): what the pipeline's compression keeps of the truth.

    A latent emulator can at best reproduce this, so scoring it against the truth gives
    the floor of its errors at this rate (zero up to round-off for pixel pipelines). The
    result has the truth's dims, coordinates and attributes, plus the pipeline's.
    """
    values, dims = _dataset_frames(truth, pipeline.spec.channel_names)
    restored = _cpu_copy(pipeline.decode(pipeline.encode(values)))
    result = truth.copy()
    for index, name in enumerate(pipeline.spec.channel_names):
        result[name] = (dims, restored[..., index, :, :].numpy(), truth[name].attrs)
    result.attrs.update(pipeline.describe())
    result.attrs["title"] = f"{truth.attrs.get('title', pipeline.spec.title)}, reconstructed"
    return result


# -- scores ---------------------------------------------------------------------------
# name -> (long_name, units or None when in each field's own units)
SCORE_VARIABLES: dict[str, tuple[str, str | None]] = {
    "vrmse": ("VRMSE of the ensemble mean (RMSE / spatial std of the truth)", "1"),
    "rmse": ("RMSE of the ensemble mean", None),
    "nrmse": ("NRMSE of the ensemble mean (RMSE / spatial RMS of the truth)", "1"),
    "spread": ("ensemble spread, sqrt((K+1)/(K-1) mean_k,space (v_k - m)^2)", None),
    "ssr": ("spread-skill ratio (spread + 1e-3) / (RMSE + 1e-3)", "1"),
    "crps_fair": ("fair CRPS of the ensemble (K >= 2)", None),
    "spectral_low": ("RMS relative power-spectrum error, low band", "1"),
    "spectral_mid": ("RMS relative power-spectrum error, mid band", "1"),
    "spectral_high": ("RMS relative power-spectrum error, high band", "1"),
}
# Scale-free scores, which may be averaged over fields with different units.
FIELD_MEAN_SCORES = ("vrmse", "nrmse", "ssr", "spectral_low", "spectral_mid", "spectral_high")
# Prediction attributes that describe what was scored, copied onto the scores.
SCORED_ATTRS = (
    *("system", "rate", "emulator", "emulator_kind", "emulator_space", "autoencoder"),
    *("sampler", "steps", "members", "context", "frame_stride", "seed", "conditions"),
)


def score_rollout(
    prediction: xarray.Dataset, truth: xarray.Dataset, *, context_start: int | None = None
) -> xarray.Dataset:
    """Per-field, per-lead-time scores of a prediction against the truth (paper section 8).

    prediction: a `rollout` Dataset (member, time, x, y); a Dataset without `member`
        (e.g. `reconstruct`) scores as one member.
    truth: dims (time, x, y) with the same channel variables; frames are matched through
        its `frame` coordinate (else its position along time).
    context_start: None aligns on the prediction's `frame` coordinate; an integer s
        re-aligns a rollout to truth frame s + (c − 1 + lead)·Δ (its context was truth
        frames s, s+Δ, ..., s+(c−1)Δ).

    Returns dims (field, time): vrmse, rmse, nrmse (of the ensemble mean), spread, ssr,
    crps_fair (K >= 2 only) and spectral_low/mid/high; plus `mean_over_fields`
    (metric, time), the plain mean over fields of the scale-free scores.
    """
    channels = [name for name, var in prediction.data_vars.items() if {"x", "y"} <= set(var.dims)]
    if not channels:
        raise ParameterError("prediction", list(prediction.data_vars), "field variables on (x, y)")
    missing = [name for name in channels if name not in truth.data_vars]
    if missing:
        raise ParameterError("truth", list(truth.data_vars), f"variables {', '.join(channels)}")
    if "member" not in prediction.dims:
        prediction = prediction.expand_dims(member=1)
    if prediction.sizes["time"] == 0:
        raise ParameterError("prediction", "no frames", "at least one predicted frame")
    for axis in ("x", "y"):
        if prediction.sizes[axis] != truth.sizes.get(axis):
            size = prediction.sizes[axis]
            raise ParameterError(f"truth {axis} size", truth.sizes.get(axis), f"{size}, predicted")
    wanted = _aligned_frames(prediction, context_start)
    available = truth["frame"].values if "frame" in truth.coords else np.arange(truth.sizes["time"])
    position = {int(f): i for i, f in enumerate(available)}
    absent = [int(f) for f in wanted if int(f) not in position]
    if absent:
        have = f"{available.min()}..{available.max()}" if len(available) else "none"
        raise ParameterError(
            "truth frames", have, f"frames {wanted.min()}..{wanted.max()} to score this prediction"
        )
    truth = truth.isel(time=[position[int(f)] for f in wanted])
    members = torch.from_numpy(
        np.stack([prediction[c].transpose("member", "time", "x", "y").values for c in channels], 2)
    ).double()
    target = torch.from_numpy(
        np.stack([truth[c].transpose("time", "x", "y").values for c in channels], 1)
    ).double()
    scores = ensemble_scores(members, target)
    scores.pop("crps")
    bands = spectral_band_errors(members, target, member_dim=0)
    scores.update({f"spectral_{band}": value for band, value in bands.items()})

    units = [str(prediction[c].attrs.get("units", "1")) for c in channels]
    time_coords = {
        name: ("time", coord.values, coord.attrs)
        for name, coord in prediction.coords.items()
        if coord.dims == ("time",)
    }
    time_coords["frame"] = ("time", wanted, {"long_name": "index of the matching truth frame"})
    coords = {
        "field": ("field", channels),
        "field_units": ("field", units, {"long_name": "units of the field"}),
        "metric": ("metric", list(FIELD_MEAN_SCORES)),
        **time_coords,
    }
    data_vars = {}
    for name in SCORE_VARIABLES:
        if name in scores:
            long_name, unit = SCORE_VARIABLES[name]
            attrs = {"long_name": long_name}
            attrs.update(
                {"units": unit} if unit else {"comment": "in each field's units (field_units)"}
            )
            data_vars[name] = (("field", "time"), scores[name].T.float().numpy(), attrs)
    mean = np.stack([scores[name].mean(dim=1).float().numpy() for name in FIELD_MEAN_SCORES])
    data_vars["mean_over_fields"] = (
        ("metric", "time"),
        mean,
        {"long_name": "mean over fields of the scale-free scores", "units": "1"},
    )
    attrs = {key: prediction.attrs[key] for key in SCORED_ATTRS if key in prediction.attrs}
    attrs.update(
        {
            "Conventions": CONVENTIONS,
            "title": f"scores of {prediction.attrs.get('title', 'a prediction')}",
            "members": prediction.sizes["member"],
            "metric_conventions": (
                f"spatial means over (x, y) per field; population variance; eps {EPS:g} in "
                f"VRMSE/NRMSE, {SSR_EPS:g} in the spread-skill ratio"
            ),
        }
    )
    return xarray.Dataset(data_vars, coords=coords, attrs=attrs)


def _aligned_frames(prediction: xarray.Dataset, context_start: int | None) -> np.ndarray:
    if context_start is None:
        if "frame" in prediction.coords:
            return prediction["frame"].values.astype(np.int64)
        return np.arange(prediction.sizes["time"])
    start = _integer("context_start", context_start, 0)
    if "lead" not in prediction.coords or "context" not in prediction.attrs:
        raise ParameterError(
            "context_start", start, "None for a prediction without lead and context"
        )
    stride = int(prediction.attrs.get("frame_stride", 1))
    lead = prediction["lead"].values.astype(np.int64)
    return start + (int(prediction.attrs["context"]) - 1 + lead) * stride


# -- xarray helpers --------------------------------------------------------------------
def _cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 CPU copy; made outside inference mode, it is an ordinary tensor."""
    return tensor.to("cpu", torch.float32, copy=True)


def _dataset_frames(
    dataset: xarray.Dataset, channels: tuple[str, ...]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(values (..., C, X, Y), the leading dims + (x, y)) of a Dataset's channel variables."""
    missing = [name for name in channels if name not in dataset.data_vars]
    if missing:
        raise ParameterError(
            "dataset variables", sorted(dataset.data_vars), f"channels {', '.join(channels)}"
        )
    arrays = [dataset[name].transpose(..., "x", "y") for name in channels]
    dims = tuple(arrays[0].dims)
    return np.stack([a.transpose(*dims).values for a in arrays], axis=-3), dims


def _conditions_attrs(spec: SystemSpec, conditions: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "conditions": json.dumps(dict(conditions)),
        "out_of_training_range": ", ".join(out_of_training_range(spec, conditions)),
    }


def _fields_dataset(
    spec: SystemSpec,
    frames: np.ndarray,
    lead_dims: tuple[str, ...],
    coords: dict[str, Any],
    attrs: dict[str, Any],
) -> xarray.Dataset:
    """One CF-annotated variable per channel of `frames` (..., C, X, Y), plus x/y coords."""
    dims = (*lead_dims, "x", "y")
    described = {}
    for spec_field in spec.fields:
        for name in spec_field.channel_names:
            component = name[len(spec_field.name) + 1 :]
            long_name = spec_field.long_name + (f", {component} component" if component else "")
            described[name] = {"long_name": long_name, "units": spec_field.units}
    data_vars = {
        name: (dims, frames[..., channel, :, :], described[name])
        for channel, name in enumerate(spec.channel_names)
    }
    x, y = spec.grid.coordinates()
    grid_coords = {
        axis: (axis, values, {"long_name": f"{axis} coordinate", "units": "1", "axis": name})
        for axis, name, values in (("x", "X", x), ("y", "Y", y))
    }
    return xarray.Dataset(
        data_vars,
        coords={**coords, **grid_coords},
        attrs={"Conventions": CONVENTIONS, **attrs},
    )
