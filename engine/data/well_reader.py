"""Read Well-format HDF5 — The Well's own files and ours — into xarray or plain arrays.

Two entry points share one parser:

- `open_well(path_or_dir, split=None) -> xarray.Dataset`: dims (sample, time, x, y) in
  the Well's [x, y] index order, one variable per channel (vectors split into `_x`/`_y`),
  parameters as coordinates on `sample`, CF-1.11 attributes.
- `load_array(path_or_dir, split=None) -> WellArrays`: one (N, T, C, X, Y) float32 array
  plus labels, for training loops that want a split in memory fast.

Several files are concatenated along `sample`; they must share dataset, grid, fields,
scalars and frame count. Anything that is not a readable Well file raises
`DataFormatError` naming the file and what is wrong with it.

Tolerated variations of real files: non-uniform coordinates (RB's Chebyshev y); fields
stored without their sample, time or spatial axes (flags False; broadcast on load), with
an omitted spatial axis either dropped (the format description, hdf5_to_xarray) or kept
with length 1 (what WellDataset._pad_axes needs); time stored (T,) or (B, T); missing
`@sample_varying`/`@time_varying` on `dimensions/x|y` (the_well's dummy writer omits
them; they default to False); `@associated_dims` written as a bare string.

Why one long module: the parser, the tolerated variations and the two entry points read
the same layout and are checked against the same real files; split apart, each variation
would have to be understood in two places.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from engine.data.well_writer import SEED_SCALAR
from engine.errors import DataFormatError

if TYPE_CHECKING:  # xarray is imported on use: load_array callers do not pay for it
    import xarray

BC_CODES = {"WALL": 0, "OPEN": 1, "PERIODIC": 2}  # the_well.data.datasets.BoundaryCondition
BC_DEFAULT = BC_CODES["OPEN"]  # WellDataset: "Open unless otherwise specified"
SPLITS = ("train", "valid", "test")
FIELD_GROUPS = ("t0_fields", "t1_fields", "t2_fields")
_REQUIRED_GROUPS = ("dimensions", "boundary_conditions", "scalars", *FIELD_GROUPS)
_REQUIRED_ATTRS = ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories")
_STRUCTURAL_ATTRS = {*_REQUIRED_ATTRS, "simulation_parameters"}
_SUFFIXES = (".hdf5", ".h5")


# -- parsed layout of one file -----------------------------------------------------------
@dataclass(frozen=True)
class FieldInfo:
    """One dataset of a `tN_fields` group and how its stored axes map to (B, T, X, Y)."""

    name: str
    tensor_order: int
    sample_varying: bool
    time_varying: bool
    dim_varying: tuple[bool, ...]
    attrs: dict[str, Any]

    def channel_names(self, spatial_dims: tuple[str, ...]) -> tuple[str, ...]:
        """The Well's flattened names: `velocity_x`, `stress_xy`, ..."""
        if self.tensor_order == 0:
            return (self.name,)
        suffixes = itertools.product(spatial_dims, repeat=self.tensor_order)
        return tuple(f"{self.name}_{''.join(s)}" for s in suffixes)


@dataclass(frozen=True)
class ScalarInfo:
    name: str
    sample_varying: bool
    time_varying: bool
    attrs: dict[str, Any]


