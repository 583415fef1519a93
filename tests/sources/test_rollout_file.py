"""Rollout files from xarray (NetCDF and Zarr) in the schema of docs/sources.md and its
common variants; the truth they name; files that do not fit."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray

from engine.errors import DataFormatError
from engine.sources import AllowedRoots, RolloutFile, open_rollout, open_source
from tests.sources.files import rollout_of_dummy, the_wells_dummy


@pytest.fixture
def well(tmp_path: Path) -> Path:
    return the_wells_dummy(tmp_path / "dummy.hdf5")


@pytest.mark.parametrize(
    ("suffix", "engine"), [(".nc", "h5netcdf"), (".zarr", "zarr")], ids=["netcdf", "zarr"]
)
def test_rollout_with_a_well_truth(tmp_path: Path, well: Path, suffix: str, engine: str) -> None:
    path = tmp_path / f"rollout{suffix}"
    written = rollout_of_dummy(path, well, engine=engine)
    rollout = open_source(path)
    assert isinstance(rollout, RolloutFile)
    assert rollout.members.shape == (4, 8, 3, 32, 32)
    assert sorted(rollout.channels) == ["constant_field", "field_x", "field_y"]
    x = rollout.channels.index("field_x")
    np.testing.assert_allclose(rollout.members[:, :, x], written["field_x"].values, rtol=1e-6)
    np.testing.assert_array_equal(rollout.frame_index, np.arange(2, 10))
    with h5py.File(well) as f:
        field = f["t1_fields/field"][1]
    np.testing.assert_array_equal(rollout.truth.values[:, x], field[..., 0])
    np.testing.assert_allclose(rollout.lead_time, np.arange(1, 9) * 0.1)
    assert "truth: dummy.hdf5, trajectory 1" in rollout.notes


@pytest.mark.parametrize("dim", ["ensemble", "realization", "sample"])
def test_member_dim_aliases(tmp_path: Path, well: Path, dim: str) -> None:
    path = tmp_path / "r.nc"
    rollout_of_dummy(path, well, member_dim=dim)
    assert open_source(path).members.shape[0] == 4


def test_no_member_dim_is_deterministic(tmp_path: Path, well: Path) -> None:
    path = tmp_path / "r.nc"
    rollout_of_dummy(path, well, member_dim=None)
    rollout = open_source(path)
    assert rollout.deterministic and rollout.members.shape == (1, 8, 3, 32, 32)
    assert any("deterministic" in note for note in rollout.notes)


def test_truth_variables_and_a_stacked_channel_dim() -> None:
    rng = np.random.default_rng(1)
    dims = ("member", "time", "channel", "x", "y")
    dataset = xarray.Dataset(
        {
            "prediction": (dims, rng.random((2, 3, 2, 4, 5), dtype=np.float32)),
            "truth": (dims[1:], rng.random((3, 2, 4, 5), dtype=np.float32)),
        },
        coords={"channel": ["u", "v"], "time": [0.5, 1.0, 1.5]},
    )
    rollout = open_rollout(dataset)
    assert rollout.channels == ("u", "v")
    np.testing.assert_array_equal(rollout.truth.values, dataset["truth"].values)
    np.testing.assert_array_equal(rollout.frame_index, [0, 1, 2])


def test_time_alignment_without_a_frame_coordinate(tmp_path: Path, well: Path) -> None:
    with h5py.File(well) as f:
        times = f["dimensions/time"][()]
    path = tmp_path / "r.nc"
    dataset = rollout_of_dummy(path, well).drop_vars("frame")
    dataset = dataset.assign_coords(time=times[2:])  # lead times = the truth's own times
    dataset.to_netcdf(tmp_path / "by_time.nc", engine="h5netcdf")
    rollout = open_source(tmp_path / "by_time.nc")
    np.testing.assert_array_equal(rollout.frame_index, np.arange(2, 10))


def test_latentsims_own_schema_round_trips(tmp_path: Path, well: Path) -> None:
    rollout = open_source(rollout_of_dummy(tmp_path / "r.nc", well) and tmp_path / "r.nc")
    rollout.dataset().to_netcdf(tmp_path / "again.nc", engine="h5netcdf")
    again = open_rollout(tmp_path / "again.nc")
    np.testing.assert_array_equal(again.members, rollout.members)
    np.testing.assert_array_equal(again.frame_index, rollout.frame_index)


def test_what_is_missing_is_said(tmp_path: Path) -> None:
    no_time = xarray.Dataset({"u": (("member", "x", "y"), np.zeros((2, 3, 3)))})
    with pytest.raises(DataFormatError, match="no time dim"):
        open_rollout(no_time)
    no_field = xarray.Dataset({"score": (("time",), np.zeros(3))})
    with pytest.raises(
        DataFormatError, match=r"no field variable with dims \(member, time, x, y\)"
    ):
        open_rollout(no_field)
    foreign = xarray.Dataset(
        {"u": (("time", "x", "y"), np.zeros((3, 4, 4)))}, attrs={"system": "mine", "seed": 1}
    )
    assert any(
        "system 'mine' is not one latentsim can rerun" in n for n in open_rollout(foreign).notes
    )
    no_truth = xarray.Dataset({"u": (("time", "x", "y"), np.zeros((3, 4, 4)))})
    rollout = open_rollout(no_truth)
    assert rollout.truth is None
    assert any("no truth" in note and "_truth" in note for note in rollout.notes)


def test_grid_not_matching_the_truth(tmp_path: Path, well: Path) -> None:
    path = tmp_path / "coarse.nc"
    dataset = rollout_of_dummy(tmp_path / "r.nc", well)
    dataset.isel(x=slice(0, 16)).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(DataFormatError, match=r"coarse.nc: grid 16×32 .* does not match .* 32×32"):
        open_source(path)


def test_not_a_netcdf_or_zarr(tmp_path: Path) -> None:
    path = tmp_path / "rollout.nc"
    path.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(DataFormatError, match=r"rollout\.nc: not an HDF5, NetCDF or Zarr"):
        open_source(path)
    folder = tmp_path / "plain.zarr"
    folder.mkdir()
    with pytest.raises(DataFormatError, match="not a Zarr store"):
        open_source(folder)


def test_a_truth_file_outside_the_roots_is_refused(tmp_path: Path, well: Path) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    path = inside / "r.nc"
    rollout_of_dummy(path, well).attrs  # noqa: B018  (written; refers to ../dummy.hdf5)
    dataset = xarray.open_dataset(path, engine="h5netcdf").load()
    dataset.attrs["truth_file"] = "../dummy.hdf5"
    dataset.to_netcdf(inside / "escape.nc", engine="h5netcdf")
    with pytest.raises(DataFormatError, match="outside the allowed roots"):
        open_source(inside / "escape.nc", AllowedRoots([inside]))
    assert open_source(inside / "escape.nc", AllowedRoots([tmp_path])).truth is not None


def _field_rollout(attrs: dict, frames: list[int] | None = None) -> xarray.Dataset:
    """A 3-lead, one-member rollout of a field `u` on a 4×4 grid, with `attrs`."""
    leads = len(frames) if frames is not None else 3
    coords = {"frame": ("time", frames)} if frames is not None else {}
    return xarray.Dataset(
        {"u": (("member", "time", "x", "y"), np.zeros((1, leads, 4, 4), np.float32))},
        coords=coords,
        attrs=attrs,
    )


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"system": "kolmogorov", "seed": "abc"}, "attribute seed='abc' is not a non-negative"),
        ({"system": "kolmogorov", "seed": -3}, "attribute seed=-3 is not a non-negative"),
        ({"system": "kolmogorov", "seed": 2.5}, "attribute seed=2.5 is not a non-negative"),
        (
            {"truth_file": "dummy.hdf5", "truth_trajectory": "first"},
            "attribute truth_trajectory='first' is not a non-negative integer",
        ),
    ],
)
def test_malformed_truth_attributes_are_named(attrs: dict, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        open_rollout(_field_rollout(attrs))


@pytest.mark.parametrize("seed", [np.int64(7), 7.0, "7", " 7 "])
def test_any_writers_integer_is_a_seed(seed: object) -> None:
    rollout = open_rollout(_field_rollout({"system": "kolmogorov", "seed": seed}))
    assert "truth: the kolmogorov solver, seed 7 (run when shown)" in rollout.notes


@pytest.mark.parametrize(
    ("frames", "shown"), [([-1, 0, 1], "-1..1"), ([0, 1, 5000], "0..5000")], ids=["neg", "far"]
)
def test_solver_truth_frames_outside_what_the_solver_may_run(frames, shown) -> None:
    dataset = _field_rollout({"system": "kolmogorov", "seed": 1}, frames)
    # 10 of Kolmogorov's 101-frame trajectories: frames 0..1009
    expected = f"frame coordinate {shown} is outside the kolmogorov solver's 0..1009"
    with pytest.raises(DataFormatError, match=expected):
        open_rollout(dataset)
    assert open_rollout(_field_rollout({"system": "kolmogorov", "seed": 1}, [1007, 1008, 1009]))


def test_truth_variables_with_a_member_dim_are_refused() -> None:
    dataset = _field_rollout({})
    dataset["u_truth"] = dataset["u"]  # (member, time, x, y): one truth per member?
    expected = r"need dims \(time, x, y\); found u_truth\('member', 'time', 'x', 'y'\)"
    with pytest.raises(DataFormatError, match=expected):
        open_rollout(dataset)
