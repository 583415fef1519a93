"""The contract every physical system implements, and the specs that describe it.

A system is a batched PyTorch solver plus a declarative description (fields, parameters,
grid, output cadence). The description is what the data writer, the autoencoder's
preprocessing, the emulators' conditioning and the app's sliders all read, so it lives
in plain frozen dataclasses rather than in solver code.

Determinism: a trajectory is a pure function of (system config, conditions, seed). Each
trajectory draws its initial condition from its own generator, and solvers step every
trajectory with its own time step, so the result does not depend on which other
trajectories share the batch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import torch

from engine.device import resolve_device, resolve_dtype
from engine.errors import ParameterError, SolverDivergedError

BOUNDARY_TYPES = ("periodic", "open", "wall")

# Grids must stay divisible by the autoencoders' x16 spatial factor.
GRID_MULTIPLE = 16
GRID_MAX = 1024


@dataclass(frozen=True)
class FieldSpec:
    """One physical field. Vector fields (tensor_order=1) expand to `_x`/`_y` channels."""

    name: str
    long_name: str
    units: str = "1"
    tensor_order: int = 0
    positive: bool = False  # strictly positive everywhere: eligible for a log transform

    @property
    def channel_names(self) -> tuple[str, ...]:
        if self.tensor_order == 0:
            return (self.name,)
        return (f"{self.name}_x", f"{self.name}_y")


@dataclass(frozen=True)
class ParameterSpec:
    """A continuous conditioning parameter.

    `train_range` is where training data is drawn; `valid_range` (closed) is where the
    solver is still physically meaningful, for out-of-distribution experiments.
    """

    name: str
    long_name: str
    train_range: tuple[float, float]
    valid_range: tuple[float, float]
    default: float
    log_scale: bool = False  # drawn log-uniformly; the emulator label is log10(value)

    def check(self, value: float) -> float:
        value = float(value)
        lo, hi = self.valid_range
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ParameterError(self.name, value, f"[{lo:g}, {hi:g}]")
        return value

    def in_training_range(self, value: float) -> bool:
        lo, hi = self.train_range
        return lo <= float(value) <= hi

    def sample(self, generator: torch.Generator) -> float:
        u = float(torch.rand((), generator=generator, dtype=torch.float64))
        lo, hi = self.train_range
        if self.log_scale:
            return float(10 ** (math.log10(lo) + u * (math.log10(hi) - math.log10(lo))))
        return lo + u * (hi - lo)

    def label(self, value: float) -> float:
        """Value fed to networks: log10 for parameters that span decades."""
        return math.log10(value) if self.log_scale else float(value)


@dataclass(frozen=True)
class ChoiceSpec:
    """A categorical condition (e.g. boundary type) shared by a whole batch/file."""

    name: str
    long_name: str
    choices: tuple[str, ...]
    default: str

    def check(self, value: str) -> str:
        if value not in self.choices:
            raise ParameterError(self.name, value, f"one of {', '.join(self.choices)}")
        return value

    def sample(self, generator: torch.Generator) -> str:
        index = int(torch.randint(len(self.choices), (), generator=generator))
        return self.choices[index]


@dataclass(frozen=True)
class GridSpec:
    """A uniform cell-centred grid in the Well's [x, y] index order."""

    shape: tuple[int, int]
    extent: tuple[float, float]

    @property
    def spacing(self) -> tuple[float, float]:
        return (self.extent[0] / self.shape[0], self.extent[1] / self.shape[1])

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates along x and y (float32, as stored in Well files)."""
        return tuple(  # type: ignore[return-value]
            ((np.arange(n) + 0.5) * (length / n)).astype(np.float32)
            for n, length in zip(self.shape, self.extent, strict=True)
        )


@dataclass(frozen=True)
class SystemSpec:
    name: str
    title: str
    fields: tuple[FieldSpec, ...]
    parameters: tuple[ParameterSpec, ...]
    grid: GridSpec
    frame_dt: float  # simulation time between stored frames
    n_frames: int  # frames per stored trajectory
    t_start: float = 0.0  # discarded spin-up before frame 0
    choices: tuple[ChoiceSpec, ...] = ()
    source: str = ""  # solver and scheme, for file metadata
    references: str = ""
    # Mirror axes (0 = x, 1 = y) and whether x <-> y is a symmetry of the equations,
    # boundaries and initial-condition distribution: the augmentations training may use.
    mirror_axes: tuple[int, ...] = ()
    transpose_symmetric: bool = False
    # Periods of a fixed spatial forcing along each axis (0: none). On a periodic axis any
    # roll is a symmetry only without one; with n periods only rolls by whole periods are.
    forcing_periods: tuple[int, int] = (0, 0)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Channels in the Well's order: scalar (t0) fields, then vector components."""
        ordered = sorted(self.fields, key=lambda f: f.tensor_order)
        return tuple(name for f in ordered for name in f.channel_names)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> ParameterSpec:
        for p in self.parameters:
            if p.name == name:
                return p
        raise ParameterError("parameter", name, f"one of {', '.join(self.parameter_names)}")

    def frame_times(self, n_frames: int | None = None) -> np.ndarray:
        n = self.n_frames if n_frames is None else n_frames
        return (self.t_start + self.frame_dt * np.arange(n)).astype(np.float32)


