"""Ground truth from the solver, frame by frame, and what a pipeline's compression keeps of it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import xarray

from engine.device import resolve_device, resolve_dtype
from engine.errors import ParameterError, check_integer
from engine.pipeline import Pipeline, resolve_conditions
from engine.rollout.cf import conditions_attrs, cpu_copy, dataset_frames, fields_dataset
from engine.rollout.config import SEED_LIMIT
from engine.rollout.stream import Clock, Stream
from engine.systems import get_system
from engine.systems.base import System, SystemSpec


@dataclass(frozen=True)
class TruthFrame:
    """One solver frame of a ground-truth run."""

    index: int  # stored-frame index, 0-based
    time: float  # simulation time
    frame: torch.Tensor  # (C, X, Y) float32 CPU, physical units
    progress: float  # frames produced / n_frames
    elapsed: float  # seconds spent computing so far


@dataclass
class TruthRecord:
    """A solver run's frames and what labels them, without the solver: picklable, so the
    frames computed in a compute worker can be gathered and saved in another process."""

    spec: SystemSpec
    conditions: dict[str, Any]
    seed: int
    n_frames: int
    frames: list[TruthFrame] = field(default_factory=list)

    def detached(self) -> TruthRecord:
        """The same record with no frames: what to send before the frames."""
        return replace(self, frames=[])

    def dataset(self) -> xarray.Dataset:
        """The frames so far as a Dataset with dims (time, x, y); see `truth_dataset`."""
        spec = self.spec
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
            **conditions_attrs(spec, self.conditions),
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
        return fields_dataset(spec, frames, ("time",), coords, attrs)


class TruthStream(Stream[TruthFrame]):
    """Solver frames of one trajectory as they are computed; `record` gathers them."""

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
        super().__init__()
        self.record = TruthRecord(system.spec, conditions, seed, n_frames, frames=self.items)
        self._solver = self._run(device, dtype)

    @property
    def frames(self) -> list[TruthFrame]:
        return self.items

    def _produce(self) -> TruthFrame:
        return next(self._solver)

    def close(self) -> None:
        """Stop the solver where it is suspended (nothing after it runs)."""
        super().close()
        self._solver.close()

    def _run(self, device: torch.device, dtype: torch.dtype) -> Iterator[TruthFrame]:
        times = self.system.spec.frame_times(self.n_frames)
        clock = Clock()
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
                frame=cpu_copy(frame),
                progress=(index + 1) / self.n_frames,
                elapsed=clock.total,
            )

    def dataset(self) -> xarray.Dataset:
        """The frames so far as a Dataset with dims (time, x, y); see `truth_dataset`."""
        return self.record.dataset()


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
    seed = check_integer("seed", seed, 0, SEED_LIMIT - 1)
    n_frames = check_integer("n_frames", system.spec.n_frames if n_frames is None else n_frames, 1)
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
    values, dims = dataset_frames(truth, pipeline.spec.channel_names)
    restored = cpu_copy(pipeline.decode(pipeline.encode(values)))
    result = truth.copy()
    for index, name in enumerate(pipeline.spec.channel_names):
        result[name] = (dims, restored[..., index, :, :].numpy(), truth[name].attrs)
    result.attrs.update(pipeline.describe())
    result.attrs["title"] = f"{truth.attrs.get('title', pipeline.spec.title)}, reconstructed"
    return result
