"""Writer and reader: our files follow the Well layout; the reader reads Well files."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from the_well.data import WellDataset
from the_well.utils.dummy_data import write_dummy_data

from engine.data.well_reader import load_array, open_well
from engine.data.well_writer import write_well_file
from engine.errors import DataFormatError

from .well_files import write_well_style_file

WALL_CHOICE_SEEDS = (0, 2, 3)  # toy seeds whose sampled boundary is "wall"


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory, toy):
    """Three wall-bounded toy trajectories, 5 frames, written by our writer."""
    conditions = [toy.sample_conditions(s) for s in WALL_CHOICE_SEEDS]
    assert {c["boundary"] for c in conditions} == {"wall"}
    fields = toy.simulate(conditions, WALL_CHOICE_SEEDS).numpy()
    path = tmp_path_factory.mktemp("toy_file") / "toy.hdf5"
    write_well_file(path, toy, fields, conditions, WALL_CHOICE_SEEDS, toy.spec.frame_times())
    return path, fields, conditions


def _names(values) -> list[str]:
    return [str(v) for v in values]


def test_written_layout_is_the_well_layout(toy_file, toy) -> None:
    path, fields, conditions = toy_file
    n, n_t, _, n_x, n_y = fields.shape
    with h5py.File(path) as f:
        assert f.attrs["dataset_name"] == "toy_advection"
        assert f.attrs["grid_type"] == "cartesian"
        assert f.attrs["n_spatial_dims"] == 2 and f.attrs["n_trajectories"] == n
        assert _names(f.attrs["simulation_parameters"]) == ["diffusivity", "boundary"]
        assert f.attrs["boundary"] == "wall"

        dims = f["dimensions"]
        assert _names(dims.attrs["spatial_dims"]) == ["x", "y"]
        assert dims["time"].shape == (n_t,) and not dims["time"].attrs["sample_varying"]
        np.testing.assert_array_equal(dims["time"][()], toy.spec.frame_times())
        for axis, coordinate in zip("xy", toy.grid.coordinates(), strict=True):
            assert dims[axis].attrs["sample_varying"] == False  # noqa: E712 (numpy bool)
            assert dims[axis].attrs["time_varying"] == False  # noqa: E712
            np.testing.assert_array_equal(dims[axis][()], coordinate)

        assert sorted(f["boundary_conditions"]) == ["x_periodic", "y_wall"]
        for name, kind, axis, size in (
            ("x_periodic", "PERIODIC", "x", n_x),
            ("y_wall", "WALL", "y", n_y),
        ):
            bc = f["boundary_conditions"][name]
            assert bc.attrs["bc_type"] == kind and _names(bc.attrs["associated_dims"]) == [axis]
            assert _names(bc.attrs["associated_fields"]) == []
            assert not bc.attrs["sample_varying"] and not bc.attrs["time_varying"]
            expected_mask = np.zeros(size, bool)
            expected_mask[[0, -1]] = True
            np.testing.assert_array_equal(bc["mask"][()], expected_mask)

        scalars = f["scalars"]
        assert _names(scalars.attrs["field_names"]) == ["diffusivity"]  # seed is not a scalar input
        d = scalars["diffusivity"]
        assert d.shape == (n,) and d.attrs["sample_varying"] and not d.attrs["time_varying"]
        np.testing.assert_array_equal(d[()], np.float32([c["diffusivity"] for c in conditions]))
        assert scalars["seed"].dtype == np.int64
        assert scalars["seed"][()].tolist() == list(WALL_CHOICE_SEEDS)

        assert _names(f["t0_fields"].attrs["field_names"]) == ["tracer"]
        assert _names(f["t1_fields"].attrs["field_names"]) == ["velocity"]
        assert _names(f["t2_fields"].attrs["field_names"]) == []
        tracer, velocity = f["t0_fields"]["tracer"], f["t1_fields"]["velocity"]
        assert tracer.shape == (n, n_t, n_x, n_y) and tracer.dtype == np.float32
        assert velocity.shape == (n, n_t, n_x, n_y, 2) and velocity.dtype == np.float32
        assert tracer.chunks == (1, n_t, n_x, n_y) and velocity.chunks == (1, n_t, n_x, n_y, 2)
        for dataset in (tracer, velocity):
            assert dataset.attrs["dim_varying"].tolist() == [True, True]
            assert dataset.attrs["sample_varying"] and dataset.attrs["time_varying"]
        np.testing.assert_array_equal(tracer[()], fields[:, :, 0])
        np.testing.assert_array_equal(velocity[()], np.moveaxis(fields[:, :, 1:], 2, -1))


def test_load_array_round_trips(toy_file, toy) -> None:
    path, fields, conditions = toy_file
    arrays = load_array(path)
    np.testing.assert_array_equal(arrays.fields, fields)
    assert arrays.channel_names == ("tracer", "velocity_x", "velocity_y")
    np.testing.assert_array_equal(
        arrays.parameters["diffusivity"], np.float32([c["diffusivity"] for c in conditions])
    )
    assert arrays.choices["boundary"].tolist() == ["wall"] * 3
    assert arrays.seeds.tolist() == list(WALL_CHOICE_SEEDS)
    np.testing.assert_array_equal(arrays.bc_codes, [[[2, 2], [0, 0]]] * 3)  # PERIODIC x, WALL y
    np.testing.assert_array_equal(arrays.time, toy.spec.frame_times())
    assert arrays.dataset_name == "toy_advection"


def test_open_well_gives_cf_dataset(toy_file) -> None:
    path, fields, _ = toy_file
    ds = open_well(path)
    assert dict(ds.sizes) == {"sample": 3, "time": 5, "x": 16, "y": 16}
    assert set(ds.data_vars) == {"tracer", "velocity_x", "velocity_y"}
    assert ds["velocity_y"].dims == ("sample", "time", "x", "y")
    np.testing.assert_array_equal(ds["velocity_y"].values, fields[:, :, 2])
    np.testing.assert_array_equal(ds["tracer"].values, fields[:, :, 0])
    assert ds["velocity_x"].attrs["tensor_order"] == 1
    assert ds["velocity_x"].attrs["component"] == "x"
    assert ds["velocity_x"].attrs["long_name"] == "advecting velocity, x component"
    assert ds["tracer"].attrs["dim_varying"] == [1, 1]
    assert ds["tracer"].attrs["sample_varying"] == 1 and ds["tracer"].attrs["time_varying"] == 1
    for name, axis in (("time", "T"), ("x", "X"), ("y", "Y")):
        assert ds[name].attrs["axis"] == axis and "units" in ds[name].attrs
        assert "long_name" in ds[name].attrs
    assert ds["diffusivity"].dims == ("sample",) and "diffusivity" in ds.coords
    assert ds["seed"].values.tolist() == list(WALL_CHOICE_SEEDS)
    assert ds.attrs["Conventions"] == "CF-1.11"
    assert ds.attrs["dataset_name"] == "toy_advection" and ds.attrs["n_spatial_dims"] == 2
    assert ds.attrs["boundary"] == "wall"
    assert (ds.attrs["bc_type_x"], ds.attrs["bc_type_y"]) == ("periodic", "wall")
    assert ds.attrs["title"] == "Toy advection-diffusion"
    assert ds.attrs["source"].startswith("latentsim")


@pytest.mark.parametrize("keep_unit_axis", [False, True], ids=["axis-dropped", "axis-kept"])
def test_reads_a_file_written_the_well_way(tmp_path: Path, keep_unit_axis: bool) -> None:
    ref = write_well_style_file(tmp_path / "rb.hdf5", keep_unit_axis=keep_unit_axis)
    ds = open_well(ref.path)
    assert dict(ds.sizes) == {"sample": 2, "time": 4, "x": 8, "y": 6}
    assert list(ds.data_vars) == ["buoyancy", "obstacle", "profile", "velocity_x", "velocity_y"]
    np.testing.assert_array_equal(ds["y"].values, ref.y)  # Chebyshev, not uniform
    np.testing.assert_array_equal(ds["x"].values, ref.x)
    np.testing.assert_array_equal(ds["time"].values, ref.time)
    np.testing.assert_array_equal(ds["buoyancy"].values, ref.buoyancy)
    np.testing.assert_array_equal(ds["velocity_x"].values, ref.velocity[..., 0])
    np.testing.assert_array_equal(ds["velocity_y"].values, ref.velocity[..., 1])
    obstacle = np.broadcast_to(ref.obstacle[:, None], (2, 4, 8, 6))  # same at every time
    np.testing.assert_array_equal(ds["obstacle"].values, obstacle)
    assert ds["obstacle"].attrs["time_varying"] == 0
    profile = np.broadcast_to(ref.profile[:, :, None], (2, 4, 8, 6))  # same at every x
    np.testing.assert_array_equal(ds["profile"].values, profile)
    assert ds["profile"].attrs["dim_varying"] == [0, 1]
    assert ds["Rayleigh"].values.tolist() == [1e8, 1e8]
    np.testing.assert_allclose(ds["Prandtl"].values, [0.2, 0.2], rtol=1e-7)
    assert "seed" not in ds.coords  # real Well files do not record seeds
    assert (ds.attrs["bc_type_x"], ds.attrs["bc_type_y"]) == ("periodic", "wall")
    assert ds.attrs["dataset_name"] == "rayleigh_benard"
    np.testing.assert_array_equal(load_array(ref.path).bc_codes, [[[2, 2], [0, 0]]] * 2)


def test_time_stored_per_sample(tmp_path: Path) -> None:
    ref = write_well_style_file(tmp_path / "rb.hdf5", time_per_sample=True)
    ds = open_well(ref.path)
    assert ds["time"].dims == ("sample", "time")
    np.testing.assert_array_equal(ds["time"].values, ref.time)
    assert load_array(ref.path).time.shape == (2, 4)


def test_reads_the_wells_dummy_file(tmp_path: Path) -> None:
    """the_well's own dummy writer omits @time_varying on x/y and has all-False BC masks."""
    path = tmp_path / "dummy.hdf5"
    write_dummy_data(str(path))
    with h5py.File(path) as f:
        field = f["t1_fields/field"][()]
        constant = f["t0_fields/constant_field"][()]
        series = f["scalars/time_varying_scalar"][()]
        assert "time_varying" not in f["dimensions/x"].attrs
    ds = open_well(path)
    assert dict(ds.sizes) == {"sample": 2, "time": 10, "x": 32, "y": 32}
    np.testing.assert_array_equal(ds["field_x"].values, field[..., 0])
    np.testing.assert_array_equal(ds["field_y"].values, field[..., 1])
    np.testing.assert_array_equal(ds["constant_field"].values[:, 3], constant)
    np.testing.assert_array_equal(ds["time_varying_scalar"].values, np.stack([series] * 2))
    assert ds["a"].values.tolist() == [0.25, 0.25] and ds["b"].values.tolist() == [0.75, 0.75]
    # Our BC decoding is WellDataset's, down to reading all-False masks as OPEN.
    well = WellDataset(path=str(tmp_path), n_steps_input=1, n_steps_output=1)
    sample = well[0]
    np.testing.assert_array_equal(load_array(path).bc_codes[0], sample["boundary_conditions"])
    np.testing.assert_array_equal(sample["constant_fields"][..., 0], constant[0])
    np.testing.assert_array_equal(sample["input_fields"][0], field[0, 0])


