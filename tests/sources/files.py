"""Source files for the tests: The Well's own dummy writer, a hand-built 3-D Well file
(The Well's layout, h5py), and rollout files written by xarray that refer to them."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import xarray
from the_well.utils.dummy_data import write_dummy_data

STRINGS = h5py.string_dtype()


def the_wells_dummy(path: Path) -> Path:
    """2 trajectories, 10 frames, 32×32: constant_field (t0, no time axis), field (t1)."""
    write_dummy_data(str(path))
    return path


def well_3d(path: Path, shape: tuple[int, int, int] = (8, 6, 4), steps: int = 5) -> Path:
    """A 3-D Well file: a scalar `density` and a 3-component `velocity`, 2 trajectories,
    with z non-uniform (stretched)."""
    rng = np.random.default_rng(3)
    coords = {
        "x": np.linspace(0, 1, shape[0], dtype=np.float32),
        "y": np.linspace(0, 1, shape[1], dtype=np.float32),
        "z": (np.linspace(0, 1, shape[2]) ** 2).astype(np.float32),
    }
    with h5py.File(path, "w") as f:
        f.attrs.update(
            dataset_name="cube", grid_type="cartesian", n_spatial_dims=3, n_trajectories=2
        )
        f.attrs["simulation_parameters"] = np.array([], dtype=STRINGS)
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = np.array(list(coords), dtype=STRINGS)
        dims.create_dataset("time", data=np.arange(steps, dtype=np.float32) * 0.5).attrs[
            "sample_varying"
        ] = False
        for name, values in coords.items():
            d = dims.create_dataset(name, data=values)
            d.attrs["sample_varying"] = d.attrs["time_varying"] = False
        f.create_group("boundary_conditions")
        f.create_group("scalars").attrs["field_names"] = np.array([], dtype=STRINGS)
        for order, (group, name) in enumerate(
            (("t0_fields", "density"), ("t1_fields", "velocity"))
        ):
            g = f.create_group(group)
            g.attrs["field_names"] = np.array([name], dtype=STRINGS)
            d = g.create_dataset(
                name, data=rng.random((2, steps, *shape, *(3,) * order), dtype=np.float32)
            )
            d.attrs["dim_varying"] = np.array([True] * 3)
            d.attrs["sample_varying"] = d.attrs["time_varying"] = True
        f.create_group("t2_fields").attrs["field_names"] = np.array([], dtype=STRINGS)
    return path


def rollout_of_dummy(
    path: Path,
    well: Path,
    *,
    members: int = 4,
    trajectory: int = 1,
    first_frame: int = 2,
    member_dim: str | None = "member",
    engine: str = "h5netcdf",
    truth_file: str | None = None,
) -> xarray.Dataset:
    """A rollout of The Well's dummy data: truth frames plus noise, with `truth_file`,
    `truth_trajectory` and the `frame` coordinate; written by xarray (NetCDF or Zarr).
    `truth_file` defaults to the Well file's name (the rollout lies beside it)."""
    with h5py.File(well) as f:
        field = f["t1_fields/field"][trajectory]  # (T, X, Y, 2)
        constant = f["t0_fields/constant_field"][trajectory]  # (X, Y)
    frames = np.arange(first_frame, field.shape[0])
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.1, (members, len(frames), *field.shape[1:3])).astype(np.float32)
    lead_dims = ("time",) if member_dim is None else (member_dim, "time")

    def predicted(truth: np.ndarray) -> np.ndarray:
        values = truth[None] + noise * (1 + np.arange(len(frames)))[None, :, None, None]
        return values[0] if member_dim is None else values

    data = {
        "field_x": ((*lead_dims, "x", "y"), predicted(field[frames, ..., 0])),
        "field_y": ((*lead_dims, "x", "y"), predicted(field[frames, ..., 1])),
        "constant_field": ((*lead_dims, "x", "y"), predicted(np.stack([constant] * len(frames)))),
    }
    dataset = xarray.Dataset(
        data,
        coords={"time": ("time", (frames - first_frame + 1) * 0.1), "frame": ("time", frames)},
        attrs={"truth_file": truth_file or well.name, "truth_trajectory": trajectory},
    )
    if engine == "zarr":
        dataset.to_zarr(path, mode="w", consolidated=False)
    else:
        dataset.to_netcdf(path, engine=engine)
    return dataset
