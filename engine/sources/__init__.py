"""What the explorer, notebooks and `latentsim view` can open besides the built-in systems.

- `open_source(path)`: a Well-format dataset (`WellSource`), a rollout file in NetCDF or
  Zarr (`RolloutFile`, schema in docs/sources.md) or a model folder (`ModelFolder`), told
  apart by their content, opened read-only;
- `AllowedRoots`: the directories a server may open files under, and nothing else;
- `register_emulator` and the `latentsim.emulators` entry point group: a user's own
  emulator (any callable or torch module following `EmulatorProtocol`), run and checked
  block by block by `run_emulator`.

Everything is turned into the same in-memory form, `Frames` (one trajectory, channels
first, on a 2-D grid), so the views downstream need not know where frames came from.
"""

from engine.sources.emulators import (
    ENTRY_POINT_GROUP,
    EmulatorEntry,
    EmulatorProtocol,
    emulators_for,
    load_entry_points,
    register_emulator,
    registered_emulators,
    run_emulator,
)
from engine.sources.frames import Frames
from engine.sources.memory import MemoryWell
from engine.sources.open import ModelFolder, Source, open_source
from engine.sources.rollout_file import MEMBER_DIMS, RolloutFile, open_rollout
from engine.sources.roots import AllowedRoots
from engine.sources.solver import SolverSource
from engine.sources.well import WellSource

__all__ = [
    "ENTRY_POINT_GROUP",
    "MEMBER_DIMS",
    "AllowedRoots",
    "EmulatorEntry",
    "EmulatorProtocol",
    "Frames",
    "MemoryWell",
    "ModelFolder",
    "RolloutFile",
    "SolverSource",
    "Source",
    "WellSource",
    "emulators_for",
    "load_entry_points",
    "open_rollout",
    "open_source",
    "register_emulator",
    "registered_emulators",
    "run_emulator",
]
