"""Atomic writes: the target holds the old content or the new one, never a partial file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.data import well_writer
from engine.data.atomic import atomic_open, atomic_path, remove_stale_temporaries
from engine.data.well_writer import write_well_file


def test_target_appears_only_when_the_block_succeeds(tmp_path: Path) -> None:
    target = tmp_path / "stats.yaml"
    target.write_text("old")
    with atomic_open(target) as handle:
        handle.write("new")
        handle.flush()
        assert target.read_text() == "old"  # readers still see the previous version
        (temporary,) = [p for p in tmp_path.iterdir() if p != target]
        assert temporary.name.startswith(".stats.yaml.") and temporary.suffix == ".tmp"
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]


def test_exception_mid_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "chunk.hdf5"
    with (
        pytest.raises(RuntimeError, match="simulated crash"),
        atomic_path(target) as temporary,
        h5py.File(temporary, "w") as file,
    ):
        file.create_dataset("half", data=np.zeros(1000))
        raise RuntimeError("simulated crash")
    assert list(tmp_path.iterdir()) == []


def test_exception_keeps_the_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"v1")
    with pytest.raises(KeyboardInterrupt), atomic_open(target, "wb") as handle:
        handle.write(b"v2-partial")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"v1"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_open_refuses_appending(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'a'"), atomic_open(tmp_path / "log.txt", "a"):
        pass


def test_well_writer_crash_leaves_no_file(tmp_path: Path, toy, monkeypatch) -> None:
    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(well_writer, "_write_fields", crash)
    conditions = [toy.sample_conditions(1)]
    fields = np.ones((1, 2, 3, 16, 16), dtype=np.float32)
    with pytest.raises(OSError, match="disk full"):
        write_well_file(tmp_path / "a.hdf5", toy, fields, conditions, [1], [0.0, 0.05])
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".a.hdf5.{dead_pid}.0123abcd.tmp"
    live = tmp_path / f".b.hdf5.{os.getpid()}.0123abcd.tmp"
    unrelated = tmp_path / "notes.tmp"
    for path in (stale, live, unrelated):
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name])
