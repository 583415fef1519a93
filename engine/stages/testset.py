"""Held-out test trajectories, as `latentsim evaluate` and the model cards' test metrics use them.

Both pick the same way (evenly spaced over the dataset's test split, whose seeds start at
2,000,000 while training used seeds from 0), condition each rollout on the trajectory's
recorded parameters, and score against the stored frames through `score_rollout`'s
`frame` alignment. Keeping that in one place is what makes a card's numbers reproducible
by `latentsim evaluate`'s card check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray

from engine.data.generate import SPLIT_SEED_OFFSETS
from engine.data.well_reader import load_array
from engine.emulator.labels import LabelSpec
from engine.errors import DataFormatError, ParameterError, check_integer
from engine.stages.common import even_subset
from engine.systems import get_system

SPLIT = "test"
TEST_SEED_START = SPLIT_SEED_OFFSETS[SPLIT]  # training used seeds from 0


def trajectory_conditions(
    labels: LabelSpec,
    parameters: Mapping[str, np.ndarray],
    choices: Mapping[str, np.ndarray],
    count: int,
    where: object,
) -> list[dict[str, Any]]:
    """Per-trajectory conditions (only what the label uses) from a split's recorded values.

    A dataset that lacks a conditioning value is refused rather than given defaults: the
    emulator would otherwise learn that every trajectory had the default value.
    """
    recorded = {**parameters, **choices}
    names = [p.name for p in labels.parameters] + [c.name for c in labels.choices]
    missing = [name for name in names if name not in recorded]
    if missing:
        raise DataFormatError(
            where, f"no recorded {', '.join(missing)} (has {', '.join(sorted(recorded))})"
        )
    return [
        {p.name: float(parameters[p.name][i]) for p in labels.parameters}
        | {c.name: str(choices[c.name][i]) for c in labels.choices}
        for i in range(count)
    ]


def rollout_horizon(frames: int, stride: int, context: int, wanted: int, where: object) -> int:
    """Emulator steps to predict: `wanted`, cut to what a trajectory of `frames` stored
    frames holds after `context` frames taken `stride` apart (from frame 0)."""
    horizon = min(wanted, (frames - 1) // stride - (context - 1))
    if horizon < 1:
        raise DataFormatError(
            where,
            f"test trajectories of {frames} frames leave nothing to predict after "
            f"{context} context frame(s) at stride {stride}",
        )
    return horizon


def frames_dataset(
    channel_names: Sequence[str], frames: np.ndarray, frame_index: Sequence[int] | None = None
) -> xarray.Dataset:
    """Frames (T, C, X, Y) as the (time, x, y) Dataset `score_rollout` aligns on `frame`
    (default: stored-frame indices 0..T-1)."""
    index = np.arange(len(frames)) if frame_index is None else np.asarray(frame_index)
    return xarray.Dataset(
        {name: (("time", "x", "y"), frames[:, c]) for c, name in enumerate(channel_names)},
        coords={"frame": ("time", index)},
    )


@dataclass(frozen=True)
class TestTrajectories:
    """The picked test trajectories of one dataset, in memory.

    `indices` are positions in the split (of `split_size`), `seeds` the solver seeds that
    generated them (None when the files do not record seeds); `fields` is
    (n, T, C, X, Y) in physical units; `parameters`/`choices` are the picks' recorded values.
    """

    dataset: Path
    split_size: int
    indices: np.ndarray
    seeds: np.ndarray | None
    fields: np.ndarray
    channel_names: tuple[str, ...]
    parameters: dict[str, np.ndarray]
    choices: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def frames(self) -> int:
        """Stored frames per trajectory."""
        return self.fields.shape[1]

    def conditions(self, labels: LabelSpec) -> list[dict[str, Any]]:
        """Each pick's conditions, as an emulator with `labels` is conditioned."""
        return trajectory_conditions(labels, self.parameters, self.choices, len(self), self.dataset)

    def truth(self, pick: int) -> xarray.Dataset:
        """Pick `pick` (0-based among the picks) as a Dataset aligned on `frame`."""
        return frames_dataset(self.channel_names, self.fields[pick])

    def solver_conditions(self, pick: int) -> dict[str, Any]:
        """The conditions the solver ran pick `pick` with, as recorded in the file."""
        values: dict[str, Any] = {k: str(v[pick]) for k, v in self.choices.items()}
        values.update({k: float(v[pick]) for k, v in self.parameters.items()})
        return values

    def seed_list(self) -> list[int] | None:
        return None if self.seeds is None else [int(s) for s in self.seeds]


def load_test_trajectories(dataset: str | Path, count: int) -> TestTrajectories:
    """`count` test trajectories evenly spaced over the split (all of them if it holds
    fewer). Only the picks are kept in memory."""
    check_integer("trajectories", count, 1)
    dataset = Path(dataset)
    arrays = load_array(dataset, SPLIT)
    total = len(arrays.fields)
    picks = even_subset(total, min(count, total)).numpy()
    return TestTrajectories(
        dataset=dataset,
        split_size=total,
        indices=picks,
        seeds=None if arrays.seeds is None else arrays.seeds[picks].copy(),
        fields=arrays.fields[picks].copy(),
        channel_names=tuple(arrays.channel_names),
        parameters={k: v[picks].copy() for k, v in arrays.parameters.items()},
        choices={k: v[picks].copy() for k, v in arrays.choices.items()},
    )


def resimulate(
    test: TestTrajectories, system: str, parameters: Mapping[str, float]
) -> TestTrajectories:
    """The same test trajectories run again by the real solver with `parameters` in place
    of their recorded values: same seeds (so the same initial-condition draws, which come
    from a stream of their own), same choices (e.g. boundary), same grid and frame times.

    This is how truth at other conditions is made without new seeds: only seeds of the
    test split (>= TEST_SEED_START) are accepted, so no training trajectory's initial
    condition is ever scored. Each trajectory is simulated alone (a solver's result does
    not depend on its batch), on the CPU in float32, as `latentsim generate` does.
    """
    if test.seeds is None:
        raise DataFormatError(
            test.dataset, "no recorded seeds: the test trajectories cannot be re-run"
        )
    training = [int(s) for s in test.seeds if s < TEST_SEED_START]
    if training:
        raise ParameterError(
            "test seeds", training, f"seeds >= {TEST_SEED_START:,} (the test split's)"
        )
    solver = get_system(system, test.fields.shape[-2:])
    unknown = sorted(set(parameters) - set(solver.spec.parameter_names))
    if unknown:
        raise ParameterError(
            "parameter", unknown[0], f"one of {', '.join(solver.spec.parameter_names)}"
        )
    fields = np.empty_like(test.fields)
    for pick, seed in enumerate(test.seeds):
        conditions = test.solver_conditions(pick)
        conditions |= {name: float(value) for name, value in parameters.items()}
        run = solver.simulate([conditions], [int(seed)], n_frames=test.frames)
        fields[pick] = run[0].numpy()
    shifted = {name: np.full(len(test), float(value)) for name, value in parameters.items()}
    return replace(test, fields=fields, parameters={**test.parameters, **shifted})
