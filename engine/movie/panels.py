"""What a movie shows at each lead: the images of its panels and their colour scales.

The explorer's Fields tab and the movies show the same things with the same rules, so a
slide made from a movie matches what the class saw live: truth, ensemble mean and
members share one colour scale per field, taken from the truth's percentiles (so a
member drifting off-scale shows it); the ensemble std and the error of the mean have
their own scales, fixed fractions of that range, so they compare across lead times.
`ensemble_stats` and `mosaic` are the explorer's own (app/store.py imports them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray

from engine.errors import ParameterError, UnknownNameError
from engine.plots import showcase_channel

PANELS = ("truth", "mean", "members", "std", "error")
PANEL_TITLES = {
    "truth": "Ground truth (solver)",
    "mean": "Ensemble mean",
    "members": "Members",
    "std": "Ensemble std (uncertainty)",
    "error": "Error of the mean (mean − truth)",
}
NEEDS_TRUTH = ("truth", "error")
# Colour scales shared by the movies and the explorer's Fields tab (the app imports these):
# limits from robust truth percentiles, spread and error as fractions of that range.
CLIM_PERCENTILES = (0.5, 99.5)
STD_FRACTION = 0.25
ERROR_FRACTION = 0.5
COLORMAPS = {"field": "rainbow4", "std": "fire", "error": "coolwarm"}  # colorcet names
PANEL_SCALE = {
    "truth": "field",
    "mean": "field",
    "members": "field",
    "std": "std",
    "error": "error",
}


def ensemble_stats(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation) over members (K, ...); the std uses K − 1 (zero for K = 1)."""
    mean = members.mean(axis=0)
    if members.shape[0] < 2:
        return mean, np.zeros_like(mean)
    return mean, members.std(axis=0, ddof=1)


