"""A built-in system as a source: the solver's trajectory for a seed, so an emulator
registered for the system (`register_emulator(..., target="rayleigh_benard")`) runs
against the solver's truth through the same interface as a Well dataset.

Trajectory i is seed i with the conditions a generated dataset draws for that seed
(`System.sample_conditions`), on the system's default grid: what `latentsim generate`
would have written, computed on demand.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from engine.errors import ParameterError, check_integer
from engine.sources.frames import Frames
from engine.systems import get_system

SPLIT = "solver"
SEEDS = 1000  # trajectories offered (seeds 0..999)


class SolverSource:
    """The truth of one built-in system, trajectory = seed."""

    def __init__(self, system: str):
        self.system = get_system(system)
        self.spec = self.system.spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def splits(self) -> tuple[str, ...]:
        return (SPLIT,)

    @property
    def spatial_dims(self) -> tuple[str, ...]:
        return ("x", "y")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.grid.shape

    @property
    def channels(self) -> tuple[str, ...]:
        return self.spec.channel_names

    @property
    def n_steps(self) -> int:
        return self.spec.n_frames

    def trajectories(self, split: str) -> range:
        if split != SPLIT:
            raise ParameterError("split", split, SPLIT)
        return range(SEEDS)

    @cached_property
    def boundary_conditions(self) -> dict[str, str]:
        choices = {c.name: c.default for c in self.spec.choices}
        return dict(zip(self.spatial_dims, self.system.boundary_conditions(choices), strict=True))

    def parameters(self, split: str, trajectory: int) -> dict[str, Any]:
        return self.system.sample_conditions(self._seed(split, trajectory))

    def frames(
        self, split: str, trajectory: int, *, axis: str | None = None, index: int | None = None
    ) -> Frames:
        """The whole trajectory (seconds of solver time: call it off the event loop)."""
        from engine.rollout.truth import truth_dataset  # the solver only when asked

        seed = self._seed(split, trajectory)
        truth = truth_dataset(self.system, self.system.sample_conditions(seed), seed)
        values = np.stack([truth[c].values for c in self.channels], axis=1).astype(np.float32)
        described = {
            name: (f.units, f.long_name) for f in self.spec.fields for name in f.channel_names
        }
        return Frames(
            name=self.name,
            channels=self.channels,
            units=tuple(described[c][0] for c in self.channels),
            long_names=tuple(described[c][1] for c in self.channels),
            x=truth["x"].values,
            y=truth["y"].values,
            time=truth["time"].values.astype(np.float64),
            values=values,
            attrs={"source": f"{self.spec.title} solver, seed {seed}"},
        )

    def _seed(self, split: str, trajectory: int) -> int:
        self.trajectories(split)
        return check_integer("trajectory (seed)", trajectory, 0, SEEDS - 1)
