"""One trajectory's frames on a 2-D grid: the common form of every source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.systems.base import FieldSpec, GridSpec, SystemSpec


@dataclass(frozen=True)
class Frames:
    """Frames (T, C, X, Y) float32 with their channel names, units and coordinates.

    `x`, `y` are the stored coordinates (possibly non-uniform, e.g. Chebyshev); `time`
    the stored times. `spec()` describes them as a SystemSpec without parameters, which
    is what the explorer's views read (names, units, extent, frame interval).
    """

    name: str
    channels: tuple[str, ...]
    units: tuple[str, ...]
    long_names: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    time: np.ndarray
    values: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return (len(self.x), len(self.y))

    @property
    def uniform(self) -> bool:
        """Whether both axes are evenly spaced (images assume so; see `spec`)."""
        return all(_evenly_spaced(axis) for axis in (self.x, self.y))

    def spec(self) -> SystemSpec:
        """A parameterless SystemSpec: the extent spans the coordinates' range (cells
        of a non-uniform axis are then drawn evenly spaced; `uniform` says so)."""
        extent = tuple(_extent(axis) for axis in (self.x, self.y))
        steps = np.diff(self.time.astype(np.float64))
        frame_dt = float(np.median(steps)) if len(steps) and np.median(steps) > 0 else 1.0
        fields = tuple(
            FieldSpec(name=name, long_name=long_name, units=units)
            for name, long_name, units in zip(
                self.channels, self.long_names, self.units, strict=True
            )
        )
        return SystemSpec(
            name=self.name,
            title=self.name,
            fields=fields,
            parameters=(),
            grid=GridSpec(shape=self.grid_shape, extent=extent),  # type: ignore[arg-type]
            frame_dt=frame_dt,
            n_frames=len(self.time),
            source=str(self.attrs.get("source", "")),
        )


def _evenly_spaced(axis: np.ndarray) -> bool:
    steps = np.diff(axis.astype(np.float64))
    return len(steps) == 0 or bool(np.allclose(steps, steps[0], rtol=1e-3, atol=0))


def _extent(axis: np.ndarray) -> float:
    """The length covered by `len(axis)` cells centred on the coordinates."""
    if len(axis) < 2:
        return 1.0
    values = axis.astype(np.float64)
    span = float(values.max() - values.min())
    return span * len(values) / (len(values) - 1) if span > 0 else float(len(values))