@dataclass
class WellFileInfo:
    """Everything about a Well file except the field values."""

    path: Path
    dataset_name: str
    grid_type: str
    n_trajectories: int
    spatial_dims: tuple[str, ...]
    coords: dict[str, np.ndarray]  # spatial coordinate values, by dim name
    coord_attrs: dict[str, dict[str, Any]]
    time: np.ndarray  # (T,) or (B, T)
    fields: tuple[FieldInfo, ...]
    scalars: tuple[ScalarInfo, ...]  # listed in scalars/@field_names
    has_seed: bool  # our unlisted scalars/seed
    bc_codes: np.ndarray  # (D, 2) int64, WellDataset's padding codes
    file_parameters: dict[str, Any]  # root attrs named in @simulation_parameters, no scalar
    attrs: dict[str, Any]  # remaining root attributes (title, source, ...)

    @property
    def n_steps(self) -> int:
        return int(self.time.shape[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.coords[d]) for d in self.spatial_dims)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(n for f in self.fields for n in f.channel_names(self.spatial_dims))

    def canonical_shape(self, info: FieldInfo) -> tuple[int, ...]:
        """(B|1, T|1, X|1, Y|1, D...): stored axes in place, absent ones as length 1."""
        n_d = len(self.spatial_dims)
        return (
            self.n_trajectories if info.sample_varying else 1,
            self.n_steps if info.time_varying else 1,
            *(n if varying else 1 for n, varying in zip(self.shape, info.dim_varying, strict=True)),
            *(n_d,) * info.tensor_order,
        )


def _plain(value: Any) -> Any:
    """An HDF5 attribute as plain Python (str, int, float, lists); bools become 0/1.

    Plain values keep xarray attributes serialisable to netCDF.
    """
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    return value


def _names(value: Any) -> list[str]:
    """A list-of-strings attribute; a bare string is a one-element list."""
    plain = _plain(value)
    return [plain] if isinstance(plain, str) else [str(v) for v in plain]


@contextmanager
def _read_errors(path: Path, what: str) -> Iterator[None]:
    """HDF5 read failures (truncated data, checksum mismatch) as DataFormatError."""
    try:
        yield
    except (OSError, KeyError, ValueError, TypeError) as err:
        if isinstance(err, DataFormatError):
            raise
        raise DataFormatError(path, f"cannot read {what}: {err}") from err


