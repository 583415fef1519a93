"""`latentsim view`: paths are checked before a server starts; what it hands the app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.cli import main
from engine.commands.view import environment
from engine.errors import DataFormatError
from engine.sources import AllowedRoots
from tests.sources.files import rollout_of_dummy, the_wells_dummy


def test_environment_lists_sources_roots_and_a_model_folder(tmp_path: Path, zoo_folder) -> None:
    well = the_wells_dummy(tmp_path / "dummy.hdf5")
    rollout = tmp_path / "runs" / "r.nc"
    rollout.parent.mkdir()
    rollout_of_dummy(rollout, well, truth_file="../dummy.hdf5")
    env = environment([str(rollout), str(tmp_path), str(zoo_folder)], [])
    assert env["LATENTSIM_VIEW_PATHS"].split(os.pathsep) == [str(rollout), str(tmp_path)]
    assert set(env["LATENTSIM_VIEW_ROOTS"].split(os.pathsep)) == {
        str(rollout.parent),
        str(tmp_path),
    }
    assert env["LATENTSIM_ASSETS"] == str(zoo_folder)


def test_a_bad_path_fails_before_serving(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "notes.nc"
    bad.write_text("hello")
    assert main(["view", str(bad), "--port", "0"]) == 2
    assert "notes.nc: not an HDF5, NetCDF or Zarr file" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing.nc")]) == 2
    assert "missing.nc: no such file" in capsys.readouterr().err


def test_roots_refuse_paths_outside_them(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    roots = AllowedRoots([tmp_path / "a"])
    assert roots.check(tmp_path / "a" / "x.nc") == (tmp_path / "a" / "x.nc").resolve()
    for outside in (tmp_path / "b.nc", tmp_path / "a" / ".." / "b.nc", "/etc/passwd"):
        with pytest.raises(DataFormatError, match="outside the allowed roots"):
            roots.check(outside)
    (tmp_path / "a" / "link.nc").symlink_to(tmp_path / "b.nc")
    with pytest.raises(DataFormatError, match="outside the allowed roots"):
        roots.check(tmp_path / "a" / "link.nc")


def test_a_truth_file_outside_the_roots_fails_before_serving(tmp_path: Path) -> None:
    """The command checks with the roots the server will use: a rollout that the browser
    could not open must not start a server."""
    well = the_wells_dummy(tmp_path / "dummy.hdf5")
    rollout = tmp_path / "runs" / "r.nc"
    rollout.parent.mkdir()
    rollout_of_dummy(rollout, well, truth_file="../dummy.hdf5")
    with pytest.raises(DataFormatError, match=r"dummy\.hdf5.*outside the allowed roots"):
        environment([str(rollout)], [])
    env = environment([str(rollout)], [str(tmp_path)])
    assert env["LATENTSIM_VIEW_PATHS"] == str(rollout)
