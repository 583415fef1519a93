"""Hand-built Well files for reader tests, written the way The Well writes its data.

Independent of our writer: follows The Well's documented layout directly with h5py,
so reader tests compare against the arrays that went in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

STRINGS = h5py.string_dtype()


@dataclass
class WellStyleFile:
    path: Path
    x: np.ndarray
    y: np.ndarray
    time: np.ndarray
    buoyancy: np.ndarray  # (B, T, X, Y)
    obstacle: np.ndarray  # (B, X, Y): not time-varying
    profile: np.ndarray  # (B, T, Y): not varying along x
    velocity: np.ndarray  # (B, T, X, Y, 2)
    rayleigh: float
    prandtl: float


def chebyshev_nodes(n: int) -> np.ndarray:
    """Chebyshev-Gauss points on [0, 1], clustered at the walls like RB's y."""
    return (0.5 * (1 - np.cos(np.pi * (np.arange(n) + 0.5) / n))).astype(np.float32)


def write_well_style_file(
    path: Path,
    *,
    n_traj: int = 2,
    shape: tuple[int, int] = (8, 6),
    n_steps: int = 4,
    keep_unit_axis: bool = False,
    time_per_sample: bool = False,
    seed: int = 0,
) -> WellStyleFile:
    """A Rayleigh-Benard-like file: periodic x, walls in y, Chebyshev y, mixed flags.

    keep_unit_axis stores the x-constant `profile` as (B, T, 1, Y) instead of (B, T, Y).
    time_per_sample stores time as (B, T) with @sample_varying True.
    """
    rng = np.random.default_rng(seed)
    n_x, n_y = shape
    x = ((np.arange(n_x) + 0.5) * 4.0 / n_x).astype(np.float32)
    y = chebyshev_nodes(n_y)
    time = (0.25 * np.arange(n_steps)).astype(np.float32)
    stored_time = time + np.arange(n_traj, dtype=np.float32)[:, None] if time_per_sample else time
    data = WellStyleFile(
        path=path,
        x=x,
        y=y,
        time=stored_time,
        buoyancy=rng.random((n_traj, n_steps, n_x, n_y), dtype=np.float32),
        obstacle=rng.random((n_traj, n_x, n_y), dtype=np.float32),
        profile=rng.random((n_traj, n_steps, n_y), dtype=np.float32),
        velocity=rng.standard_normal((n_traj, n_steps, n_x, n_y, 2), dtype=np.float32),
        rayleigh=1e8,
        prandtl=0.2,
    )
    with h5py.File(path, "w") as f:
        f.attrs["dataset_name"] = "rayleigh_benard"
        f.attrs["grid_type"] = "cartesian"
        f.attrs["n_spatial_dims"] = 2
        f.attrs["n_trajectories"] = n_traj
        f.attrs["simulation_parameters"] = np.array(["Rayleigh", "Prandtl"], dtype=STRINGS)
        f.attrs["Rayleigh"] = data.rayleigh
        f.attrs["Prandtl"] = data.prandtl

        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = np.array(["x", "y"], dtype=STRINGS)
        t = dims.create_dataset("time", data=stored_time)
        t.attrs["sample_varying"] = time_per_sample
        for name, values in (("x", x), ("y", y)):
            d = dims.create_dataset(name, data=values)
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False

        bcs = f.create_group("boundary_conditions")
        for name, axis, kind, n in (
            ("x_periodic", "x", "PERIODIC", n_x),
            ("y_wall", "y", "WALL", n_y),
        ):
            g = bcs.create_group(name)
            g.attrs["associated_dims"] = np.array([axis], dtype=STRINGS)
            g.attrs["associated_fields"] = np.array([], dtype=STRINGS)
            g.attrs["bc_type"] = kind
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            mask = np.zeros(n, dtype=bool)
            mask[[0, -1]] = True
            g.create_dataset("mask", data=mask)

        scalars = f.create_group("scalars")
        scalars.attrs["field_names"] = np.array(["Rayleigh", "Prandtl"], dtype=STRINGS)
        for name, value in (("Rayleigh", data.rayleigh), ("Prandtl", data.prandtl)):
            d = scalars.create_dataset(name, data=np.float32(value))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False

        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = np.array(["buoyancy", "obstacle", "profile"], dtype=STRINGS)
        profile = data.profile[:, :, None] if keep_unit_axis else data.profile
        for name, values, time_varying, dim_varying in (
            ("buoyancy", data.buoyancy, True, [True, True]),
            ("obstacle", data.obstacle, False, [True, True]),
            ("profile", profile, True, [False, True]),
        ):
            d = t0.create_dataset(name, data=values)
            d.attrs["dim_varying"] = np.array(dim_varying)
            d.attrs["sample_varying"] = True
            d.attrs["time_varying"] = time_varying
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = np.array(["velocity"], dtype=STRINGS)
        d = t1.create_dataset("velocity", data=data.velocity)
        d.attrs["dim_varying"] = np.array([True, True])
        d.attrs["sample_varying"] = True
        d.attrs["time_varying"] = True
        f.create_group("t2_fields").attrs["field_names"] = np.array([], dtype=STRINGS)
    return data
