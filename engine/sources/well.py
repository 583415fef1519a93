"""One trajectory of a Well-format dataset, read on demand (not the whole split).

A dataset is a single HDF5 file, a directory of them, or a dataset root with
`data/<split>/` (The Well's layout) or `<split>/` directories. Fields, grid, boundary
conditions and parameters come from the files (engine.data.well_reader parses and checks
them). A 3-D dataset is shown as a 2-D slice: the caller picks the axis across which to
cut and the index along it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.well_reader import (
    SPLITS,
    WellFileInfo,
    find_well_files,
    inspect_well_file,
    open_h5,
    read_field,
)
from engine.errors import DataFormatError, ParameterError, check_integer
from engine.sources.frames import Frames

ALL = "all"  # the split name of a file or a plain directory of files


@dataclass(frozen=True)
class TrajectoryRef:
    file: WellFileInfo
    index: int  # within the file


class WellSource:
    """A Well dataset: its splits, their trajectories, one trajectory's frames."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._files = {}
        for split in SPLITS:  # the splits present, empty ones left out
            folders = (self.path / "data" / split, self.path / split)
            if any(f.is_dir() and any(f.glob("*.h*5")) for f in folders):
                self._files[split] = find_well_files(self.path, split)
        if not self._files:
            self._files = {ALL: find_well_files(self.path)}
        self._infos = {
            split: [inspect_well_file(f, spatial_dims=(2, 3)) for f in files]
            for split, files in self._files.items()
        }
        first = next(iter(self._infos.values()))[0]
        self.info = first
        for infos in self._infos.values():
            for info in infos:
                if info.spatial_dims != first.spatial_dims or info.shape != first.shape:
                    raise DataFormatError(
                        info.path,
                        f"grid {dict(zip(info.spatial_dims, info.shape, strict=True))} differs "
                        f"from {dict(zip(first.spatial_dims, first.shape, strict=True))} "
                        f"in {first.path.name}",
                    )

    @property
    def name(self) -> str:
        return self.info.dataset_name

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self._files)

    @property
    def spatial_dims(self) -> tuple[str, ...]:
        return self.info.spatial_dims

    @property
    def shape(self) -> tuple[int, ...]:
        return self.info.shape

    @property
    def channels(self) -> tuple[str, ...]:
        return self.info.channel_names

    @property
    def n_steps(self) -> int:
        return self.info.n_steps

    def trajectories(self, split: str) -> list[TrajectoryRef]:
        infos = self._infos.get(split)
        if infos is None:
            raise ParameterError("split", split, f"one of {', '.join(self.splits)} ({self.path})")
        return [TrajectoryRef(info, i) for info in infos for i in range(info.n_trajectories)]

    @cached_property
    def boundary_conditions(self) -> dict[str, str]:
        names = {0: "wall", 1: "open", 2: "periodic"}
        labels = {}
        for dim, (lower, upper) in zip(self.spatial_dims, self.info.bc_codes, strict=True):
            lo, hi = names[int(lower)], names[int(upper)]
            labels[dim] = lo if lo == hi else f"{lo}|{hi}"
        return labels

    def parameters(self, split: str, trajectory: int) -> dict[str, Any]:
        """Constant scalars and per-file parameters of one trajectory."""
        ref = self._ref(split, trajectory)
        values: dict[str, Any] = dict(ref.file.file_parameters)
        with open_h5(ref.file.path) as file:
            for scalar in ref.file.scalars:
                if not scalar.time_varying:
                    stored = np.asarray(file["scalars"][scalar.name][()]).reshape(-1)
                    values[scalar.name] = float(stored[ref.index if scalar.sample_varying else 0])
        return values

    def frames(
        self, split: str, trajectory: int, *, axis: str | None = None, index: int | None = None
    ) -> Frames:
        """All frames of one trajectory; for 3-D data the slice at `index` across `axis`
        (default: the last axis, its middle)."""
        ref = self._ref(split, trajectory)
        info = ref.file
        dims = info.spatial_dims
        values = self._read(ref)  # (T, C, *spatial)
        if len(dims) == 3:
            axis = dims[-1] if axis is None else axis
            if axis not in dims:
                raise ParameterError("slice axis", axis, f"one of {', '.join(dims)}")
            position = dims.index(axis)
            size = info.shape[position]
            index = size // 2 if index is None else check_integer("slice index", index, 0, size - 1)
            values = np.take(values, index, axis=2 + position)
            kept = tuple(d for d in dims if d != axis)
            where = f", {axis} = {float(info.coords[axis][index]):.4g} (index {index})"
        elif len(dims) == 2:
            kept, where = dims, ""
        else:
            raise DataFormatError(info.path, f"{len(dims)}-D data; the explorer shows 2-D or 3-D")
        time = info.time if info.time.ndim == 1 else info.time[ref.index]
        units, long_names = self._field_text(info)
        return Frames(
            name=self.name,
            channels=info.channel_names,
            units=units,
            long_names=long_names,
            x=np.asarray(info.coords[kept[0]]),
            y=np.asarray(info.coords[kept[1]]),
            time=np.asarray(time, np.float64),
            values=np.ascontiguousarray(values, np.float32),
            attrs={
                "source": f"{info.path.name}, trajectory {ref.index}{where}",
                "dims": kept,
            },
        )

    def _ref(self, split: str, trajectory: int) -> TrajectoryRef:
        refs = self.trajectories(split)
        trajectory = check_integer(f"trajectory of split {split}", trajectory, 0, len(refs) - 1)
        return refs[trajectory]

    def _read(self, ref: TrajectoryRef) -> np.ndarray:
        info = ref.file
        samples = slice(ref.index, ref.index + 1)
        full = (1, info.n_steps, *info.shape)
        channels = []
        with open_h5(info.path) as file:
            for field in info.fields:
                stored = read_field(file, info, field, samples)
                components = len(field.channel_names(info.spatial_dims))
                shaped = np.broadcast_to(stored, (*full, *stored.shape[len(full) :]))
                shaped = shaped.reshape(*full, components)[0]  # (T, *spatial, D)
                channels.append(np.moveaxis(shaped, -1, 1))  # (T, D, *spatial)
        return np.concatenate(channels, axis=1)

    @staticmethod
    def _field_text(info: WellFileInfo) -> tuple[tuple[str, ...], tuple[str, ...]]:
        units, long_names = [], []
        for field in info.fields:
            for name in field.channel_names(info.spatial_dims):
                units.append(str(field.attrs.get("units", "1")))
                long_names.append(str(field.attrs.get("long_name", name)))
        return tuple(units), tuple(long_names)
