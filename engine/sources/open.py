"""Open whatever a user points the explorer at: tell the kind apart by content."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DataFormatError
from engine.sources.rollout_file import RolloutFile, file_kind, open_rollout
from engine.sources.roots import AllowedRoots
from engine.sources.well import WellSource
from engine.zoo import Zoo, load_zoo
from engine.zoo.manifest import MANIFEST_NAME


@dataclass(frozen=True)
class ModelFolder:
    """A directory of latentsim model files with a zoo manifest (e.g. `latentsim train-*`
    output published with `latentsim zoo`): served instead of the shipped zoo."""

    path: Path

    def zoo(self) -> Zoo:
        return load_zoo(self.path)


Source = WellSource | RolloutFile | ModelFolder


def open_source(path: str | os.PathLike[str], roots: AllowedRoots | None = None) -> Source:
    """A Well dataset, a rollout file or a model folder at `path` (checked against
    `roots` when given, and so is any truth file a rollout refers to)."""
    path = roots.check(path) if roots is not None else Path(path)
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return ModelFolder(path)
    if path.is_dir() and path.suffix != ".zarr" and not _is_zarr(path):
        return WellSource(path)
    if file_kind(path) == "hdf5" and _is_well(path):
        return WellSource(path)

    def truth(target: Path, split: str | None, trajectory: int):
        checked = roots.check(target) if roots is not None else target
        source = WellSource(checked)
        split = split if split is not None else source.splits[0]
        return source.frames(split, trajectory)

    return open_rollout(path, truth_loader=truth)


def _is_zarr(path: Path) -> bool:
    try:
        return file_kind(path) == "zarr"
    except DataFormatError:
        return False


def _is_well(path: Path) -> bool:
    import h5py

    with h5py.File(path, "r") as file:
        return "t0_fields" in file or "t1_fields" in file or "dimensions" in file
