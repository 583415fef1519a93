"""Rollout files (NetCDF or Zarr) from any code, checked against the schema of
docs/sources.md, which is what latentsim itself writes (engine.rollout `dataset()`,
the explorer's download).

The schema, in short: one variable per field channel with dims (member, time, x, y);
the member dim may be missing (a deterministic rollout) or be called `ensemble`,
`realization`, `sample` or `number`; `time` (or `lead`, `step`) counts leads and its
coordinate, if any, is the lead time; a `channel`/`field`/`variable` dim is split into
one variable per label. The truth, optional, is (in order of precedence) variables
`<channel>_truth` with dims (time, x, y); a Well file named by the attributes
`truth_file` (relative to the rollout file), `truth_trajectory` and `truth_split`,
aligned by the `frame` coordinate (the truth frame of each lead) or, without it, by
matching lead and truth times; or latentsim's own solver, when the attributes name a
registered `system` with its `seed` and `conditions`.

Nothing is written: files are opened read-only, loaded, and closed.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import xarray

from engine.errors import DataFormatError
from engine.sources.frames import Frames
from engine.systems import SYSTEM_NAMES, get_system

MEMBER_DIMS = ("member", "ensemble", "realization", "sample", "number")
TIME_DIMS = ("time", "lead", "step", "lead_time", "t")
CHANNEL_DIMS = ("channel", "field", "variable")
TRUTH_SUFFIX = "_truth"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NETCDF3_SIGNATURE = b"CDF"
# A rollout naming a solver truth makes the server run that solver up to its last frame;
# a frame coordinate far past the system's own trajectories would hold a compute worker
# for hours, so it is refused beyond this many trajectory lengths.
SOLVER_TRAJECTORIES_MAX = 10


@dataclass(frozen=True)
class RolloutFile:
    """A rollout in memory: members (K, L, C, X, Y) and, if found, the truth it predicts.

    `frame_index` (L,) is the truth frame each lead is compared with: `truth.values`
    is indexed by it. `notes` say what was assumed or is missing, for the user.
    A truth from the solver is computed on first use of `truth` (seconds of solver
    time, which a server spends on its compute worker, not while a file is picked).
    """

    path: str
    members: np.ndarray
    lead_time: np.ndarray
    frame_index: np.ndarray
    grid: Frames  # channels, units and coordinates; its values are the members' mean
    stored_truth: Frames | None
    notes: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    solve_truth: Callable[[], Frames] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def truth(self) -> Frames | None:
        return self.solve_truth() if self.solve_truth is not None else self.stored_truth

    @property
    def channels(self) -> tuple[str, ...]:
        return self.grid.channels

    @property
    def deterministic(self) -> bool:
        return self.members.shape[0] == 1

    def dataset(self) -> xarray.Dataset:
        """The rollout in latentsim's own schema (dims member, time, x, y)."""
        dims = ("member", "time", "x", "y")
        data_vars = {
            name: (dims, self.members[:, :, c], {"units": unit, "long_name": long_name})
            for c, (name, unit, long_name) in enumerate(
                zip(self.channels, self.grid.units, self.grid.long_names, strict=True)
            )
        }
        coords = {
            "member": np.arange(self.members.shape[0]),
            "time": ("time", self.lead_time, {"long_name": "lead time"}),
            "frame": ("time", self.frame_index, {"long_name": "matching truth frame"}),
            "x": self.grid.x,
            "y": self.grid.y,
        }
        plain = {k: v for k, v in self.attrs.items() if isinstance(v, str | int | float)}
        return xarray.Dataset(data_vars, coords=coords, attrs={**plain, "source_file": self.path})


def file_kind(path: Path) -> str:
    """'zarr', 'hdf5' (NetCDF4 or Well), 'netcdf3' or a DataFormatError naming the file."""
    if path.is_dir():
        if any((path / marker).exists() for marker in (".zgroup", ".zattrs", "zarr.json")):
            return "zarr"
        raise DataFormatError(path, "a directory that is not a Zarr store (no .zgroup/zarr.json)")
    if not path.is_file():
        raise DataFormatError(path, "no such file or directory")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if head.startswith(NETCDF3_SIGNATURE):
        return "netcdf3"
    raise DataFormatError(path, "not an HDF5, NetCDF or Zarr file (unrecognised header)")