def test_directory_concatenates_along_sample(tmp_path: Path) -> None:
    first = write_well_style_file(tmp_path / "a.hdf5", seed=1)
    second = write_well_style_file(tmp_path / "b.hdf5", n_traj=3, seed=2)
    ds = open_well(tmp_path)
    assert ds.sizes["sample"] == 5
    np.testing.assert_array_equal(
        ds["buoyancy"].values, np.concatenate([first.buoyancy, second.buoyancy])
    )
    assert ds["file"].values.tolist() == ["a.hdf5"] * 2 + ["b.hdf5"] * 3
    assert ds["trajectory"].values.tolist() == [0, 1, 0, 1, 2]


def test_directory_with_mismatched_grids_is_rejected(tmp_path: Path) -> None:
    write_well_style_file(tmp_path / "a.hdf5")
    write_well_style_file(tmp_path / "b.hdf5", shape=(8, 4))
    with pytest.raises(DataFormatError, match=r"b\.hdf5: grid shape \(8, 4\) differ"):
        load_array(tmp_path)


def _copy(path: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(path, target)
    return target


def test_broken_files_raise_data_format_error(tmp_path: Path, toy_file) -> None:
    good = toy_file[0]
    text = tmp_path / "notes.hdf5"
    text.write_text("this is not HDF5\n" * 100)
    with pytest.raises(DataFormatError, match=r"notes\.hdf5: not an HDF5 file"):
        open_well(text)

    truncated = _copy(good, tmp_path, "truncated.hdf5")
    with open(truncated, "r+b") as handle:
        handle.truncate(truncated.stat().st_size // 2)
    with pytest.raises(DataFormatError, match=r"truncated\.hdf5: truncated HDF5 file"):
        load_array(truncated)

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 3)))
    with pytest.raises(DataFormatError, match=r"foreign\.h5: missing group dimensions"):
        open_well(foreign)

    no_t0 = _copy(good, tmp_path, "no_t0.hdf5")
    with h5py.File(no_t0, "a") as f:
        del f["t0_fields"]
    with pytest.raises(DataFormatError, match=r"no_t0\.hdf5: missing group t0_fields"):
        load_array(no_t0)

    wrong_shape = _copy(good, tmp_path, "wrong_shape.hdf5")
    with h5py.File(wrong_shape, "a") as f:
        attrs = dict(f["t0_fields/tracer"].attrs)
        del f["t0_fields/tracer"]
        f["t0_fields"].create_dataset("tracer", data=np.zeros((3, 5, 16, 8), np.float32))
        f["t0_fields/tracer"].attrs.update(attrs)
    with pytest.raises(DataFormatError, match=r"tracer has shape \(3, 5, 16, 8\)"):
        load_array(wrong_shape)


