"""Well datasets as explorer sources: The Well's own files, ours (generate_dataset),
3-D slices, and files that are not Well files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.data.generate import generate_dataset
from engine.errors import DataFormatError, ParameterError
from engine.sources import WellSource, open_source
from tests.data.toy_system import ToyAdvection
from tests.data.well_files import write_well_style_file
from tests.sources.files import the_wells_dummy, well_3d


def test_the_wells_dummy_file_one_trajectory(tmp_path: Path) -> None:
    path = the_wells_dummy(tmp_path / "dummy.hdf5")
    source = open_source(path)
    assert isinstance(source, WellSource)
    assert source.splits == ("all",) and len(source.trajectories("all")) == 2
    frames = source.frames("all", 1)
    with h5py.File(path) as f:
        field = f["t1_fields/field"][1]
        constant = f["t0_fields/constant_field"][1]
    assert frames.channels == ("constant_field", "field_x", "field_y")  # a vector field
    assert frames.values.shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(frames.values[:, 1], field[..., 0])
    np.testing.assert_array_equal(frames.values[:, 2], field[..., 1])
    np.testing.assert_array_equal(frames.values[4, 0], constant)  # no time axis: broadcast
    assert source.parameters("all", 1) == {"a": 0.25, "b": 0.75}
    assert frames.spec().channel_names == frames.channels


def test_non_uniform_coordinates_and_boundaries(tmp_path: Path) -> None:
    ref = write_well_style_file(tmp_path / "rb.hdf5")
    source = WellSource(ref.path)
    frames = source.frames("all", 0)
    assert len(frames.channels) == 5  # buoyancy, obstacle, profile, velocity_x, velocity_y
    np.testing.assert_array_equal(frames.y, ref.y)  # Chebyshev
    assert not frames.uniform
    assert source.boundary_conditions == {"x": "periodic", "y": "wall"}
    np.testing.assert_array_equal(frames.values[:, 0], ref.buoyancy[0])


def test_our_generated_dataset_with_splits(tmp_path: Path) -> None:
    root = generate_dataset(
        ToyAdvection(), tmp_path, n_train=2, n_valid=1, n_test=1, seed=1, progress=False
    )
    source = open_source(root)
    assert source.splits == ("train", "valid", "test")
    assert len(source.trajectories("train")) == 2
    frames = source.frames("test", 0)
    assert frames.values.shape[1] == len(ToyAdvection().spec.channel_names)
    with pytest.raises(ParameterError, match="trajectory of split test"):
        source.frames("test", 5)
    with pytest.raises(ParameterError, match="split"):
        source.trajectories("nope")


def test_3d_data_is_shown_as_a_slice(tmp_path: Path) -> None:
    path = well_3d(tmp_path / "cube.hdf5")
    source = WellSource(path)
    assert source.spatial_dims == ("x", "y", "z")
    with h5py.File(path) as f:
        velocity = f["t1_fields/velocity"][0]  # (T, X, Y, Z, 3)
    frames = source.frames("all", 0, axis="y", index=2)
    assert frames.channels == ("density", "velocity_x", "velocity_y", "velocity_z")
    assert frames.values.shape == (5, 4, 8, 4)  # (T, C, X, Z)
    np.testing.assert_array_equal(frames.values[:, 3], velocity[:, :, 2, :, 2])
    assert frames.attrs["dims"] == ("x", "z") and not frames.uniform  # stretched z
    default = source.frames("all", 0)  # across the last axis, its middle
    assert default.values.shape == (5, 4, 8, 6)
    with pytest.raises(ParameterError, match="slice index"):
        source.frames("all", 0, axis="z", index=9)


def test_bad_files_are_named_with_their_problem(tmp_path: Path) -> None:
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(DataFormatError, match=r"notes\.hdf5: not an HDF5"):
        WellSource(text)
    broken = tmp_path / "broken.hdf5"
    with h5py.File(broken, "w") as f:
        f.create_group("dimensions")
        f.create_group("t0_fields")
    with pytest.raises(DataFormatError, match=r"broken\.hdf5: missing group boundary_conditions"):
        open_source(broken)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(DataFormatError, match=r"empty_dir: no \.hdf5/\.h5 files"):
        WellSource(empty)


def test_nothing_is_written(tmp_path: Path) -> None:
    path = the_wells_dummy(tmp_path / "dummy.hdf5")
    before = (path.stat().st_mtime_ns, path.read_bytes())
    source = WellSource(path)
    source.frames("all", 0)
    source.parameters("all", 0)
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dummy.hdf5"]
