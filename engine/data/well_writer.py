"""Write trajectories in The Well's HDF5 layout, so the_well's loaders read our data.

The layout follows the_well 1.2.0's *code* (WellDataset, hdf5_to_xarray) where it is
stricter than the format description:

- every flag the loaders index (`sample_varying`, `time_varying`, `dim_varying`) is set on
  every dataset, including `@time_varying` on `dimensions/x|y` (hdf5_to_xarray needs it);
- one boundary-condition group per axis, named `<axis>_<type>`; its `mask` is True on the
  first and last cell along that axis, which is what `WellDataset._padding_bcs` reads
  (an all-False mask would be decoded as OPEN, whatever `@bc_type` says);
- all three `tN_fields` groups exist, `t2_fields` with an empty `@field_names`.

Where we differ from the Well's *files* (not its code): the Well stores one parameter set
per file as root attributes; our files batch many parameter draws, so continuous
parameters live in `scalars/` as (B,) datasets with `sample_varying=True` (both loaders
support it). `@simulation_parameters` lists continuous parameters and categorical
choices; only the choices (shared by the file) are root attributes. The trajectory seed is
stored as `scalars/seed` (int64) but deliberately *not* listed in `scalars/@field_names`:
WellDataset would otherwise hand it to models as a conditioning scalar (cast to float32,
which is lossy above 2**24). Our reader picks it up by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from engine import __version__
from engine.data.atomic import atomic_path
from engine.errors import ParameterError
from engine.systems.base import BOUNDARY_TYPES, System

SPATIAL_DIMS = ("x", "y")
SEED_SCALAR = "seed"
SPEC_ATTR = "latentsim_spec"  # root attribute: the system spec as JSON, to validate caches
FRAMES_PER_CHUNK = 16

_STRING_LIST = h5py.string_dtype()


def spec_json(system: System) -> str:
    """The system description (with its actual grid) as canonical JSON.

    Stored in each file so a cached chunk made by a differently configured system is
    recognised as stale.
    """
    spec = asdict(system.spec)
    spec["grid"] = asdict(system.grid)
    return json.dumps(spec, sort_keys=True)


def _strings(values: Sequence[str]) -> np.ndarray:
    """A string-list attribute; an empty list stays a (0,) string array, not float64."""
    return np.array(list(values), dtype=_STRING_LIST)


def _as_numpy(fields: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(fields, torch.Tensor):
        fields = fields.detach().to("cpu").numpy()
    return np.asarray(fields, dtype=np.float32)


def write_well_file(
    path: str | os.PathLike[str],
    system: System,
    fields: np.ndarray | torch.Tensor,
    conditions: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    times: Sequence[float] | np.ndarray,
) -> Path:
    """Write B trajectories of `system` to one Well-format file, atomically.

    fields: (B, T, C, X, Y) float32, channels in `system.spec.channel_names` order.
    conditions: one mapping per trajectory (parameters and choices); every trajectory
    must share the categorical choices, since the file records them once.
    seeds: the seed of each trajectory; times: (T,) frame times.
    """
    path = Path(path)
    spec = system.spec
    data = _as_numpy(fields)
    validated = system.validate_conditions(conditions)
    seeds_array = np.asarray([int(s) for s in seeds], dtype=np.int64)
    times_array = np.asarray(times, dtype=np.float32)
    if times_array.ndim != 1:
        raise ParameterError("times.shape", times_array.shape, "(T,): one time per frame")
    if any(f.tensor_order not in (0, 1) for f in spec.fields):
        raise ParameterError("tensor_order", [f.tensor_order for f in spec.fields], "0 or 1")
    expected = (validated.batch_size, len(times_array), len(spec.channel_names), *system.grid.shape)
    if data.shape != expected:
        raise ParameterError("fields.shape", data.shape, f"(B, T, C, X, Y) = {expected}")
    if seeds_array.shape != (validated.batch_size,):
        raise ParameterError("seeds", list(seeds), f"one per trajectory ({validated.batch_size})")
    bcs = system.boundary_conditions(validated.choices)
    if len(bcs) != 2 or any(kind not in BOUNDARY_TYPES for kind in bcs):
        raise ParameterError("boundary_conditions", bcs, f"two of {', '.join(BOUNDARY_TYPES)}")

    with atomic_path(path) as temporary, h5py.File(temporary, "w") as file:
        _write_root(file, system, validated.choices, validated.batch_size)
        _write_dimensions(file, system, times_array)
        _write_boundary_conditions(file, system, bcs)
        _write_scalars(file, system, validated.parameters, seeds_array)
        _write_fields(file, system, data)
    return path


def _write_root(file: h5py.File, system: System, choices: Mapping[str, str], n: int) -> None:
    spec = system.spec
    file.attrs["dataset_name"] = spec.name
    file.attrs["grid_type"] = "cartesian"
    file.attrs["n_spatial_dims"] = len(SPATIAL_DIMS)
    file.attrs["n_trajectories"] = n
    file.attrs["simulation_parameters"] = _strings(
        [*spec.parameter_names, *(c.name for c in spec.choices)]
    )
    for name, value in choices.items():
        file.attrs[name] = value
    file.attrs["title"] = spec.title
    file.attrs["source"] = f"latentsim {__version__}" + (f": {spec.source}" if spec.source else "")
    if spec.references:
        file.attrs["references"] = spec.references
    file.attrs[SPEC_ATTR] = spec_json(system)


def _write_dimensions(file: h5py.File, system: System, times: np.ndarray) -> None:
    group = file.create_group("dimensions")
    group.attrs["spatial_dims"] = _strings(SPATIAL_DIMS)
    time = group.create_dataset("time", data=times)
    time.attrs["sample_varying"] = False
    time.attrs["time_varying"] = True
    for name, values in zip(SPATIAL_DIMS, system.grid.coordinates(), strict=True):
        axis = group.create_dataset(name, data=values.astype(np.float32))
        axis.attrs["sample_varying"] = False
        axis.attrs["time_varying"] = False


def _write_boundary_conditions(file: h5py.File, system: System, bcs: Sequence[str]) -> None:
    group = file.create_group("boundary_conditions")
    for axis, kind, n in zip(SPATIAL_DIMS, bcs, system.grid.shape, strict=True):
        bc = group.create_group(f"{axis}_{kind}")
        bc.attrs["bc_type"] = kind.upper()
        bc.attrs["associated_dims"] = _strings([axis])
        bc.attrs["associated_fields"] = _strings([])
        bc.attrs["sample_varying"] = False
        bc.attrs["time_varying"] = False
        mask = np.zeros(n, dtype=bool)
        mask[[0, -1]] = True  # the boundary cells at both ends of the axis
        bc.create_dataset("mask", data=mask)


def _write_scalars(
    file: h5py.File, system: System, parameters: Mapping[str, torch.Tensor], seeds: np.ndarray
) -> None:
    group = file.create_group("scalars")
    group.attrs["field_names"] = _strings(system.spec.parameter_names)
    for spec in system.spec.parameters:
        values = parameters[spec.name].numpy().astype(np.float32)
        dataset = group.create_dataset(spec.name, data=values)
        dataset.attrs.update(
            sample_varying=True,
            time_varying=False,
            long_name=spec.long_name,
            log_scale=spec.log_scale,
        )
    seed = group.create_dataset(SEED_SCALAR, data=seeds)
    seed.attrs.update(sample_varying=True, time_varying=False, long_name="trajectory seed")


def _write_fields(file: h5py.File, system: System, data: np.ndarray) -> None:
    spec = system.spec
    n_t, n_x, n_y = data.shape[1], data.shape[3], data.shape[4]
    channel = {name: index for index, name in enumerate(spec.channel_names)}
    for order in range(3):  # rank-2 fields are not in the contract: t2_fields stays empty
        group = file.create_group(f"t{order}_fields")
        ordered = [f for f in spec.fields if f.tensor_order == order]
        group.attrs["field_names"] = _strings([f.name for f in ordered])
        for field in ordered:
            indices = [channel[name] for name in field.channel_names]
            values = data[:, :, indices]  # (B, T, 1 or D, X, Y)
            values = np.moveaxis(values, 2, -1) if order else values[:, :, 0]
            components = (len(SPATIAL_DIMS),) * order
            dataset = group.create_dataset(
                field.name,
                data=np.ascontiguousarray(values),
                chunks=(1, min(n_t, FRAMES_PER_CHUNK), n_x, n_y, *components),
                fletcher32=True,  # checksums: a damaged cache chunk fails to read
            )
            dataset.attrs.update(
                dim_varying=np.ones(len(SPATIAL_DIMS), dtype=bool),
                sample_varying=True,
                time_varying=True,
                long_name=field.long_name,
                units=field.units,
            )