@contextmanager
def open_h5(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """Open an HDF5 file read-only; failures name the file and say what it is not."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        message = str(err)
        if "signature" in message:
            problem = "not an HDF5 file"
        elif "truncated" in message:
            problem = f"truncated HDF5 file ({message})"
        else:
            problem = f"cannot open as HDF5 ({message})"
        raise DataFormatError(path, problem) from err
    with handle:
        yield handle


def _flag(path: Path, obj: h5py.HLObject, name: str, default: bool | None = None) -> bool:
    if name not in obj.attrs:
        if default is None:
            raise DataFormatError(path, f"{obj.name} lacks attribute @{name}")
        return default
    return bool(obj.attrs[name])


def inspect_well_file(
    path: str | os.PathLike[str], *, spatial_dims: tuple[int, ...] = (2,)
) -> WellFileInfo:
    """Parse and check a Well file's layout without reading its field values.

    `spatial_dims`: the dimensionalities accepted; training reads 2-D only, the
    explorer (engine.sources) also shows 3-D data as slices.
    """
    path = Path(path)
    with open_h5(path) as file, _read_errors(path, "the file layout"):
        return _inspect(path, file, spatial_dims)


def _inspect(path: Path, file: h5py.File, accepted: tuple[int, ...]) -> WellFileInfo:
    for group in _REQUIRED_GROUPS:
        if not isinstance(file.get(group), h5py.Group):
            raise DataFormatError(path, f"missing group {group} (not a Well-format file)")
    for attr in _REQUIRED_ATTRS:
        if attr not in file.attrs:
            raise DataFormatError(path, f"missing root attribute @{attr}")
    n_dims = int(file.attrs["n_spatial_dims"])
    if n_dims not in accepted:
        valid = " or ".join(f"{n}-D" for n in accepted)
        raise DataFormatError(path, f"n_spatial_dims={n_dims}; only {valid} data is supported")
    n_traj = int(file.attrs["n_trajectories"])

    dims_group = file["dimensions"]
    if "spatial_dims" not in dims_group.attrs:
        raise DataFormatError(path, "dimensions lacks attribute @spatial_dims")
    spatial_dims = tuple(_names(dims_group.attrs["spatial_dims"]))
    if len(spatial_dims) != n_dims:
        raise DataFormatError(path, f"@spatial_dims {spatial_dims} != n_spatial_dims {n_dims}")
    coords, coord_attrs = {}, {}
    for dim in (*spatial_dims, "time"):
        if not isinstance(dims_group.get(dim), h5py.Dataset):
            raise DataFormatError(path, f"missing dataset dimensions/{dim}")
    for dim in spatial_dims:
        dataset = dims_group[dim]
        if _flag(path, dataset, "sample_varying", False) or _flag(
            path, dataset, "time_varying", False
        ):
            raise DataFormatError(path, f"dimensions/{dim} varies per sample or time (unsupported)")
        coords[dim] = np.asarray(dataset[()], dtype=np.float64).reshape(-1)
        coord_attrs[dim] = {k: _plain(v) for k, v in dataset.attrs.items()}
    time_ds = dims_group["time"]
    time = np.asarray(time_ds[()])
    time_sample_varying = _flag(path, time_ds, "sample_varying", time.ndim == 2)
    if time.ndim != (2 if time_sample_varying else 1) or (
        time_sample_varying and time.shape[0] != n_traj
    ):
        raise DataFormatError(path, f"dimensions/time has shape {time.shape}")
    coord_attrs["time"] = {k: _plain(v) for k, v in time_ds.attrs.items()}

    info = WellFileInfo(
        path=path,
        dataset_name=str(_plain(file.attrs["dataset_name"])),
        grid_type=str(_plain(file.attrs["grid_type"])),
        n_trajectories=n_traj,
        spatial_dims=spatial_dims,
        coords=coords,
        coord_attrs=coord_attrs,
        time=time,
        fields=(),
        scalars=(),
        has_seed=False,
        bc_codes=np.empty(0),
        file_parameters={},
        attrs={},
    )
    info.fields = tuple(_inspect_fields(path, file, info))
    info.scalars = tuple(_inspect_scalars(path, file, info))
    seed = file["scalars"].get(SEED_SCALAR)
    info.has_seed = isinstance(seed, h5py.Dataset) and seed.shape == (n_traj,)
    info.bc_codes = _bc_codes(path, file["boundary_conditions"], info)
    listed = set(_names(file.attrs.get("simulation_parameters", [])))
    scalar_names = {s.name for s in info.scalars}
    for key, value in file.attrs.items():
        if key in listed and key not in scalar_names:
            info.file_parameters[key] = _plain(value)
        elif key not in _STRUCTURAL_ATTRS and key not in listed:
            info.attrs[key] = _plain(value)
    return info


def _inspect_fields(path: Path, file: h5py.File, info: WellFileInfo) -> Iterator[FieldInfo]:
    for order, group_name in enumerate(FIELD_GROUPS):
        group = file[group_name]
        if "field_names" not in group.attrs:
            raise DataFormatError(path, f"{group_name} lacks attribute @field_names")
        for name in _names(group.attrs["field_names"]):
            dataset = group.get(name)
            if not isinstance(dataset, h5py.Dataset):
                raise DataFormatError(path, f"{group_name}/@field_names lists missing {name!r}")
            flags = np.atleast_1d(dataset.attrs.get("dim_varying", []))
            dim_varying = tuple(bool(v) for v in flags)
            if "dim_varying" not in dataset.attrs or len(dim_varying) != len(info.spatial_dims):
                raise DataFormatError(
                    path, f"{dataset.name} needs @dim_varying with one flag per spatial dim"
                )
            field_info = FieldInfo(
                name=name,
                tensor_order=order,
                sample_varying=_flag(path, dataset, "sample_varying"),
                time_varying=_flag(path, dataset, "time_varying"),
                dim_varying=dim_varying,
                attrs={k: _plain(v) for k, v in dataset.attrs.items()},
            )
            _check_field_shape(path, dataset, info, field_info)
            yield field_info


def _lead_shape(info: WellFileInfo, sample_varying: bool, time_varying: bool) -> list[int]:
    """The stored (B, T) prefix: an axis is present only when its flag is set."""
    return [info.n_trajectories] * sample_varying + [info.n_steps] * time_varying


def _check_field_shape(
    path: Path, dataset: h5py.Dataset, info: WellFileInfo, field_info: FieldInfo
) -> None:
    """Accept the stored shape with absent spatial axes either dropped or of length 1."""
    lead = _lead_shape(info, field_info.sample_varying, field_info.time_varying)
    tail = [len(info.spatial_dims)] * field_info.tensor_order
    varying = list(zip(info.shape, field_info.dim_varying, strict=True))
    dropped = tuple(lead + [n for n, v in varying if v] + tail)
    kept = tuple(lead + [n if v else 1 for n, v in varying] + tail)
    if dataset.shape not in (dropped, kept):
        raise DataFormatError(
            path, f"{dataset.name} has shape {dataset.shape}, its flags imply {dropped}"
        )


def _inspect_scalars(path: Path, file: h5py.File, info: WellFileInfo) -> Iterator[ScalarInfo]:
    group = file["scalars"]
    if "field_names" not in group.attrs:
        raise DataFormatError(path, "scalars lacks attribute @field_names")
    for name in _names(group.attrs["field_names"]):
        dataset = group.get(name)
        if not isinstance(dataset, h5py.Dataset):
            raise DataFormatError(path, f"scalars/@field_names lists missing {name!r}")
        scalar = ScalarInfo(
            name=name,
            sample_varying=_flag(path, dataset, "sample_varying"),
            time_varying=_flag(path, dataset, "time_varying"),
            attrs={k: _plain(v) for k, v in dataset.attrs.items()},
        )
        expected = _lead_shape(info, scalar.sample_varying, scalar.time_varying)
        if dataset.size != int(np.prod(expected)):
            raise DataFormatError(
                path, f"{dataset.name} has shape {dataset.shape}, its flags imply {tuple(expected)}"
            )
        yield scalar


def _bc_codes(path: Path, group: h5py.Group, info: WellFileInfo) -> np.ndarray:
    """Per-axis, per-side codes exactly as WellDataset._padding_bcs derives them.

    A side takes a group's type when that group's mask is set on the side's first/last
    cell (all of it for WALL, any of it otherwise); sides no group claims are OPEN.
    """
    codes = np.full((len(info.spatial_dims), 2), BC_DEFAULT, dtype=np.int64)
    for name, bc in group.items():
        if not isinstance(bc, h5py.Group) or "mask" not in bc:
            raise DataFormatError(path, f"boundary_conditions/{name} has no mask dataset")
        bc_type = str(_plain(bc.attrs.get("bc_type", ""))).upper()
        if bc_type not in BC_CODES:
            raise DataFormatError(
                path,
                f"boundary_conditions/{name} @bc_type {bc_type!r} is not one of "
                f"{', '.join(BC_CODES)}",
            )
        dims = _names(bc.attrs.get("associated_dims", []))
        mask = np.asarray(bc["mask"][()], dtype=bool)
        if not dims or any(d not in info.spatial_dims for d in dims) or mask.ndim != len(dims):
            raise DataFormatError(
                path,
                f"boundary_conditions/{name}: @associated_dims {dims} does not match "
                f"spatial dims {info.spatial_dims} and mask shape {mask.shape}",
            )
        aggregate = np.min if bc_type == "WALL" else np.max
        for position, dim in enumerate(dims):
            axis = info.spatial_dims.index(dim)
            for side, index in enumerate((0, -1)):
                if aggregate(np.take(mask, index, axis=position)):
                    codes[axis, side] = BC_CODES[bc_type]
    return codes


# -- locating files ----------------------------------------------------------------------
def find_well_files(path_or_dir: str | os.PathLike[str], split: str | None = None) -> list[Path]:
    """The Well files a path designates, sorted like WellDataset sorts them.

    A file is itself; a directory contributes its `*.hdf5`/`*.h5`; with `split`, the
    directory may be a dataset root (`<root>/data/<split>`) or hold `<split>/` directly.
    """
    path = Path(path_or_dir)
    if split is not None:
        if split not in SPLITS:
            raise DataFormatError(path, f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        candidates = [path / "data" / split, path / split]
        found = next((c for c in candidates if c.is_dir()), None)
        if found is None:
            raise DataFormatError(path, f"no {split} split (looked for data/{split}, {split})")
        path = found
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataFormatError(path, "no such file or directory")
    files = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
    if not files:
        raise DataFormatError(path, "no .hdf5/.h5 files")
    return files


def _check_compatible(infos: list[WellFileInfo]) -> None:
    """Files concatenated along `sample` must describe the same kind of data."""
    first = infos[0]

    def signature(info: WellFileInfo) -> dict[str, Any]:
        return {
            "dataset_name": info.dataset_name,
            "spatial dims": info.spatial_dims,
            "grid shape": info.shape,
            "frame count": info.n_steps,
            "fields": [(f.name, f.tensor_order) for f in info.fields],
            "scalars": [(s.name, s.time_varying) for s in info.scalars],
            "per-file parameters": sorted(info.file_parameters),
            "seed scalar": info.has_seed,
        }

    reference = signature(first)
    for info in infos[1:]:
        for key, value in signature(info).items():
            if value != reference[key]:
                raise DataFormatError(
                    info.path, f"{key} {value} differ from {reference[key]} in {first.path.name}"
                )
        for dim in first.spatial_dims:
            if not np.allclose(info.coords[dim], first.coords[dim], rtol=0, atol=1e-6):
                raise DataFormatError(
                    info.path, f"{dim} coordinates differ from those in {first.path.name}"
                )


# -- reading values ----------------------------------------------------------------------
def read_field(
    file: h5py.File, info: WellFileInfo, field_info: FieldInfo, samples: slice = slice(None)
) -> np.ndarray:
    """A field in canonical axes (b|1, T|1, X|1, Y|1, D...), absent axes of length 1.

    Broadcasting against (b, T, X, Y, D...) restores the full field without copies.
    """
    group = FIELD_GROUPS[field_info.tensor_order]
    dataset = file[group][field_info.name]
    with _read_errors(info.path, dataset.name):
        values = dataset[samples] if field_info.sample_varying else dataset[()]
    shape = list(info.canonical_shape(field_info))
    if field_info.sample_varying:
        shape[0] = values.shape[0]
    return np.asarray(values, dtype=np.float32).reshape(shape)


def _read_scalar(file: h5py.File, info: WellFileInfo, scalar: ScalarInfo) -> np.ndarray:
    """A scalar as (B, T) if time-varying else (B,), broadcast over absent axes."""
    dataset = file["scalars"][scalar.name]
    with _read_errors(info.path, dataset.name):
        values = np.asarray(dataset[()])
    tail = (info.n_steps,) if scalar.time_varying else ()
    lead = info.n_trajectories if scalar.sample_varying else 1
    return np.broadcast_to(values.reshape(lead, *tail), (info.n_trajectories, *tail))


@dataclass
class WellArrays:
    """A split (or file) in memory, channels first: what a training loop wants.

    fields: (N, T, C, X, Y) float32; parameters: time-constant numeric scalars and
    numeric per-file parameters, each (N,) float64; choices: string per-file parameters
    (e.g. boundary), each (N,) str; series: time-varying scalars (N, T); bc_codes:
    (N, D, 2) WellDataset codes (WALL=0, OPEN=1, PERIODIC=2); time: (T,) if shared else
    (N, T); seeds: (N,) int64 when the files record them.
    """

    fields: np.ndarray
    channel_names: tuple[str, ...]
    parameters: dict[str, np.ndarray]
    choices: dict[str, np.ndarray]
    series: dict[str, np.ndarray]
    bc_codes: np.ndarray
    time: np.ndarray
    coords: dict[str, np.ndarray]
    seeds: np.ndarray | None
    files: tuple[Path, ...]
    file_index: np.ndarray  # (N,) which of `files` each sample comes from
    infos: tuple[WellFileInfo, ...] = field(repr=False)

    @property
    def dataset_name(self) -> str:
        return self.infos[0].dataset_name


def load_array(path_or_dir: str | os.PathLike[str], split: str | None = None) -> WellArrays:
    """Load every trajectory of a file, directory or split into one array."""
    files = find_well_files(path_or_dir, split)
    infos = [inspect_well_file(f) for f in files]
    _check_compatible(infos)
    first = infos[0]
    counts = [i.n_trajectories for i in infos]
    n_total, n_t = sum(counts), first.n_steps
    channels = first.channel_names
    fields = np.empty((n_total, n_t, len(channels), *first.shape), dtype=np.float32)
    parameters: dict[str, list[np.ndarray]] = {}
    choices: dict[str, list[np.ndarray]] = {}
    series: dict[str, list[np.ndarray]] = {}
    seeds, times = [], []
    offsets = np.cumsum([0, *counts])
    for info, start, stop in zip(infos, offsets[:-1], offsets[1:], strict=True):
        with open_h5(info.path) as file:
            channel = 0
            for field_info in info.fields:
                values = read_field(file, info, field_info)
                n_components = len(field_info.channel_names(info.spatial_dims))
                # (b, T, X, Y, D...) -> (b, T, C, X, Y)
                values = values.reshape(*values.shape[:4], n_components)
                fields[start:stop, :, channel : channel + n_components] = np.moveaxis(values, -1, 2)
                channel += n_components
            for scalar in info.scalars:
                target = series if scalar.time_varying else parameters
                target.setdefault(scalar.name, []).append(_read_scalar(file, info, scalar))
            if info.has_seed:
                with _read_errors(info.path, f"scalars/{SEED_SCALAR}"):
                    seeds.append(np.asarray(file["scalars"][SEED_SCALAR][()], dtype=np.int64))
        for name, value in info.file_parameters.items():
            target = choices if isinstance(value, str) else parameters
            target.setdefault(name, []).append(np.full(info.n_trajectories, value))
        times.append(np.broadcast_to(info.time, (info.n_trajectories, n_t)))
    all_times = np.concatenate(times).astype(np.float32)
    shared_time = all(i.time.ndim == 1 for i in infos) and bool((all_times == all_times[0]).all())
    return WellArrays(
        fields=fields,
        channel_names=channels,
        parameters={k: np.concatenate(v).astype(np.float64) for k, v in parameters.items()},
        choices={k: np.concatenate(v).astype(str) for k, v in choices.items()},
        series={k: np.concatenate(v) for k, v in series.items()},
        bc_codes=np.concatenate(
            [
                np.broadcast_to(i.bc_codes, (c, *i.bc_codes.shape))
                for i, c in zip(infos, counts, strict=True)
            ]
        ),
        time=all_times[0] if shared_time else all_times,
        coords={d: first.coords[d] for d in first.spatial_dims},
        seeds=np.concatenate(seeds) if first.has_seed else None,
        files=tuple(files),
        file_index=np.repeat(np.arange(len(files)), counts),
        infos=tuple(infos),
    )


# -- xarray view -------------------------------------------------------------------------
_BC_NAMES = {code: name.lower() for name, code in BC_CODES.items()}


def _bc_label(sides: np.ndarray) -> str:
    """'periodic' when both sides agree, else 'lower|upper' (e.g. 'open|wall')."""
    lower, upper = (_BC_NAMES[int(c)] for c in sides)
    return lower if lower == upper else f"{lower}|{upper}"


def _uniform(values: list[Any]) -> bool:
    return all(v == values[0] for v in values[1:])


def open_well(path_or_dir: str | os.PathLike[str], split: str | None = None) -> xarray.Dataset:
    """Read Well files into an xarray.Dataset with dims (sample, time, x, y).

    Eager (values are in memory). Per-channel variables carry long_name/units where the
    file has them and the Well flags as 0/1 integers; parameters, choices, seeds and
    per-axis boundary types are coordinates on `sample`; attributes shared by every file
    become global attributes.
    """
    import xarray as xr

    arrays = load_array(path_or_dir, split)
    infos = arrays.infos
    first = infos[0]
    dims = ("sample", "time", *first.spatial_dims)
    data_vars = {}
    channel = 0
    for field_info in first.fields:
        base = {k: v for k, v in field_info.attrs.items() if k not in ("dim_varying",)}
        long_name = str(base.pop("long_name", field_info.name))
        names = field_info.channel_names(first.spatial_dims)
        for name in names:
            suffix = name[len(field_info.name) + 1 :]
            attrs = {
                **base,
                "long_name": f"{long_name}, {suffix} component" if suffix else long_name,
                "tensor_order": field_info.tensor_order,
                "sample_varying": int(field_info.sample_varying),
                "time_varying": int(field_info.time_varying),
                "dim_varying": [int(v) for v in field_info.dim_varying],
                "well_field": field_info.name,
            }
            if suffix:
                attrs["component"] = suffix
            data_vars[name] = xr.Variable(dims, arrays.fields[:, :, channel], attrs)
            channel += 1
    scalar_attrs = {s.name: s for s in first.scalars}
    for name, values in arrays.series.items():
        scalar = scalar_attrs[name]
        attrs = {**scalar.attrs, "sample_varying": int(scalar.sample_varying), "time_varying": 1}
        data_vars[name] = xr.Variable(("sample", "time"), values, attrs)

    coords: dict[str, Any] = {
        "sample": ("sample", np.arange(len(arrays.file_index))),
        "file": ("sample", np.array([f.name for f in arrays.files])[arrays.file_index]),
        "trajectory": (
            "sample",
            np.concatenate([np.arange(i.n_trajectories) for i in infos]),
            {"long_name": "trajectory index within its file"},
        ),
    }
    time_attrs = {"units": "1", "long_name": "time", **first.coord_attrs["time"], "axis": "T"}
    for key in ("sample_varying", "time_varying"):
        time_attrs.pop(key, None)
    time_dims = ("time",) if arrays.time.ndim == 1 else ("sample", "time")
    coords["time"] = (time_dims, arrays.time, time_attrs)
    for dim in first.spatial_dims:
        attrs = {
            k: v
            for k, v in first.coord_attrs[dim].items()
            if k not in ("sample_varying", "time_varying")
        }
        attrs = {"units": "1", "long_name": f"{dim} coordinate", **attrs, "axis": dim.upper()}
        coords[dim] = (dim, arrays.coords[dim].astype(np.float32), attrs)
    for name, values in arrays.parameters.items():
        attrs = dict(scalar_attrs[name].attrs) if name in scalar_attrs else {}
        attrs.setdefault("long_name", name)
        for key in ("sample_varying", "time_varying"):
            attrs.pop(key, None)
        coords[name] = ("sample", values, attrs)
    for name, values in arrays.choices.items():
        coords[name] = ("sample", values, {"long_name": name})
    if arrays.seeds is not None:
        coords[SEED_SCALAR] = ("sample", arrays.seeds, {"long_name": "trajectory seed"})
    for axis, dim in enumerate(first.spatial_dims):
        labels = np.array([_bc_label(codes[axis]) for codes in arrays.bc_codes])
        coords[f"bc_{dim}"] = (
            "sample",
            labels,
            {"long_name": f"boundary condition along {dim} (lower|upper)"},
        )

    attrs: dict[str, Any] = {
        "Conventions": "CF-1.11",
        "title": first.dataset_name,
        "dataset_name": first.dataset_name,
        "grid_type": first.grid_type,
        "n_spatial_dims": len(first.spatial_dims),
    }
    for key in first.attrs:
        values = [i.attrs.get(key) for i in infos]
        if _uniform(values):
            attrs[key] = values[0]
    for name, values in arrays.choices.items():
        if _uniform(list(values)):
            attrs[name] = str(values[0])
    for dim in first.spatial_dims:
        labels = coords[f"bc_{dim}"][1].tolist()
        if _uniform(labels):
            attrs[f"bc_type_{dim}"] = labels[0]
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