@dataclass
class Conditions:
    """Validated conditions for a batch: per-trajectory parameters, shared choices."""

    parameters: dict[str, torch.Tensor]  # name -> (B,) float64 on CPU
    choices: dict[str, str] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return len(next(iter(self.parameters.values()))) if self.parameters else 0

    def describe(self, index: int) -> dict[str, Any]:
        """The conditions of one trajectory, for error messages and metadata."""
        described: dict[str, Any] = {k: float(v[index]) for k, v in self.parameters.items()}
        described.update(self.choices)
        return described


def seed_generator(seed: int, stream: int) -> torch.Generator:
    """An independent CPU generator per (seed, purpose).

    Streams keep the initial-condition noise independent of how many parameters were
    drawn, so overriding a parameter by hand leaves the initial condition unchanged.
    """
    if not (0 <= int(seed) < 2**63):
        raise ParameterError("seed", seed, f"an integer in [0, {2**63 - 1}]")
    derived = np.random.SeedSequence([int(seed), stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(derived[0]) << 32 | int(derived[1]))


STREAM_CONDITIONS = 0
STREAM_INITIAL_CONDITION = 1


class System(ABC):
    """A batched solver. Subclasses set `spec` in __init__ and implement three methods.

    - `initial_state`: per-trajectory initial state (any solver-internal object).
    - `advance`: integrate every trajectory from t0 to t1 (each with its own sub-steps).
    - `observe`: the stored fields, shape (B, C, X, Y), channels in `spec.channel_names`.
    """

    spec: SystemSpec
    default_grid: tuple[int, int]
    default_extent: tuple[float, float]

    def __init__(self, grid: Sequence[int] | None = None):
        self.grid = self._check_grid(self.default_grid if grid is None else grid)

    # -- to implement -------------------------------------------------------------------
    @abstractmethod
    def initial_state(
        self,
        conditions: Conditions,
        generators: Sequence[torch.Generator],
        device: torch.device,
        dtype: torch.dtype,
    ) -> Any: ...

    @abstractmethod
    def advance(self, state: Any, conditions: Conditions, t0: float, t1: float) -> Any: ...

    @abstractmethod
    def observe(self, state: Any, conditions: Conditions) -> torch.Tensor: ...

    def boundary_conditions(self, choices: Mapping[str, str]) -> tuple[str, str]:
        """Boundary type per axis (x, y), each one of BOUNDARY_TYPES."""
        return ("periodic", "periodic")

    def state_from_frame(self, frame: torch.Tensor, conditions: Conditions) -> Any:
        """The state whose observation is `frame` (B, C, X, Y), to restart the solver from a
        stored or reconstructed frame (predictability diagnosis). Systems whose stored
        fields determine their state implement it; each says which channels it reads."""
        raise NotImplementedError(f"{self.name} cannot restart from a stored frame")

    # -- shared machinery ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    def _check_grid(self, grid: Sequence[int]) -> GridSpec:
        shape = tuple(int(n) for n in grid)
        valid = f"two integers, multiples of {GRID_MULTIPLE} in [{GRID_MULTIPLE}, {GRID_MAX}]"
        if len(shape) != 2 or any(
            n < GRID_MULTIPLE or n > GRID_MAX or n % GRID_MULTIPLE for n in shape
        ):
            raise ParameterError("grid", tuple(grid), valid)
        return GridSpec(shape=shape, extent=self.default_extent)  # type: ignore[arg-type]

    def default_conditions(self) -> dict[str, Any]:
        values: dict[str, Any] = {p.name: p.default for p in self.spec.parameters}
        values.update({c.name: c.default for c in self.spec.choices})
        return values

    def sample_conditions(self, seed: int) -> dict[str, Any]:
        """Training-range conditions drawn deterministically from a trajectory seed."""
        generator = seed_generator(seed, STREAM_CONDITIONS)
        values: dict[str, Any] = {c.name: c.sample(generator) for c in self.spec.choices}
        values.update({p.name: p.sample(generator) for p in self.spec.parameters})
        return values

    def validate_conditions(self, conditions: Sequence[Mapping[str, Any]]) -> Conditions:
        """Check names and ranges; missing entries take their defaults."""
        if not conditions:
            raise ParameterError("conditions", list(conditions), "at least one trajectory")
        known = set(self.spec.parameter_names) | {c.name for c in self.spec.choices}
        for entry in conditions:
            unknown = set(entry) - known
            if unknown:
                raise ParameterError(
                    "parameter", sorted(unknown)[0], f"one of {', '.join(sorted(known))}"
                )
        defaults = self.default_conditions()
        parameters = {
            p.name: torch.tensor(
                [p.check(entry.get(p.name, defaults[p.name])) for entry in conditions],
                dtype=torch.float64,
            )
            for p in self.spec.parameters
        }
        choices = {}
        for c in self.spec.choices:
            values = {c.check(entry.get(c.name, defaults[c.name])) for entry in conditions}
            if len(values) > 1:
                raise ParameterError(
                    c.name, sorted(values), "a single value shared by every trajectory in a batch"
                )
            choices[c.name] = values.pop()
        return Conditions(parameters=parameters, choices=choices)

    def frames(
        self,
        conditions: Sequence[Mapping[str, Any]],
        seeds: Sequence[int],
        *,
        n_frames: int | None = None,
        device: str | torch.device | None = "cpu",
        dtype: str | torch.dtype = "float32",
    ) -> Iterator[torch.Tensor]:
        """Yield stored frames one at a time, shape (B, C, X, Y).

        A generator, so callers (progress bars, the app) can stream or stop early.
        Raises SolverDivergedError naming the trajectory, conditions and time when a
        frame is non-finite or a positive field is not.
        """
        validated = self.validate_conditions(conditions)
        seeds = [int(s) for s in seeds]
        if len(seeds) != validated.batch_size:
            raise ParameterError(
                "seeds", len(seeds), f"one seed per trajectory ({validated.batch_size})"
            )
        n = self.spec.n_frames if n_frames is None else int(n_frames)
        if n < 1:
            raise ParameterError("n_frames", n, "an integer >= 1")
        device, dtype = resolve_device(device), resolve_dtype(dtype)
        generators = [seed_generator(s, STREAM_INITIAL_CONDITION) for s in seeds]
        state = self.initial_state(validated, generators, device, dtype)
        times = self.spec.frame_times(n).astype(np.float64)
        t = 0.0
        for time in times:
            if time > t:
                state = self.advance(state, validated, t, float(time))
                t = float(time)
            frame = self.observe(state, validated)
            self._check_frame(frame, validated, t)
            yield frame

    def restart(
        self,
        frame: torch.Tensor,
        conditions: Sequence[Mapping[str, Any]],
        times: Sequence[float],
    ) -> Iterator[torch.Tensor]:
        """Yield the frames at `times[1:]` of trajectories restarted from `frame` (B, C, X,
        Y), observed at `times[0]`; each frame is checked as in `frames` (a non-physical
        one raises SolverDivergedError)."""
        validated = self.validate_conditions(conditions)
        if frame.ndim != 4 or frame.shape[0] != validated.batch_size:
            raise ParameterError(
                "frame.shape", tuple(frame.shape), f"(B={validated.batch_size}, C, X, Y)"
            )
        state = self.state_from_frame(frame, validated)
        for t0, t1 in pairwise(float(t) for t in times):
            state = self.advance(state, validated, t0, t1)
            observed = self.observe(state, validated)
            self._check_frame(observed, validated, t1)
            yield observed

    def simulate(
        self,
        conditions: Sequence[Mapping[str, Any]],
        seeds: Sequence[int],
        *,
        n_frames: int | None = None,
        device: str | torch.device | None = "cpu",
        dtype: str | torch.dtype = "float32",
    ) -> torch.Tensor:
        """Whole trajectories, shape (B, T, C, X, Y)."""
        frames = self.frames(conditions, seeds, n_frames=n_frames, device=device, dtype=dtype)
        return torch.stack(list(frames), dim=1)

    def _check_frame(self, frame: torch.Tensor, conditions: Conditions, time: float) -> None:
        finite = torch.isfinite(frame).flatten(2).all(dim=2)  # (B, C)
        positive_channels = self._positive_channels()
        for index in range(frame.shape[0]):
            reason = None
            if not bool(finite[index].all()):
                bad = [
                    self.spec.channel_names[c]
                    for c in range(frame.shape[1])
                    if not finite[index, c]
                ]
                reason = f"non-finite values in {', '.join(bad)}"
            else:
                for channel, name in positive_channels:
                    minimum = float(frame[index, channel].min())
                    if minimum <= 0:
                        reason = f"{name} must stay positive, minimum is {minimum:.3g}"
                        break
            if reason is not None:
                raise SolverDivergedError(
                    self.name, index, conditions.describe(index), time, reason
                )

    def _positive_channels(self) -> list[tuple[int, str]]:
        positive = {f.name for f in self.spec.fields if f.tensor_order == 0 and f.positive}
        return [(i, n) for i, n in enumerate(self.spec.channel_names) if n in positive]