def read_dataset(path: Path) -> xarray.Dataset:
    """Open a NetCDF/Zarr file read-only and load it into memory (then close it)."""
    kind = file_kind(path)
    engines = {"zarr": "zarr", "hdf5": "h5netcdf", "netcdf3": "scipy"}
    options = {"consolidated": _consolidated(path)} if kind == "zarr" else {}
    try:
        opened = xarray.open_dataset(path, engine=engines[kind], decode_times=False, **options)
    except (ImportError, ValueError) as err:
        if "zarr" in str(err) or "scipy" in str(err):
            extra = "zarr" if kind == "zarr" else "scipy"
            raise DataFormatError(path, f"reading {kind} needs `pip install {extra}`") from err
        raise DataFormatError(path, f"cannot read as {kind}: {err}") from err
    except OSError as err:
        raise DataFormatError(path, f"cannot read as {kind}: {err}") from err
    with opened:
        return opened.load()


def _consolidated(path: Path) -> bool:
    """Whether a Zarr store has consolidated metadata (asking xarray to guess warns)."""
    if (path / ".zmetadata").is_file():
        return True
    root = path / "zarr.json"
    return root.is_file() and "consolidated_metadata" in root.read_text(errors="replace")


def open_rollout(
    source: str | os.PathLike[str] | xarray.Dataset,
    *,
    truth_loader: Callable[[Path, str | None, int], Frames] | None = None,
) -> RolloutFile:
    """Read and check a rollout file (or an in-memory Dataset) against the schema.

    `truth_loader(path, split, trajectory)` reads a referenced Well trajectory (the
    caller passes one that checks the path is allowed); without one, a reference to a
    Well file is reported as not followed.
    """
    if isinstance(source, xarray.Dataset):
        path, dataset = Path(str(source.attrs.get("title", "dataset in memory"))), source
    else:
        path = Path(source)
        dataset = read_dataset(path)
    return _Parser(path, dataset, truth_loader).parse()


