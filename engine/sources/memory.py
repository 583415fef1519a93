"""A Well-like xarray.Dataset already in memory (`open_well`'s output, a truth run) as a
source with the interface of WellSource, for `app.explore` in a notebook."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray

from engine.errors import DataFormatError, ParameterError, check_integer
from engine.sources.frames import Frames
from engine.sources.well import ALL

SPATIAL = ("x", "y", "z")


class MemoryWell:
    """Dims ([sample,] time, x, y[, z]), one variable per channel."""

    def __init__(self, dataset: xarray.Dataset):
        self.dataset = dataset
        self.spatial_dims = tuple(d for d in SPATIAL if d in dataset.dims)
        wanted = {"time", *self.spatial_dims}
        self.channels = tuple(str(n) for n in dataset.data_vars if wanted <= set(dataset[n].dims))
        if "time" not in dataset.dims or len(self.spatial_dims) < 2 or not self.channels:
            raise DataFormatError(
                self.name, f"not a Well-like dataset: dims {dict(dataset.sizes)}, no channels"
            )
        self.shape = tuple(dataset.sizes[d] for d in self.spatial_dims)

    @staticmethod
    def accepts(dataset: xarray.Dataset) -> bool:
        """open_well's output, or latentsim's truth (a system, no members, no leads)."""
        if "dataset_name" in dataset.attrs:
            return True
        return (
            "system" in dataset.attrs
            and "member" not in dataset.dims
            and ("lead" not in dataset.coords)
        )

    @property
    def name(self) -> str:
        return str(self.dataset.attrs.get("dataset_name", self.dataset.attrs.get("system", "data")))

    @property
    def splits(self) -> tuple[str, ...]:
        return (ALL,)

    @property
    def n_steps(self) -> int:
        return int(self.dataset.sizes["time"])

    def trajectories(self, split: str) -> list[int]:
        if split != ALL:
            raise ParameterError("split", split, ALL)
        return list(range(self.dataset.sizes.get("sample", 1)))

    @property
    def boundary_conditions(self) -> dict[str, str]:
        attrs = self.dataset.attrs
        return {d: str(attrs[f"bc_type_{d}"]) for d in self.spatial_dims if f"bc_type_{d}" in attrs}

    def parameters(self, split: str, trajectory: int) -> dict[str, Any]:
        one = self._sample(trajectory)
        return {
            str(k): float(v.values)
            for k, v in one.coords.items()
            if v.ndim == 0
            and np.issubdtype(v.dtype, np.number)
            and k not in ("sample", "trajectory")
        }

    def frames(
        self, split: str, trajectory: int, *, axis: str | None = None, index: int | None = None
    ) -> Frames:
        one = self._sample(trajectory)
        kept = self.spatial_dims
        if len(kept) == 3:
            axis = kept[-1] if axis is None else axis
            size = one.sizes[axis]
            index = size // 2 if index is None else check_integer("slice index", index, 0, size - 1)
            one = one.isel({axis: index})
            kept = tuple(d for d in kept if d != axis)
        values = np.stack(
            [one[c].transpose("time", *kept).values for c in self.channels], axis=1
        ).astype(np.float32)
        time = one["time"].values if "time" in one.coords else np.arange(self.n_steps)
        return Frames(
            name=self.name,
            channels=self.channels,
            units=tuple(str(one[c].attrs.get("units", "1")) for c in self.channels),
            long_names=tuple(str(one[c].attrs.get("long_name", c)) for c in self.channels),
            x=self._coordinate(one, kept[0]),
            y=self._coordinate(one, kept[1]),
            time=np.asarray(time, np.float64).reshape(-1),
            values=values,
            attrs={"source": f"{self.name} (in memory), trajectory {trajectory}"},
        )

    def _sample(self, trajectory: int) -> xarray.Dataset:
        count = len(self.trajectories(ALL))
        trajectory = check_integer("trajectory", trajectory, 0, count - 1)
        return (
            self.dataset.isel(sample=trajectory) if "sample" in self.dataset.dims else self.dataset
        )

    @staticmethod
    def _coordinate(dataset: xarray.Dataset, dim: str) -> np.ndarray:
        if dim in dataset.coords:
            return dataset[dim].values.astype(np.float64)
        return np.arange(dataset.sizes[dim], dtype=np.float64)