def test_damaged_data_fails_its_checksum(tmp_path: Path, toy_file) -> None:
    damaged = _copy(toy_file[0], tmp_path, "damaged.hdf5")
    with h5py.File(damaged) as f:
        offset = f["t0_fields/tracer"].id.get_chunk_info(1).byte_offset
    with open(damaged, "r+b") as handle:
        handle.seek(offset + 100)
        handle.write(b"\xff" * 8)
    with pytest.raises(DataFormatError, match=r"damaged\.hdf5: cannot read /t0_fields/tracer"):
        load_array(damaged)


def test_missing_paths_and_splits(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no such file or directory"):
        open_well(tmp_path / "absent")
    with pytest.raises(DataFormatError, match=r"no \.hdf5/\.h5 files"):
        load_array(tmp_path)
    with pytest.raises(DataFormatError, match="unknown split 'training'"):
        load_array(tmp_path, split="training")
    with pytest.raises(DataFormatError, match="no valid split"):
        load_array(tmp_path, split="valid")


def test_mixed_choices_become_sample_coordinates_and_export_to_netcdf(
    tmp_path: Path, toy_dataset: Path
) -> None:
    import xarray as xr

    ds = open_well(toy_dataset, "train")
    assert set(ds["boundary"].values) == {"periodic", "wall"}
    np.testing.assert_array_equal(ds["bc_y"].values, ds["boundary"].values)  # y follows choice
    assert "boundary" not in ds.attrs and "bc_type_y" not in ds.attrs  # not shared by all
    assert ds.attrs["bc_type_x"] == "periodic"
    ds.to_netcdf(tmp_path / "train.nc", engine="h5netcdf")
    with xr.open_dataset(tmp_path / "train.nc", engine="h5netcdf") as back:
        xr.testing.assert_identical(back.load(), ds)