class _Parser:
    def __init__(self, path: Path, dataset: xarray.Dataset, truth_loader: Any):
        self.path, self.truth_loader = path, truth_loader
        self.dataset = _split_channels(dataset)
        self.notes: list[str] = []
        self.solve: Callable[[], Frames] | None = None

    def fail(self, problem: str) -> DataFormatError:
        return DataFormatError(self.path, problem)

    def integer_attribute(self, name: str, default: int | None = None) -> int:
        """A non-negative integer attribute; any writer's spelling of one (a NumPy or
        Python integer, an integral float, a numeric string) is accepted."""
        raw = self.dataset.attrs.get(name, default)
        number = isinstance(raw, numbers.Real) and not isinstance(raw, bool)
        if not (number and float(raw).is_integer() and raw >= 0) and not (
            isinstance(raw, str) and raw.strip().isdigit()
        ):
            raise self.fail(f"attribute {name}={raw!r} is not a non-negative integer")
        return int(raw)

    def parse(self) -> RolloutFile:
        ds = self.dataset
        names = [n for n in ds.data_vars if not str(n).endswith(TRUTH_SUFFIX)]
        time_dim = next((d for d in TIME_DIMS if d in ds.dims), None)
        if time_dim is None:
            raise self.fail(
                f"no time dim (one of {', '.join(TIME_DIMS)}); dims are {dict(ds.sizes)}"
            )
        member_dim = next((d for d in MEMBER_DIMS if d in ds.dims), None)
        fields = [n for n in names if time_dim in ds[n].dims and ds[n].ndim >= 3]
        if not fields:
            raise self.fail(
                f"no field variable with dims ({member_dim or 'member'}, {time_dim}, x, y); "
                f"variables: {', '.join(f'{n}{ds[n].dims}' for n in names) or 'none'}"
            )
        lead_dims = (member_dim, time_dim) if member_dim else (time_dim,)
        spatial = [d for d in ds[fields[0]].dims if d not in lead_dims]
        if len(spatial) != 2:
            raise self.fail(
                f"{fields[0]} has dims {ds[fields[0]].dims}; expected "
                f"({member_dim or 'member'}, {time_dim}) and two spatial dims"
            )
        expected = {*lead_dims, *spatial}
        skipped = [n for n in fields if set(ds[n].dims) != expected]
        if skipped:
            self.notes.append(f"skipped {', '.join(skipped)}: dims differ from {fields[0]}")
        fields = [n for n in fields if n not in skipped]
        if member_dim is None:
            self.notes.append("no member dim: a deterministic rollout (one member)")
        members = np.stack(
            [
                ds[n].transpose(*lead_dims, *spatial).values.astype(np.float32, copy=False)
                for n in fields
            ],
            axis=-3,
        )
        if member_dim is None:
            members = members[None]
        n_leads = members.shape[1]
        lead_time = self._lead_time(time_dim, n_leads)
        coords = [self._coordinate(d) for d in spatial]
        units = tuple(str(ds[n].attrs.get("units", "1")) for n in fields)
        long_names = tuple(str(ds[n].attrs.get("long_name", n)) for n in fields)
        grid = Frames(
            name=str(ds.attrs.get("system", self.path.stem)),
            channels=tuple(str(n) for n in fields),
            units=units,
            long_names=long_names,
            x=coords[0],
            y=coords[1],
            time=lead_time,
            values=members.mean(axis=0),
            attrs={"source": str(self.path.name), "dims": tuple(spatial)},
        )
        frame_index, truth = self._truth(grid, time_dim, spatial, n_leads)
        return RolloutFile(
            path=str(self.path),
            members=members,
            lead_time=lead_time,
            frame_index=frame_index,
            grid=grid,
            stored_truth=truth,
            notes=tuple(self.notes),
            attrs=dict(ds.attrs),
            solve_truth=self.solve,
        )

    def _lead_time(self, time_dim: str, n_leads: int) -> np.ndarray:
        ds = self.dataset
        if time_dim in ds.coords and np.issubdtype(ds[time_dim].dtype, np.number):
            return ds[time_dim].values.astype(np.float64)
        self.notes.append(f"no numeric {time_dim} coordinate: leads are numbered 1..{n_leads}")
        return np.arange(1, n_leads + 1, dtype=np.float64)

    def _coordinate(self, dim: str) -> np.ndarray:
        ds = self.dataset
        if dim in ds.coords and np.issubdtype(ds[dim].dtype, np.number):
            return ds[dim].values.astype(np.float64)
        return np.arange(ds.sizes[dim], dtype=np.float64)

    # -- the truth ---------------------------------------------------------------------------
    def _truth(
        self, grid: Frames, time_dim: str, spatial: list[str], n_leads: int
    ) -> tuple[np.ndarray, Frames | None]:
        ds = self.dataset
        frame = (
            ds["frame"].values.astype(np.int64)
            if "frame" in ds.coords and ds["frame"].dims == (time_dim,)
            else None
        )
        truth_vars = [f"{n}{TRUTH_SUFFIX}" for n in grid.channels]
        present = [v for v in truth_vars if v in ds.data_vars]
        if present:
            if len(present) != len(truth_vars):
                missing = sorted(set(truth_vars) - set(present))
                raise self.fail(f"truth variables incomplete: {', '.join(missing)} missing")
            expected = {time_dim, *spatial}
            wrong = [f"{v}{ds[v].dims}" for v in truth_vars if set(ds[v].dims) != expected]
            if wrong:
                raise self.fail(
                    f"truth variables need dims ({time_dim}, {', '.join(spatial)}); "
                    f"found {', '.join(wrong)}"
                )
            values = np.stack(
                [ds[v].transpose(time_dim, *spatial).values for v in truth_vars], axis=1
            ).astype(np.float32)
            return np.arange(n_leads), self._checked(grid, grid.time, values, "truth variables")
        if "truth_file" in ds.attrs:
            return self._well_truth(grid, frame, n_leads)
        if "system" in ds.attrs and "seed" in ds.attrs:
            return self._solver_truth(grid, frame, n_leads)
        self.notes.append(
            "no truth: error and score views need variables <channel>_truth, a "
            "truth_file attribute (a Well file) or latentsim's system/seed attributes"
        )
        return (frame if frame is not None else np.arange(n_leads)), None

    def _checked(self, grid: Frames, time: np.ndarray, values: np.ndarray, what: str) -> Frames:
        if values.shape[-2:] != grid.grid_shape or values.shape[1] != len(grid.channels):
            raise self.fail(
                f"grid {grid.grid_shape[0]}×{grid.grid_shape[1]} with "
                f"{len(grid.channels)} channels does not match the {what}' "
                f"{values.shape[-2]}×{values.shape[-1]} with {values.shape[1]} channels"
            )
        return Frames(
            name=grid.name,
            channels=grid.channels,
            units=grid.units,
            long_names=grid.long_names,
            x=grid.x,
            y=grid.y,
            time=time,
            values=values,
            attrs={"source": what},
        )

    def _well_truth(
        self, grid: Frames, frame: np.ndarray | None, n_leads: int
    ) -> tuple[np.ndarray, Frames | None]:
        attrs = self.dataset.attrs
        target = Path(str(attrs["truth_file"]))
        if not target.is_absolute():
            target = self.path.parent / target
        split = attrs.get("truth_split")
        trajectory = self.integer_attribute("truth_trajectory", 0)
        if self.truth_loader is None:
            self.notes.append(f"truth_file {target} was not followed (no loader given)")
            return (frame if frame is not None else np.arange(n_leads)), None
        truth = self.truth_loader(target, None if split is None else str(split), trajectory)
        missing = [c for c in grid.channels if c not in truth.channels]
        if missing:
            raise self.fail(f"fields {', '.join(missing)} are not in the truth file {target}")
        picked = truth.values[:, [truth.channels.index(c) for c in grid.channels]]
        if frame is None:
            frame = self._frames_by_time(truth.time, grid.time, target)
        if frame.min() < 0 or frame.max() >= len(truth.time):
            raise self.fail(
                f"frame coordinate {int(frame.min())}..{int(frame.max())} is outside the "
                f"truth's 0..{len(truth.time) - 1} ({target}, trajectory {trajectory})"
            )
        checked = self._checked(grid, truth.time, picked, f"truth file {target.name}")
        self.notes.append(f"truth: {target.name}, trajectory {trajectory}")
        return frame, checked

    def _frames_by_time(self, truth_time: np.ndarray, lead_time: np.ndarray, target: Path):
        start = self.dataset.attrs.get("truth_start_time")
        offset = float(start) if start is not None else 0.0
        wanted = lead_time + offset
        index = np.searchsorted(truth_time, wanted - 1e-9)
        index = np.clip(index, 0, len(truth_time) - 1)
        if not np.allclose(truth_time[index], wanted, rtol=1e-6, atol=1e-6):
            raise self.fail(
                "no `frame` coordinate and the lead times (+ truth_start_time) are not "
                f"times of {target.name}: add frame = the truth frame of each lead"
            )
        return index.astype(np.int64)

    def _solver_truth(
        self, grid: Frames, frame: np.ndarray | None, n_leads: int
    ) -> tuple[np.ndarray, Frames | None]:
        """Checks the attributes now; the solver runs when the truth is first used."""
        attrs = self.dataset.attrs
        frame = frame if frame is not None else np.arange(n_leads)
        try:
            conditions = json.loads(str(attrs.get("conditions", "{}")))
        except json.JSONDecodeError as err:
            raise self.fail(f"attribute conditions is not JSON ({err})") from err
        system, seed = str(attrs["system"]), self.integer_attribute("seed")
        if system not in SYSTEM_NAMES:
            self.notes.append(
                f"no truth: system {system!r} is not one latentsim can rerun "
                f"({', '.join(SYSTEM_NAMES)})"
            )
            return frame, None
        limit = SOLVER_TRAJECTORIES_MAX * get_system(system).spec.n_frames - 1
        if frame.min() < 0 or frame.max() > limit:
            raise self.fail(
                f"frame coordinate {int(frame.min())}..{int(frame.max())} is outside the "
                f"{system} solver's 0..{limit} ({SOLVER_TRAJECTORIES_MAX} trajectories of "
                f"{limit // SOLVER_TRAJECTORIES_MAX + 1} frames)"
            )

        def solve() -> Frames:
            from engine.rollout.truth import truth_dataset  # the solver only when needed

            truth = truth_dataset(
                system, conditions, seed, int(frame.max()) + 1, grid=grid.grid_shape
            )
            values = np.stack([truth[c].values for c in grid.channels], axis=1)
            return self._checked(grid, truth["time"].values, values.astype(np.float32), "solver")

        self.solve = solve
        self.notes.append(f"truth: the {system} solver, seed {seed} (run when shown)")
        return frame, None


def _split_channels(dataset: xarray.Dataset) -> xarray.Dataset:
    """A variable with a channel/field/variable dim becomes one variable per label."""
    for dim in CHANNEL_DIMS:
        if dim not in dataset.dims:
            continue
        stacked = [n for n in dataset.data_vars if dim in dataset[n].dims]
        parts = [dataset.drop_vars(stacked).drop_dims(dim, errors="ignore")]
        for name in stacked:
            array = dataset[name]
            labels = (
                [str(v) for v in array[dim].values]
                if dim in array.coords
                else [f"{name}{i}" for i in range(array.sizes[dim])]
            )
            if str(name).lower() == "truth":  # a stacked truth: <label>_truth variables
                labels = [f"{label}{TRUTH_SUFFIX}" for label in labels]
            array = array.assign_coords({dim: labels})
            parts.append(array.to_dataset(dim=dim))
        return xarray.merge(parts, compat="override")
    return dataset