def mosaic_tiling(count: int, nx: int, ny: int, columns: int | None = None) -> tuple[int, int, int]:
    """(columns, rows, gap in cells) of the mosaic of `count` frames of nx × ny cells.

    Without `columns` the grid is chosen so the mosaic keeps roughly one frame's aspect
    ratio. A view can size its figure from this before any frame exists."""
    if columns is None:
        columns = min(
            range(1, count + 1),
            key=lambda c: abs(np.log((c * nx) / (-(-count // c) * ny)) - np.log(nx / ny)),
        )
    return columns, -(-count // columns), max(1, min(nx, ny) // 32)


def mosaic_cells(count: int, nx: int, ny: int, columns: int | None = None) -> tuple[int, int]:
    """The mosaic image's shape [x, y] in cells (see mosaic_tiling)."""
    columns, rows, gap = mosaic_tiling(count, nx, ny, columns)
    return columns * (nx + gap) - gap, rows * (ny + gap) - gap


def mosaic(frames: np.ndarray, columns: int | None = None) -> tuple[np.ndarray, int]:
    """Tile K frames (K, X, Y) into one (cols·X + gaps, rows·Y + gaps) image with NaN gaps.

    One image instead of K figures keeps the browser fast (bokeh/bokeh#6294).
    Returns (image in [x, y] order, columns).
    """
    count, nx, ny = frames.shape
    columns, rows, gap = mosaic_tiling(count, nx, ny, columns)
    image = np.full(mosaic_cells(count, nx, ny, columns), np.nan, np.float32)
    for k in range(count):
        col, row = k % columns, rows - 1 - k // columns  # member 0 top left
        image[
            col * (nx + gap) : col * (nx + gap) + nx, row * (ny + gap) : row * (ny + gap) + ny
        ] = frames[k]
    return image, columns


def check_panels(panels: Sequence[str]) -> tuple[str, ...]:
    """The panel names, checked: each one of PANELS, at least one, no repeats."""
    if isinstance(panels, str) or not panels:
        raise ParameterError("panels", panels, f"a non-empty list of {', '.join(PANELS)}")
    for name in panels:
        if name not in PANELS:
            raise UnknownNameError("panel", name, PANELS)
    if len(set(panels)) != len(panels):
        raise ParameterError("panels", list(panels), "each panel at most once")
    return tuple(panels)


@dataclass(frozen=True)
class Scale:
    low: float
    high: float
    colormap: str  # a colorcet name


@dataclass(frozen=True)
class MovieData:
    """One field of a rollout over lead time, with the matching truth frames."""

    members: np.ndarray  # (K, T, X, Y)
    truth: np.ndarray | None  # (T, X, Y) matched on the rollout's `frame` coordinate
    lead: np.ndarray  # (T,) emulator steps after the last context frame
    lead_time: np.ndarray  # (T,)
    frame: np.ndarray  # (T,) matching truth frame
    field: str
    units: str
    extent: tuple[float, float]
    attrs: dict

    @property
    def frames(self) -> int:
        return self.members.shape[1]

    def scales(self) -> dict[str, Scale]:
        """Colour scales from the truth's percentiles (the members' without a truth)."""
        values = self.truth if self.truth is not None else self.members
        finite = values[np.isfinite(values)]
        low, high = np.percentile(finite, CLIM_PERCENTILES) if finite.size else (0.0, 1.0)
        low, high = float(low), float(high)
        if high <= low:
            high = low + max(abs(low), 1.0) * 1e-3
        span = high - low
        return {
            "field": Scale(low, high, COLORMAPS["field"]),
            "std": Scale(0.0, STD_FRACTION * span, COLORMAPS["std"]),
            "error": Scale(-ERROR_FRACTION * span, ERROR_FRACTION * span, COLORMAPS["error"]),
        }

    def image(self, panel: str, t: int) -> tuple[np.ndarray, tuple[float, float]]:
        """(image in [x, y] order, its extent) of `panel` at time index `t`."""
        members = self.members[:, t]
        if panel == "truth":
            return self._truth(t), self.extent
        if panel == "members":
            tiled, _ = mosaic(members)
            dx, dy = self.extent[0] / members.shape[1], self.extent[1] / members.shape[2]
            return tiled, (tiled.shape[0] * dx, tiled.shape[1] * dy)
        mean, std = ensemble_stats(members)
        if panel == "mean":
            return mean, self.extent
        if panel == "std":
            return std, self.extent
        return mean - self._truth(t), self.extent

    def _truth(self, t: int) -> np.ndarray:
        if self.truth is None:
            raise ParameterError("panel", "truth/error", "a movie made with the truth")
        return self.truth[t]


def movie_data(
    rollout: xarray.Dataset, truth: xarray.Dataset | None = None, field: str | None = None
) -> MovieData:
    """Pick `field` (default: the system's showcase field) of a rollout Dataset
    (member, time, x, y), as written by engine.rollout or the explorer, and the truth
    frames (time, x, y) its `frame` coordinate points at."""
    channels = [name for name, var in rollout.data_vars.items() if {"x", "y"} <= set(var.dims)]
    if not channels:
        raise ParameterError("rollout", sorted(rollout.data_vars), "field variables on (x, y)")
    if rollout.sizes.get("time", 0) == 0:
        raise ParameterError("rollout", "no frames", "a rollout with at least one predicted frame")
    if field is None:
        field = channels[showcase_channel(channels)]
    elif field not in channels:
        raise UnknownNameError("field", field, channels)
    if "member" not in rollout.dims:
        rollout = rollout.expand_dims(member=1)
    members = rollout[field].transpose("member", "time", "x", "y").values.astype(np.float32)
    count = rollout.sizes["time"]
    frame = _coord(rollout, "frame", np.arange(count)).astype(np.int64)
    matched = None
    if truth is not None:
        if field not in truth.data_vars:
            raise ParameterError("truth", sorted(truth.data_vars), f"a variable {field!r}")
        available = _coord(truth, "frame", np.arange(truth.sizes["time"]))
        position = {int(f): i for i, f in enumerate(available)}
        absent = [int(f) for f in frame if int(f) not in position]
        if absent:
            raise ParameterError(
                "truth frames",
                f"{available.min()}..{available.max()}",
                f"frames {frame.min()}..{frame.max()}, those the rollout predicts",
            )
        picked = truth[field].transpose("time", "x", "y").values
        matched = picked[[position[int(f)] for f in frame]].astype(np.float32)
    x, y = rollout["x"].values, rollout["y"].values
    return MovieData(
        members=members,
        truth=matched,
        lead=_coord(rollout, "lead", np.arange(1, count + 1)).astype(np.int64),
        lead_time=rollout["time"].values.astype(np.float64),
        frame=frame,
        field=field,
        units=str(rollout[field].attrs.get("units", "1")),
        extent=(_extent(x), _extent(y)),
        attrs=dict(rollout.attrs),
    )


def _coord(dataset: xarray.Dataset, name: str, default: np.ndarray) -> np.ndarray:
    return dataset[name].values if name in dataset.coords else default


def _extent(centres: np.ndarray) -> float:
    """Domain length from cell-centre coordinates (uniform grids)."""
    if len(centres) < 2:
        return 1.0
    return float(centres[-1] - centres[0] + (centres[1] - centres[0]))
